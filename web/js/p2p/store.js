// P2P state of the page (no DOM): the offer listing and its filters, my offers, my
// trades, message threads, admin disputes and the notification inbox. Kept live by
// the private `notifications` channel: a P2P notification refreshes the trade it
// references (and what the move changed: my offers, the listing, the thread).
//
// Events: "assets", "offers", "mine", "trades", "trade" (trade), "messages" (trade id),
// "disputes", "inbox", "error" (what, err).

import { Emitter } from "../emitter.js";

const INBOX_MAX = 100;

/** Newer of two versions of a trade/offer (by updated_ts; ties: the incoming one). */
export function newer(prev, next) {
  if (!prev) return next;
  return Number(next.updated_ts || 0) >= Number(prev.updated_ts || 0) ? next : prev;
}

export class P2PStore extends Emitter {
  constructor(client, { getIdentity = () => null } = {}) {
    super();
    this.client = client;
    this.getIdentity = getIdentity;
    this.scales = new Map();
    this.filters = { asset: "", side: "", fiat: "" };
    this.offers = [];
    this.offersError = null;
    this.inflight = new Map(); // key -> {again, done}: one reload of a kind at a time
    this.clear();
  }

  /** Forget everything private (logout). */
  clear() {
    this.mine = [];
    this.trades = new Map();
    this.others = new Map(); // trades seen by an admin who is no party of them
    this.threads = new Map(); // trade id -> [message]
    this.disputes = [];
    this.inbox = [];
    this.emit("mine");
    this.emit("trades");
    this.emit("disputes");
    this.emit("inbox");
  }

  get me() {
    return this.getIdentity();
  }

  get isAdmin() {
    return Boolean(this.me && this.me.role === "admin");
  }

  scale(asset) {
    return this.scales.get(asset);
  }

  /**
   * Run `fn` for `key` once at a time; a call made while it runs asks for one more
   * run after it (so a reload asked for after a move never returns older data).
   */
  once(key, fn) {
    const cur = this.inflight.get(key);
    if (cur) {
      cur.again = true;
      return cur.done;
    }
    const entry = { again: false, done: null };
    entry.done = (async () => {
      try {
        let result;
        do {
          entry.again = false;
          result = await fn();
        } while (entry.again);
        return result;
      } finally {
        this.inflight.delete(key);
      }
    })();
    this.inflight.set(key, entry);
    return entry.done;
  }

  guard(what, fn) {
    return this.once(what, async () => {
      try {
        return await fn();
      } catch (e) {
        this.emit("error", what, e);
        return null;
      }
    });
  }

  // --- loading ---------------------------------------------------------------------
  loadAssets() {
    return this.guard("assets", async () => {
      const list = await this.client.assets();
      this.scales = new Map(list.map((a) => [a.symbol, Number(a.scale)]));
      this.emit("assets");
    });
  }

  setFilters(f) {
    this.filters = { ...this.filters, ...f };
    return this.loadOffers();
  }

  loadOffers() {
    return this.once("offers", async () => {
      const f = this.filters;
      try {
        this.offers = await this.client.call("listOffers", {
          ...(f.asset ? { asset: f.asset } : {}),
          ...(f.side ? { side: f.side } : {}),
          ...(f.fiat ? { fiat: f.fiat } : {}),
          limit: 200,
        });
        this.offersError = null;
      } catch (e) {
        this.offersError = e;
      }
      this.emit("offers");
    });
  }

  loadMine() {
    if (!this.me) return Promise.resolve();
    return this.guard("mine", async () => {
      this.mine = await this.client.call("myOffers", { limit: 200 });
      this.emit("mine");
    });
  }

  loadTrades() {
    if (!this.me) return Promise.resolve();
    return this.guard("trades", async () => {
      const list = await this.client.call("myTrades", { limit: 200 });
      const next = new Map();
      for (const t of list) next.set(t.id, newer(this.trades.get(t.id), t));
      // keep trades seen only through a push or a take (older than the page of 200)
      for (const [id, t] of this.trades) if (!next.has(id)) next.set(id, t);
      this.trades = next;
      this.emit("trades");
    });
  }

  loadDisputes() {
    if (!this.isAdmin) return Promise.resolve();
    return this.guard("disputes", async () => {
      this.disputes = await this.client.call("disputes", {});
      this.emit("disputes");
    });
  }

  loadInbox() {
    if (!this.me) return Promise.resolve();
    return this.guard("inbox", async () => {
      const list = await this.client.call("notifications", { limit: 50 });
      this.inbox = list.filter((n) => String(n.kind || "").startsWith("p2p."));
      this.emit("inbox");
    });
  }

