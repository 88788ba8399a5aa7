// HTTP client for /api/v1 (PROTOCOL.md). Same origin; bearer token from the session.
// The WebSocket client lives in ws.js and is re-exported here for convenience.

import { ApiError, errorFromBody } from "./errors.js";

export { ApiError } from "./errors.js";
export { WsClient } from "./ws.js";

const BASE = "/api/v1";
const TIMEOUT_MS = 15000;

/** A list out of a response that is either a bare array or wraps it in an object. */
export function asList(data, ...keys) {
  if (Array.isArray(data)) return data;
  for (const k of [...keys, "result", "data", "items"]) {
    if (data && Array.isArray(data[k])) return data[k];
  }
  return [];
}

export class Http {
  /** @param getToken () => string|null ; @param onUnauthorized () => void */
  constructor({ getToken = () => null, onUnauthorized = () => {} } = {}) {
    this.getToken = getToken;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { body, auth = false, query } = {}) {
    let url = BASE + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
      const qs = q.toString();
      if (qs) url += `?${qs}`;
    }
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    // The bearer token goes only to private routes: public data keeps working
    // even while a stale token is being replaced.
    const token = auth ? this.getToken() : null;
    if (auth) {
      if (!token) throw new ApiError("UNAUTHORIZED", "Log in first", 401);
      headers.Authorization = `Bearer ${token}`;
    }
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: ctrl.signal,
        credentials: "same-origin",
      });
    } catch (e) {
      const timedOut = e && e.name === "AbortError";
      throw new ApiError(timedOut ? "TIMEOUT" : "NETWORK", timedOut ? "Request timed out" : "Network error", 0);
    } finally {
      clearTimeout(timer);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!res.ok) {
      const err = errorFromBody(data, res.status);
      if (res.status === 401 && auth) this.onUnauthorized(err);
      throw err;
    }
    return data;
  }

  get(path, opts) {
    return this.request("GET", path, opts);
  }

  post(path, body, opts = {}) {
    return this.request("POST", path, { ...opts, body });
  }

  del(path, opts) {
    return this.request("DELETE", path, opts);
  }

  patch(path, body, opts = {}) {
    return this.request("PATCH", path, { ...opts, body });
  }

  // --- typed helpers -------------------------------------------------------
  signup(email, password) {
    return this.post("/auth/signup", { email, password });
  }

  login(email, password) {
    return this.post("/auth/login", { email, password });
  }

  async markets() {
    return asList(await this.get("/markets"), "markets");
  }

  async trades(market, limit = 50) {
    return asList(await this.get(`/markets/${encodeURIComponent(market)}/trades`, { query: { limit } }), "trades");
  }

  book(market, depth = 50) {
    return this.get(`/markets/${encodeURIComponent(market)}/book`, { query: { depth } });
  }

  ticker(market) {
    return this.get(`/markets/${encodeURIComponent(market)}/ticker`);
  }

  async candles(market, interval = "1m", limit = 120) {
    const data = await this.get(`/markets/${encodeURIComponent(market)}/candles`, { query: { interval, limit } });
    return asList(data, "candles");
  }

  async openOrders(market) {
    return asList(await this.get("/orders", { auth: true, query: { status: "open", market } }), "orders");
  }

  placeOrder(params) {
    return this.post("/orders", params, { auth: true });
  }

  cancelOrder(id) {
    return this.del(`/orders/${encodeURIComponent(id)}`, { auth: true });
  }

  /** Reduce an open order to `amount` in place (keeps its queue priority). */
  amendOrder(id, amount) {
    return this.patch(`/orders/${encodeURIComponent(id)}`, { amount }, { auth: true });
  }

  cancelAll(market) {
    return this.del("/orders", { auth: true, query: { market } });
  }

  async fills(market) {
    return asList(await this.get("/fills", { auth: true, query: { market } }), "fills");
  }

  async balances() {
    return asList(await this.get("/balances", { auth: true }), "balances");
  }

  async addresses() {
    return asList(await this.get("/addresses", { auth: true }), "addresses");
  }

  transfer(params) {
    return this.post("/transfers", params, { auth: true });
  }
}
