// Small shared pieces of the P2P views: who a user is, status badges, labels.

import { h } from "../dom.js";

const BADGE = {
  OPEN: "ok",
  PAUSED: "warn",
  CLOSED: "muted",
  PENDING: "warn",
  PAID: "info",
  DISPUTED: "sell",
  RELEASED: "ok",
  CANCELLED: "muted",
  EXPIRED: "muted",
  REFUNDED: "warn",
};

export function statusBadge(status) {
  return h(`span.badge.badge-${BADGE[status] || "muted"}`, { dataset: { status } }, status || "?");
}

/** "you" or "user #10" (the API names users by id only). */
export function who(userId, me) {
  if (me && String(userId) === me.id) return "you";
  return `user #${userId}`;
}

/** The user's side of a trade in words. */
export function roleLabel(party) {
  return party === "buyer" ? "Buying" : party === "seller" ? "Selling" : party === "admin" ? "Admin" : "—";
}

/** Mark one field of a form as invalid (null clears all). */
export function markInvalid(form, field) {
  form.querySelectorAll(".field.invalid").forEach((f) => f.classList.remove("invalid"));
  if (!field) return;
  const input = form.elements[field];
  const wrap = input && input.closest(".field");
  if (wrap) wrap.classList.add("invalid");
  if (input && input.focus) input.focus();
}
