// node --test web/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../js/errors.js";
import { OPS, P2PClient } from "../js/p2p/client.js";
import { newer, P2PStore } from "../js/p2p/store.js";

function fakeHttp(answers = []) {
  const calls = [];
  return {
    calls,
    async request(verb, path, opts) {
      calls.push([verb, path, opts]);
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return typeof a === "function" ? a(verb, path, opts) : a;
    },
    async get(path) {
      calls.push(["GET", path]);
      return [{ symbol: "BTC", scale: 8 }];
    },
  };
}

function fakeWs(authed, answers = []) {
  const calls = [];
  return {
    authed,
    calls,
    async request(method, params) {
      calls.push([method, params]);
      const a = answers.shift();
      if (a instanceof Error) throw a;
      return a;
    },
  };
}

test("client: WebSocket method when authenticated, else the HTTP route with the path id", async () => {
  const ws = fakeWs(true, [{ id: "1" }]);
  const http = fakeHttp([{ id: "2" }, []]);
  const c = new P2PClient({ http, ws, newId: () => "rid-1" });
  await c.call("take", { offer_id: "5", amount: "0.1", price: "100" });
  assert.deepEqual(ws.calls[0], ["p2p.offer.take", { offer_id: "5", amount: "0.1", price: "100", request_id: "rid-1" }]);
  ws.authed = false;
  await c.call("take", { offer_id: "5", amount: "0.1", price: "100" });
  assert.deepEqual(http.calls[0], [
    "POST",
    "/p2p/offers/5/take",
    { auth: true, body: { amount: "0.1", price: "100", request_id: "rid-1" } },
  ]);
  await c.call("listOffers", { asset: "BTC", limit: 200 });
  assert.deepEqual(http.calls[1], ["GET", "/p2p/offers", { auth: false, query: { asset: "BTC", limit: 200 } }]);
});

test("client: reads carry no request_id; every op has a route", async () => {
  const http = fakeHttp([[]]);
  const c = new P2PClient({ http, ws: fakeWs(false), newId: () => "x" });
  await c.call("myTrades", { limit: 5 });
  assert.deepEqual(http.calls[0], ["GET", "/p2p/trades", { auth: true, query: { limit: 5 } }]);
  for (const [op, [method, route]] of Object.entries(OPS)) {
    assert.match(method, /^(p2p|notifications)\./, op);
    const [verb, path] = route({ offer_id: "1", trade_id: "2" });
    assert.match(verb, /^(GET|POST|PATCH)$/, op);
    assert.match(path, /^\/(p2p|notifications)/, op);
  }
  await assert.rejects(c.call("nope"), /unknown P2P op/);
});

test("client: a mutation with an unknown outcome is retried once with the same request_id", async () => {
  const http = fakeHttp([new ApiError("HTTP_502", "", 502), { id: "9", status: "PAID" }]);
  let n = 0;
  const c = new P2PClient({ http, ws: fakeWs(false), newId: () => `rid-${++n}` });
  const t = await c.move("paid", "9");
  assert.equal(t.status, "PAID");
  assert.equal(http.calls.length, 2);
  assert.deepEqual(http.calls[0][2].body, { request_id: "rid-1" });
  assert.deepEqual(http.calls[1][2].body, { request_id: "rid-1" });
  // a definite refusal is not retried; neither is a read
  const http2 = fakeHttp([new ApiError("INVALID_PARAM", "trade is RELEASED", 400)]);
  await assert.rejects(new P2PClient({ http: http2, ws: fakeWs(false) }).move("cancel", "9"), /trade is RELEASED/);
  assert.equal(http2.calls.length, 1);
  const http3 = fakeHttp([new ApiError("NETWORK", "", 0)]);
  await assert.rejects(new P2PClient({ http: http3, ws: fakeWs(false) }).call("getTrade", { trade_id: "9" }));
  assert.equal(http3.calls.length, 1);
});

const ME = { id: "11", role: "user" };
const T = (status, updated_ts, extra = {}) => ({ id: "7", buyer: "11", seller: "10", status, updated_ts, ...extra });

