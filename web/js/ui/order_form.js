// Order entry: buy/sell, limit/market, GTC/IOC/FOK, post-only, market buy by
// quote amount. Inputs stay strings from the keyboard to the wire.

import {
  addDec,
  cmpDec,
  divFloorToIncrement,
  incrementDecimals,
  isDecimal,
  isZero,
  mulDec,
  percentOf,
  subDec,
} from "../decimal.js";
import { fmtAmount, fmtPrice, fmtSize } from "../format.js";
import { buildOrder, cleanInput, feeEstimate, newClientOrderId, notional } from "../order.js";
import { h, showError } from "./dom.js";

const STATUS_TEXT = {
  NEW: "Placed",
  PARTIALLY_FILLED: "Partially filled",
  FILLED: "Filled",
  CANCELED: "Canceled",
  REJECTED: "Rejected",
  EXPIRED: "Expired",
};

export function mountOrderForm(root, { getMarket, feed, account, session, placeOrder, onLoginNeeded }) {
  const form = root.querySelector("form");
  const el = form.elements;
  const submit = form.querySelector(".submit");
  const errBox = form.querySelector(".form-error");
  const result = form.querySelector(".order-result");
  const fields = {
    price: form.querySelector('[data-field="price"]'),
    amount: form.querySelector('[data-field="amount"]'),
    quoteAmount: form.querySelector('[data-field="quoteAmount"]'),
  };
  const byQuoteRow = form.querySelector(".by-quote");
  const limitOnly = form.querySelector(".limit-only");
  const sAvail = form.querySelector(".s-avail");
  const sTotal = form.querySelector(".s-total");
  const sFee = form.querySelector(".s-fee");
  const state = { side: "buy", type: "limit" };
  let busy = false;

  const market = () => getMarket();

  const values = () => ({
    side: state.side,
    type: state.type,
    tif: el.tif.value,
    postOnly: el.postOnly.checked,
    price: el.price.value,
    amount: el.amount.value,
    byQuote: el.byQuote.checked,
    quoteAmount: el.quoteAmount.value,
  });

  const byQuote = () => state.type === "market" && state.side === "buy" && el.byQuote.checked;

  function layout() {
    const m = market();
    form.querySelectorAll("[data-side]").forEach((b) => b.classList.toggle("active", b.dataset.side === state.side));
    form.querySelectorAll("[data-type]").forEach((b) => b.classList.toggle("active", b.dataset.type === state.type));
    fields.price.hidden = state.type !== "limit";
    limitOnly.hidden = state.type !== "limit";
    byQuoteRow.hidden = !(state.type === "market" && state.side === "buy");
    fields.amount.hidden = byQuote();
    fields.quoteAmount.hidden = !byQuote();
    form.querySelectorAll('[data-unit="base"]').forEach((u) => (u.textContent = m ? m.base : ""));
    form.querySelectorAll('[data-unit="quote"]').forEach((u) => (u.textContent = m ? m.quote : ""));
    fields.price.querySelector(".field-hint").textContent = m ? `tick ${m.price_increment}` : "";
    fields.amount.querySelector(".field-hint").textContent = m ? `step ${m.size_increment} · min ${m.min_size}` : "";
    submit.className = `btn submit ${state.side}`;
    const status = m ? m.status || "TRADING" : "TRADING";
    if (!session.loggedIn) {
      submit.textContent = "Log in to trade";
      result.hidden = true;
    } else if (status !== "TRADING") submit.textContent = `Market ${status.replace("_", " ").toLowerCase()}`;
    else submit.textContent = `${state.side === "buy" ? "Buy" : "Sell"} ${m ? m.base : ""}`;
    submit.disabled = busy || (session.loggedIn && status !== "TRADING");
    el.postOnly.disabled = el.tif.value !== "GTC";
    if (el.postOnly.disabled) el.postOnly.checked = false;
    summary();
  }

  function markField(name, msg) {
    for (const [k, f] of Object.entries(fields)) f.classList.toggle("invalid", k === name);
    showError(errBox, msg);
  }

  function refPrice() {
    const m = market();
    if (state.type === "limit") return isDecimal(cleanInput(el.price.value)) ? cleanInput(el.price.value) : null;
    const lvl = state.side === "buy" ? feed.book && feed.book.bestAsk() : feed.book && feed.book.bestBid();
    return lvl ? lvl[0] : m && feed.ticker && isDecimal(feed.ticker.last) ? feed.ticker.last : null;
  }

  function summary() {
    const m = market();
    if (!m) return;
    const quoteAsset = m.quote;
    const baseAsset = m.base;
    if (session.loggedIn) {
      const asset = state.side === "buy" ? quoteAsset : baseAsset;
      sAvail.textContent = `${fmtAmount(account.balance(asset).free)} ${asset}`;
    } else sAvail.textContent = "—";
    let total = "";
    if (byQuote()) total = isDecimal(cleanInput(el.quoteAmount.value)) ? cleanInput(el.quoteAmount.value) : "";
    else {
      const p = refPrice();
      if (p) total = notional(el.amount.value, p);
    }
    const approx = state.type === "market" ? "≈ " : "";
    sTotal.textContent = total ? `${approx}${fmtPrice(m, total)} ${quoteAsset}` : "—";
    const bps = m.taker_fee_bps ?? 0;
    let fee = "";
    if (state.side === "buy" && !byQuote()) fee = feeEstimate(cleanInput(el.amount.value), bps, 8);
    else if (total) fee = feeEstimate(total, bps, 8);
    const feeAsset = state.side === "buy" ? baseAsset : quoteAsset;
    sFee.textContent = fee && !byQuote() ? `${approx}${fee} ${feeAsset} (${bps / 100}%)` : `${bps / 100}% in ${feeAsset}`;
  }

  function step(input, inc, dir) {
    const v = cleanInput(input.value);
    const base = isDecimal(v) ? v : "0";
    let next = dir > 0 ? addDec(base, inc) : subDec(base, inc);
    if (next.startsWith("-") || isZero(next)) next = inc;
    input.value = next;
    summary();
  }

  function applyPercent(pct) {
    const m = market();
    if (!m || !session.loggedIn) return onLoginNeeded();
    const quoteDp = incrementDecimals(m.price_increment);
    const quoteStep = quoteDp ? `0.${"0".repeat(quoteDp - 1)}1` : "1";
    if (state.side === "sell") {
      el.amount.value = percentOf(account.balance(m.base).free || "0", pct, m.size_increment);
    } else {
      const free = account.balance(m.quote).free || "0";
      if (byQuote()) el.quoteAmount.value = percentOf(free, pct, quoteStep);
      else {
        const p = refPrice();
        if (!p) return markField("price", "Enter a price first");
        el.amount.value = divFloorToIncrement(mulDec(free, String(pct)), mulDec(p, "100"), m.size_increment) || "";
      }
    }
    summary();
  }

  function showResult(order, note = "") {
    const m = market();
    const fills = order.fills || [];
    const st = order.status || "NEW";
    const lines = [
      h(
        "div.result-head",
        h(`span.badge.badge-${st === "FILLED" || st === "NEW" || st === "PARTIALLY_FILLED" ? "ok" : "warn"}`, STATUS_TEXT[st] || st),
        ` ${order.side || ""} ${order.type || ""} `,
        h("span.mono", `#${order.id || "?"}`),
      ),
    ];
    if (note) lines.push(h("div.result-note", note));
    if (order.filled && !isZero(order.filled)) {
      lines.push(
        h(
          "div.mono",
          `filled ${fmtSize(m, order.filled)} ${m ? m.base : ""}` +
            (isDecimal(order.average) ? ` @ avg ${fmtPrice(m, order.average)}` : "") +
            (isDecimal(order.remaining) && !isZero(order.remaining) ? ` · remaining ${fmtSize(m, order.remaining)}` : ""),
        ),
      );
    }
    if (st === "EXPIRED" && order.time_in_force === "FOK") lines.push(h("div.result-note", "FOK could not fill in full: nothing executed."));
    else if (st === "EXPIRED") lines.push(h("div.result-note", "Unfilled remainder expired."));
    else if (st === "CANCELED" && order.filled && !isZero(order.filled)) {
      lines.push(h("div.result-note", "Unfilled remainder canceled (no more liquidity in range)."));
    }
    for (const f of fills.slice(0, 8)) {
      lines.push(
        h(
          "div.mono.fill-line",
          `${fmtSize(m, f.size)} @ ${fmtPrice(m, f.price)}  fee ${f.fee ?? "0"} ${f.fee_asset || ""}  ${f.liquidity || ""}`,
        ),
      );
    }
    if (fills.length > 8) lines.push(h("div.result-note", `… and ${fills.length - 8} more fills`));
    result.replaceChildren(...lines);
    result.className = `order-result ${st === "REJECTED" || st === "EXPIRED" || st === "CANCELED" ? "warn" : "ok"}`;
    result.hidden = false;
  }

  function showFailure(err) {
    result.replaceChildren(h("div.result-head", h("span.badge.badge-sell", err.code || "ERROR"), " ", err.message && err.message !== err.code ? err.message : ""));
    result.className = "order-result error";
    result.hidden = false;
  }

  async function onSubmit(e) {
    e.preventDefault();
    if (!session.loggedIn) return onLoginNeeded();
    if (busy) return;
    const m = market();
    const built = buildOrder(m, values(), newClientOrderId());
    if (!built.ok) {
      result.hidden = true;
      return markField(built.field, built.error);
    }
    markField(null, null);
    busy = true;
    layout();
    try {
      let order;
      let note = "";
      try {
        order = await placeOrder(built.params);
      } catch (err) {
        if (!err.outcomeUnknown) throw err;
        // 5xx / lost connection: outcome unknown. A retry with the same
        // client_order_id is safe: a duplicate answers 409 with the existing order.
        note = `First attempt: ${err}. Retried with the same client_order_id.`;
        try {
          order = await placeOrder(built.params);
        } catch (err2) {
          if (err2.code !== "DUPLICATE_CLIENT_ORDER_ID") throw err2;
          const existing = err2.body && (err2.body.order || err2.body.result || (err2.body.error && err2.body.error.order));
          if (!existing) throw err2;
          order = existing;
          note = "The first attempt had gone through: this is that order.";
        }
      }
      account.onPlaced(order);
      showResult(order, note);
      if (state.type === "market" || (order && order.status === "FILLED")) {
        el.amount.value = "";
        el.quoteAmount.value = "";
      }
    } catch (err) {
      showFailure(err);
    } finally {
      busy = false;
      layout();
    }
  }

  form.addEventListener("submit", onSubmit);
  form.querySelectorAll("[data-side]").forEach((b) =>
    b.addEventListener("click", () => {
      state.side = b.dataset.side;
      layout();
    }),
  );
  form.querySelectorAll("[data-type]").forEach((b) =>
    b.addEventListener("click", () => {
      state.type = b.dataset.type;
      layout();
    }),
  );
  form.querySelectorAll("[data-pct]").forEach((b) => b.addEventListener("click", () => applyPercent(Number(b.dataset.pct))));
  for (const name of ["price", "amount", "quoteAmount"]) {
    const input = el[name];
    input.addEventListener("input", () => {
      fields[name].classList.remove("invalid");
      summary();
    });
    input.addEventListener("keydown", (e) => {
      const m = market();
      if (!m || (e.key !== "ArrowUp" && e.key !== "ArrowDown") || name === "quoteAmount") return;
      e.preventDefault();
      step(input, name === "price" ? m.price_increment : m.size_increment, e.key === "ArrowUp" ? 1 : -1);
    });
  }
  el.byQuote.addEventListener("change", layout);
  el.tif.addEventListener("change", layout);
  account.on("balances", summary);
  feed.on("book", () => state.type === "market" && summary());

  return {
    /** A click on the book: take its price (and switch to limit). */
    pickPrice(price, ev) {
      state.type = "limit";
      el.price.value = price;
      if (ev && ev.shiftKey) state.side = cmpDec(price, (feed.book.bestBid() || ["0"])[0]) > 0 ? "buy" : "sell";
      layout();
      el.amount.focus();
    },
    setMarket() {
      el.price.value = "";
      el.amount.value = "";
      el.quoteAmount.value = "";
      result.hidden = true;
      markField(null, null);
      layout();
    },
    refresh: layout,
  };
}
