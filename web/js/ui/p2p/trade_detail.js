// One trade: what to do next, the facts (amounts, price, fiat to pay, methods,
// parties, times), the payment-deadline countdown, the moves the user may make in
// this state (irreversible ones ask for a second click), the dispute form and the
// message thread.

import { describeError } from "../../p2p/errors.js";
import { fmtAsset, fmtFiat } from "../../p2p/money.js";
import { checkText } from "../../p2p/params.js";
import { ACTION_LABELS, allowedActions, countdown, isOverdue, nextStep, partyOf } from "../../p2p/rules.js";
import { dateTimeOf } from "../../format.js";
import { confirmButton } from "../confirm.js";
import { h, showError } from "../dom.js";
import { roleLabel, statusBadge, who } from "./bits.js";
import { mountThread } from "./thread.js";

const DONE = {
  paid: "Marked paid",
  release: "Released",
  cancel: "Cancelled",
  dispute: "Dispute opened",
  resolve_release: "Released to the buyer",
  resolve_refund: "Refunded to the seller",
};

export function mountTradeDetail(root, { store, toast }) {
  const title = root.querySelector(".trade-title");
  const badge = root.querySelector(".trade-badge");
  const emptyEl = root.querySelector(".trade-empty");
  const body = root.querySelector(".trade-body");
  const step = root.querySelector(".trade-step");
  const deadline = root.querySelector(".trade-deadline");
  const facts = root.querySelector(".trade-facts");
  const actions = root.querySelector(".trade-actions");
  const disputeForm = root.querySelector(".dispute-form");
  const errBox = root.querySelector(".trade-error");
  const thread = mountThread(root.querySelector(".thread"), { store });
  let selected = null;
  let shownKey = "";
  let busy = false;

  async function act(action, extra = {}) {
    const id = selected;
    busy = true;
    showError(errBox, null);
    actions.querySelectorAll("button").forEach((b) => (b.disabled = true));
    try {
      const t = await store.act(action, id, extra);
      toast(`${DONE[action]}: ${fmtAsset(t.amount, t.asset)} for ${fmtFiat(t.fiat_amount, t.fiat)}`, "success", { title: `Trade ${t.id}` });
      disputeForm.hidden = true;
    } catch (err) {
      showError(errBox, describeError(err));
      store.refreshTrade(id); // the trade may have moved meanwhile (e.g. expired)
    } finally {
      busy = false;
      shownKey = "";
      render();
    }
  }

  const actionButton = (t, action) => {
    const money = fmtFiat(t.fiat_amount, t.fiat);
    const coins = fmtAsset(t.amount, t.asset);
    const spec = {
      paid: ["button.btn.btn-buy", `I have paid ${money}`, `Confirm: ${money} sent?`],
      release: ["button.btn.btn-buy", `Release ${coins}`, t.status === "PENDING" ? "Not marked paid yet — release?" : `Confirm: ${money} received?`],
      cancel: ["button.btn.btn-danger", "Cancel trade", "Cancel for good?"],
      resolve_release: ["button.btn.btn-buy", "Release to buyer", "Confirm: release to buyer?"],
      resolve_refund: ["button.btn.btn-danger", "Refund seller", "Confirm: refund seller?"],
    }[action];
    let b;
    if (action === "dispute") {
      b = h("button.btn.btn-ghost", { type: "button", onclick: () => openDispute() }, ACTION_LABELS.dispute);
    } else {
      b = confirmButton(spec[0], { label: spec[1], confirm: spec[2], onConfirm: () => act(action) });
    }
    b.dataset.act = action;
    b.disabled = busy;
    return b;
  };

  function openDispute() {
    disputeForm.hidden = false;
    showError(disputeForm.querySelector(".form-error"), null);
    disputeForm.elements.reason.focus();
  }

  disputeForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const r = checkText(disputeForm.elements.reason.value, "a reason");
    if (!r.ok) return showError(disputeForm.querySelector(".form-error"), r.error);
    act("dispute", { reason: r.text }).then(() => {
      if (disputeForm.hidden) disputeForm.elements.reason.value = "";
    });
  });
  disputeForm.querySelector("[data-act=dispute-cancel]").addEventListener("click", () => (disputeForm.hidden = true));

  const renderDeadline = (t) => {
    const now = Date.now();
    if (t.status !== "PENDING") {
      deadline.hidden = true;
      return;
    }
    deadline.hidden = false;
    const overdue = isOverdue(t, now);
    deadline.classList.toggle("overdue", overdue);
    deadline.replaceChildren(
      h("span.muted", overdue ? "Payment window over " : "Pay within "),
      h("strong.mono.countdown", overdue ? "0:00" : countdown(Number(t.expires_ts) - now)),
      h("span.muted", ` (until ${dateTimeOf(t.expires_ts)})`),
    );
  };

  function render() {
    const t = selected ? store.trade(selected) : null;
    emptyEl.hidden = Boolean(t);
    body.hidden = !t;
    emptyEl.textContent = selected && !t ? "Loading trade…" : "Select a trade, or take an offer.";
    if (!t) {
      title.textContent = "Trade";
      badge.replaceChildren();
      thread.show(null, null);
      return;
    }
    const me = store.me;
    const party = partyOf(t, me);
    title.textContent = `${party === "admin" ? "Trade" : roleLabel(party)} ${fmtAsset(t.amount, t.asset)} · #${t.id}`;
    badge.replaceChildren(statusBadge(t.status));
    step.textContent = nextStep(t, party);
    step.className = `trade-step step-${t.status.toLowerCase()}`;
    renderDeadline(t);
    const payLabel = party === "buyer" ? "You pay" : party === "seller" ? "You receive" : "Fiat amount";
    const rows = [
      [payLabel, h("strong.fiat-big", fmtFiat(t.fiat_amount, t.fiat))],
      ["Amount", fmtAsset(t.amount, t.asset)],
      ["Price", `${fmtFiat(t.price, t.fiat)} per ${t.asset}`],
      ["Payment methods", (t.payment_methods || []).join(", ")],
      ["Seller", who(t.seller, me)],
      ["Buyer", who(t.buyer, me)],
      ["Opened", dateTimeOf(t.created_ts)],
      t.paid_ts ? ["Marked paid", dateTimeOf(t.paid_ts)] : null,
      t.dispute ? ["Dispute", `by ${who(t.dispute.by, me)} at ${dateTimeOf(t.dispute.ts)}: ${t.dispute.reason}`] : null,
      t.resolution ? ["Resolution", t.resolution === "release" ? "released to the buyer" : "refunded to the seller"] : null,
      ["Offer", `#${t.offer_id} (${t.offer_side} offer)`],
    ].filter(Boolean);
    facts.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", k), h("dd", v)]));
    // Buttons are rebuilt only when the trade changes, so a half-confirmed click
    // survives the countdown ticks.
    const allowed = allowedActions(t, party);
    const key = `${t.id}|${t.status}|${t.updated_ts}|${allowed.join(",")}|${busy}`;
    if (key !== shownKey) {
      shownKey = key;
      actions.replaceChildren(...allowed.map((a) => actionButton(t, a)));
      actions.hidden = allowed.length === 0;
      if (!allowed.includes("dispute")) disputeForm.hidden = true;
    }
    thread.show(t, party);
  }

  store.on("trade", (t) => t.id === selected && render());
  store.on("trades", () => selected && render());
  store.on("disputes", () => selected && render());

  return {
    select(id) {
      if (id !== selected) {
        selected = id;
        shownKey = "";
        disputeForm.hidden = true;
        showError(errBox, null);
      }
      if (id && !store.trade(id)) store.refreshTrade(id);
      render();
    },
    get selected() {
      return selected;
    },
    render,
    tick() {
      const t = selected ? store.trade(selected) : null;
      if (!t) return;
      renderDeadline(t);
      const allowed = allowedActions(t, partyOf(t, store.me));
      if (!shownKey.endsWith(`|${allowed.join(",")}|${busy}`)) render(); // "I have paid" goes at the deadline
    },
  };
}
