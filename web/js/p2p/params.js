// P2P forms -> wire params (pure): a new offer, an offer edit (only what changed),
// a take. Every value stays a decimal string; errors name the field to mark.

import { cmpDec, isDecimal, isZero, normalize } from "../decimal.js";
import { cleanInput, numberError, isAmbiguousNumber } from "../order.js";
import { FIAT_DECIMALS, fiatAmount, tooPrecise } from "./money.js";

export const MAX_METHODS = 5;
export const MAX_METHOD_CHARS = 50;
export const MAX_WINDOW_MIN = 1440;
export const MAX_TEXT_CHARS = 500;
const FIAT_RE = /^[A-Z]{3}$/;

const fail = (field, error) => ({ ok: false, field, error });

/** Payment methods typed one per line or comma-separated. */
export function parseMethods(text) {
  return String(text ?? "")
    .split(/[\n,]/)
    .map((m) => m.trim())
    .filter(Boolean);
}

function checkAmount(field, text, scale, label, asset, zeroOk = false) {
  const s = cleanInput(text);
  if (isAmbiguousNumber(text)) return [null, fail(field, numberError(text, label))];
  if (!isDecimal(s) || (isZero(s) && !zeroOk)) return [null, fail(field, `Enter ${label} (${asset})`)];
  if (tooPrecise(s, scale)) return [null, fail(field, `${asset} amounts have at most ${scale} decimals`)];
  return [normalize(s), null];
}

function checkPrice(text, fiat) {
  const s = cleanInput(text);
  if (isAmbiguousNumber(text)) return [null, fail("price", numberError(text, "a price"))];
  if (!isDecimal(s) || isZero(s)) return [null, fail("price", `Enter a price in ${fiat || "fiat"} per unit`)];
  if (tooPrecise(s, FIAT_DECIMALS)) return [null, fail("price", `Prices have at most ${FIAT_DECIMALS} decimals`)];
  return [normalize(s), null];
}

function checkTerms(form, scale, asset, fiat, edit = false) {
  const [price, e1] = checkPrice(form.price, fiat);
  if (e1) return e1;
  const [amount, e2] = checkAmount("amount", form.amount, scale, "the amount", asset, edit);
  if (e2) return e2;
  const [min, e3] = checkAmount("min_amount", form.min_amount, scale, "the minimum per trade", asset);
  if (e3) return e3;
  const [max, e4] = checkAmount("max_amount", form.max_amount, scale, "the maximum per trade", asset);
  if (e4) return e4;
  if (cmpDec(min, max) > 0) return fail("min_amount", "The minimum per trade exceeds the maximum");
  // a new offer must be takeable; an edit may leave less than the minimum (unlisted)
  if (!edit && cmpDec(min, amount) > 0) return fail("min_amount", "The minimum per trade exceeds the amount");
  const methods = parseMethods(form.payment_methods);
  if (!methods.length || methods.length > MAX_METHODS) {
    return fail("payment_methods", `List 1 to ${MAX_METHODS} payment methods (one per line or comma-separated)`);
  }
  const long = methods.find((m) => m.length > MAX_METHOD_CHARS);
  if (long) return fail("payment_methods", `“${long.slice(0, 20)}…” is longer than ${MAX_METHOD_CHARS} characters`);
  const w = String(form.payment_window ?? "").trim();
  if (!/^\d+$/.test(w) || Number(w) < 1 || Number(w) > MAX_WINDOW_MIN) {
    return fail("payment_window", `The payment window is 1 to ${MAX_WINDOW_MIN} minutes`);
  }
  return {
    ok: true,
    terms: {
      price,
      amount,
      min_amount: min,
      max_amount: max,
      payment_methods: methods,
      payment_window: Number(w),
    },
  };
}

/**
 * A new offer. `form`: {side, asset, fiat, price, amount, min_amount, max_amount,
 * payment_methods (text), payment_window}; `scale`: decimals of the asset.
 */
export function buildOffer(form, scale) {
  const side = form.side === "buy" ? "buy" : "sell";
  const asset = String(form.asset || "");
  if (!asset) return fail("asset", "Choose an asset");
  if (!Number.isInteger(scale)) return fail("asset", `Unknown asset ${asset}`);
  const fiat = String(form.fiat || "").trim().toUpperCase();
  if (!FIAT_RE.test(fiat)) return fail("fiat", "Fiat is a 3-letter currency code like EUR");
  const r = checkTerms(form, scale, asset, fiat);
  if (!r.ok) return r;
  return { ok: true, params: { side, asset, fiat, ...r.terms } };
}

const same = (a, b) => isDecimal(a) && isDecimal(b) && cmpDec(a, b) === 0;

/**
 * An edit of `offer`: validates the whole form, sends only the fields that changed.
 * `amount` is the new amount left to trade (0 allowed: nothing left to take; for a
 * sell offer raising it escrows the difference, lowering it releases it).
 */
export function buildOfferEdit(offer, form, scale) {
  if (!Number.isInteger(scale)) return fail("amount", `Unknown asset ${offer.asset}`);
  const r = checkTerms(form, scale, offer.asset, offer.fiat, true);
  if (!r.ok) return r;
  const t = r.terms;
  const params = {};
  if (!same(t.price, offer.price)) params.price = t.price;
  if (!same(t.amount, offer.amount)) params.amount = t.amount;
  if (!same(t.min_amount, offer.min_amount)) params.min_amount = t.min_amount;
  if (!same(t.max_amount, offer.max_amount)) params.max_amount = t.max_amount;
  if (JSON.stringify(t.payment_methods) !== JSON.stringify(offer.payment_methods || [])) {
    params.payment_methods = t.payment_methods;
  }
  if (t.payment_window !== Number(offer.payment_window)) params.payment_window = t.payment_window;
  return { ok: true, params, changed: Object.keys(params).length > 0 };
}

/** The most one trade of `offer` can take: min(max_amount, amount left). */
export function takeLimit(offer) {
  return cmpDec(offer.max_amount, offer.amount) <= 0 ? offer.max_amount : offer.amount;
}

/**
 * Take `offer` for `amountText`: within [min_amount, min(max_amount, left)], at the
 * offer's current price (sent along: the server refuses if the owner changed it).
 * Returns {ok, params, fiat} with the fiat amount owed.
 */
export function buildTake(offer, amountText, scale) {
  const [amount, e] = checkAmount("amount", amountText, scale, "an amount", offer.asset);
  if (e) return e;
  const max = takeLimit(offer);
  if (cmpDec(amount, offer.min_amount) < 0) {
    return fail("amount", `The minimum per trade is ${normalize(offer.min_amount)} ${offer.asset}`);
  }
  if (cmpDec(amount, max) > 0) return fail("amount", `At most ${normalize(max)} ${offer.asset} per trade on this offer`);
  return {
    ok: true,
    params: { offer_id: offer.id, amount, price: offer.price },
    fiat: fiatAmount(offer.price, amount, scale),
  };
}

/** A dispute reason or a message: 1..500 characters after trimming. */
export function checkText(text, what) {
  const s = String(text ?? "").trim();
  if (!s) return fail("text", `Write ${what}`);
  if (s.length > MAX_TEXT_CHARS) return fail("text", `${what[0].toUpperCase()}${what.slice(1)} is limited to ${MAX_TEXT_CHARS} characters`);
  return { ok: true, text: s };
}