  /** Everything the user can see (login, reconnect). */
  loadAll() {
    return Promise.all([this.loadOffers(), this.loadMine(), this.loadTrades(), this.loadDisputes(), this.loadInbox()]);
  }

  /** A trade as known (mine or a dispute). */
  trade(id) {
    return this.trades.get(id) || this.disputes.find((t) => t.id === id) || this.others.get(id) || null;
  }

  /** Merge a trade from a result or a fetch; returns the version kept. */
  upsertTrade(t) {
    if (!t || !t.id) return null;
    const me = this.me;
    const mineTrade = me && (String(t.buyer) === me.id || String(t.seller) === me.id);
    let kept = t;
    if (mineTrade) {
      kept = newer(this.trades.get(t.id), t);
      this.trades.set(t.id, kept);
      this.emit("trades");
    } else {
      kept = newer(this.others.get(t.id), t);
      this.others.set(t.id, kept);
    }
    const i = this.disputes.findIndex((d) => d.id === t.id);
    if (i >= 0) {
      if (t.status === "DISPUTED") this.disputes[i] = newer(this.disputes[i], t);
      else this.disputes.splice(i, 1);
      this.emit("disputes");
    }
    this.emit("trade", kept);
    return kept;
  }

  refreshTrade(id) {
    return this.guard(`trade:${id}`, async () => this.upsertTrade(await this.client.call("getTrade", { trade_id: id })));
  }

  upsertOffer(o) {
    if (!o || !o.id) return;
    const i = this.mine.findIndex((x) => x.id === o.id);
    if (i >= 0) this.mine[i] = newer(this.mine[i], o);
    else this.mine.unshift(o);
    this.emit("mine");
  }

  /** The thread of a trade (loaded once, then refreshed by notifications). */
  thread(id) {
    return this.threads.get(id) || null;
  }

  loadMessages(id) {
    return this.guard(`messages:${id}`, async () => {
      this.threads.set(id, await this.client.call("messages", { trade_id: id }));
      this.emit("messages", id);
    });
  }

  addMessage(m) {
    const list = this.threads.get(m.trade_id) || [];
    if (!list.some((x) => x.n === m.n)) list.push(m);
    list.sort((a, b) => a.n - b.n);
    this.threads.set(m.trade_id, list);
    this.emit("messages", m.trade_id);
  }

  // --- moves (results are merged; errors are thrown to the caller) ---------------
  async createOffer(params) {
    const o = await this.client.call("createOffer", params);
    this.upsertOffer(o);
    this.loadOffers();
    return o;
  }

  async updateOffer(offerId, params) {
    const o = await this.client.call("updateOffer", { offer_id: offerId, ...params });
    this.upsertOffer(o);
    this.loadOffers();
    return o;
  }

  async closeOffer(offerId) {
    const o = await this.client.call("closeOffer", { offer_id: offerId });
    this.upsertOffer(o);
    this.loadOffers();
    return o;
  }

  async take(params) {
    const t = await this.client.call("take", params);
    this.upsertTrade(t);
    this.loadOffers();
    return t;
  }

  async act(action, tradeId, extra = {}) {
    let t;
    if (action === "resolve_release" || action === "resolve_refund") {
      t = await this.client.call("resolve", { trade_id: tradeId, resolution: action.slice(8) });
    } else if (action === "dispute") {
      t = await this.client.call("dispute", { trade_id: tradeId, reason: extra.reason });
    } else {
      t = await this.client.move(action, tradeId);
    }
    return this.upsertTrade(t);
  }

  async postMessage(tradeId, body) {
    const m = await this.client.call("postMessage", { trade_id: tradeId, body });
    this.addMessage(m);
    return m;
  }

  // --- live ----------------------------------------------------------------------
  /** A `notifications` push: refresh what it references. */
  onNotification(n) {
    const kind = String((n && n.kind) || "");
    if (!kind.startsWith("p2p.") || !n.ref) return false;
    // a push names its notification `notification_id`; the inbox (GET /notifications) `id`
    const note = { ...n, id: n.notification_id ?? n.id };
    if (!this.inbox.some((x) => x.id === note.id)) {
      this.inbox.unshift(note);
      this.inbox.length = Math.min(this.inbox.length, INBOX_MAX);
      this.emit("inbox");
    }
    const id = String(n.ref);
    if (kind === "p2p.message") {
      if (this.threads.has(id)) this.loadMessages(id);
      return true;
    }
    this.refreshTrade(id);
    // a take, cancel, expiry or release changes offer amounts; a dispute the queue
    this.loadMine();
    this.loadOffers();
    if (this.isAdmin && (kind === "p2p.trade_disputed" || kind === "p2p.dispute_resolved")) this.loadDisputes();
    if (this.threads.has(id)) this.loadMessages(id); // a dispute may bring admins in
    return true;
  }
}
