import assert from "node:assert/strict";
import { test } from "node:test";

import { orderOfPush, Account } from "../js/account.js";
import { Backoff } from "../js/backoff.js";
import { addTrade, normalizeCandles } from "../js/candles.js";
import { buildOrder, cleanInput, CLIENT_ORDER_ID_RE, endedOrderText, feeEstimate, newClientOrderId, numberError } from "../js/order.js";
import { subKey } from "../js/ws.js";

const BTC = {
  id: "BTC-USD",
  base: "BTC",
  quote: "USD",
  price_increment: "0.01",
  size_increment: "0.00001",
  min_size: "0.0001",
  taker_fee_bps: 20,
};

test("limit order params are strings with the validated values", () => {
  const r = buildOrder(BTC, { side: "buy", type: "limit", tif: "GTC", price: "30000.10", amount: "0.0150" }, "cid-1");
  assert.deepEqual(r, {
    ok: true,
    params: {
      market: "BTC-USD",
      side: "buy",
      type: "limit",
      client_order_id: "cid-1",
      amount: "0.015",
      price: "30000.1",
      time_in_force: "GTC",
      post_only: false,
    },
  });
  for (const v of Object.values(r.params)) assert.notEqual(typeof v, "number");
});

test("precision, minimum and post-only rules", () => {
  assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: "30000.105", amount: "1" }).field, "price");
  assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: "1", amount: "0.000011" }).field, "amount");
  assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: "1", amount: "0.00005" }).field, "amount");
  assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: "abc", amount: "1" }).field, "price");
  assert.equal(buildOrder(BTC, { side: "sell", type: "limit", price: "1", amount: "1", tif: "IOC", postOnly: true }).field, "tif");
  const po = buildOrder(BTC, { side: "sell", type: "limit", price: "1", amount: "1", tif: "GTC", postOnly: true });
  assert.equal(po.params.post_only, true);
  const comma = buildOrder(BTC, { side: "sell", type: "limit", price: "1,5", amount: "1" });
  assert.equal(comma.params.price, "1.5");
});

test("a comma is a decimal comma or a thousands separator, never a guess", () => {
  // the page shows prices as 61,000.50: typed (or pasted) back, they mean the same
  assert.equal(cleanInput(" 61,000.50 "), "61000.50");
  assert.equal(cleanInput("1,234,567"), "1234567");
  assert.equal(cleanInput("0,5"), "0.5");
  assert.equal(cleanInput("61000,25"), "61000.25");
  assert.equal(cleanInput("0,500"), "0.500");
  // "61,000" is 61000 in the page's own format but 61 with a decimal comma: refused
  const sell = buildOrder(BTC, { side: "sell", type: "limit", tif: "GTC", price: "61,000", amount: "0.001" });
  assert.equal(sell.ok, false);
  assert.equal(sell.field, "price");
  assert.match(sell.error, /"61,000" could be 61000 or 61\.000/);
  assert.equal(buildOrder(BTC, { side: "buy", type: "market", amount: "1,000" }).field, "amount");
  for (const bad of ["6,10,00", "1,5,5", "61,000,5", "1.000,50"]) assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: bad, amount: "1" }).field, "price", bad);
  const grouped = buildOrder(BTC, { side: "buy", type: "limit", tif: "GTC", price: "61,000.50", amount: "0.001" });
  assert.equal(grouped.params.price, "61000.5");
});

test("refused numbers say what is wrong", () => {
  assert.equal(numberError("", "a price"), "Enter a price");
  assert.equal(numberError("0", "a price"), "Enter a price above 0");
  assert.equal(numberError("-5", "a price"), "Enter a price as a positive number");
  assert.equal(numberError("abc", "a price"), "Enter a price as a plain number, e.g. 1500.25");
  assert.equal(buildOrder(BTC, { side: "buy", type: "limit", price: "1e3", amount: "1" }).error, "Enter a price as a plain number, e.g. 1500.25");
});

test("market orders: no price/tif, buy by quote amount", () => {
  const m = buildOrder(BTC, { side: "sell", type: "market", amount: "0.5", price: "123" }, "c");
  assert.deepEqual(m.params, { market: "BTC-USD", side: "sell", type: "market", client_order_id: "c", amount: "0.5" });
  const q = buildOrder(BTC, { side: "buy", type: "market", byQuote: true, quoteAmount: "250.00" }, "c");
  assert.deepEqual(q.params, { market: "BTC-USD", side: "buy", type: "market", client_order_id: "c", quote_amount: "250" });
  // by-quote only applies to market buys
  assert.equal(buildOrder(BTC, { side: "sell", type: "market", byQuote: true, quoteAmount: "5" }).field, "amount");
});

