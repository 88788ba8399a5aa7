"""analytics: prints, features and labels (pure functions), the split and the model."""

from __future__ import annotations

import numpy as np
import pytest

from analytics import FEATURE_NAMES, Trades, feature_matrix, next_move, samples, to_prints
from analytics.dataset import TooLittleData
from analytics.model import evaluate, split
from analytics.prints import Prints

TICK = 1_000_000


def trades(rows: list[tuple[int, int, str, str, int]]) -> Trades:
    """Trades from ``(price_ticks, size, taker_side, taker_order_id, ts)``, ids from 1."""
    return Trades.from_rows(
        "T-USD",
        TICK,
        [(i + 1, p * TICK, size, side == "buy", oid, ts) for i, (p, size, side, oid, ts) in
         enumerate(rows)],
    )  # fmt: skip


def prints_of(last: list[int], side: list[int], size: list[int] | None = None) -> Prints:
    n = len(last)
    a = np.array(last, dtype=np.int64)
    return Prints(
        first=a,
        last=a,
        size=np.array(size or [10] * n, dtype=np.int64),
        side=np.array(side, dtype=np.int64),
        fills=np.ones(n, dtype=np.int64),
        ts=np.arange(n, dtype=np.int64) * 1000,
        trade_id=np.arange(1, n + 1, dtype=np.int64),
    )


def col(x: np.ndarray, name: str) -> list[float]:
    return x[:, FEATURE_NAMES.index(name)].tolist()


def test_a_taker_order_sweeping_levels_is_one_print():
    p = to_prints(
        trades(
            [
                (100, 5, "buy", "a", 1000),
                (101, 3, "buy", "a", 1000),  # same taker order, next level
                (99, 4, "sell", "b", 1500),
                (99, 2, "sell", "c", 1700),
            ]
        )
    )
    assert p.first.tolist() == [100, 99, 99]
    assert p.last.tolist() == [101, 99, 99]
    assert p.size.tolist() == [8, 4, 2]
    assert p.side.tolist() == [1, -1, -1]
    assert p.fills.tolist() == [2, 1, 1]
    assert p.ts.tolist() == [1000, 1500, 1700]
    assert p.trade_id.tolist() == [2, 3, 4]


def test_no_trades_make_no_prints_and_no_samples():
    p = to_prints(trades([]))
    assert len(p) == 0 and len(samples(p)) == 0


def test_label_is_the_direction_of_the_next_price_change():
    label, resolve = next_move(np.array([10, 10, 12, 12, 11, 11], dtype=np.int64))
    # 10 -> next different is 12 (print 2): up; 12 -> 11 (print 4): down; 11: none
    assert label.tolist() == [1, 1, 0, 0, -1, -1]
    assert resolve.tolist() == [2, 2, 4, 4, -1, -1]


def test_features_by_hand():
    p = prints_of(last=[100, 102, 101, 101, 104], side=[1, 1, -1, -1, 1], size=[10, 30, 20, 20, 20])
    x = feature_matrix(p)
    assert x.shape == (5, len(FEATURE_NAMES))
    assert col(x, "side_0") == [1, 1, -1, -1, 1]
    assert col(x, "side_1") == [1, 1, 1, -1, -1]  # padded with the first print
    assert col(x, "last_move") == [0, 1, -1, -1, 1]  # print 3 keeps the last non-zero move
    assert col(x, "ret_1") == [0, 2, -1, 0, 3]
    assert col(x, "ret_2") == [0, 2, 1, -1, 3]
    assert col(x, "ret_5") == [0, 2, 1, 1, 4]
    # signed flow over the last (up to) 10 prints: (10 + 30 - 20 - 20 + 20) / 100
    assert col(x, "flow_10")[-1] == pytest.approx(0.2)
    # range of the last 20 (padded with 100): 100..104, print 2 at 101
    assert col(x, "range_pos_20") == pytest.approx([0.5, 1.0, 0.5, 0.5, 1.0])
    assert col(x, "rel_size_20")[:2] == pytest.approx([1.0, 30 / 20])
    assert col(x, "log_dt") == pytest.approx([0.0] + [np.log1p(1000)] * 4)
    assert col(x, "prints_60s") == [1, 2, 3, 4, 5]  # all within a minute


def test_time_window_features_look_back_sixty_seconds():
    p = to_prints(
        trades(
            [
                (100, 1, "buy", "a", 0),
                (103, 1, "buy", "b", 30_000),
                (101, 1, "sell", "c", 61_000),  # 0 is more than 60 s before
                (104, 1, "buy", "d", 91_000),  # 30_000 is more than 60 s before
                (107, 2, "buy", "e", 91_000),
            ]
        )
    )
    x = feature_matrix(p)
    assert col(x, "ret_60s") == [0, 3, 1, 1, 4]  # against the last print before the window
    assert col(x, "prints_60s") == [1, 2, 2, 2, 3]


def test_a_feature_row_never_changes_when_later_trades_arrive():
    rng = np.random.default_rng(7)
    n = 400
    rows = [
        (int(10_000 + rng.integers(-30, 30)), int(rng.integers(1, 9)),
         "buy" if rng.random() < 0.5 else "sell", f"o{i - (i % 3 == 1)}",  # some 2-fill prints
         int(1000 * i + rng.integers(0, 900)))
        for i in range(n)
    ]  # fmt: skip
    full = feature_matrix(to_prints(trades(rows)))
    for cut in (1, 2, 25, 150, 399):
        prefix = feature_matrix(to_prints(trades(rows[:cut])))
        # the last print of a prefix may still grow (a taker order cut in two): compare the rest
        done = len(prefix) - 1
        np.testing.assert_array_equal(prefix[:done], full[:done])


def test_samples_skip_the_warmup_and_unlabelled_prints():
    last = [100 + (i % 3) for i in range(30)] + [110, 110]
    s = samples(prints_of(last, [1] * 32), warmup=20)
    assert s.row.tolist() == list(range(20, 30))  # 30 and 31 have no later change
    assert (s.resolve > s.row).all()


def test_split_is_time_ordered_and_purges_labels_that_look_into_the_test():
    n = 300
    last = np.repeat(np.arange(n // 3) % 2, 3) + 100  # runs of 3 equal prices
    s = samples(prints_of(last.tolist(), [1, -1] * (n // 2)), warmup=20)
    train, test = split(s, 0.3)
    assert test.tolist() == list(range(test[0], len(s)))
    assert train.max() < test[0]
    assert (s.resolve[train] <= s.row[test[0]]).all()
    assert len(train) < test[0]  # some rows next to the boundary were purged


def test_too_little_data_is_refused_clearly():
    s = samples(prints_of([100, 101] * 60, [1, -1] * 60))
    with pytest.raises(TooLittleData, match="labelled samples"):
        evaluate(s)
