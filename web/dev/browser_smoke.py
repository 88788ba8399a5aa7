"""Browser smoke test of web/ against web/dev/mock_server.py (development tool).

Starts the mock (with injected sequence gaps and bad checksums) and headless
Chromium, drives the page over the DevTools protocol and checks: no JS errors,
the book stays equal to the server's after resyncs, sign-up/log-in, orders,
cancel-all, wallet addresses, reconnect after a node restart (`status`/`shutdown`
then close 1012). Needs `chromium` (Debian package) and the project venv.

    .venv/bin/python web/dev/browser_smoke.py [--screenshot docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import websockets

HERE = Path(__file__).resolve().parent
JS = Callable[[str], Awaitable[Any]]

BOOK_EQUALS_SERVER = """(async () => {
  for (let i = 0; i < 60; i++) {
    const snap = await (await fetch('/api/v1/markets/BTC-USD/book?depth=50')).json();
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    const foot = document.querySelector('.ladder-foot').textContent;
    const m = foot.match(/seq (\\d+)/);
    if (m && Number(m[1]) === snap.seq) {
      const rows = (sel) => [...document.querySelectorAll(sel + ' .ladder-row:not([hidden])')]
        .slice(0, 10).map(r => r.dataset.price + ' ' + r.querySelector('.c-size').textContent);
      const same = JSON.stringify([rows('.ladder-asks'), rows('.ladder-bids')]) ===
        JSON.stringify([snap.asks.slice(0, 10), snap.bids.slice(0, 10)]
          .map(s => s.map(([p, z]) => p + ' ' + z)));
      return same && foot.includes('crc32 ok');
    }
    await new Promise(r => setTimeout(r, 31));
  }
  return false;
})()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 15) -> Any:
    end = time.time() + timeout
    while True:
        try:
            return json.load(urllib.request.urlopen(url, timeout=2))
        except Exception:
            if time.time() > end:
                raise
            time.sleep(0.2)


