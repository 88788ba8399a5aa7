// P2P trade rules as the page needs them (pure, mirrors engine/p2p_rules.py RULES):
// who the user is in a trade, which moves they may make in each state, what to do
// next, the payment-deadline countdown, and what can be done with an offer.

import { fmtAsset, fmtFiat } from "./money.js";

export const ACTIVE = new Set(["PENDING", "PAID", "DISPUTED"]);
export const FINAL = new Set(["RELEASED", "CANCELLED", "EXPIRED", "REFUNDED"]);

/** action -> states it moves from and the parties who may make it. */
export const RULES = Object.freeze({
  paid: { from: ["PENDING"], by: ["buyer"] },
  release: { from: ["PENDING", "PAID"], by: ["seller"] },
  cancel: { from: ["PENDING"], by: ["buyer"] },
  dispute: { from: ["PAID"], by: ["buyer", "seller"] },
  resolve_release: { from: ["DISPUTED"], by: ["admin"] },
  resolve_refund: { from: ["DISPUTED"], by: ["admin"] },
});

export const ACTION_LABELS = Object.freeze({
  paid: "I have paid",
  release: "Release",
  cancel: "Cancel trade",
  dispute: "Open dispute",
  resolve_release: "Release to buyer",
  resolve_refund: "Refund seller",
});

/** "buyer" | "seller" | "admin" | null: the user's part in a trade. */
export function partyOf(trade, me) {
  if (!trade || !me) return null;
  if (String(trade.buyer) === String(me.id)) return "buyer";
  if (String(trade.seller) === String(me.id)) return "seller";
  return me.role === "admin" ? "admin" : null;
}

/** Payment deadline passed (the server expires the trade shortly after). */
export function isOverdue(trade, now = Date.now()) {
  return trade.status === "PENDING" && Number(trade.expires_ts) > 0 && now >= Number(trade.expires_ts);
}

/** The moves `party` may make on `trade` now, in display order. */
export function allowedActions(trade, party, now = Date.now()) {
  if (!trade || !party) return [];
  return Object.keys(RULES).filter((action) => {
    const rule = RULES[action];
    if (!rule.by.includes(party) || !rule.from.includes(trade.status)) return false;
    if (action === "paid" && isOverdue(trade, now)) return false;
    return true;
  });
}

/** Parties post while the trade is in progress; admins only in a dispute. */
export function canPost(trade, party) {
  if (!trade || !party || !ACTIVE.has(trade.status)) return false;
  return party === "admin" ? trade.status === "DISPUTED" : true;
}

/** Parties always read their thread; admins once the trade was disputed. */
export function canReadThread(trade, party) {
  if (!trade || !party) return false;
  return party === "admin" ? Boolean(trade.dispute) : true;
}

/** Is the next move the user's (buyer to pay, seller to release)? */
export function needsMyAction(trade, party, now = Date.now()) {
  if (party === "buyer") return trade.status === "PENDING" && !isOverdue(trade, now);
  if (party === "seller") return trade.status === "PAID";
  if (party === "admin") return trade.status === "DISPUTED";
  return false;
}

/** Milliseconds as "m:ss" or "h:mm:ss" (floored; never negative). */
export function countdown(ms) {
  const total = Math.max(0, Math.floor(Number(ms) / 1000) || 0);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** What the user should do (or wait for) now. */
export function nextStep(trade, party, now = Date.now()) {
  const pay = fmtFiat(trade.fiat_amount, trade.fiat);
  const what = fmtAsset(trade.amount, trade.asset);
  const methods = (trade.payment_methods || []).join(", ");
  switch (trade.status) {
    case "PENDING":
      if (isOverdue(trade, now)) return "The payment window is over; the trade is expiring.";
      if (party === "buyer") return `Pay ${pay} to the seller${methods ? ` (${methods})` : ""}, then press “I have paid” before the deadline.`;
      if (party === "seller") return `Wait for the buyer to pay ${pay}. Release ${what} only once the money is in your account.`;
      return "Waiting for the buyer's payment.";
    case "PAID":
      if (party === "seller") return `The buyer says ${pay} was sent. Check your account, then release ${what}.`;
      if (party === "buyer") return `Waiting for the seller to confirm your payment and release ${what}.`;
      return "Waiting for the seller to release.";
    case "DISPUTED":
      if (party === "admin") return "Read the thread, then release the asset to the buyer or refund it to the seller.";
      return "An admin is reviewing the dispute. Add anything useful to the thread.";
    case "RELEASED":
      return party === "buyer" ? `${what} was released to your wallet.` : `${what} was released to the buyer.`;
    case "CANCELLED":
      return "The buyer cancelled the trade; the escrow went back.";
    case "EXPIRED":
      return "Not marked paid in time; the trade expired and the escrow went back.";
    case "REFUNDED":
      return "The dispute was resolved: the escrow was refunded to the seller.";
    default:
      return "";
  }
}

/** The owner's possible operations on an offer. */
export function offerActions(offer) {
  if (!offer) return [];
  if (offer.status === "OPEN") return ["pause", "edit", "close"];
  if (offer.status === "PAUSED") return ["resume", "edit", "close"];
  return [];
}

/** From the taker's side: "buy" for a sell offer, "sell" for a buy offer. */
export function takerSide(offer) {
  return offer.side === "sell" ? "buy" : "sell";
}
