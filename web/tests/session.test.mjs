import assert from "node:assert/strict";
import { test } from "node:test";

import { Session } from "../js/session.js";
import { refreshDelay } from "../js/session_keeper.js";

class MemoryStorage {
  constructor() {
    this.m = new Map();
  }
  getItem(k) {
    return this.m.has(k) ? this.m.get(k) : null;
  }
  setItem(k, v) {
    this.m.set(k, String(v));
  }
  removeItem(k) {
    this.m.delete(k);
  }
}

test("session keeps the token in storage, renews it, ends with a reason", () => {
  const storage = new MemoryStorage();
  const s = new Session(storage);
  const events = [];
  s.onChange((loggedIn, reason) => events.push([loggedIn, reason]));
  assert.equal(s.loggedIn, false);
  s.start("a@b.c", { access_token: "t1", expires_in: 3600 });
  assert.equal(new Session(storage).token, "t1"); // survives a reload
  s.renew({ access_token: "t2", expires_in: 3600 });
  assert.equal(new Session(storage).token, "t2");
  assert.equal(s.email, "a@b.c");
  s.end("expired");
  assert.equal(new Session(storage).loggedIn, false);
  assert.deepEqual(events, [
    [true, null],
    [false, "expired"],
  ]);
});

test("an expired stored token is not used", () => {
  const storage = new MemoryStorage();
  storage.setItem("hftx.session", JSON.stringify({ token: "old", email: "x", expiresAt: Date.now() - 1 }));
  assert.equal(new Session(storage).loggedIn, false);
  storage.setItem("hftx.session", "{not json");
  assert.equal(new Session(storage).loggedIn, false);
});

test("token refresh timing", () => {
  assert.equal(refreshDelay(Infinity), null);
  assert.equal(refreshDelay(-5), 0);
  assert.equal(refreshDelay(3600e3), 2880e3); // 80 % of an hour
  assert.equal(refreshDelay(60e3), 48e3);
  assert.equal(refreshDelay(20e3), 15e3); // never after expiry - 5 s
  assert.equal(refreshDelay(3e3), 0);
});

test("keeper refreshes a token about to expire and re-authenticates the socket", async () => {
  const { keepSessionAlive } = await import("../js/session_keeper.js");
  const session = new Session(new MemoryStorage());
  const calls = [];
  const http = {
    request: async (method, path, opts) => {
      calls.push([method, path, opts.auth]);
      return { access_token: "fresh", token_type: "bearer", expires_in: 900 };
    },
  };
  const ws = { ready: true, authed: true, request: async (m, p) => calls.push([m, p.token]) };
  let expired = 0;
  keepSessionAlive({ session, http, ws, onExpired: () => expired++ });
  session.start("a@b.c", { access_token: "old", expires_in: 1 });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(calls, [
    ["POST", "/auth/refresh", true],
    ["auth", "fresh"],
  ]);
  assert.equal(session.token, "fresh");
  assert.ok(session.msUntilExpiry() > 800e3);
  assert.equal(expired, 0);
  session.end(); // clears the timers
});