test("client order ids match the protocol pattern", () => {
  for (let i = 0; i < 50; i++) assert.match(newClientOrderId(), CLIENT_ORDER_ID_RE);
});

test("fee estimate rounds up", () => {
  assert.equal(feeEstimate("0.015", 20, 8), "0.00003000");
  assert.equal(feeEstimate("0.00000001", 20, 8), "0.00000001");
  assert.equal(feeEstimate("450.0015", 10, 2), "0.46");
});

test("orders push: nested or flat order object", () => {
  assert.equal(orderOfPush({ channel: "orders", order: { id: "1" } }).id, "1");
  const flat = orderOfPush({ channel: "orders", exec_type: "NEW", id: "2", type: "limit", status: "NEW" });
  assert.equal(flat.id, "2");
  assert.equal(flat.type, "limit");
});

test("account: open orders follow pushes, final states stick, fills dedupe", () => {
  const a = new Account();
  a.onPush({ channel: "orders", exec_type: "NEW", order: { id: "1", market: "BTC-USD", side: "buy", status: "NEW", updated_ts: 1 } });
  assert.equal(a.orders.size, 1);
  const trade = {
    channel: "orders",
    exec_type: "TRADE",
    order: { id: "1", market: "BTC-USD", side: "buy", status: "FILLED", updated_ts: 2 },
    trade_id: 7,
    last_price: "100.00",
    last_size: "1.0",
    liquidity: "maker",
    fee: "0.001",
    fee_asset: "BTC",
  };
  a.onPush(trade);
  a.onPush(trade);
  assert.equal(a.orders.size, 0);
  assert.equal(a.fills.length, 1);
  assert.equal(a.fills[0].price, "100.00");
  // a late NEW does not resurrect a finished order
  a.onPush({ channel: "orders", exec_type: "NEW", order: { id: "1", status: "NEW", updated_ts: 1 } });
  assert.equal(a.orders.size, 0);
  a.onPush({ channel: "balances", asset: "BTC", free: "1", locked: "0", total: "1" });
  assert.equal(a.balance("BTC").free, "1");
});

test("candles: arrays or objects, live trades fold into the last bucket", () => {
  const c = normalizeCandles([{ ts: 120000, open: "1", high: "3", low: "1", close: "2", volume: "5" }, [60000, "1", "1", "1", "1", "0"]]);
  assert.deepEqual(c.map((x) => x.ts), [60000, 120000]);
  addTrade(c, "1m", 150000, "4", "1");
  assert.equal(c[1].h, 4);
  assert.equal(c[1].v, 6);
  addTrade(c, "1m", 185000, "2", "1");
  assert.equal(c.length, 3);
  assert.equal(c[2].o, 2);
});

test("backoff grows, is capped and resets", () => {
  const b = new Backoff({ base: 500, max: 4000, random: () => 1 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 4000]);
  b.reset();
  assert.equal(b.next(), 500);
});

test("subscription keys ignore market order", () => {
  assert.equal(subKey({ channel: "book", markets: ["B", "A"] }), subKey({ channel: "book", markets: ["A", "B"] }));
  assert.notEqual(subKey({ channel: "book", markets: ["A"] }), subKey({ channel: "trades", markets: ["A"] }));
});

test("an IOC / market order that ended EXPIRED after filling in part says what filled", () => {
  const ioc = { id: "7", side: "buy", market: "BTC-USD", type: "limit", time_in_force: "IOC", amount: "0.05000", filled: "0.01000" };
  assert.equal(endedOrderText("EXPIRED", ioc), "buy BTC-USD IOC limit order 7: filled 0.01 of 0.05, the rest expired (no more liquidity at its price)");
  const mkt = { id: "8", side: "buy", market: "SOL-USD", type: "market", time_in_force: "IOC", amount: null, filled: "0.200", quote_amount: "100" };
  assert.equal(endedOrderText("EXPIRED", mkt), "buy SOL-USD market order 8: filled 0.2, the rest expired (no more liquidity at its price)");
  assert.equal(endedOrderText("EXPIRED", { ...ioc, filled: "0.00000" }), "buy BTC-USD IOC limit order 7 expired unfilled");
  assert.equal(endedOrderText("REJECTED", ioc), "buy BTC-USD IOC limit order 7 rejected");
});
