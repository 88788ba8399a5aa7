// The logged-in account: balances, open orders and fills, seeded over HTTP and
// kept live by the private `balances` / `orders` / `notifications` channels. No DOM.
//
// Events: "balances", "orders", "fills", "fill" (fill), "notification" (msg),
// "order_event" (exec_type, order).

import { Emitter } from "./emitter.js";
import { isOpenStatus } from "./order.js";

const MAX_FILLS = 200;
const MAX_CLOSED = 2000;

/** The order object of an `orders` push: nested under `order` or flat. */
export function orderOfPush(msg) {
  if (msg.order && typeof msg.order === "object") return msg.order;
  const o = { ...msg };
  delete o.channel;
  if (o.type !== "limit" && o.type !== "market") o.type = o.order_type;
  return o;
}

/** A fill row from an `orders` TRADE push or a GET /fills / order.place fill. */
export function normalizeFill(f, order = {}) {
  return {
    trade_id: f.trade_id,
    order_id: f.order_id ?? order.id,
    market: f.market ?? order.market,
    side: f.side ?? order.side,
    price: f.price ?? f.last_price,
    size: f.size ?? f.last_size,
    fee: f.fee,
    fee_asset: f.fee_asset,
    liquidity: f.liquidity,
    ts: Number(f.ts ?? order.updated_ts ?? Date.now()),
  };
}

const fillKey = (f) => `${f.market}:${f.trade_id}:${f.order_id ?? f.side}`;

export class Account extends Emitter {
  constructor() {
    super();
    this.clear();
  }

  clear() {
    this.balances = new Map();
    this.orders = new Map();
    this.closed = new Set();
    this.fills = [];
    this.fillKeys = new Set();
    this.fillsError = null;
    this.emit("balances");
    this.emit("orders");
    this.emit("fills");
  }

  /**
   * Seed everything from HTTP; failures of one part do not block the others.
   * Throws if balances or open orders failed; a fill-history failure is only
   * recorded in `fillsError` (fills still arrive live on the `orders` channel).
   */
  async load(http) {
    const [bal, orders, fills] = await Promise.allSettled([http.balances(), http.openOrders(), http.fills()]);
    if (bal.status === "fulfilled") {
      this.balances = new Map();
      for (const b of bal.value) this.setBalance(b, false);
      this.emit("balances");
    }
    if (orders.status === "fulfilled") {
      this.orders = new Map();
      for (const o of orders.value) if (isOpenStatus(o.status) && !this.closed.has(o.id)) this.orders.set(o.id, o);
      this.emit("orders");
    }
    this.fillsError = fills.status === "rejected" ? fills.reason : null;
    if (fills.status === "fulfilled") for (const f of fills.value) this.addFill(normalizeFill(f), false);
    this.emit("fills");
    const failed = [bal, orders].find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  }

  setBalance(b, emit = true) {
    if (!b || !b.asset) return;
    const prev = this.balances.get(b.asset) || {};
    this.balances.set(b.asset, { ...prev, ...b });
    if (emit) this.emit("balances");
  }

  balance(asset) {
    return this.balances.get(asset) || { asset, free: "0", locked: "0", total: "0" };
  }

  /** Merge an order object (push, place result, cancel result). */
  upsertOrder(o) {
    if (!o || !o.id) return;
    if (!isOpenStatus(o.status)) {
      this.closed.add(o.id);
      if (this.closed.size > MAX_CLOSED) this.closed.delete(this.closed.values().next().value);
      if (this.orders.delete(o.id)) this.emit("orders");
      return;
    }
    if (this.closed.has(o.id)) return; // a late NEW after the final state
    const prev = this.orders.get(o.id);
    if (prev && Number(prev.updated_ts || 0) > Number(o.updated_ts || 0)) return;
    this.orders.set(o.id, { ...prev, ...o });
    this.emit("orders");
  }

  addFill(f, emit = true) {
    const key = fillKey(f);
    if (this.fillKeys.has(key)) return false;
    this.fillKeys.add(key);
    this.fills.push(f);
    this.fills.sort((a, b) => b.ts - a.ts || Number(b.trade_id) - Number(a.trade_id));
    if (this.fills.length > MAX_FILLS) {
      for (const old of this.fills.splice(MAX_FILLS)) this.fillKeys.delete(fillKey(old));
    }
    if (emit) {
      this.emit("fills");
      this.emit("fill", f);
    }
    return true;
  }

  onPush(msg) {
    switch (msg.channel) {
      case "balances":
        this.setBalance(msg);
        break;
      case "orders": {
        const order = orderOfPush(msg);
        this.upsertOrder(order);
        if (msg.exec_type === "TRADE" && msg.trade_id !== undefined) {
          this.addFill(normalizeFill({ ...msg, price: msg.last_price, size: msg.last_size, ts: msg.ts }, order));
        }
        this.emit("order_event", msg.exec_type, order);
        break;
      }
      case "notifications":
        this.emit("notification", msg);
        break;
      default:
    }
  }

  /** Apply an order.place result: the order and its fills. */
  onPlaced(result) {
    if (!result) return;
    this.upsertOrder(result);
    for (const f of result.fills || []) this.addFill(normalizeFill(f, result));
  }

  openOrders(marketId = null) {
    const list = [...this.orders.values()].filter((o) => !marketId || o.market === marketId);
    return list.sort((a, b) => Number(b.created_ts || 0) - Number(a.created_ts || 0));
  }
}
