"""The whole pipeline on a market's trades, and its report as text or JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from analytics.dataset import TooLittleData, Trades
from analytics.features import FEATURE_NAMES, samples
from analytics.model import Evaluation, evaluate
from analytics.prints import to_prints

CONTROL_SEED = 12345  # label permutation of the shuffled-label control


@dataclass(frozen=True)
class Report:
    """Counts of the data, the model's held-out scores and the shuffled-label control."""

    market: str
    n_trades: int
    n_prints: int
    n_samples: int
    up_share: float  # share of "up" labels over all samples
    from_ts: int
    to_ts: int
    evaluation: Evaluation
    control_accuracy: float  # the same pipeline on label-shuffled samples


def build_report(trades: Trades, model: str = "logistic", test_fraction: float = 0.3) -> Report:
    """Prints, samples, a time-ordered evaluation and its shuffled-label control."""
    if len(trades) == 0:
        raise TooLittleData(f"no trades of {trades.market} in the history (for that period)")
    prints = to_prints(trades)
    s = samples(prints)
    result = evaluate(s, model, test_fraction)
    control = evaluate(s, model, test_fraction, shuffle_seed=CONTROL_SEED)
    return Report(
        market=trades.market,
        n_trades=len(trades),
        n_prints=len(prints),
        n_samples=len(s),
        up_share=float(s.y.mean()),
        from_ts=int(trades.ts.min()),
        to_ts=int(trades.ts.max()),
        evaluation=result,
        control_accuracy=control.accuracy,
    )


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def margin(e: Evaluation) -> float:
    """Half-width of the normal-approximation 95% interval of the held-out accuracy."""
    return 1.96 * math.sqrt(e.accuracy * (1 - e.accuracy) / e.n_test)


def as_text(r: Report) -> str:
    """A human-readable report."""
    e = r.evaluation
    lines = [
        f"next price move on {r.market}: {e.model} model, time-ordered split",
        f"data        {r.n_trades} trades -> {r.n_prints} prints (one per taker order)"
        f" -> {r.n_samples} labelled samples ({r.up_share:.1%} up)",
        f"period      {_time(r.from_ts)} .. {_time(r.to_ts)}",
        f"train       {e.n_train} samples (oldest; {e.n_purged} purged at the boundary)",
        f"test        {e.n_test} samples, {_time(e.test_from_ts)} .. {_time(e.test_to_ts)}",
        "",
        f"accuracy    {e.accuracy:.3f}   on the held-out tail (± {margin(e):.3f} at 95%)",
        f"baseline    {e.majority_accuracy:.3f}   always '{e.majority}' (training majority)",
        f"reversal    {e.reversal_accuracy:.3f}   against the last taker side (bid-ask bounce)",
        f"control     {r.control_accuracy:.3f}   same pipeline, labels shuffled (chance)",
        "",
        "class   precision  recall  support",
    ]
    lines += [
        f"{c.name:<6}  {c.precision:9.3f}  {c.recall:6.3f}  {c.support:7d}" for c in e.classes
    ]
    lines += ["", f"features    {', '.join(FEATURE_NAMES)}"]
    return "\n".join(lines)


def as_json(r: Report) -> dict[str, Any]:
    """The report as a JSON-ready dict."""
    e = r.evaluation
    return {
        "market": r.market,
        "model": e.model,
        "trades": r.n_trades,
        "prints": r.n_prints,
        "samples": r.n_samples,
        "up_share": round(r.up_share, 4),
        "from_ts": r.from_ts,
        "to_ts": r.to_ts,
        "train": e.n_train,
        "test": e.n_test,
        "purged": e.n_purged,
        "accuracy": round(e.accuracy, 4),
        "accuracy_margin_95": round(margin(e), 4),
        "majority_baseline": round(e.majority_accuracy, 4),
        "reversal_baseline": round(e.reversal_accuracy, 4),
        "control_accuracy": round(r.control_accuracy, 4),
        "classes": {
            c.name: {
                "precision": round(c.precision, 4),
                "recall": round(c.recall, 4),
                "support": c.support,
            }
            for c in e.classes
        },
    }
