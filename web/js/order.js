// Pure order-entry logic: validate the form's strings against the market and
// build `order.place` params. Money stays in strings from input to wire.

import { cmpDec, isDecimal, isMultipleOf, isZero, mulDec, normalize } from "./decimal.js";

export const CLIENT_ORDER_ID_RE = /^[A-Za-z0-9._:-]{1,36}$/;

/** A fresh client_order_id: time-ordered prefix + random suffix, <= 36 chars. */
export function newClientOrderId(now = Date.now(), rand = Math.random) {
  const r = Math.floor(rand() * 36 ** 6).toString(36).padStart(6, "0");
  return `web-${now.toString(36)}-${r}`;
}

// "61,000": a thousands separator (61000, as the page shows prices) or a decimal
// comma (61.000)? Never guessed: refused with numberError's question.
const AMBIGUOUS_RE = /^[1-9]\d{0,2},\d{3}$/;
// thousands separators as the page writes them: "61,000.50", "1,234,567"
const GROUPED_RE = /^[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$/;

/**
 * Trim; "61,000.50" and "1,234,567" (thousands separators, as the page shows numbers)
 * lose their commas, a decimal comma ("0,5", "61000,25") becomes a dot. An ambiguous
 * "61,000" and anything else with a comma are left as typed, so they are refused.
 */
export function cleanInput(s) {
  const t = String(s ?? "").trim();
  if (!t.includes(",") || AMBIGUOUS_RE.test(t)) return t;
  if (GROUPED_RE.test(t) && (t.includes(".") || t.split(",").length > 2)) return t.replace(/,/g, "");
  return /^\d+,\d+$/.test(t) ? t.replace(",", ".") : t;
}

/** "61,000": thousands separator or decimal comma? */
export function isAmbiguousNumber(raw) {
  return AMBIGUOUS_RE.test(String(raw ?? "").trim());
}

/** Why a typed number is refused (`what`: "the BTC amount"), for a value cleanInput did not make a positive decimal. */
export function numberError(raw, what) {
  const t = String(raw ?? "").trim();
  if (!t) return `Enter ${what}`;
  if (isAmbiguousNumber(t)) return `"${t}" could be ${t.replace(",", "")} or ${t.replace(",", ".")}: write one of those`;
  const c = cleanInput(t);
  if (isDecimal(c)) return `Enter ${what} above 0`;
  if (c.startsWith("-")) return `Enter ${what} as a positive number`;
  return `Enter ${what} as a plain number, e.g. 1500.25`;
}

/**
 * Validate an order form. `form`: {side, type, tif, postOnly, amount, price,
 * byQuote, quoteAmount}. Returns {ok: true, params} or {ok: false, field, error}.
 */
export function buildOrder(market, form, clientOrderId = newClientOrderId()) {
  const fail = (field, error) => ({ ok: false, field, error });
  if (!market) return fail(null, "No market selected");
  const side = form.side === "sell" ? "sell" : "buy";
  const type = form.type === "market" ? "market" : "limit";
  const params = { market: market.id, side, type, client_order_id: clientOrderId };

  const byQuote = type === "market" && side === "buy" && form.byQuote;
  if (byQuote) {
    const q = cleanInput(form.quoteAmount);
    if (!isDecimal(q) || isZero(q)) return fail("quoteAmount", numberError(form.quoteAmount, `the ${market.quote} amount to spend`));
    params.quote_amount = normalize(q);
  } else {
    const amount = cleanInput(form.amount);
    if (!isDecimal(amount) || isZero(amount)) return fail("amount", numberError(form.amount, `the ${market.base} amount`));
    if (market.size_increment && !isMultipleOf(amount, market.size_increment)) {
      return fail("amount", `Amount must be a multiple of ${market.size_increment}`);
    }
    if (market.min_size && cmpDec(amount, market.min_size) < 0) {
      return fail("amount", `Minimum amount is ${market.min_size} ${market.base}`);
    }
    params.amount = normalize(amount);
  }

  if (type === "limit") {
    const price = cleanInput(form.price);
    if (!isDecimal(price) || isZero(price)) return fail("price", numberError(form.price, "a price"));
    if (market.price_increment && !isMultipleOf(price, market.price_increment)) {
      return fail("price", `Price must be a multiple of ${market.price_increment}`);
    }
    params.price = normalize(price);
    const tif = ["GTC", "IOC", "FOK"].includes(form.tif) ? form.tif : "GTC";
    params.time_in_force = tif;
    if (form.postOnly) {
      if (tif !== "GTC") return fail("tif", "Post-only orders must be GTC");
      params.post_only = true;
    } else {
      params.post_only = false;
    }
  }
  return { ok: true, params };
}

/** Quote notional of a limit order (display), or "" if not computable. */
export function notional(amount, price) {
  const a = cleanInput(amount);
  const p = cleanInput(price);
  if (!isDecimal(a) || !isDecimal(p)) return "";
  return mulDec(a, p);
}

/** Fee estimate in bps of a decimal string, rounded up at `decimals` (display). */
export function feeEstimate(x, bps, decimals) {
  if (!isDecimal(x)) return "";
  const v = mulDec(x, String(bps));
  // divide by 10000 by moving the point 4 places left, then round up
  const [ip, fp = ""] = v.split(".");
  const padded = ip.padStart(5, "0");
  const whole = padded.slice(0, -4).replace(/^0+(?=\d)/, "");
  const frac = padded.slice(-4) + fp;
  const kept = frac.slice(0, decimals).padEnd(decimals, "0");
  const rest = frac.slice(decimals);
  let units = BigInt(whole + kept);
  if (/[1-9]/.test(rest)) units += 1n;
  const s = units.toString().padStart(decimals + 1, "0");
  return decimals > 0 ? `${s.slice(0, -decimals)}.${s.slice(-decimals)}` : s;
}

/** Is the order still open (can be canceled)? */
export function isOpenStatus(status) {
  return status === "NEW" || status === "PARTIALLY_FILLED";
}

/**
 * Toast text of an order that ended REJECTED or EXPIRED (`orders` push). An IOC or
 * market order that filled in part ends EXPIRED too: say what filled, not just
 * "expired", which reads as if nothing happened.
 */
export function endedOrderText(exec, o) {
  const what = [o.side, o.market, o.type === "limit" ? `${o.time_in_force || ""} limit` : o.type].filter(Boolean).join(" ");
  const id = o.id ? ` ${o.id}` : "";
  if (exec === "REJECTED") return `${what} order${id} rejected`;
  if (isDecimal(o.filled) && !isZero(o.filled)) {
    const of = isDecimal(o.amount) ? ` of ${normalize(o.amount)}` : "";
    return `${what} order${id}: filled ${normalize(o.filled)}${of}, the rest expired (no more liquidity at its price)`;
  }
  return `${what} order${id} expired unfilled`;
}

