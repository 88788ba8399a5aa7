import assert from "node:assert/strict";
import { test } from "node:test";

import { FillBatcher, fillsText } from "../js/fill_toasts.js";

const BTC = { id: "BTC-USD", base: "BTC", quote: "USD", price_increment: "0.01", size_increment: "0.00001" };
const fill = (order_id, price, size, side = "buy") => ({ order_id, market: "BTC-USD", side, price, size });

test("one fill: size and price as the page formats them", () => {
  assert.equal(fillsText([fill("1", "60059.97", "0.0033")], BTC), "Bought 0.00330 BTC @ 60,059.97");
  assert.equal(fillsText([fill("1", "60000", "0.1", "sell")], BTC), "Sold 0.10000 BTC @ 60,000.00");
});

test("several fills: summed size (exact decimals), count and price range", () => {
  const sweep = [fill("1", "59970.57", "0.0002"), fill("1", "60059.97", "0.0033"), fill("1", "59980.82", "0.0003")];
  assert.equal(fillsText(sweep, BTC), "Bought 0.00380 BTC in 3 fills (59,970.57 – 60,059.97)");
  const same = [fill("1", "0.1", "0.00001"), fill("1", "0.1", "0.00002")];
  assert.equal(fillsText(same, BTC), "Bought 0.00003 BTC in 2 fills @ 0.10");
});

test("fills are batched per order within the window", async () => {
  const batches = [];
  const b = new FillBatcher((fills) => batches.push(fills.map((f) => `${f.order_id}:${f.price}`)), 30);
  b.add(fill("1", "1", "1"));
  b.add(fill("2", "2", "1"));
  b.add(fill("1", "3", "1"));
  await new Promise((r) => setTimeout(r, 60));
  b.add(fill("1", "4", "1")); // a later fill of the same resting order: its own toast
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(batches, [["1:1", "1:3"], ["2:2"], ["1:4"]]);
});
