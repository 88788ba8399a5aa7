// WebSocket client for /ws (PROTOCOL.md): request/response by id, typed pushes,
// `auth` as the first request, subscriptions replayed after every reconnect,
// reconnect with backoff, `status`/`shutdown` handling and a liveness check.
// The server accepts nothing but `auth` from an unauthenticated socket (it closes
// with 4401), so the client runs only while there is a token: start() after
// login, stop() at logout; public data is polled over HTTP meanwhile.
//
// Events: "state" (state: idle|connecting|open|closed, detail), "ready" ({authed}),
// "push" (msg), "auth_expired" (err), "shutdown" (msg), "sub_error" (params, err).

import { Backoff } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { ApiError, errorFromBody } from "./errors.js";

const REQUEST_TIMEOUT_MS = 10000;
const IDLE_PING_MS = 10000; // ping when nothing was received for this long
const DEAD_MS = 25000; // reconnect when nothing was received for this long
const STABLE_MS = 5000; // an open connection this old resets the backoff

export const CLOSE_REASONS = {
  1009: "frame too large",
  1012: "server restart",
  4401: "authentication expired or invalid",
  4408: "slow consumer",
  4429: "flooding",
};

/** Stable key of a subscription: channel + sorted markets. */
export function subKey(params) {
  const markets = params.markets ? [...params.markets].sort().join(",") : "";
  return `${params.channel}|${markets}`;
}

