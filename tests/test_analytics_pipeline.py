"""analytics end to end: real engine trades, drained into PostgreSQL, trained on.

A market maker quotes both sides around a random-walk reference (post-only limits,
re-quoted every round, like client.bots.market_maker) and random takers send IOC
orders of random side and size through it (like client.bots.random_trader), all
through the real Lua engine on Valkey; the drain writes the trades to a migrated
PostgreSQL; the analytics pipeline reads them back from there.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import joblib
import pytest

from analytics import FEATURE_NAMES, load_trades, samples, to_prints
from analytics.cli import main
from analytics.dataset import TooLittleData
from analytics.report import build_report
from engine import market as M
from engine import registry
from engine.types import OrderRequest, Side
from ops.bench.markets import usd_market
from workers.drain import Drain, DrainConfig

MKT = usd_market("ANL")
START_MS = 1_790_000_000_000


async def simulate(redis: Any, rounds: int, seed: int) -> int:
    """``rounds`` of: reference walk, market maker re-quote, two random takers; trades made."""
    rng = random.Random(seed)
    await registry.create_asset(redis, MKT.base, MKT.base_scale)
    await registry.create_asset(redis, MKT.quote, MKT.quote_scale)
    await registry.create_market(redis, MKT, START_MS)
    ref, n, trades = 10_000, 0, 0
    quotes: list[str] = []
    for r in range(rounds):
        now = START_MS + r * 400
        ref = max(100, ref + rng.randint(-2, 2))
        await M.cancel_many(redis, MKT.id, "mm", quotes, now)
        quotes = []
        for level in range(3):
            sides: tuple[tuple[Side, int], ...] = (
                ("buy", ref - 5 - 4 * level),
                ("sell", ref + 5 + 4 * level),
            )
            for side, price in sides:
                n += 1
                req = OrderRequest(
                    MKT.id, side, "limit", 10 * MKT.lot, price * MKT.tick, post_only=True
                )
                await M.place(redis, f"q{n}", "mm", req, now)
                quotes.append(f"q{n}")
        for k in range(2):
            n += 1
            taker: Side = rng.choice(("buy", "sell"))
            far = ref + 50 if taker == "buy" else ref - 50
            lots = rng.randint(1, 12) * MKT.lot
            req = OrderRequest(MKT.id, taker, "limit", lots, far * MKT.tick, "IOC")
            out = await M.place(redis, f"t{n}", f"taker{rng.randint(1, 4)}", req, now + 100 + k)
            trades += sum(1 for ev in out.events if ev["e"] == "trade")
    return trades


async def drain_all(redis: Any, db_url: str) -> None:
    drain = Drain(redis, db_url, DrainConfig(block_ms=20, trim_require=("keep-all",)))
    try:
        await drain.catch_up(timeout_s=60)
    finally:
        await drain.close()


async def test_a_model_trained_on_real_exchange_history_beats_chance(
    redis_real: Any, db_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    made = await simulate(redis_real, rounds=1500, seed=11)
    assert made > 2500
    await drain_all(redis_real, db_url)
    trades = load_trades(db_url, MKT.id)
    assert len(trades) == made and trades.tick == MKT.tick
    report = build_report(trades, "logistic")
    e = report.evaluation
    assert report.n_prints < report.n_trades  # sweeps were grouped
    assert e.n_test >= 500
    assert e.accuracy >= 0.55
    assert e.accuracy > e.majority_accuracy + 0.05
    # the same pipeline with the labels shuffled has nothing to learn
    assert report.control_accuracy < 0.55
    assert abs(report.control_accuracy - 0.5) < 0.06
    assert build_report(trades, "boosting").evaluation.accuracy >= 0.55
    # the command line reads the same history
    saved = tmp_path / "model.joblib"
    args = ["report", "--market", MKT.id, "--database-url", db_url, "--json", "--save", str(saved)]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trades"] == made and out["accuracy"] == round(e.accuracy, 4)
    # the saved model predicts what the report's model predicts
    model = joblib.load(saved)
    x = samples(to_prints(trades)).x
    assert model["features"] == FEATURE_NAMES and model["market"] == MKT.id
    assert (model["model"].predict(x) == e.fitted.predict(x)).all()


async def test_cli_refuses_too_little_data_and_unknown_markets(
    redis_real: Any, db_url: str, capsys: pytest.CaptureFixture[str]
):
    await simulate(redis_real, rounds=30, seed=1)
    await drain_all(redis_real, db_url)
    assert main(["report", "--market", MKT.id, "--database-url", db_url]) == 1
    assert "labelled samples: need at least" in capsys.readouterr().err
    assert main(["report", "--market", "NOPE-USD", "--database-url", db_url]) == 1
    assert "unknown market 'NOPE-USD'; the history knows: ANL-USD" in capsys.readouterr().err
    with pytest.raises(TooLittleData, match="no trades"):
        build_report(load_trades(db_url, MKT.id, since_ms=START_MS + 10**9))
