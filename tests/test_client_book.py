"""Local book sync rule and checksum (client/book.py, client/checksum.py)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.amounts import format_scaled
from client.book import BookStatus, LocalBook
from client.checksum import checksum, checksum_string, level_token

ASKS = [["30000.50", "0.25000000"], ["30001.00", "1.00000000"]]
BIDS = [["29999.90", "0.00100000"], ["29000.00", "2.50000000"]]
# Hand-computed: asks ascending then bids descending, "." removed, leading zeros stripped.
EXPECTED_STRING = "".join(
    [
        *("3000050", "25000000"),  # ask 30000.50 x 0.25000000
        *("3000100", "100000000"),  # ask 30001.00 x 1.00000000
        *("2999990", "100000"),  # bid 29999.90 x 0.00100000
        *("2900000", "250000000"),  # bid 29000.00 x 2.50000000
    ]
)
EXPECTED_CRC = 785889832


def snapshot(seq: int = 10, bids=BIDS, asks=ASKS, **extra) -> dict:
    return {"channel": "book", "type": "snapshot", "market": "BTC-USD", "seq": seq,
            "bids": bids, "asks": asks, **extra}  # fmt: skip


def update(first_seq: int, seq: int, bids=(), asks=(), **extra) -> dict:
    return {"channel": "book", "type": "update", "market": "BTC-USD", "first_seq": first_seq,
            "seq": seq, "bids": list(bids), "asks": list(asks), **extra}  # fmt: skip


def test_level_token() -> None:
    assert level_token("0.05005") == "5005"
    assert level_token("0.00000500") == "500"
    assert level_token("30000.10") == "3000010"
    assert level_token("100") == "100"


def test_checksum_hand_computed() -> None:
    asks = [tuple(level) for level in ASKS]
    bids = [tuple(level) for level in BIDS]
    assert checksum_string(asks, bids) == EXPECTED_STRING
    assert checksum(asks, bids) == EXPECTED_CRC == zlib.crc32(EXPECTED_STRING.encode())
    assert checksum([("0.05005", "0.00000500")], [("0.05000", "0.00000304")]) == zlib.crc32(
        b"50055005000304"
    )


def test_checksum_is_unsigned_and_covers_top_ten_only() -> None:
    asks = [(format_scaled(100 + i, 2), "1.0") for i in range(15)]
    bids = [(format_scaled(99 - i, 2), "1.0") for i in range(15)]
    value = checksum(asks, bids)
    assert 0 <= value < 2**32
    assert value == checksum(asks[:10], bids[:10])
    assert value != checksum(asks[:9], bids[:10])


def test_snapshot_sorts_by_value_and_keeps_strings() -> None:
    book = LocalBook("BTC-USD")
    status = book.apply(
        snapshot(asks=[["10.25", "1.0"], ["9.50", "2.0"]], bids=[["9.00", "1"], ["10", "3"]])
    )
    assert status is BookStatus.APPLIED
    assert book.asks() == [("9.50", "2.0"), ("10.25", "1.0")]
    assert book.bids() == [("10", "3"), ("9.00", "1")]
    assert book.best_bid() == ("10", "3")
    assert book.best_ask() == ("9.50", "2.0")
    assert book.seq == 10


def test_snapshot_checksum_verified() -> None:
    assert LocalBook().apply(snapshot(checksum=EXPECTED_CRC)) is BookStatus.APPLIED
    book = LocalBook()
    assert book.apply(snapshot(checksum=EXPECTED_CRC + 1)) is BookStatus.CHECKSUM_MISMATCH
    assert not book.ready


def test_update_applies_absolute_sizes_and_removes_zero() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=10))
    msg = update(
        11, 12, bids=[["29999.90", "0"], ["29999.95", "0.50000000"]],
        asks=[["30000.50", "0.10000000"], ["30001.00", "0.00000000"]],
    )  # fmt: skip
    assert book.apply(msg) is BookStatus.APPLIED
    assert book.seq == 12
    assert book.bids() == [("29999.95", "0.50000000"), ("29000.00", "2.50000000")]
    assert book.asks() == [("30000.50", "0.10000000")]


def test_removing_unknown_level_is_harmless() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=1))
    assert book.apply(update(2, 2, bids=[["1.00", "0"]])) is BookStatus.APPLIED
    assert len(book.bids()) == 2


def test_update_checksum_match_and_mismatch() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=1, asks=[], bids=[]))
    good = checksum([("30000.50", "0.25000000")], [])
    assert book.apply(update(2, 2, asks=[ASKS[0]], checksum=good)) is BookStatus.APPLIED
    status = book.apply(update(3, 3, asks=[ASKS[1]], checksum=good))
    assert status is BookStatus.CHECKSUM_MISMATCH
    assert status.needs_resubscribe
    assert not book.ready and book.asks() == []


def test_checksum_may_arrive_as_string() -> None:
    assert LocalBook().apply(snapshot(checksum=str(EXPECTED_CRC))) is BookStatus.APPLIED


def test_stale_updates_are_ignored() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=10))
    before = (book.bids(), book.asks())
    assert book.apply(update(9, 10, bids=[["29999.90", "0"]])) is BookStatus.STALE
    assert book.apply(update(3, 5, bids=[["29999.90", "0"]])) is BookStatus.STALE
    assert (book.bids(), book.asks()) == before
    assert book.seq == 10


def test_overlapping_update_is_applied() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=10))
    assert book.apply(update(8, 12, bids=[["29999.90", "0"]])) is BookStatus.APPLIED
    assert book.seq == 12


def test_gap_clears_book_and_asks_for_resubscribe() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=10))
    status = book.apply(update(12, 13, bids=[["1.00", "1"]]))
    assert status is BookStatus.GAP and status.needs_resubscribe
    assert not book.ready
    assert book.bids() == [] and book.asks() == []
    # Updates are ignored until the next snapshot.
    assert book.apply(update(14, 14)) is BookStatus.NOT_READY
    assert book.apply(snapshot(seq=20)) is BookStatus.APPLIED
    assert book.apply(update(21, 21)) is BookStatus.APPLIED


def test_contiguous_update_right_after_snapshot() -> None:
    book = LocalBook()
    book.apply(snapshot(seq=10))
    assert book.apply(update(11, 11)) is BookStatus.APPLIED


def test_update_before_snapshot_is_not_ready() -> None:
    book = LocalBook()
    assert book.apply(update(1, 1, bids=[["1.00", "1"]])) is BookStatus.NOT_READY
    assert book.bids() == []


def test_depth_truncates_worst_levels() -> None:
    book = LocalBook(depth=2)
    book.apply(snapshot(seq=1, bids=[["3", "1"], ["2", "1"], ["1", "1"]], asks=[]))
    assert book.bids() == [("3", "1"), ("2", "1")]
    book.apply(update(2, 2, bids=[["4", "1"]], asks=[["7", "1"], ["5", "1"], ["6", "1"]]))
    assert book.bids() == [("4", "1"), ("3", "1")]
    assert book.asks() == [("5", "1"), ("6", "1")]


@pytest.mark.parametrize("level", [["abc", "1"], ["1.0", 1.5], ["1.0"], ["-1", "1"], "x"])
def test_malformed_level_raises_and_resets(level) -> None:
    book = LocalBook()
    book.apply(snapshot(seq=1))
    with pytest.raises(ValueError):
        book.apply(update(2, 2, bids=[level]))
    assert not book.ready


def test_unknown_type_raises() -> None:
    with pytest.raises(ValueError):
        LocalBook().apply({"channel": "book", "type": "delta", "seq": 1})


# --- property: incremental book == freshly built book -----------------------------------

prices = st.integers(min_value=1, max_value=400).map(lambda n: format_scaled(n, 2))
sizes = st.integers(min_value=1, max_value=10**6).map(lambda n: format_scaled(n, 8))
zero = st.sampled_from(["0", "0.00000000"])
side_levels = st.dictionaries(prices, sizes, max_size=25)
changes = st.lists(st.tuples(prices, sizes | zero), max_size=8)


@settings(max_examples=200, deadline=None)
@given(
    bids=side_levels,
    asks=side_levels,
    updates=st.lists(st.tuples(changes, changes, st.integers(1, 3)), max_size=30),
)
def test_incremental_book_matches_fresh_book(bids, asks, updates) -> None:
    book = LocalBook("BTC-USD")
    model = {"bids": dict(bids), "asks": dict(asks)}
    seq = 100
    first = snapshot(seq, list(map(list, bids.items())), list(map(list, asks.items())))
    assert book.apply(first) is BookStatus.APPLIED
    for bid_changes, ask_changes, span in updates:
        msg = update(seq + 1, seq + span, bids=map(list, bid_changes), asks=map(list, ask_changes))
        seq += span
        assert book.apply(msg) is BookStatus.APPLIED
        assert book.apply(msg) is BookStatus.STALE  # a replay changes nothing
        for side, side_changes in (("bids", bid_changes), ("asks", ask_changes)):
            for price, size in side_changes:
                if size.strip("0.") == "":
                    model[side].pop(price, None)
                else:
                    model[side][price] = size

    fresh = LocalBook("BTC-USD")
    fresh.apply(
        snapshot(
            seq, list(map(list, model["bids"].items())), list(map(list, model["asks"].items()))
        )
    )
    assert book.seq == fresh.seq == seq
    assert book.bids() == fresh.bids()
    assert book.asks() == fresh.asks()
    assert book.checksum() == fresh.checksum()
    resent = snapshot(seq, fresh.bids(), fresh.asks(), checksum=book.checksum())
    assert fresh.apply(resent) is BookStatus.APPLIED
