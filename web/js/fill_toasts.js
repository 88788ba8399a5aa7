// One toast per order's burst of fills: a market order that sweeps eight levels is
// one "Bought 0.005 BTC in 8 fills (59,970.57 – 60,059.97)", not eight toasts that
// push every other message off the stack. Money stays decimal strings.

import { addDec, cmpDec } from "./decimal.js";
import { fmtPrice, fmtSize } from "./format.js";

/** Toast text of fills of one order (same market and side). */
export function fillsText(fills, market) {
  const verb = fills[0].side === "sell" ? "Sold" : "Bought";
  const base = market ? ` ${market.base}` : "";
  let size = "0";
  let lo = fills[0].price;
  let hi = fills[0].price;
  for (const f of fills) {
    size = addDec(size, f.size);
    if (cmpDec(f.price, lo) < 0) lo = f.price;
    if (cmpDec(f.price, hi) > 0) hi = f.price;
  }
  const amount = `${verb} ${fmtSize(market, size)}${base}`;
  if (fills.length === 1) return `${amount} @ ${fmtPrice(market, lo)}`;
  const range = cmpDec(lo, hi) === 0 ? `@ ${fmtPrice(market, lo)}` : `(${fmtPrice(market, lo)} – ${fmtPrice(market, hi)})`;
  return `${amount} in ${fills.length} fills ${range}`;
}

/** Collects fills per order for `windowMs` after the first, then calls `onBatch(fills)`. */
export class FillBatcher {
  constructor(onBatch, windowMs = 300) {
    this.onBatch = onBatch;
    this.windowMs = windowMs;
    this.pending = new Map();
  }

  add(fill) {
    const key = fill.order_id ?? `${fill.market}:${fill.side}`;
    let batch = this.pending.get(key);
    if (!batch) {
      batch = [];
      this.pending.set(key, batch);
      setTimeout(() => {
        this.pending.delete(key);
        this.onBatch(batch);
      }, this.windowMs);
    }
    batch.push(fill);
  }
}
