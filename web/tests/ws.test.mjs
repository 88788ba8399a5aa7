// WsClient and MarketFeed against fakes: auth first, replay on reconnect,
// request/response matching, 4401, resubscribe on gap / checksum mismatch.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff } from "../js/backoff.js";
import { Emitter } from "../js/emitter.js";
import { MarketFeed } from "../js/market_feed.js";
import { WsClient } from "../js/ws.js";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

/** Wait until `cond()` is true (polling), failing after `ms`; then settle a little. */
async function until(cond, ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met in ${ms} ms: ${cond}`);
    await tick(5);
  }
  await tick(10);
}

function fakeSocketClass(log) {
  return class FakeSocket {
    constructor(url) {
      this.url = url;
      this.sent = [];
      log.sockets.push(this);
      setTimeout(() => this.onopen && this.onopen(), 0);
    }
    send(data) {
      const msg = JSON.parse(data);
      this.sent.push(msg);
      // answer like a server: auth ok unless token "bad"; everything else ok
      setTimeout(() => {
        if (msg.method === "auth" && msg.params.token === "bad") {
          this.onmessage({ data: JSON.stringify({ id: msg.id, status: 401, error: { code: "UNAUTHORIZED", message: "bad token" } }) });
        } else {
          this.onmessage({ data: JSON.stringify({ id: msg.id, status: 200, result: {} }) });
        }
      }, 0);
    }
    push(obj) {
      this.onmessage({ data: JSON.stringify(obj) });
    }
    close(code = 1000) {
      setTimeout(() => this.onclose && this.onclose({ code }), 0);
    }
  };
}

function client(token, log) {
  return new WsClient({
    url: "ws://test/ws",
    getToken: () => token,
    WebSocketImpl: fakeSocketClass(log),
    backoff: new Backoff({ base: 1, max: 2, random: () => 0 }),
  });
}

test("auth is the first request, then subscriptions; replayed after reconnect", async () => {
  const log = { sockets: [] };
  const ws = client("tok", log);
  ws.subscribe({ channel: "book", markets: ["BTC-USD"], depth: 50 });
  ws.subscribe({ channel: "orders" });
  const readies = [];
  ws.on("ready", (r) => readies.push(r));
  ws.start();
  await until(() => readies.length === 1);
  const first = log.sockets[0].sent;
  assert.equal(first[0].method, "auth");
  assert.deepEqual(first[0].params, { token: "tok" });
  assert.deepEqual(
    first.slice(1).map((m) => [m.method, m.params.channel]),
    [
      ["subscribe", "book"],
      ["subscribe", "orders"],
    ],
  );
  assert.deepEqual(readies, [{ authed: true }]);
  // server restarts the node
  log.sockets[0].push({ channel: "status", type: "shutdown" });
  log.sockets[0].close(1012);
  await until(() => readies.length === 2);
  assert.equal(log.sockets.length, 2);
  const second = log.sockets[1].sent;
  assert.equal(second[0].method, "auth");
  assert.equal(second.filter((m) => m.method === "subscribe").length, 2);
  ws.stop();
});

test("no token: the client does not connect (the server wants auth first)", async () => {
  const log = { sockets: [] };
  const ws = client(null, log);
  ws.subscribe({ channel: "ticker", markets: ["BTC-USD"] });
  ws.start();
  await tick(10);
  assert.equal(log.sockets.length, 0);
  assert.equal(ws.state, "idle");
});

test("invalid token: auth_expired, nothing subscribed, no reconnect loop", async () => {
  const log = { sockets: [] };
  const ws = client("bad", log);
  ws.subscribe({ channel: "ticker", markets: ["BTC-USD"] });
  ws.subscribe({ channel: "balances" });
  let expired = 0;
  ws.on("auth_expired", () => expired++);
  ws.start();
  await until(() => expired === 1);
  await tick(30);
  assert.equal(expired, 1);
  assert.equal(log.sockets.length, 1);
  assert.deepEqual(log.sockets[0].sent.map((m) => m.method), ["auth"]);
  assert.equal(ws.state, "idle");
});

test("close 4401 reports auth_expired, rejects pending requests, does not reconnect", async () => {
  const log = { sockets: [] };
  const ws = client("tok", log);
  let expired = 0;
  ws.on("auth_expired", () => expired++);
  ws.start();
  await until(() => ws.authed);
  const sock = log.sockets[0];
  sock.send = function (data) {
    this.sent.push(JSON.parse(data)); // never answers
  };
  const p = ws.request("order.place", { market: "BTC-USD" });
  sock.close(4401);
  await assert.rejects(p, (e) => e.code === "DISCONNECTED" && e.outcomeUnknown);
  await tick(20);
  assert.equal(expired, 1);
  assert.equal(log.sockets.length, 1);
  ws.stop();
});

test("stop() after a 4401 close (the session ended) goes idle, not left 'closed'", async () => {
  const log = { sockets: [] };
  const ws = client("tok", log);
  const states = [];
  ws.on("state", (s) => states.push(s));
  ws.on("auth_expired", () => ws.stop()); // as the page does: end the session, stop the socket
  ws.start();
  await until(() => ws.authed);
  log.sockets[0].close(4401);
  await tick(20);
  assert.equal(ws.state, "idle"); // the header shows "Delayed (HTTP)", not "Offline"
  assert.deepEqual(states.slice(-2), ["closed", "idle"]);
  assert.equal(log.sockets.length, 1);
});

test("stop() closes for good; start() again re-authenticates and replays", async () => {
  const log = { sockets: [] };
  const ws = client("tok", log);
  ws.subscribe({ channel: "orders" });
  ws.start();
  await until(() => ws.authed);
  ws.stop();
  await tick(20);
  assert.equal(log.sockets.length, 1);
  assert.equal(ws.state, "idle");
  ws.start();
  await until(() => ws.authed && log.sockets[1].sent.length === 2);
  assert.equal(log.sockets.length, 2);
  assert.deepEqual(log.sockets[1].sent.map((m) => m.method), ["auth", "subscribe"]);
  ws.stop();
});

test("error responses carry code and message", async () => {
  const log = { sockets: [] };
  const ws = client("tok", log);
  ws.start();
  await until(() => ws.authed);
  const sock = log.sockets[0];
  sock.send = function (data) {
    const msg = JSON.parse(data);
    setTimeout(() => this.push({ id: msg.id, status: 400, error: { code: "BAD_PRECISION", message: "price tick" } }), 0);
  };
  await assert.rejects(ws.request("order.place", {}), (e) => e.code === "BAD_PRECISION" && e.status === 400 && !e.outcomeUnknown);
  ws.stop();
});

class FakeWs extends Emitter {
  constructor() {
    super();
    this.calls = [];
  }
  subscribe(p) {
    this.calls.push(["subscribe", p]);
  }
  unsubscribe(p) {
    this.calls.push(["unsubscribe", p]);
  }
  resubscribe(p) {
    this.calls.push(["resubscribe", p]);
  }
}

const SNAP = { market: "BTC-USD", seq: 3, bids: [["1.00", "2"]], asks: [["1.10", "1"]] };
const fakeHttp = { trades: async () => [], ticker: async () => ({ last: "1.05" }), book: async () => SNAP };

test("MarketFeed resubscribes the book on a gap and on a checksum mismatch", async () => {
  const ws = new FakeWs();
  const feed = new MarketFeed(ws, fakeHttp);
  ws.emit("ready", { authed: true });
  feed.setMarket({ id: "BTC-USD" });
  assert.deepEqual(
    ws.calls.map(([k, p]) => `${k}:${p.channel}`),
    ["subscribe:book", "subscribe:trades", "subscribe:ticker", "subscribe:heartbeat"],
  );
  assert.equal(ws.calls[0][1].depth, 50);
  ws.emit("push", { channel: "book", type: "snapshot", market: "BTC-USD", seq: 5, bids: [["1.00", "1"]], asks: [] });
  assert.equal(feed.book.seq, 5);
  ws.emit("push", { channel: "book", type: "update", market: "BTC-USD", first_seq: 7, seq: 7, bids: [], asks: [] });
  await until(() => ws.calls.length === 5);
  assert.deepEqual(ws.calls.at(-1)[0], "resubscribe");
  assert.equal(feed.book.synced, false);
  ws.emit("push", { channel: "book", type: "snapshot", market: "BTC-USD", seq: 9, bids: [["1.00", "1"]], asks: [] });
  ws.emit("push", { channel: "book", type: "update", market: "BTC-USD", first_seq: 10, seq: 10, bids: [], asks: [], checksum: 42 });
  await until(() => ws.calls.length === 6);
  assert.equal(ws.calls.filter(([k]) => k === "resubscribe").length, 2);
  // other markets' pushes are ignored
  ws.emit("push", { channel: "book", type: "snapshot", market: "ETH-USD", seq: 1, bids: [], asks: [] });
  assert.equal(feed.book.synced, false);
});

test("MarketFeed polls HTTP while the socket is not live, and stops once it is", async () => {
  const ws = new FakeWs();
  let polls = 0;
  const http = { ...fakeHttp, book: async () => (polls++, SNAP) };
  const feed = new MarketFeed(ws, http);
  feed.setMarket({ id: "BTC-USD" });
  await until(() => feed.ticker && feed.book.synced);
  assert.equal(polls, 1);
  assert.equal(feed.book.seq, 3);
  assert.deepEqual(feed.book.bestBid(), ["1.00", "2"]);
  assert.equal(feed.ticker.last, "1.05");
  assert.equal(feed.stale, false);
  ws.emit("ready", { authed: true }); // live: no more polls
  await tick(2500);
  assert.equal(feed.live, true);
  assert.equal(polls, 1);
});
