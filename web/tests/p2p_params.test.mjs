// node --test web/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError } from "../js/errors.js";
import { identityOf, jwtClaims } from "../js/jwt.js";
import { describeError } from "../js/p2p/errors.js";
import { fiatAmount, fmtAsset, fmtFiat, tooPrecise } from "../js/p2p/money.js";
import { buildOffer, buildOfferEdit, buildTake, checkText, parseMethods, takeLimit } from "../js/p2p/params.js";

test("fiat amount = price x amount rounded UP to the cent, like engine fiat_amount", () => {
  assert.equal(fiatAmount("61000.50", "0.0123", 8), "750.31"); // 750.30615 -> 750.31
  assert.equal(fiatAmount("61000.50", "0.01230000", 8), "750.31");
  assert.equal(fiatAmount("100", "2", 8), "200.00");
  assert.equal(fiatAmount("0.01", "0.00000001", 8), "0.01"); // tiny but owed: one cent
  assert.equal(fiatAmount("3000.00", "0.1", 8), "300.00");
  assert.equal(fiatAmount("1.99", "3", 0), "5.97");
  // exact beyond float range: 9007199254740993 cents x 3 units
  assert.equal(fiatAmount("90071992547409.93", "3", 0), "270215977642229.79");
  assert.equal(fiatAmount("1.001", "1", 8), null); // price with 3 decimals
  assert.equal(fiatAmount("1", "0.000000001", 8), null); // amount beyond the scale
  assert.equal(fiatAmount("1", "0.000000010", 8), "0.01"); // trailing zeros are fine
  assert.equal(fiatAmount("abc", "1", 8), null);
  assert.equal(fiatAmount("1", 1, 8), null); // never a JS number
});

test("display of fiat and asset amounts", () => {
  assert.equal(fmtFiat("1234567.5", "EUR"), "1,234,567.50 EUR");
  assert.equal(fmtFiat("0.10"), "0.10");
  assert.equal(fmtFiat(undefined), "—");
  assert.equal(fmtAsset("0.01230000", "BTC"), "0.0123 BTC");
  assert.equal(fmtAsset("1500.00000000"), "1,500");
  assert.equal(tooPrecise("0.123456789", 8), true);
  assert.equal(tooPrecise("0.123456780", 8), false);
});

const FORM = {
  side: "sell",
  asset: "BTC",
  fiat: " eur ",
  price: "61000.5",
  amount: "0.5",
  min_amount: "0.01",
  max_amount: "0.2",
  payment_methods: "SEPA, Revolut\nCash in person",
  payment_window: "15",
};

test("new offer: strings normalised, methods split, window an integer", () => {
  const r = buildOffer(FORM, 8);
  assert.equal(r.ok, true, r.error);
  assert.deepEqual(r.params, {
    side: "sell",
    asset: "BTC",
    fiat: "EUR",
    price: "61000.5",
    amount: "0.5",
    min_amount: "0.01",
    max_amount: "0.2",
    payment_methods: ["SEPA", "Revolut", "Cash in person"],
    payment_window: 15,
  });
  assert.equal(typeof r.params.price, "string");
  assert.equal(buildOffer({ ...FORM, side: "buy", price: "61000,50" }, 8).params.price, "61000.5");
  assert.equal(buildOffer({ ...FORM, price: "61,000.50" }, 8).params.price, "61000.5");
  // 61000 in the page's own format, 61 with a decimal comma: asked, not guessed
  const amb = buildOffer({ ...FORM, price: "61,000" }, 8);
  assert.equal(amb.field, "price");
  assert.match(amb.error, /"61,000" could be 61000 or 61\.000/);
  assert.equal(buildOffer({ ...FORM, amount: "1,500" }, 8).field, "amount");
});

test("new offer: each bad field is named", () => {
  const bad = (patch, scale = 8) => {
    const r = buildOffer({ ...FORM, ...patch }, scale);
    assert.equal(r.ok, false, JSON.stringify(patch));
    return r.field;
  };
  assert.equal(bad({ asset: "" }), "asset");
  assert.equal(bad({}, null), "asset");
  assert.equal(bad({ fiat: "EURO" }), "fiat");
  assert.equal(bad({ price: "0" }), "price");
  assert.equal(bad({ price: "1.001" }), "price");
  assert.equal(bad({ price: "-1" }), "price");
  assert.equal(bad({ amount: "" }), "amount");
  assert.equal(bad({ amount: "0.000000001" }), "amount");
  assert.equal(bad({ min_amount: "0.3", max_amount: "0.2" }), "min_amount");
  assert.equal(bad({ amount: "0.005" }), "min_amount");
  assert.equal(bad({ max_amount: "x" }), "max_amount");
  assert.equal(bad({ payment_methods: " , " }), "payment_methods");
  assert.equal(bad({ payment_methods: "a,b,c,d,e,f" }), "payment_methods");
  assert.equal(bad({ payment_methods: "x".repeat(51) }), "payment_methods");
  assert.equal(bad({ payment_window: "0" }), "payment_window");
  assert.equal(bad({ payment_window: "1441" }), "payment_window");
  assert.equal(bad({ payment_window: "1.5" }), "payment_window");
  assert.equal(parseMethods("a\n\n b ,c").length, 3);
});

