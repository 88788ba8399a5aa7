"""Features and labels from prints (pure: no I/O).

Row ``i`` of :func:`feature_matrix` uses prints ``0..i`` only, so appending later
prints never changes it (no look-ahead). Where a window reaches before the first
print it is padded with the first print. Prices are integer ticks; features are
floats (they never become money again).

Label (:func:`next_move`): the direction of the next change of the print price.
For print ``i`` with last price ``p_i``, find the first later print ``j`` whose last
price differs from ``p_i``; the label is 1 (up) if ``p_j > p_i``, 0 (down) if
lower. Prints with no later change have no label.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analytics.dataset import I64
from analytics.prints import Prints

F64 = npt.NDArray[np.float64]

FEATURE_NAMES: tuple[str, ...] = (
    "side_0",  # taker side of this print: +1 buy, -1 sell
    "side_1",  # ... of the print before
    "side_2",
    "last_move",  # sign of the latest non-zero price change up to now (0: none yet)
    "ret_1",  # price change over the last 1, 2, 5, 10 prints, ticks
    "ret_2",
    "ret_5",
    "ret_10",
    "ret_60s",  # price change since the last print older than 60 s, ticks
    "prints_60s",  # prints in the last 60 s (this one included)
    "flow_10",  # signed size / total size over the last 10 prints, in [-1, 1]
    "range_pos_20",  # where the price sits in its last-20-prints range, [0, 1]
    "sweep",  # last minus first fill price of this print, ticks
    "fills",  # trades in this print
    "rel_size_20",  # this print's size / mean size of the last 20 prints
    "log_dt",  # log(1 + ms since the previous print)
)
WARMUP = 20  # prints of history a sample needs (the longest window)


def lag(a: npt.NDArray[np.int64], k: int) -> npt.NDArray[np.int64]:
    """``out[i] = a[i - k]``, with ``a[0]`` before the start."""
    if k == 0 or len(a) == 0:
        return a.copy()
    return np.concatenate([np.full(min(k, len(a)), a[0]), a[:-k]])


def rolling_sum(a: npt.NDArray[np.int64], w: int) -> npt.NDArray[np.int64]:
    """Sum of ``a[i-w+1..i]`` (fewer at the start), exact in integers."""
    c = np.cumsum(a)
    out = c.copy()
    out[w:] -= c[:-w]
    return out


def _rolling(a: npt.NDArray[np.int64], w: int, fn: str) -> npt.NDArray[np.int64]:
    """Min or max of the last ``w`` values, the window padded with ``a[0]``."""
    padded = np.concatenate([np.full(w - 1, a[0]), a])
    windows = np.lib.stride_tricks.sliding_window_view(padded, w)
    result: npt.NDArray[np.int64] = getattr(windows, fn)(axis=1)
    return result


def feature_matrix(p: Prints) -> F64:
    """One row per print, columns :data:`FEATURE_NAMES`."""
    n = len(p)
    if n == 0:
        return np.zeros((0, len(FEATURE_NAMES)))
    idx = np.arange(n)
    last = p.last
    move = np.sign(last - lag(last, 1))
    latest = np.maximum.accumulate(np.where(move != 0, idx, 0))
    t = np.maximum.accumulate(p.ts)  # clocks of several web nodes may disagree a little
    before = np.searchsorted(t, t - 60_000, side="left")  # first print within 60 s
    signed, size = p.side * p.size, p.size
    low, high = _rolling(last, 20, "min"), _rolling(last, 20, "max")
    span = (high - low).astype(np.float64)
    cols = [
        p.side,
        lag(p.side, 1),
        lag(p.side, 2),
        move[latest],
        last - lag(last, 1),
        last - lag(last, 2),
        last - lag(last, 5),
        last - lag(last, 10),
        last - last[np.maximum(before - 1, 0)],
        idx - before + 1,
        rolling_sum(signed, 10) / rolling_sum(size, 10),
        np.divide(last - low, span, out=np.full(n, 0.5), where=span > 0),
        p.last - p.first,
        p.fills,
        size / (rolling_sum(size, 20) / np.minimum(idx + 1, 20)),
        np.log1p(np.maximum(p.ts - lag(p.ts, 1), 0)),
    ]
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])


def next_move(last: npt.NDArray[np.int64]) -> tuple[I64, I64]:
    """``(label, resolve)`` per print: label 1 up, 0 down, -1 none; ``resolve`` is the
    index of the print that decides it (-1 for none)."""
    n = len(last)
    changes = np.flatnonzero(last[1:] != last[:-1]) + 1  # j with last[j] != last[j-1]
    pos = np.searchsorted(changes, np.arange(n), side="right")
    has = pos < len(changes)
    resolve = np.full(n, -1, dtype=np.int64)
    resolve[has] = changes[pos[has]]
    label = np.full(n, -1, dtype=np.int64)
    label[has] = (last[resolve[has]] > last[has]).astype(np.int64)
    return label, resolve


@dataclass(frozen=True)
class Samples:
    """Labelled rows in time order: features, label, and where each row came from."""

    x: F64
    y: I64  # 1 up, 0 down
    row: I64  # print index of the row
    resolve: I64  # print index that decides its label
    ts: I64  # ms of the row's print

    def __len__(self) -> int:
        return len(self.y)


def samples(p: Prints, warmup: int = WARMUP) -> Samples:
    """Rows with at least ``warmup`` earlier prints and a label."""
    x = feature_matrix(p)
    label, resolve = next_move(p.last)
    keep = np.flatnonzero((np.arange(len(p)) >= warmup) & (label >= 0))
    return Samples(x[keep], label[keep], keep.astype(np.int64), resolve[keep], p.ts[keep])
