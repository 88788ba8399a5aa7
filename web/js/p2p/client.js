// P2P calls (docs/protocol.md, P2P): over the WebSocket when it is authenticated,
// else over HTTP, same params and results either way. Mutations carry a
// `request_id`; one whose outcome is unknown (5xx, lost connection) is sent once
// more with the SAME request_id, which the server applies at most once.

import { newClientOrderId } from "../order.js";

const enc = encodeURIComponent;
const q = (p) => ({ query: p });

/** op -> WebSocket method, HTTP [verb, path, options] from the params, mutation? */
export const OPS = {
  listOffers: ["p2p.offers.list", (p) => ["GET", "/p2p/offers", { query: p, auth: false }]],
  myOffers: ["p2p.offers.mine", (p) => ["GET", "/p2p/offers/mine", q(p)]],
  getOffer: ["p2p.offer.get", ({ offer_id }) => ["GET", `/p2p/offers/${enc(offer_id)}`, { auth: false }]],
  createOffer: ["p2p.offer.create", (p) => ["POST", "/p2p/offers", { body: p }], true],
  updateOffer: ["p2p.offer.update", ({ offer_id, ...b }) => ["PATCH", `/p2p/offers/${enc(offer_id)}`, { body: b }], true],
  closeOffer: ["p2p.offer.close", ({ offer_id, ...b }) => ["POST", `/p2p/offers/${enc(offer_id)}/close`, { body: b }], true],
  take: ["p2p.offer.take", ({ offer_id, ...b }) => ["POST", `/p2p/offers/${enc(offer_id)}/take`, { body: b }], true],
  myTrades: ["p2p.trades.mine", (p) => ["GET", "/p2p/trades", q(p)]],
  getTrade: ["p2p.trade.get", ({ trade_id }) => ["GET", `/p2p/trades/${enc(trade_id)}`, {}]],
  paid: ["p2p.trade.paid", ({ trade_id, ...b }) => ["POST", `/p2p/trades/${enc(trade_id)}/paid`, { body: b }], true],
  release: ["p2p.trade.release", ({ trade_id, ...b }) => ["POST", `/p2p/trades/${enc(trade_id)}/release`, { body: b }], true],
  cancel: ["p2p.trade.cancel", ({ trade_id, ...b }) => ["POST", `/p2p/trades/${enc(trade_id)}/cancel`, { body: b }], true],
  dispute: ["p2p.trade.dispute", ({ trade_id, ...b }) => ["POST", `/p2p/trades/${enc(trade_id)}/dispute`, { body: b }], true],
  messages: ["p2p.messages.get", ({ trade_id }) => ["GET", `/p2p/trades/${enc(trade_id)}/messages`, {}]],
  postMessage: ["p2p.message.post", ({ trade_id, ...b }) => ["POST", `/p2p/trades/${enc(trade_id)}/messages`, { body: b }], true],
  disputes: ["p2p.disputes.list", () => ["GET", "/p2p/admin/disputes", {}]],
  resolve: ["p2p.trade.resolve", ({ trade_id, ...b }) => ["POST", `/p2p/admin/trades/${enc(trade_id)}/resolve`, { body: b }], true],
  notifications: ["notifications.get", (p) => ["GET", "/notifications", q(p)]],
};

export class P2PClient {
  /** @param http Http (api.js) ; @param ws WsClient ; @param newId () => request id */
  constructor({ http, ws, newId = newClientOrderId }) {
    this.http = http;
    this.ws = ws;
    this.newId = newId;
  }

  async send(op, params) {
    const [method, route] = OPS[op];
    if (this.ws && this.ws.authed) return this.ws.request(method, params);
    const [verb, path, opts] = route(params);
    return this.http.request(verb, path, { auth: true, ...opts });
  }

  /** Call `op` with `params` (decimal strings, ids); resolves with the result. */
  async call(op, params = {}) {
    if (!OPS[op]) throw new Error(`unknown P2P op ${op}`);
    const mutation = OPS[op][2] === true;
    const p = mutation && !params.request_id ? { ...params, request_id: this.newId() } : { ...params };
    try {
      return await this.send(op, p);
    } catch (e) {
      if (!mutation || !e.outcomeUnknown) throw e;
      return this.send(op, p); // same request_id: applied at most once
    }
  }

  /** Trade move by name: paid | release | cancel. */
  move(action, tradeId) {
    return this.call(action, { trade_id: tradeId });
  }

  async assets() {
    const list = await this.http.get("/assets");
    return Array.isArray(list) ? list : [];
  }
}
