// node --test web/tests/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  allowedActions,
  canPost,
  canReadThread,
  countdown,
  isOverdue,
  needsMyAction,
  nextStep,
  offerActions,
  partyOf,
  RULES,
  takerSide,
} from "../js/p2p/rules.js";

const NOW = 1_800_000_000_000;
const trade = (status, extra = {}) => ({
  id: "7",
  buyer: "11",
  seller: "10",
  status,
  amount: "0.01230000",
  asset: "BTC",
  fiat_amount: "750.31",
  fiat: "EUR",
  payment_methods: ["SEPA"],
  expires_ts: NOW + 60_000,
  dispute: null,
  ...extra,
});
const BUYER = { id: "11", role: "user" };
const SELLER = { id: "10", role: "user" };
const ADMIN = { id: "1", role: "admin" };
const STRANGER = { id: "99", role: "user" };

test("party of a trade: buyer, seller, admin (not a party), stranger", () => {
  const t = trade("PENDING");
  assert.equal(partyOf(t, BUYER), "buyer");
  assert.equal(partyOf(t, SELLER), "seller");
  assert.equal(partyOf(t, ADMIN), "admin");
  assert.equal(partyOf(t, STRANGER), null);
  assert.equal(partyOf(t, null), null);
  // an admin who is a party acts as that party (and may not resolve)
  assert.equal(partyOf(t, { id: "10", role: "admin" }), "seller");
});

test("allowed actions: every state x party, as engine/p2p_rules.py RULES", () => {
  const expect = {
    PENDING: { buyer: ["paid", "cancel"], seller: ["release"], admin: [] },
    PAID: { buyer: ["dispute"], seller: ["release", "dispute"], admin: [] },
    DISPUTED: { buyer: [], seller: [], admin: ["resolve_release", "resolve_refund"] },
    RELEASED: { buyer: [], seller: [], admin: [] },
    CANCELLED: { buyer: [], seller: [], admin: [] },
    EXPIRED: { buyer: [], seller: [], admin: [] },
    REFUNDED: { buyer: [], seller: [], admin: [] },
  };
  for (const [status, byParty] of Object.entries(expect)) {
    for (const [party, actions] of Object.entries(byParty)) {
      assert.deepEqual(allowedActions(trade(status), party, NOW), actions, `${status} ${party}`);
    }
  }
  assert.deepEqual(allowedActions(trade("PENDING"), null, NOW), []);
  assert.equal(Object.keys(RULES).length, 6); // expire is the system's, not offered
});

test("mark paid is not offered after the payment deadline; cancel and release still are", () => {
  const t = trade("PENDING", { expires_ts: NOW - 1 });
  assert.equal(isOverdue(t, NOW), true);
  assert.deepEqual(allowedActions(t, "buyer", NOW), ["cancel"]);
  assert.deepEqual(allowedActions(t, "seller", NOW), ["release"]);
  assert.equal(isOverdue(trade("PAID", { expires_ts: NOW - 1 }), NOW), false);
  assert.equal(needsMyAction(t, "buyer", NOW), false);
});

test("threads: parties post while active; admins read and post once disputed", () => {
  assert.equal(canPost(trade("PENDING"), "buyer"), true);
  assert.equal(canPost(trade("PAID"), "seller"), true);
  assert.equal(canPost(trade("RELEASED"), "buyer"), false);
  assert.equal(canPost(trade("PAID"), "admin"), false);
  const disputed = trade("DISPUTED", { dispute: { by: "11", reason: "no coins", ts: NOW } });
  assert.equal(canPost(disputed, "admin"), true);
  assert.equal(canReadThread(trade("PAID"), "admin"), false);
  assert.equal(canReadThread(disputed, "admin"), true);
  assert.equal(canReadThread({ ...disputed, status: "REFUNDED" }, "admin"), true);
  assert.equal(canReadThread(trade("RELEASED"), "seller"), true);
  assert.equal(canReadThread(trade("RELEASED"), null), false);
});

test("whose move it is", () => {
  assert.equal(needsMyAction(trade("PENDING"), "buyer", NOW), true);
  assert.equal(needsMyAction(trade("PENDING"), "seller", NOW), false);
  assert.equal(needsMyAction(trade("PAID"), "seller", NOW), true);
  assert.equal(needsMyAction(trade("PAID"), "buyer", NOW), false);
  assert.equal(needsMyAction(trade("DISPUTED"), "admin", NOW), true);
  assert.equal(needsMyAction(trade("RELEASED"), "buyer", NOW), false);
});

test("countdown text", () => {
  assert.equal(countdown(0), "0:00");
  assert.equal(countdown(-5000), "0:00");
  assert.equal(countdown(999), "0:00");
  assert.equal(countdown(61_000), "1:01");
  assert.equal(countdown(15 * 60_000), "15:00");
  assert.equal(countdown(3_723_000), "1:02:03");
  assert.equal(countdown(NaN), "0:00");
});

test("next step names the fiat amount and the methods", () => {
  assert.match(nextStep(trade("PENDING"), "buyer", NOW), /Pay 750\.31 EUR to the seller \(SEPA\)/);
  assert.match(nextStep(trade("PAID"), "seller", NOW), /release 0\.0123 BTC\.$/);
  assert.match(nextStep(trade("PENDING", { fiat_amount: "1234567.5" }), "buyer", NOW), /Pay 1,234,567\.50 EUR/);
  assert.match(nextStep(trade("PENDING", { expires_ts: NOW - 1 }), "buyer", NOW), /payment window is over/);
  assert.match(nextStep(trade("RELEASED"), "buyer", NOW), /released to your wallet/);
  for (const s of ["DISPUTED", "CANCELLED", "EXPIRED", "REFUNDED"]) assert.ok(nextStep(trade(s), "seller", NOW));
});

test("offer actions by status; taker side", () => {
  assert.deepEqual(offerActions({ status: "OPEN" }), ["pause", "edit", "close"]);
  assert.deepEqual(offerActions({ status: "PAUSED" }), ["resume", "edit", "close"]);
  assert.deepEqual(offerActions({ status: "CLOSED" }), []);
  assert.equal(takerSide({ side: "sell" }), "buy");
  assert.equal(takerSide({ side: "buy" }), "sell");
});