function fakeClient(handlers) {
  const calls = [];
  return {
    calls,
    async call(op, params) {
      calls.push([op, params]);
      const h = handlers[op];
      if (!h) throw new Error(`unexpected ${op}`);
      return typeof h === "function" ? h(params) : h;
    },
    move(action, id) {
      return this.call(action, { trade_id: id });
    },
    async assets() {
      return [{ symbol: "BTC", scale: 8 }];
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

test("store: newer of two versions by updated_ts", () => {
  assert.equal(newer(null, T("PAID", 2)).status, "PAID");
  assert.equal(newer(T("PAID", 3), T("PENDING", 2)).status, "PAID");
  assert.equal(newer(T("PENDING", 2), T("PAID", 2)).status, "PAID");
});

test("store: a p2p notification refreshes the trade it references, my offers and the listing", async () => {
  let version = T("PENDING", 1);
  const client = fakeClient({
    getTrade: () => version,
    myOffers: [],
    listOffers: [],
    messages: [{ n: 1, trade_id: "7", body: "hi" }],
  });
  const store = new P2PStore(client, { getIdentity: () => ME });
  const seen = [];
  store.on("trade", (t) => seen.push(t.status));
  version = T("PAID", 2);
  assert.equal(
    store.onNotification({ notification_id: "n1", kind: "p2p.trade_paid", ref: "7", message: "paid", ts: 1 }),
    true,
  );
  await tick();
  assert.deepEqual(seen, ["PAID"]);
  assert.equal(store.trades.get("7").status, "PAID");
  assert.deepEqual(client.calls.map((c) => c[0]).sort(), ["getTrade", "listOffers", "myOffers"]);
  assert.equal(store.inbox.length, 1);
  assert.equal(store.inbox[0].id, "n1"); // listed under its inbox id
  // the same notification again (replayed push, or as loaded from the inbox) is not listed twice
  store.onNotification({ notification_id: "n1", kind: "p2p.trade_paid", ref: "7", message: "paid", ts: 1 });
  store.onNotification({ id: "n1", kind: "p2p.trade_paid", ref: "7", message: "paid", ts: 1 });
  assert.equal(store.inbox.length, 1);
  // not ours to handle
  assert.equal(store.onNotification({ id: "x", kind: "order.filled", ref: "7" }), false);
  assert.equal(store.onNotification({ id: "y", kind: "p2p.trade_paid" }), false);
});

test("store: a message notification reloads an open thread only", async () => {
  const client = fakeClient({ messages: (p) => [{ n: 1, trade_id: p.trade_id, body: "hi" }] });
  const store = new P2PStore(client, { getIdentity: () => ME });
  store.onNotification({ id: "m1", kind: "p2p.message", ref: "7" });
  await tick();
  assert.equal(client.calls.length, 0);
  await store.loadMessages("7");
  store.onNotification({ id: "m2", kind: "p2p.message", ref: "7" });
  await tick();
  assert.equal(client.calls.filter((c) => c[0] === "messages").length, 2);
  store.addMessage({ n: 2, trade_id: "7", body: "again" });
  store.addMessage({ n: 2, trade_id: "7", body: "again" });
  assert.deepEqual(store.thread("7").map((m) => m.n), [1, 2]);
});

test("store: a reload asked for while one runs runs again after it (no stale answer)", async () => {
  let release;
  let n = 0;
  const client = fakeClient({
    getTrade: () => {
      n += 1;
      if (n === 1) return new Promise((r) => (release = () => r(T("PENDING", 1))));
      return T("RELEASED", 3);
    },
  });
  const store = new P2PStore(client, { getIdentity: () => ME });
  const first = store.refreshTrade("7");
  const second = store.refreshTrade("7"); // e.g. a notification arrives meanwhile
  await tick();
  release();
  await Promise.all([first, second]);
  assert.equal(n, 2);
  assert.equal(store.trades.get("7").status, "RELEASED");
});

test("store: an older fetch never overwrites a newer move result", async () => {
  const client = fakeClient({ release: T("RELEASED", 5), getTrade: T("PAID", 4) });
  const store = new P2PStore(client, { getIdentity: () => ({ id: "10", role: "user" }) });
  await store.act("release", "7");
  await store.refreshTrade("7");
  assert.equal(store.trades.get("7").status, "RELEASED");
});

test("store: admin resolves a dispute; it leaves the queue", async () => {
  const disputed = T("DISPUTED", 5, { dispute: { by: "11", reason: "r", ts: 5 } });
  const client = fakeClient({
    disputes: [disputed],
    resolve: (p) => ({ ...disputed, status: p.resolution === "refund" ? "REFUNDED" : "RELEASED", updated_ts: 6 }),
  });
  const store = new P2PStore(client, { getIdentity: () => ({ id: "1", role: "admin" }) });
  await store.loadDisputes();
  assert.equal(store.disputes.length, 1);
  assert.equal(store.trade("7").status, "DISPUTED");
  const t = await store.act("resolve_refund", "7");
  assert.equal(t.status, "REFUNDED");
  assert.deepEqual(client.calls.at(-1), ["resolve", { trade_id: "7", resolution: "refund" }]);
  assert.equal(store.disputes.length, 0);
  assert.equal(store.trades.size, 0); // not the admin's own trade...
  assert.equal(store.trade("7").status, "REFUNDED"); // ...but still shown after the resolution
});

test("store: a non-admin does not ask for disputes; logged out loads only the listing", async () => {
  const client = fakeClient({ listOffers: [{ id: "1" }] });
  const store = new P2PStore(client, { getIdentity: () => null });
  await store.loadAll();
  assert.deepEqual(client.calls.map((c) => c[0]), ["listOffers"]);
  assert.equal(store.offers.length, 1);
  await store.setFilters({ asset: "BTC", side: "sell", fiat: "" });
  assert.deepEqual(client.calls.at(-1), ["listOffers", { asset: "BTC", side: "sell", limit: 200 }]);
});

test("store: load failures are reported, not thrown", async () => {
  const client = fakeClient({ myTrades: () => Promise.reject(new ApiError("NETWORK", "down", 0)) });
  const store = new P2PStore(client, { getIdentity: () => ME });
  const errors = [];
  store.on("error", (what, e) => errors.push([what, e.code]));
  await store.loadTrades();
  assert.deepEqual(errors, [["trades", "NETWORK"]]);
});
