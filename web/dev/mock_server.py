"""Development-only mock of the hftx API for working on web/ without the exchange.

Serves web/ at / and a simulated subset of PROTOCOL.md: HTTP /api/v1 and WebSocket
/ws with book snapshots/updates (seq + CRC32 checksum), trades, ticker, heartbeat,
private orders/balances/notifications and naive matching of the user's orders.
It is NOT the exchange: no persistence, one in-memory user space, loose checks.

    .venv/bin/python web/dev/mock_server.py --port 9011 [--gap-every 50] [--bad-crc-every 70]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

WEB = Path(__file__).resolve().parent.parent
MARKETS = [
    {
        "id": "BTC-USD",
        "base": "BTC",
        "quote": "USD",
        "price_increment": "0.01",
        "size_increment": "0.00001",
        "min_size": "0.0001",
        "status": "TRADING",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
        "mid": "64250.00",
    },
    {
        "id": "ETH-USD",
        "base": "ETH",
        "quote": "USD",
        "price_increment": "0.01",
        "size_increment": "0.0001",
        "min_size": "0.001",
        "status": "TRADING",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
        "mid": "3120.00",
    },
    {
        "id": "SOL-USD",
        "base": "SOL",
        "quote": "USD",
        "price_increment": "0.001",
        "size_increment": "0.001",
        "min_size": "0.01",
        "status": "CANCEL_ONLY",
        "maker_fee_bps": 10,
        "taker_fee_bps": 20,
        "mid": "148.500",
    },
]
OPTS = argparse.Namespace(gap_every=0, bad_crc_every=0, no_candles=False)


def now_ms() -> int:
    return int(time.time() * 1000)


def fmt(x: Decimal, inc: str) -> str:
    return format(x.quantize(Decimal(inc), rounding=ROUND_DOWN), "f")


def checksum(asks: list[list[str]], bids: list[list[str]]) -> int:
    def part(p: str, s: str) -> str:
        return p.replace(".", "").lstrip("0") + s.replace(".", "").lstrip("0")

    text = "".join(part(p, s) for p, s in asks[:10]) + "".join(part(p, s) for p, s in bids[:10])
    return zlib.crc32(text.encode())


def err(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class Market:
    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.id = cfg["id"]
        self.tick = Decimal(cfg["price_increment"])
        self.lot = Decimal(cfg["size_increment"])
        self.mid = Decimal(cfg["mid"])
        self.seq = 0
        self.updates = 0
        self.trade_id = 0
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.trades: list[dict[str, Any]] = []
        self.volume = Decimal(0)
        self.last = self.mid
        self.candles = self.history()
        for i in range(1, 30):
            self.bids[self.mid - self.tick * 50 * i] = self.rand_size()
            self.asks[self.mid + self.tick * 50 * i] = self.rand_size()

    def rand_size(self) -> Decimal:
        return (
            Decimal(random.lognormvariate(0, 1.1)) * self.lot * 20000 / (1 + self.mid / 5000)
        ).quantize(self.lot) + self.lot * 10

    def history(self) -> list[dict[str, Any]]:
        out = []
        p = float(self.mid)
        t0 = now_ms() // 60000 * 60000 - 149 * 60000
        path = [p]
        for _ in range(149):
            path.append(path[-1] * (1 + random.gauss(0, 0.0012)))
        shift = p - path[-1]
        inc = self.cfg["price_increment"]
        for i, c in enumerate(path):
            o = c + shift
            cl = (path[i + 1] if i + 1 < len(path) else c) + shift
            h = max(o, cl) * (1 + abs(random.gauss(0, 0.0006)))
            lo = min(o, cl) * (1 - abs(random.gauss(0, 0.0006)))
            out.append(
                {
                    "ts": t0 + i * 60000,
                    "open": fmt(Decimal(o), inc),
                    "high": fmt(Decimal(h), inc),
                    "low": fmt(Decimal(lo), inc),
                    "close": fmt(Decimal(cl), inc),
                    "volume": str(round(random.uniform(0.5, 12), 5)),
                }
            )
        return out

    def side_list(self, side: str, depth: int = 50) -> list[list[str]]:
        book = self.bids if side == "bid" else self.asks
        prices = sorted(book, reverse=(side == "bid"))[:depth]
        return [
            [fmt(p, self.cfg["price_increment"]), fmt(book[p], self.cfg["size_increment"])]
            for p in prices
        ]

    def snapshot(self, depth: int) -> dict[str, Any]:
        bids, asks = self.side_list("bid", depth), self.side_list("ask", depth)
        return {
            "channel": "book",
            "type": "snapshot",
            "market": self.id,
            "seq": self.seq,
            "bids": bids,
            "asks": asks,
            "checksum": checksum(asks, bids),
        }

    def ticker(self) -> dict[str, Any]:
        b, a = self.side_list("bid", 1), self.side_list("ask", 1)
        return {
            "channel": "ticker",
            "market": self.id,
            "best_bid": b[0][0] if b else None,
            "best_bid_size": b[0][1] if b else None,
            "best_ask": a[0][0] if a else None,
            "best_ask_size": a[0][1] if a else None,
            "last": fmt(self.last, self.cfg["price_increment"]),
            "volume_24h": fmt(self.volume + Decimal("1843.2"), self.cfg["size_increment"]),
            # a made-up day: opened 1.5% below the mid, ranged 2.5% around it
            "open_24h": fmt(self.mid * Decimal("0.985"), self.cfg["price_increment"]),
            "high_24h": fmt(
                max(self.last, self.mid * Decimal("1.012")), self.cfg["price_increment"]
            ),
            "low_24h": fmt(
                min(self.last, self.mid * Decimal("0.978")), self.cfg["price_increment"]
            ),
            "seq": self.seq,
            "ts": now_ms(),
        }


class Hub:
    def __init__(self) -> None:
        self.markets = {m["id"]: Market(m) for m in MARKETS}
        self.conns: set[Conn] = set()
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.order_ids = itertools.count(int(time.time() * 1000) << 10)

    def user(self, uid: str) -> dict[str, Any]:
        if uid not in self.users:
            self.users[uid] = {
                "balances": {
                    "BTC": Decimal("1.25"),
                    "ETH": Decimal("14.5"),
                    "SOL": Decimal("300"),
                    "USD": Decimal("250000"),
                    "USDT": Decimal("5000"),
                },
                "locked": {},
                "orders": {},
                "fills": [],
            }
        return self.users[uid]

    async def publish(self, msg: dict[str, Any], uid: str | None = None) -> None:
        for c in list(self.conns):
            await c.deliver(msg, uid)

    async def book_update(self, m: Market, changes: dict[str, list[list[str]]]) -> None:
        first = m.seq + 1
        m.seq += 1
        m.updates += 1
        bids, asks = m.side_list("bid"), m.side_list("ask")
        crc = checksum(asks, bids)
        if OPTS.bad_crc_every and m.updates % OPTS.bad_crc_every == 0:
            crc ^= 1
        msg = {
            "channel": "book",
            "type": "update",
            "market": m.id,
            "first_seq": first,
            "seq": m.seq,
            "bids": changes.get("bids", []),
            "asks": changes.get("asks", []),
            "checksum": crc,
        }
        if OPTS.gap_every and m.updates % OPTS.gap_every == 0:
            m.seq += 1
            msg["first_seq"] = m.seq
            msg["seq"] = m.seq
        await self.publish(msg)

    async def trade(
        self, m: Market, price: Decimal, size: Decimal, taker_side: str
    ) -> dict[str, Any]:
        m.trade_id += 1
        m.last = price
        m.volume += size
        inc = m.cfg["price_increment"]
        t = {
            "channel": "trades",
            "market": m.id,
            "trade_id": m.trade_id,
            "price": fmt(price, inc),
            "size": fmt(size, m.cfg["size_increment"]),
            "taker_side": taker_side,
            "maker_order_id": "0",
            "taker_order_id": "0",
            "seq": m.seq,
            "ts": now_ms(),
        }
        m.trades.insert(0, t)
        del m.trades[200:]
        c = m.candles[-1]
        bucket = now_ms() // 60000 * 60000
        ps = fmt(price, inc)
        if c["ts"] == bucket:
            c["high"] = max(c["high"], ps, key=Decimal)
            c["low"] = min(c["low"], ps, key=Decimal)
            c["close"] = ps
        else:
            m.candles.append(
                {"ts": bucket, "open": ps, "high": ps, "low": ps, "close": ps, "volume": "0"}
            )
        await self.publish(t)
        return t

    async def simulate(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            for m in self.markets.values():
                await self.step(m)

    async def step(self, m: Market) -> None:
        inc, lot = m.cfg["price_increment"], m.cfg["size_increment"]
        r = random.random()
        best_bid = max(m.bids) if m.bids else m.mid - m.tick
        best_ask = min(m.asks) if m.asks else m.mid + m.tick
        if r < 0.15:  # taker hits the best level
            side = random.choice(["buy", "sell"])
            book, p = (m.asks, best_ask) if side == "buy" else (m.bids, best_bid)
            if p not in book:
                return
            size = min(book[p], max(m.lot, (m.rand_size() / 3).quantize(m.lot)))
            book[p] -= size
            key = "asks" if side == "buy" else "bids"
            left = book[p]
            if left <= 0:
                del book[p]
            await self.book_update(m, {key: [[fmt(p, inc), fmt(max(left, Decimal(0)), lot)]]})
            await self.trade(m, p, size, side)
            await self.publish(m.ticker())
        else:  # add, resize or remove a level near the top
            side = random.choice(["bids", "asks"])
            book = m.bids if side == "bids" else m.asks
            ref = best_bid if side == "bids" else best_ask
            offset = m.tick * random.randint(0, 120) * (-1 if side == "bids" else 1)
            p = ref + offset
            if side == "bids" and p >= best_ask:
                p = best_ask - m.tick
            if side == "asks" and p <= best_bid:
                p = best_bid + m.tick
            if p in book and random.random() < 0.35:
                del book[p]
                size = Decimal(0)
            else:
                size = m.rand_size()
                book[p] = size
            await self.book_update(m, {side: [[fmt(p, inc), fmt(size, lot)]]})

    # --- user orders (naive) -------------------------------------------------
    async def place(self, uid: str, p: dict[str, Any]) -> dict[str, Any]:
        for k, v in p.items():
            if isinstance(v, float):
                raise ApiErr(400, "INVALID_PARAM", f"{k} must be a decimal string")
        m = self.markets.get(p.get("market", ""))
        if not m:
            raise ApiErr(400, "UNKNOWN_MARKET", "unknown market")
        if m.cfg["status"] != "TRADING":
            raise ApiErr(400, "MARKET_NOT_TRADING", f"market is {m.cfg['status']}")
        u = self.user(uid)
        cid = p.get("client_order_id") or ""
        for o in u["orders"].values():
            if cid and o["client_order_id"] == cid:
                raise ApiErr(409, "DUPLICATE_CLIENT_ORDER_ID", "duplicate client_order_id", o)
        side, typ = p["side"], p["type"]
        inc, lot = m.cfg["price_increment"], m.cfg["size_increment"]
        try:
            amount = Decimal(p.get("amount") or "0")
            price = Decimal(p["price"]) if typ == "limit" else None
            quote_amount = Decimal(p["quote_amount"]) if p.get("quote_amount") else None
        except Exception as e:
            raise ApiErr(400, "INVALID_PARAM", "bad number") from e
        if price is not None and price % m.tick:
            raise ApiErr(400, "BAD_PRECISION", f"price must be a multiple of {inc}")
        if amount % m.lot:
            raise ApiErr(400, "BAD_PRECISION", f"amount must be a multiple of {lot}")
        if quote_amount is None and amount < Decimal(m.cfg["min_size"]):
            raise ApiErr(400, "INVALID_PARAM", f"amount below min_size {m.cfg['min_size']}")
        tif = p.get("time_in_force", "GTC")
        book = m.asks if side == "buy" else m.bids
        crosses = sorted(book, reverse=(side == "sell"))
        if price is not None:
            crosses = [x for x in crosses if (x <= price if side == "buy" else x >= price)]
        if p.get("post_only") and crosses:
            raise ApiErr(400, "POST_ONLY_WOULD_TAKE", "post-only order would take liquidity")
        quote_asset, base_asset = m.cfg["quote"], m.cfg["base"]
        need = (
            (price * amount)
            if side == "buy" and price
            else amount
            if side == "sell"
            else quote_amount or Decimal(0)
        )
        have = u["balances"][quote_asset if side == "buy" else base_asset]
        if side == "buy" and not price and not quote_amount:
            need = amount * (crosses[0] if crosses else m.mid) * Decimal("1.05")
        if need > have:
            raise ApiErr(
                400,
                "INSUFFICIENT_FUNDS",
                f"need {need} {quote_asset if side == 'buy' else base_asset}",
            )
        available = sum((book[x] for x in crosses), Decimal(0))
        oid = str(next(self.order_ids))
        ts = now_ms()
        o = {
            "id": oid,
            "client_order_id": cid,
            "market": m.id,
            "side": side,
            "type": typ,
            "time_in_force": tif,
            "post_only": bool(p.get("post_only")),
            "price": fmt(price, inc) if price else None,
            "amount": fmt(amount, lot),
            "filled": "0",
            "remaining": fmt(amount, lot),
            "cost": "0",
            "average": None,
            "status": "NEW",
            "created_ts": ts,
            "updated_ts": ts,
        }
        if tif == "FOK" and available < amount:
            o["status"] = "EXPIRED"
            o["fills"] = []
            return o
        await self.publish(order_push("NEW", o), uid)
        left, cost, fills = amount, Decimal(0), []
        budget = quote_amount
        for x in crosses:
            if budget is not None:
                take = min(book[x], (budget / x).quantize(m.lot, rounding=ROUND_DOWN))
            else:
                take = min(book[x], left)
            if take <= 0:
                break
            book[x] -= take
            remaining_lvl = book[x]
            if book[x] <= 0:
                del book[x]
            key = "asks" if side == "buy" else "bids"
            await self.book_update(
                m, {key: [[fmt(x, inc), fmt(max(remaining_lvl, Decimal(0)), lot)]]}
            )
            t = await self.trade(m, x, take, side)
            fee_asset = base_asset if side == "buy" else quote_asset
            fee = (take if side == "buy" else take * x) * m.cfg["taker_fee_bps"] / 10000
            fee = fee.quantize(Decimal("0.00000001"))
            fill = {
                "trade_id": t["trade_id"],
                "price": fmt(x, inc),
                "size": fmt(take, lot),
                "fee": str(fee),
                "fee_asset": fee_asset,
                "maker_order_id": "0",
                "liquidity": "taker",
            }
            fills.append(fill)
            cost += take * x
            if budget is not None:
                budget -= take * x
                amount += take
            else:
                left -= take
            filled = (amount - left) if budget is None else amount
            o.update(
                filled=fmt(filled, lot),
                remaining=fmt(max(left, Decimal(0)), lot) if budget is None else "0",
                cost=fmt(cost, inc),
                average=fmt(cost / filled, inc),
                status="FILLED" if budget is None and left <= 0 else "PARTIALLY_FILLED",
                updated_ts=now_ms(),
            )
            self.settle(u, m, side, take, x, fee)
            await self.publish(
                {
                    **order_push("TRADE", o),
                    "trade_id": t["trade_id"],
                    "last_price": fill["price"],
                    "last_size": fill["size"],
                    "liquidity": "taker",
                    "fee": fill["fee"],
                    "fee_asset": fee_asset,
                },
                uid,
            )
            u["fills"].insert(
                0, {**fill, "order_id": oid, "market": m.id, "side": side, "ts": now_ms()}
            )
            if (budget is None and left <= 0) or (budget is not None and budget < x * m.lot):
                break
        if budget is not None:
            o["amount"] = fmt(amount, lot)
            o["status"] = "FILLED" if amount > 0 else "EXPIRED"
        elif left > 0:
            if typ == "market" or tif in ("IOC", "FOK"):
                o["status"] = "EXPIRED" if o["filled"] == "0" else "CANCELED"
            else:
                assert price is not None  # only a limit order rests
                book = m.bids if side == "buy" else m.asks
                book[price] = book.get(price, Decimal(0)) + left
                key = "bids" if side == "buy" else "asks"
                await self.book_update(m, {key: [[fmt(price, inc), fmt(book[price], lot)]]})
                u["orders"][oid] = o
                self.lock(u, m, side, left, price)
        await self.push_balances(uid)
        if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
            await self.publish(
                order_push("EXPIRED" if o["status"] == "EXPIRED" else "TRADE", o), uid
            )
        await self.publish(m.ticker())
        return {**o, "fills": fills}

    def lock(
        self, u: dict[str, Any], m: Market, side: str, size: Decimal, price: Decimal, sign: int = 1
    ) -> None:
        asset = m.cfg["quote"] if side == "buy" else m.cfg["base"]
        amt = size * price if side == "buy" else size
        u["balances"][asset] -= sign * amt
        u["locked"][asset] = u["locked"].get(asset, Decimal(0)) + sign * amt

    def settle(
        self, u: dict[str, Any], m: Market, side: str, size: Decimal, price: Decimal, fee: Decimal
    ) -> None:
        b, q = m.cfg["base"], m.cfg["quote"]
        if side == "buy":
            u["balances"][q] -= size * price
            u["balances"][b] += size - fee
        else:
            u["balances"][b] -= size
            u["balances"][q] += size * price - fee

    def balances(self, uid: str) -> list[dict[str, str]]:
        u = self.user(uid)
        out = []
        for a, free in sorted(u["balances"].items()):
            locked = u["locked"].get(a, Decimal(0))
            out.append(
                {
                    "asset": a,
                    "free": fmt(free, "0.00000001"),
                    "locked": fmt(locked, "0.00000001"),
                    "total": fmt(free + locked, "0.00000001"),
                }
            )
        return out

    async def push_balances(self, uid: str) -> None:
        for b in self.balances(uid):
            await self.publish({"channel": "balances", **b}, uid)

    async def cancel(self, uid: str, oid: str) -> dict[str, Any]:
        u = self.user(uid)
        o = u["orders"].pop(oid, None)
        if not o:
            raise ApiErr(404, "UNKNOWN_ORDER", f"no open order {oid}")
        m = self.markets[o["market"]]
        price, rem = Decimal(o["price"]), Decimal(o["remaining"])
        book = m.bids if o["side"] == "buy" else m.asks
        book[price] = book.get(price, Decimal(0)) - rem
        left = book[price]
        if left <= 0:
            del book[price]
        key = "bids" if o["side"] == "buy" else "asks"
        await self.book_update(
            m, {key: [[o["price"], fmt(max(left, Decimal(0)), m.cfg["size_increment"])]]}
        )
        self.lock(u, m, o["side"], rem, price, -1)
        o.update(status="CANCELED", updated_ts=now_ms())
        await self.publish(order_push("CANCELED", o), uid)
        await self.push_balances(uid)
        return o


def order_push(exec_type: str, o: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": "orders",
        "type": "update",
        "market": o["market"],
        "exec_type": exec_type,
        "order": dict(o),
        "ts": now_ms(),
    }


class ApiErr(Exception):
    def __init__(
        self, status: int, code: str, message: str, order: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.order = status, code, message, order

    def body(self) -> dict[str, Any]:
        b: dict[str, Any] = {"error": {"code": self.code, "message": self.message}}
        if self.order:
            b["order"] = self.order
        return b


HUB = Hub()


class Conn:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.uid: str | None = None
        self.subs: set[tuple[str, str]] = set()
        self.after: list[dict[str, Any]] = []  # pushes sent right after the answer

    async def deliver(self, msg: dict[str, Any], uid: str | None) -> None:
        ch = msg["channel"]
        if uid is not None:
            if uid != self.uid or (ch, "*") not in self.subs:
                return
        elif ch != "status" and (ch, msg.get("market", "*")) not in self.subs:
            return
        with contextlib.suppress(Exception):
            await self.ws.send_text(json.dumps(msg))

    async def handle(self, req: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]]:
        method = req.get("method")
        params: dict[str, Any] = req.get("params") or {}
        if method != "auth" and not self.uid:
            raise ApiErr(401, "UNAUTHORIZED", "send auth first")
        if method == "ping":
            return {}
        if method == "auth":
            uid = HUB.tokens.get(params.get("token", ""))
            if not uid:
                raise ApiErr(401, "UNAUTHORIZED", "invalid token")
            self.uid = uid
            return {"user_id": uid}
        if method in ("subscribe", "unsubscribe"):
            ch = params.get("channel", "")
            private = ch in ("orders", "balances", "notifications")
            if private and not self.uid:
                raise ApiErr(401, "UNAUTHORIZED", "auth first")
            keys = [(ch, "*")] if private else [(ch, mk) for mk in params.get("markets", [])]
            for k in keys:
                if method == "subscribe":
                    self.subs.add(k)
                    if ch == "book" and k[1] in HUB.markets:
                        self.after.append(HUB.markets[k[1]].snapshot(params.get("depth", 50)))
                else:
                    self.subs.discard(k)
            return {}
        if not self.uid:
            raise ApiErr(401, "UNAUTHORIZED", "auth first")
        if method == "order.place":
            return await HUB.place(self.uid, params)
        if method == "order.cancel":
            return await HUB.cancel(self.uid, params.get("order_id", ""))
        if method == "order.cancel_all":
            ids = [
                o["id"]
                for o in HUB.user(self.uid)["orders"].values()
                if not params.get("market") or o["market"] == params["market"]
            ]
            return [await HUB.cancel(self.uid, i) for i in ids]
        if method == "balances.get":
            return {"balances": HUB.balances(self.uid)}
        raise ApiErr(400, "INVALID_PARAM", f"unknown method {method}")


async def ws_endpoint(ws: WebSocket) -> None:
    """Like api/gateway.py: only ``auth`` before auth, 4401 on refusal or after 10 s."""
    await ws.accept()
    conn = Conn(ws)
    HUB.conns.add(conn)

    async def deadline() -> None:
        await asyncio.sleep(10)
        if conn.uid is None:
            await ws.close(4401)

    timer = asyncio.create_task(deadline())
    try:
        while True:
            req = json.loads(await ws.receive_text())
            try:
                res = await conn.handle(req)
                await ws.send_text(json.dumps({"id": req.get("id"), "status": 200, "result": res}))
                for push in conn.after:
                    await ws.send_text(json.dumps(push))
                conn.after.clear()
            except ApiErr as e:
                body = {"id": req.get("id"), "status": e.status, "error": e.body()["error"]}
                if e.order:
                    body["result"] = e.order
                await ws.send_text(json.dumps(body))
                if e.code == "UNAUTHORIZED":
                    await ws.close(4401)
                    return
    except WebSocketDisconnect:
        pass
    finally:
        timer.cancel()
        HUB.conns.discard(conn)


def uid_of(request: Request) -> str:
    tok = request.headers.get("authorization", "").removeprefix("Bearer ")
    uid = HUB.tokens.get(tok)
    if not uid:
        raise ApiErr(401, "UNAUTHORIZED", "missing or invalid token")
    return uid


async def api(request: Request) -> JSONResponse:
    path = request.path_params["path"]
    method = request.method
    parts = path.strip("/").split("/")
    try:
        if path == "auth/signup":
            b = await request.json()
            if "@" not in b.get("email", ""):
                raise ApiErr(400, "INVALID_PARAM", "email is not valid")
            return JSONResponse({"user_id": str(abs(hash(b["email"])) % 10**9)}, status_code=201)
        if path == "auth/login":
            b = await request.json()
            if len(b.get("password", "")) < 4:
                raise ApiErr(401, "UNAUTHORIZED", "wrong e-mail or password")
            tok = uuid.uuid4().hex
            HUB.tokens[tok] = b["email"]
            return JSONResponse({"access_token": tok, "token_type": "bearer", "expires_in": 3600})
        if path == "dev/restart-ws":  # simulate a node restart: shutdown push, close 1012
            for c in list(HUB.conns):
                with contextlib.suppress(Exception):
                    await c.ws.send_text(json.dumps({"channel": "status", "type": "shutdown"}))
                    await c.ws.close(1012)
            return JSONResponse({"closed": True})
        if path == "dev/market-status":  # an admin halts / reopens a market (no push)
            b = await request.json()
            HUB.markets[b["market"]].cfg["status"] = b["status"]
            return JSONResponse({"status": b["status"]})
        if path == "time":
            return JSONResponse({"ts": now_ms()})
        if path == "markets":
            return JSONResponse([{k: v for k, v in m.items() if k != "mid"} for m in MARKETS])
        if parts[0] == "markets" and len(parts) == 3:
            m = HUB.markets.get(parts[1])
            if not m:
                raise ApiErr(400, "UNKNOWN_MARKET", "unknown market")
            limit = int(request.query_params.get("limit", 50))
            if parts[2] == "trades":
                return JSONResponse(m.trades[:limit])
            if parts[2] == "ticker":
                return JSONResponse(m.ticker())
            if parts[2] == "candles":
                if OPTS.no_candles:
                    raise ApiErr(503, "UNAVAILABLE", "candles are not available yet")
                return JSONResponse(m.candles[-limit:])
            if parts[2] == "book":
                return JSONResponse(m.snapshot(int(request.query_params.get("depth", 50))))
        uid = uid_of(request)
        if path == "balances":
            return JSONResponse(HUB.balances(uid))
        if path == "addresses":
            return JSONResponse(
                [
                    {"asset": a, "address": f"hx{a.lower()}{abs(hash((uid, a))) % 10**12:012d}"}
                    for a in ("BTC", "ETH", "SOL", "USD", "USDT")
                ]
            )
        if path == "fills":
            return JSONResponse(HUB.user(uid)["fills"][:100])
        if path == "orders" and method == "GET":
            return JSONResponse(list(HUB.user(uid)["orders"].values()))
        if path == "orders" and method == "POST":
            return JSONResponse(await HUB.place(uid, await request.json()))
        if path == "orders" and method == "DELETE":
            mk = request.query_params.get("market")
            ids = [o["id"] for o in HUB.user(uid)["orders"].values() if not mk or o["market"] == mk]
            return JSONResponse([await HUB.cancel(uid, i) for i in ids])
        if parts[0] == "orders" and method == "DELETE":
            return JSONResponse(await HUB.cancel(uid, parts[1]))
        if path == "transfers":
            b = await request.json()
            if not b.get("to_address", "").startswith("hx"):
                raise ApiErr(400, "INVALID_PARAM", "unknown address")
            return JSONResponse({"transfer_id": b["transfer_id"], "status": "COMPLETED"})
        raise ApiErr(404, "NOT_FOUND", f"no route {method} /{path}")
    except ApiErr as e:
        return (
            err(e.status, e.code, e.message)
            if not e.order
            else JSONResponse(e.body(), status_code=e.status)
        )


async def heartbeat() -> None:
    while True:
        await asyncio.sleep(1)
        for m in HUB.markets.values():
            await HUB.publish(
                {
                    "channel": "heartbeat",
                    "market": m.id,
                    "seq": m.seq,
                    "last_trade_id": m.trade_id,
                    "ts": now_ms(),
                }
            )


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(HUB.simulate()), asyncio.create_task(heartbeat())]
    for m in HUB.markets.values():  # some tape to start with
        for _ in range(40):
            await HUB.step(m)
    yield
    for t in tasks:
        t.cancel()


app = Starlette(
    routes=[
        Route("/api/v1/{path:path}", api, methods=["GET", "POST", "DELETE"]),
        WebSocketRoute("/ws", ws_endpoint),
        Mount("/", StaticFiles(directory=WEB, html=True)),
    ],
    lifespan=lifespan,
)

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=9011)
    ap.add_argument(
        "--gap-every", type=int, default=0, help="inject a seq gap every N book updates"
    )
    ap.add_argument(
        "--bad-crc-every", type=int, default=0, help="send a wrong checksum every N updates"
    )
    ap.add_argument("--no-candles", action="store_true", help="answer candles with UNAVAILABLE")
    OPTS = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=OPTS.port, log_level="warning")