const OFFER = {
  id: "5",
  side: "sell",
  asset: "BTC",
  fiat: "EUR",
  price: "61000.50",
  amount: "0.48770000",
  min_amount: "0.01000000",
  max_amount: "0.20000000",
  payment_methods: ["SEPA"],
  payment_window: 15,
  status: "OPEN",
};
const editForm = (patch = {}) => ({
  price: OFFER.price,
  amount: OFFER.amount,
  min_amount: OFFER.min_amount,
  max_amount: OFFER.max_amount,
  payment_methods: "SEPA",
  payment_window: "15",
  ...patch,
});

test("offer edit sends only what changed; amount may go to 0", () => {
  assert.deepEqual(buildOfferEdit(OFFER, editForm(), 8), { ok: true, params: {}, changed: false });
  assert.deepEqual(buildOfferEdit(OFFER, editForm({ price: "61000.5", amount: "0.4877" }), 8).params, {});
  assert.deepEqual(buildOfferEdit(OFFER, editForm({ price: "60000", payment_methods: "SEPA, Wise" }), 8).params, {
    price: "60000",
    payment_methods: ["SEPA", "Wise"],
  });
  assert.deepEqual(buildOfferEdit(OFFER, editForm({ amount: "0" }), 8).params, { amount: "0" });
  assert.deepEqual(buildOfferEdit(OFFER, editForm({ payment_window: "30" }), 8).params, { payment_window: 30 });
  assert.equal(buildOfferEdit(OFFER, editForm({ min_amount: "0.3" }), 8).field, "min_amount");
  assert.equal(buildOfferEdit(OFFER, editForm({ price: "" }), 8).field, "price");
});

test("take: within the limits and what is left, at the offer's price", () => {
  const r = buildTake(OFFER, "0.0123", 8);
  assert.deepEqual(r, { ok: true, params: { offer_id: "5", amount: "0.0123", price: "61000.50" }, fiat: "750.31" });
  assert.equal(buildTake(OFFER, "0.009", 8).field, "amount");
  assert.match(buildTake(OFFER, "0.009", 8).error, /minimum per trade is 0\.01 BTC/);
  assert.match(buildTake(OFFER, "0.21", 8).error, /At most 0\.2 BTC/);
  assert.equal(buildTake(OFFER, "0.2", 8).ok, true);
  const little = { ...OFFER, amount: "0.05000000" };
  assert.equal(takeLimit(little), "0.05000000");
  assert.match(buildTake(little, "0.06", 8).error, /At most 0\.05 BTC/);
  assert.match(buildTake(OFFER, "0.000000001", 8).error, /at most 8 decimals/);
  assert.equal(buildTake(OFFER, "", 8).ok, false);
});

test("dispute reasons and messages: 1..500 characters", () => {
  assert.deepEqual(checkText("  no coins  ", "a reason"), { ok: true, text: "no coins" });
  assert.equal(checkText("   ", "a reason").ok, false);
  assert.equal(checkText("x".repeat(501), "a message").ok, false);
  assert.equal(checkText("x".repeat(500), "a message").ok, true);
});

test("errors read as meaning, server message, code", () => {
  assert.equal(
    describeError(new ApiError("INVALID_PARAM", "amount outside the offer limits", 400)),
    "Amount outside the offer limits (INVALID_PARAM)",
  );
  assert.equal(
    describeError(new ApiError("INSUFFICIENT_FUNDS", "insufficient BTC to escrow", 400)),
    "Not enough available balance: insufficient BTC to escrow (INSUFFICIENT_FUNDS)",
  );
  assert.equal(
    describeError(new ApiError("FORBIDDEN", "only the seller may release this trade", 403)),
    "Not allowed: only the seller may release this trade (FORBIDDEN)",
  );
  assert.equal(describeError(new ApiError("UNKNOWN_ORDER", "", 404)), "No such offer or trade (or not yours) (UNKNOWN_ORDER)");
  assert.equal(describeError(new ApiError("HTTP_502", "", 502)), "Request failed (HTTP_502)");
  assert.equal(describeError(new Error("boom")), "Boom");
  assert.equal(describeError(null), "");
});

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

test("identity from the access token's claims (read, not verified)", () => {
  const token = `${b64url({ alg: "HS256" })}.${b64url({ sub: "42", role: "admin", typ: "access", name: "Zoë" })}.sig`;
  assert.equal(jwtClaims(token).name, "Zoë");
  assert.deepEqual(identityOf(token), { id: "42", role: "admin" });
  assert.deepEqual(identityOf(`a.${b64url({ sub: 7, role: "user" })}.c`), { id: "7", role: "user" });
  assert.deepEqual(identityOf(`a.${b64url({ sub: "7", role: "root" })}.c`), { id: "7", role: "user" });
  assert.equal(identityOf("not a jwt"), null);
  assert.equal(identityOf("a.!!!.c"), null);
  assert.equal(identityOf(`a.${b64url({ role: "admin" })}.c`), null);
  assert.equal(identityOf(null), null);
});