@contextlib.asynccontextmanager
async def devtools(url: str) -> AsyncIterator[tuple[Callable[..., Awaitable[Any]], JS, list[str]]]:
    port = free_port()
    profile = tempfile.mkdtemp(prefix="hftx-chromium-")
    proc = subprocess.Popen(
        [
            shutil.which("chromium") or "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "--window-size=1600,900",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        targets = wait_http(f"http://127.0.0.1:{port}/json")
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=2**26) as ws:
            pending: dict[int, asyncio.Future[Any]] = {}
            problems: list[str] = []
            counter = iter(range(1, 10**9))

            async def reader() -> None:
                async for raw in ws:
                    m = json.loads(raw)
                    if m.get("id") in pending:
                        pending.pop(m["id"]).set_result(m)
                    elif m.get("method") == "Runtime.exceptionThrown":
                        d = m["params"]["exceptionDetails"]
                        problems.append(str(d.get("exception", {}).get("description") or d))
                    elif m.get("method") == "Runtime.consoleAPICalled" and m["params"]["type"] in (
                        "error",
                        "assert",
                    ):
                        args = m["params"]["args"]
                        problems.append(" ".join(str(a.get("value", a)) for a in args))

            task = asyncio.create_task(reader())

            async def cmd(method: str, **params: Any) -> Any:
                n = next(counter)
                fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                pending[n] = fut
                await ws.send(json.dumps({"id": n, "method": method, "params": params}))
                r = await asyncio.wait_for(fut, 30)
                if "error" in r:
                    raise RuntimeError(r["error"])
                return r["result"]

            async def js(expr: str) -> Any:
                r = await cmd(
                    "Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True
                )
                if "exceptionDetails" in r:
                    raise RuntimeError(json.dumps(r["exceptionDetails"])[:400])
                return r["result"].get("value")

            await cmd("Runtime.enable")
            await cmd("Page.enable")
            await cmd(
                "Emulation.setDeviceMetricsOverride",
                width=1600,
                height=900,
                deviceScaleFactor=1,
                mobile=False,
            )
            await cmd("Page.navigate", url=url)
            yield cmd, js, problems
            task.cancel()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def run(base: str, screenshot: str | None) -> list[tuple[str, bool, str]]:
    results: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: Any = "") -> None:
        results.append((name, bool(ok), str(detail)[:300]))

    async with devtools(base + "/#BTC-USD") as (cmd, js, problems):
        await asyncio.sleep(3)
        state = await js(
            """({asks: document.querySelectorAll('.ladder-asks .ladder-row:not([hidden])').length,
                bids: document.querySelectorAll('.ladder-bids .ladder-row:not([hidden])').length,
                trades: document.querySelectorAll('.trade-row').length,
                chart: document.querySelector('.chart-info').textContent,
                conn: document.querySelector('#conn-label').textContent,
                markets: document.querySelectorAll('#market-select option').length})"""
        )
        check(
            "page renders book, trades, chart",
            state["asks"]
            and state["bids"]
            and state["trades"]
            and state["chart"]
            and state["markets"] == 3,
            state,
        )
        check("logged out: public data polled over HTTP", state["conn"] == "Delayed (HTTP)", state)
        daily = await js(
            """(async () => { document.querySelector('[data-interval="1d"]').click();
            await new Promise(r => setTimeout(r, 1200));
            const t = document.querySelector('.chart-info').textContent;
            document.querySelector('[data-interval="1m"]').click(); return t; })()"""
        )
        check(
            "1d chart: the candle's date once (no '11/26' after it)",
            re.match(r"\d{4}-\d\d-\d\d  O \d", daily) is not None,
            daily,
        )
        await cmd(
            "Emulation.setDeviceMetricsOverride",
            width=390,
            height=844,
            deviceScaleFactor=1,
            mobile=True,
        )
        await asyncio.sleep(0.5)
        phone = await js(
            """(() => { const r = (s) => document.querySelector(s).getBoundingClientRect();
            return {scroll: document.documentElement.scrollWidth,
                    signup: r('#user-area .btn-primary').right, entry: r('#entry').height,
                    ticker: r('#ticker').width}; })()"""
        )
        check(
            "390 px wide: no sideways scroll, Sign up on screen, order form shown",
            phone["scroll"] <= 390
            and phone["signup"] <= 390
            and phone["entry"] > 300
            and phone["ticker"] > 300,
            phone,
        )
        await cmd(
            "Emulation.setDeviceMetricsOverride",
            width=1600,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        await js(
            """(async () => {
              document.querySelector('#user-area .btn-primary').click();
              const f = document.querySelector('.auth-form');
              f.elements.email.value = 'smoke@example.com'; f.elements.password.value = 'secret-1';
              f.requestSubmit(); await new Promise(r => setTimeout(r, 1500)); })()"""
        )
        user = await js("document.querySelector('#user-area').innerText")
        check("sign up + log in", "smoke@example.com" in user, user)
        await asyncio.sleep(1)
        conn = await js("document.querySelector('#conn-label').textContent")
        check("logged in: live WebSocket", conn == "Live", conn)

        async def order(setup: str) -> str:
            return str(
                await js(
                    "(async () => { const f = document.querySelector('.order-form');"
                    + setup
                    + """; f.requestSubmit(); await new Promise(r => setTimeout(r, 1200));
                    const res = document.querySelector('.order-result');
                    const e = f.querySelector('.form-error');
                    return (res.hidden ? '' : res.innerText)
                      + (e.hidden ? '' : 'ERR ' + e.textContent);
                    })()"""
                )
            )

        out = await order(
            """document.querySelector('[data-type=limit]').click();
            f.elements.price.value = '60000.00'; f.elements.amount.value = '0.05'"""
        )
        check("limit order rests", "PLACED" in out, out)
        out = await order("f.elements.price.value = '60000.005'")
        check("precision validated client-side", "multiple of 0.01" in out, out)
        out = await order(
            """document.querySelector('[data-type=market]').click();
            f.elements.amount.value = '0.02'"""
        )
        check("market buy fills", "FILLED" in out and "taker" in out, out)
        await asyncio.sleep(1)
        counts = await js(
            """[document.querySelectorAll('[data-pane=orders] tbody tr').length,
                document.querySelectorAll('[data-pane=fills] tbody tr').length,
                document.querySelectorAll('[data-pane=balances] tbody tr').length]"""
        )
        check(
            "open orders, fills, balances listed",
            counts[0] == 1 and counts[1] >= 1 and counts[2] >= 2,
            counts,
        )
        await asyncio.sleep(6)
        check("book equals server after injected gaps/bad checksums", await js(BOOK_EQUALS_SERVER))
        foot = await js("document.querySelector('.ladder-foot').textContent")
        check("resyncs happened", "resyncs" in foot, foot)
        urllib.request.urlopen(
            urllib.request.Request(base + "/api/v1/dev/restart-ws", method="POST", data=b"{}")
        )
        await asyncio.sleep(3.5)
        conn = await js("document.querySelector('#conn-label').textContent")
        check("reconnects and re-authenticates after restart", conn == "Live", conn)
        check("book resynced after reconnect", await js(BOOK_EQUALS_SERVER))
        left = await js(
            """(async () => { document.querySelector('#cancel-all').click();
            await new Promise(r => setTimeout(r, 1000));
            return document.querySelectorAll('[data-pane=orders] tbody tr').length })()"""
        )
        check("cancel all", left == 0, left)
        addrs = await js(
            """(async () => { document.querySelector('[data-tab=wallet]').click();
            await new Promise(r => setTimeout(r, 800));
            return document.querySelectorAll('.addresses tbody tr').length })()"""
        )
        check("deposit addresses", addrs >= 2, addrs)
        xfer = await js(
            """(async () => { const f = document.querySelector('.transfer-form');
            const send = async (amount, to) => { f.elements.amount.value = amount;
              f.elements.to_address.value = to; f.requestSubmit();
              await new Promise(r => setTimeout(r, 800));
              const r = f.querySelector('.transfer-result'), e = f.querySelector('.form-error');
              return [r.hidden ? '' : r.textContent, e.hidden ? '' : e.textContent]; };
            return [await send('0.01', 'hx-smoke'), await send('0.01', 'nowhere'),
                    await send('1,000', 'hx-smoke')]; })()"""
        )
        check(
            "transfer: sent, then a refusal replaces the old 'Sent' line",
            xfer[0][0].startswith("Sent 0.01")
            and xfer[1] == ["", "INVALID_PARAM: unknown address"]
            and xfer[2][0] == ""
            and "could be 1000 or 1.000" in xfer[2][1],
            xfer,
        )
        await js("document.querySelector('[data-tab=orders]').click()")
        if screenshot:
            await js(
                """(async () => { const f = document.querySelector('.order-form');
                document.querySelector('[data-type=limit]').click();
                const p = document.querySelector('.ladder-bids .ladder-row').dataset.price;
                f.elements.price.value = (Number(p) - 30).toFixed(2);
                f.elements.amount.value = '0.15';
                f.requestSubmit(); await new Promise(r => setTimeout(r, 800));
                f.elements.price.value = (Number(p) - 55).toFixed(2);
                f.elements.amount.value = '0.4';
                f.requestSubmit(); await new Promise(r => setTimeout(r, 800));
                f.elements.price.value = p; f.elements.amount.value = '0.25';
                f.elements.amount.dispatchEvent(new Event('input')); })()"""
            )
            await asyncio.sleep(2.5)
            await js("document.querySelectorAll('.toast').forEach(t => t.remove())")
            shot = await cmd("Page.captureScreenshot", format="png")
            Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
        urllib.request.urlopen(
            urllib.request.Request(
                base + "/api/v1/dev/market-status",
                method="POST",
                data=b'{"market": "BTC-USD", "status": "HALT"}',
            )
        )
        out = await order(
            """document.querySelector('[data-type=limit]').click();
            f.elements.price.value = '60000.00'; f.elements.amount.value = '0.05'"""
        )
        halted = await js(
            """({badge: document.querySelector('#market-status').textContent,
                button: document.querySelector('.order-form .submit').textContent,
                disabled: document.querySelector('.order-form .submit').disabled})"""
        )
        check(
            "halted since the last markets poll: refused, then badge + disabled button at once",
            "MARKET_NOT_TRADING" in out
            and halted == {"badge": "HALT", "button": "Market halt", "disabled": True},
            [out, halted],
        )
        check("no JavaScript errors", not problems, problems)
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshot", help="save a PNG of the page at the end")
    args = ap.parse_args()
    port = free_port()
    mock = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "mock_server.py"),
            "--port",
            str(port),
            "--gap-every",
            "25",
            "--bad-crc-every",
            "40",
        ]
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/api/v1/markets")
        results = asyncio.run(run(base, args.screenshot))
    finally:
        mock.terminate()
        mock.wait()
    for name, ok, detail in results:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f"  -- {detail}"))
    failed = sum(not ok for _, ok, _ in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
