// node --test web/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { bookChecksum, checksumString, OrderBook, Result } from "../js/book.js";
import { crc32 } from "../js/crc32.js";

// Hand-computed example (PROTOCOL.md "Checksum"): asks ascending then bids
// descending, '.' removed, leading zeros stripped, price then size.
//   asks 30000.10 x 0.50000000 -> "3000010" + "50000000"
//        30001.00 x 1.25000000 -> "3000100" + "125000000"
//   bids 29999.90 x 0.01000000 -> "2999990" + "1000000"
//        29998.00 x 2.00000000 -> "2999800" + "200000000"
// CRC32 (zlib) of the concatenation = 1957358249.
const SNAPSHOT = {
  channel: "book",
  type: "snapshot",
  market: "BTC-USD",
  seq: 10,
  asks: [
    ["30000.10", "0.50000000"],
    ["30001.00", "1.25000000"],
  ],
  bids: [
    ["29999.90", "0.01000000"],
    ["29998.00", "2.00000000"],
  ],
  checksum: 1957358249,
};

const update = (first_seq, seq, { bids = [], asks = [] } = {}, checksum) => ({
  channel: "book",
  type: "update",
  market: "BTC-USD",
  first_seq,
  seq,
  bids,
  asks,
  checksum,
});

test("crc32 matches the standard check value", () => {
  assert.equal(crc32("123456789"), 0xcbf43926);
  assert.equal(crc32(""), 0);
});

test("checksum string of the hand-computed example", () => {
  assert.equal(
    checksumString(SNAPSHOT.asks, SNAPSHOT.bids),
    "3000010500000003000100125000000299999010000002999800200000000",
  );
  assert.equal(bookChecksum(SNAPSHOT.asks, SNAPSHOT.bids), 1957358249);
});

test("checksum uses only the top 10 levels per side", () => {
  const asks = Array.from({ length: 12 }, (_, i) => [`${100 + i}.00`, "1.0"]);
  const bids = Array.from({ length: 12 }, (_, i) => [`${99 - i}.00`, "2.0"]);
  assert.equal(bookChecksum(asks, bids), 661772214);
});

test("snapshot is applied and its checksum verified", () => {
  const book = new OrderBook("BTC-USD");
  assert.equal(book.apply(SNAPSHOT), Result.APPLIED);
  assert.equal(book.seq, 10);
  assert.deepEqual(book.bestBid(), ["29999.90", "0.01000000"]);
  assert.deepEqual(book.bestAsk(), ["30000.10", "0.50000000"]);
  assert.equal(book.checksum(), 1957358249);
});

test("levels are sorted by value, not as strings", () => {
  const book = new OrderBook("X");
  book.apply({ type: "snapshot", seq: 1, bids: [["9.5", "1"], ["10.0", "1"], ["100", "1"]], asks: [["200", "1"], ["1000", "1"], ["99.9", "1"]] });
  assert.deepEqual(book.bidLevels().map((l) => l[0]), ["100", "10.0", "9.5"]);
  assert.deepEqual(book.askLevels().map((l) => l[0]), ["99.9", "200", "1000"]);
});

test("update removes a level with size 0 and adds one; checksum matches", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  // bid 29999.90 removed, ask 30000.50 x 0.10000000 added -> CRC32 144448083
  const r = book.apply(update(11, 12, { bids: [["29999.90", "0"]], asks: [["30000.50", "0.10000000"]] }, 144448083));
  assert.equal(r, Result.APPLIED);
  assert.equal(book.seq, 12);
  assert.deepEqual(book.bidLevels(), [["29998.00", "2.00000000"]]);
  assert.deepEqual(
    book.askLevels().map((l) => l[0]),
    ["30000.10", "30000.50", "30001.00"],
  );
});

test("removal with a differently written zero and price", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  book.apply(update(11, 11, { asks: [["30001.0", "0.00000000"]] }));
  assert.deepEqual(book.askLevels(), [["30000.10", "0.50000000"]]);
});

test("size update replaces the absolute size", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  book.apply(update(11, 11, { bids: [["29998.00", "3.00000000"]] }));
  assert.deepEqual(book.bidLevels()[1], ["29998.00", "3.00000000"]);
});

test("stale updates (seq <= local seq) are ignored", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  assert.equal(book.apply(update(9, 10, { bids: [["29998.00", "0"]] })), Result.IGNORED);
  assert.equal(book.apply(update(5, 7, { bids: [["29998.00", "0"]] })), Result.IGNORED);
  assert.equal(book.bidLevels().length, 2);
  assert.equal(book.seq, 10);
});

test("gap (first_seq > local seq + 1) is detected and nothing is applied", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  assert.equal(book.apply(update(12, 13, { bids: [["29998.00", "0"]] })), Result.GAP);
  assert.equal(book.seq, 10);
  assert.equal(book.bidLevels().length, 2);
});

test("overlapping update (first_seq <= seq < msg.seq) is applied", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  assert.equal(book.apply(update(9, 11, { bids: [["29998.00", "0"]] })), Result.APPLIED);
  assert.equal(book.seq, 11);
});

test("checksum mismatch after an update is reported", () => {
  const book = new OrderBook("BTC-USD");
  book.apply(SNAPSHOT);
  assert.equal(book.apply(update(11, 11, { bids: [["29998.00", "1"]] }, 12345)), Result.CHECKSUM);
});

test("checksum mismatch on a snapshot is reported", () => {
  const book = new OrderBook("BTC-USD");
  assert.equal(book.apply({ ...SNAPSHOT, checksum: 1 }), Result.CHECKSUM);
});

test("updates before the first snapshot are ignored; reset waits for a new snapshot", () => {
  const book = new OrderBook("BTC-USD");
  assert.equal(book.apply(update(1, 1, { bids: [["1.00", "1"]] })), Result.IGNORED);
  book.apply(SNAPSHOT);
  book.reset();
  assert.equal(book.synced, false);
  assert.equal(book.apply(update(11, 11, { bids: [["1.00", "1"]] })), Result.IGNORED);
  assert.equal(book.apply(SNAPSHOT), Result.APPLIED);
});

test("a signed 32-bit checksum from the server is accepted", () => {
  // find a small book whose CRC32 has the high bit set (deterministic search)
  let book;
  for (let i = 1; ; i++) {
    book = new OrderBook("X");
    book.apply({ type: "snapshot", seq: 1, bids: [[`${i}.00`, "1"]], asks: [] });
    if (book.checksum() >= 2 ** 31) break;
  }
  const signed = book.checksum() | 0;
  assert.ok(signed < 0);
  assert.equal(book.verify(signed), Result.APPLIED);
  assert.equal(book.verify(String(book.checksum())), Result.APPLIED);
});
