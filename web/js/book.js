// Pure L2 order book kept in sync with the `book` channel (PROTOCOL.md):
// snapshot, then updates with first_seq/seq; gap -> resubscribe; CRC32 checksum
// verified after every applied message -> resubscribe on mismatch. No I/O here.

import { crc32 } from "./crc32.js";
import { cmpDec, isZero, normalize } from "./decimal.js";

export const CHECKSUM_DEPTH = 10;

/** Outcomes of applying a push to the book. */
export const Result = Object.freeze({
  APPLIED: "applied",
  IGNORED: "ignored", // stale (seq <= local seq) or no snapshot yet
  GAP: "gap", // first_seq > local seq + 1: resubscribe
  CHECKSUM: "checksum", // applied but checksum mismatch: resubscribe
});

/** Checksum string piece of one level: digits of price then size, no '.', no leading zeros. */
function levelDigits(price, size) {
  const strip = (s) => s.replace(".", "").replace(/^0+/, "");
  return strip(price) + strip(size);
}

/**
 * The string that is CRC32'd: top `CHECKSUM_DEPTH` asks ascending, then top bids
 * descending. `asks` and `bids` are arrays of [price, size], best first.
 */
export function checksumString(asks, bids) {
  let out = "";
  for (const [p, s] of asks.slice(0, CHECKSUM_DEPTH)) out += levelDigits(p, s);
  for (const [p, s] of bids.slice(0, CHECKSUM_DEPTH)) out += levelDigits(p, s);
  return out;
}

export function bookChecksum(asks, bids) {
  return crc32(checksumString(asks, bids));
}

/** One side: canonical price key -> [price string as sent, size string]. */
class Side {
  constructor(descending) {
    this.descending = descending;
    this.levels = new Map();
    this.sorted = null; // cache of best-first [price, size] pairs
  }

  set(price, size) {
    const key = normalize(price);
    if (isZero(size)) this.levels.delete(key);
    else this.levels.set(key, [price, size]);
    this.sorted = null;
  }

  /** Best-first array of [price, size]. */
  list() {
    if (!this.sorted) {
      const dir = this.descending ? -1 : 1;
      this.sorted = [...this.levels.values()].sort((a, b) => dir * cmpDec(a[0], b[0]));
    }
    return this.sorted;
  }
}

export class OrderBook {
  constructor(market) {
    this.market = market;
    this.reset();
  }

  /** Forget everything; updates are ignored until the next snapshot. */
  reset() {
    this.seq = null;
    this.bids = new Side(true);
    this.asks = new Side(false);
  }

  get synced() {
    return this.seq !== null;
  }

  /** Apply a `snapshot` or `update` push; returns a Result. */
  apply(msg) {
    if (msg.type === "snapshot") return this.applySnapshot(msg);
    if (msg.type === "update") return this.applyUpdate(msg);
    return Result.IGNORED;
  }

  applySnapshot(msg) {
    this.reset();
    for (const [p, s] of msg.bids || []) this.bids.set(p, s);
    for (const [p, s] of msg.asks || []) this.asks.set(p, s);
    this.seq = msg.seq;
    return this.verify(msg.checksum);
  }

  applyUpdate(msg) {
    if (!this.synced) return Result.IGNORED;
    if (msg.seq <= this.seq) return Result.IGNORED;
    if (msg.first_seq > this.seq + 1) return Result.GAP;
    for (const [p, s] of msg.bids || []) this.bids.set(p, s);
    for (const [p, s] of msg.asks || []) this.asks.set(p, s);
    this.seq = msg.seq;
    return this.verify(msg.checksum);
  }

  verify(expected) {
    if (expected === undefined || expected === null) return Result.APPLIED;
    return this.checksum() === Number(expected) >>> 0 ? Result.APPLIED : Result.CHECKSUM;
  }

  checksum() {
    return bookChecksum(this.asks.list(), this.bids.list());
  }

  /** Best-first bids / asks, each [price, size]. */
  bidLevels() {
    return this.bids.list();
  }

  askLevels() {
    return this.asks.list();
  }

  bestBid() {
    return this.bids.list()[0] || null;
  }

  bestAsk() {
    return this.asks.list()[0] || null;
  }
}
