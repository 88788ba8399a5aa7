// Public market data for the selected market: book (synced by book.js rules),
// trades, ticker, heartbeat. Live over the WebSocket once it is authenticated;
// until then (logged out, reconnecting) the book, ticker and trades are polled
// over HTTP so the page never freezes on stale data.
//
// Events: "book" (), "trades" (list, newTrades), "ticker" (ticker), "resync" (reason),
// "trade" (trade) for each live trade.

import { OrderBook, Result } from "./book.js";
import { Emitter } from "./emitter.js";

export const BOOK_DEPTH = 50;
const MAX_TRADES = 100;
const RESYNC_WINDOW_MS = 10000;
const RESYNC_BURST = 3;
const POLL_MS = 2000;

export function normalizeTrade(t) {
  return {
    trade_id: Number(t.trade_id ?? t.id),
    price: t.price,
    size: t.size ?? t.amount,
    side: t.taker_side ?? t.side,
    ts: Number(t.ts ?? t.timestamp ?? 0),
  };
}

export class MarketFeed extends Emitter {
  constructor(ws, http) {
    super();
    this.ws = ws;
    this.http = http;
    this.market = null;
    this.book = null;
    this.trades = [];
    this.ticker = null;
    this.maxTradeId = 0;
    this.lastHeartbeat = 0;
    this.stale = true;
    this.resyncs = []; // timestamps of recent resubscribes
    this.resyncTimer = null;
    this.tradeRefetchAt = 0;
    this.stats = { resyncs: 0, lastReason: "" };
    this.live = false; // true while the authenticated WebSocket feeds us
    this.pollTimer = null;
    this.polls = 0;
    ws.on("push", (m) => this.onPush(m));
    ws.on("state", (s) => {
      if (s === "open") return;
      this.live = false;
      this.stale = s !== "idle";
      this.emit("book");
      this.schedulePoll(s === "idle" ? 0 : POLL_MS);
    });
    ws.on("ready", () => {
      this.live = true;
      clearTimeout(this.pollTimer);
      if (this.market) this.refreshTrades();
    });
  }

  // --- HTTP polling while the WebSocket is not live --------------------------
  schedulePoll(delay = POLL_MS) {
    clearTimeout(this.pollTimer);
    if (this.live || !this.market) return;
    this.pollTimer = setTimeout(() => this.poll(), delay);
  }

  async poll() {
    const market = this.market;
    if (this.live || !market) return;
    const n = this.polls++;
    try {
      const [snap, ticker] = await Promise.all([
        this.http.book(market.id, BOOK_DEPTH),
        this.http.ticker(market.id).catch(() => null),
      ]);
      if (this.live || this.market !== market) return;
      if (snap) {
        const r = this.book.applySnapshot({ ...snap, type: "snapshot" });
        this.stale = r !== Result.APPLIED;
        if (r === Result.CHECKSUM) this.stats.lastReason = "HTTP snapshot checksum mismatch";
        this.emit("book");
      }
      if (ticker) this.setTicker(ticker);
      if (n % 2 === 0) this.refreshTrades();
    } catch {
      this.stale = true;
      this.emit("book");
    } finally {
      if (this.market === market) this.schedulePoll();
    }
  }

  subParams(channel) {
    const p = { channel, markets: [this.market.id] };
    if (channel === "book") p.depth = BOOK_DEPTH;
    return p;
  }

  setMarket(market) {
    if (this.market && market && this.market.id === market.id) return;
    if (this.market) {
      for (const ch of ["book", "trades", "ticker", "heartbeat"]) this.ws.unsubscribe(this.subParams(ch));
    }
    clearTimeout(this.resyncTimer);
    this.market = market;
    this.book = new OrderBook(market.id);
    this.trades = [];
    this.ticker = null;
    this.maxTradeId = 0;
    this.stale = true;
    this.emit("book");
    this.emit("trades", this.trades, []);
    this.emit("ticker", null);
    for (const ch of ["book", "trades", "ticker", "heartbeat"]) this.ws.subscribe(this.subParams(ch));
    this.refreshTrades();
    if (this.live) {
      this.http
        .ticker(market.id)
        .then((t) => {
          if (this.market === market && t && !this.ticker) this.setTicker(t);
        })
        .catch(() => {});
    } else {
      this.schedulePoll(0);
    }
  }

  refreshTrades() {
    const market = this.market;
    this.tradeRefetchAt = Date.now();
    this.http
      .trades(market.id, 50)
      .then((list) => this.market === market && this.mergeTrades(list.map(normalizeTrade), false))
      .catch(() => {});
  }

  mergeTrades(list, live) {
    const known = new Set(this.trades.map((t) => t.trade_id));
    const fresh = list.filter((t) => Number.isFinite(t.trade_id) && !known.has(t.trade_id));
    if (!fresh.length) return;
    this.trades = [...fresh, ...this.trades].sort((a, b) => b.trade_id - a.trade_id).slice(0, MAX_TRADES);
    for (const t of fresh) this.maxTradeId = Math.max(this.maxTradeId, t.trade_id);
    if (live) for (const t of fresh) this.emit("trade", t);
    this.emit("trades", this.trades, fresh);
  }

  setTicker(t) {
    this.ticker = { ...(this.ticker || {}), ...t };
    this.emit("ticker", this.ticker);
  }

  onPush(msg) {
    if (!this.market || msg.market !== this.market.id) return;
    switch (msg.channel) {
      case "book":
        return this.onBook(msg);
      case "trades":
        return this.mergeTrades([normalizeTrade(msg)], true);
      case "ticker":
        return this.setTicker(msg);
      case "heartbeat":
        return this.onHeartbeat(msg);
      default:
    }
  }

  onBook(msg) {
    const r = this.book.apply(msg);
    if (r === Result.GAP || r === Result.CHECKSUM) {
      this.requestResync(r === Result.GAP ? "sequence gap" : "checksum mismatch");
      return;
    }
    if (r === Result.APPLIED) {
      this.stale = false;
      this.emit("book");
    }
  }

  /** Resubscribe for a fresh snapshot; bursts are spaced out to avoid a loop. */
  requestResync(reason) {
    this.book.reset(); // drop updates until the new snapshot
    this.stale = true;
    this.stats.resyncs += 1;
    this.stats.lastReason = reason;
    this.emit("resync", reason);
    this.emit("book");
    const now = Date.now();
    this.resyncs = this.resyncs.filter((t) => now - t < RESYNC_WINDOW_MS);
    const delay = this.resyncs.length >= RESYNC_BURST ? 2000 * (this.resyncs.length - RESYNC_BURST + 1) : 0;
    this.resyncs.push(now + delay);
    clearTimeout(this.resyncTimer);
    const market = this.market;
    this.resyncTimer = setTimeout(() => {
      if (this.market === market) this.ws.resubscribe(this.subParams("book"));
    }, delay);
  }

  onHeartbeat(msg) {
    this.lastHeartbeat = Date.now();
    const last = Number(msg.last_trade_id);
    // Missed a trade push (e.g. around a reconnect): fetch the tape again, throttled.
    if (Number.isFinite(last) && last > this.maxTradeId && Date.now() - this.tradeRefetchAt > 5000) {
      this.refreshTrades();
    }
    this.emit("heartbeat", msg);
  }
}