export function defaultWsUrl(loc = globalThis.location) {
  return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws`;
}

export class WsClient extends Emitter {
  constructor({ url, getToken = () => null, WebSocketImpl = globalThis.WebSocket, backoff } = {}) {
    super();
    this.url = url || defaultWsUrl();
    this.getToken = getToken;
    this.WebSocketImpl = WebSocketImpl;
    this.backoff = backoff || new Backoff({ base: 500, max: 30000 });
    this.subs = new Map(); // key -> params
    this.pending = new Map(); // id -> {resolve, reject, timer}
    this.nextId = 1;
    this.ws = null;
    this.state = "idle";
    this.authed = false;
    this.running = false;
    this.generation = 0;
    this.lastRx = 0;
    this.reconnectTimer = null;
    this.stableTimer = null;
    this.liveness = null;
    this.shutdownTimer = null;
  }

  /** Connect (if there is a token) and keep reconnecting until stop(). */
  start() {
    if (this.running || !this.getToken()) return;
    this.running = true;
    this.backoff.reset();
    this.connect();
    clearInterval(this.liveness);
    this.liveness = setInterval(() => this.checkLiveness(), 2000);
  }

  /** Close for good (logout); subscriptions are kept for the next start(). */
  stop() {
    if (!this.running && !this.ws) {
      // already down (e.g. closed 4401 at a token's end): the indicator still says so
      if (this.state !== "idle") this.setState("idle");
      return;
    }
    this.running = false;
    clearInterval(this.liveness);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.stableTimer);
    clearTimeout(this.shutdownTimer);
    this.generation++; // ignore whatever the old socket still says
    this.authed = false;
    this.rejectAll(new ApiError("DISCONNECTED", "Connection closed", 0));
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, "bye");
      } catch {
        /* already closed */
      }
    }
    this.setState("idle");
  }

  get ready() {
    return this.state === "open";
  }

  setState(state, detail = {}) {
    this.state = state;
    this.emit("state", state, detail);
  }

  connect() {
    clearTimeout(this.reconnectTimer);
    const gen = ++this.generation;
    this.authed = false;
    this.setState("connecting", { attempt: this.backoff.attempt });
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (e) {
      this.scheduleReconnect({ code: 0, reason: String(e) });
      return;
    }
    this.ws = ws;
    ws.onopen = () => gen === this.generation && this.onOpen(gen);
    ws.onmessage = (ev) => gen === this.generation && this.onMessage(ev.data);
    ws.onclose = (ev) => gen === this.generation && this.onClose(ev);
    ws.onerror = () => {}; // a close event always follows
  }

  async onOpen(gen) {
    this.lastRx = Date.now();
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => this.backoff.reset(), STABLE_MS);
    this.setState("open");
    const ok = await this.authenticate(gen);
    if (gen !== this.generation) return;
    if (!ok) {
      // 401: auth_expired was emitted and the server closes with 4401. Anything
      // else (rate limited, timeout): drop this socket and retry with backoff.
      const ws = this.ws;
      this.onClose({ code: 4000, reason: "authentication failed" });
      if (ws) ws.close(4000, "auth failed");
      return;
    }
    for (const params of this.subs.values()) this.sendSubscribe(params);
    this.emit("ready", { authed: true });
  }

  async authenticate(gen) {
    this.authed = false;
    const token = this.getToken();
    if (!token) return false;
    try {
      await this.request("auth", { token });
      if (gen === this.generation) this.authed = true;
    } catch (e) {
      if (gen === this.generation && (e.status === 401 || e.code === "UNAUTHORIZED")) {
        this.stop();
        this.emit("auth_expired", e);
      }
    }
    return this.authed;
  }

  onMessage(data) {
    this.lastRx = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    if (msg.id !== undefined && msg.id !== null && this.pending.has(msg.id)) {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.status === undefined || (msg.status >= 200 && msg.status < 300)) p.resolve(msg.result);
      else p.reject(errorFromBody(msg, msg.status));
      return;
    }
    if (msg.channel === "status") {
      if (msg.type === "shutdown") this.onShutdown(msg);
      this.emit("push", msg);
      return;
    }
    if (msg.channel) this.emit("push", msg);
  }

  onShutdown(msg) {
    this.emit("shutdown", msg);
    // The node closes with 1012; if it does not within 3 s, leave it ourselves.
    const gen = this.generation;
    clearTimeout(this.shutdownTimer);
    this.shutdownTimer = setTimeout(() => {
      if (gen === this.generation && this.ws) this.ws.close(4000, "node shutting down");
      if (gen === this.generation) this.onClose({ code: 1012, reason: "shutdown" });
    }, 3000);
  }

  onClose(ev) {
    this.generation++; // the socket is gone: ignore anything else from it
    clearTimeout(this.stableTimer);
    clearTimeout(this.shutdownTimer);
    this.authed = false;
    this.ws = null;
    this.rejectAll(new ApiError("DISCONNECTED", `Connection closed (${ev.code || "no code"})`, 0));
    if (ev.code === 4401) {
      // The token is no good any more: reconnecting with it would fail the same way.
      this.running = false;
      clearInterval(this.liveness);
      this.setState("closed", { code: ev.code, reason: CLOSE_REASONS[4401] });
      this.emit("auth_expired", new ApiError("UNAUTHORIZED", CLOSE_REASONS[4401], 401));
      return;
    }
    this.scheduleReconnect(ev);
  }

  scheduleReconnect(ev) {
    if (!this.running || !this.getToken()) {
      this.running = false;
      clearInterval(this.liveness);
      this.setState("idle");
      return;
    }
    let delay = this.backoff.next();
    if (ev.code === 1012) delay = Math.min(delay, 250 + Math.round(Math.random() * 750));
    if (ev.code === 4429) delay = Math.max(delay, 5000);
    this.setState("closed", { code: ev.code, reason: ev.reason || CLOSE_REASONS[ev.code] || "", retryIn: delay });
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  checkLiveness() {
    if (this.state !== "open" || !this.ws) return;
    const idle = Date.now() - this.lastRx;
    if (idle > DEAD_MS) {
      const ws = this.ws;
      this.onClose({ code: 4000, reason: "no data from server" });
      try {
        ws.close(4000, "dead");
      } catch {
        /* already closing */
      }
    } else if (idle > IDLE_PING_MS && this.authed) {
      this.request("ping", {}).catch(() => {});
    }
  }

  rejectAll(err) {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  /** Send a request; resolves with `result`, rejects with ApiError. */
  request(method, params = {}, { timeout = REQUEST_TIMEOUT_MS } = {}) {
    if (!this.ws || this.state !== "open") {
      return Promise.reject(new ApiError("DISCONNECTED", "Not connected", 0));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError("TIMEOUT", `${method} timed out`, 0));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.ws.send(JSON.stringify({ id, method, params }));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new ApiError("DISCONNECTED", String(e), 0));
      }
    });
  }

  sendSubscribe(params) {
    if (!this.ready || !this.authed) return; // replayed by onOpen after auth
    this.request("subscribe", params).catch((e) => {
      if (e.code !== "DISCONNECTED") this.emit("sub_error", params, e);
    });
  }

  /** Remember a subscription (replayed on reconnect) and send it now if possible. */
  subscribe(params) {
    this.subs.set(subKey(params), params);
    this.sendSubscribe(params);
  }

  unsubscribe(params) {
    const key = subKey(params);
    if (!this.subs.has(key)) return;
    this.subs.delete(key);
    if (this.ready && this.authed) this.request("unsubscribe", params).catch(() => {});
  }

  /** Fresh snapshot after a gap or checksum mismatch: unsubscribe then subscribe. */
  resubscribe(params) {
    this.subs.set(subKey(params), params);
    if (!this.ready || !this.authed) return;
    this.request("unsubscribe", params)
      .catch(() => {})
      .finally(() => this.sendSubscribe(params));
  }
}
