// My P2P offers (closed ones too, newest first): pause / resume, edit, close.

import { describeError } from "../../p2p/errors.js";
import { fmtAsset, fmtFiat } from "../../p2p/money.js";
import { offerActions } from "../../p2p/rules.js";
import { confirmButton } from "../confirm.js";
import { h, rafThrottle } from "../dom.js";
import { timeOf } from "../../format.js";
import { statusBadge } from "./bits.js";

export function mountMyOffers(pane, { store, toast, onEdit, count }) {
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");
  const busy = new Set();

  async function run(offer, what, fn) {
    busy.add(offer.id);
    render();
    try {
      const o = await fn();
      toast(`Offer ${o.id} ${what}`, "success", { timeout: 2500 });
    } catch (e) {
      toast(describeError(e), "error", { title: `Offer ${offer.id}` });
    } finally {
      busy.delete(offer.id);
      render();
    }
  }

  const button = (offer, action) => {
    const disabled = busy.has(offer.id);
    const act = { dataset: { act: action }, disabled, type: "button" };
    if (action === "pause") return h("button.btn.btn-small.btn-ghost", { ...act, onclick: () => run(offer, "paused", () => store.updateOffer(offer.id, { status: "PAUSED" })) }, "Pause");
    if (action === "resume") return h("button.btn.btn-small.btn-ghost", { ...act, onclick: () => run(offer, "resumed", () => store.updateOffer(offer.id, { status: "OPEN" })) }, "Resume");
    if (action === "edit") return h("button.btn.btn-small.btn-ghost", { ...act, onclick: () => onEdit(offer) }, "Edit");
    const b = confirmButton("button.btn.btn-small.btn-danger", {
      label: "Close",
      confirm: "Close for good?",
      title: offer.side === "sell" ? "Closing returns the escrow left to your available balance" : "",
      onConfirm: () => run(offer, "closed", () => store.closeOffer(offer.id)),
    });
    b.dataset.act = "close";
    b.disabled = disabled;
    return b;
  };

  const render = () => {
    const list = store.mine;
    const live = list.filter((o) => o.status !== "CLOSED").length;
    count.textContent = live ? String(live) : "";
    empty.hidden = list.length > 0;
    tbody.replaceChildren(
      ...list.map((o) =>
        h(
          `tr${o.status === "CLOSED" ? ".closed" : ""}`,
          { dataset: { offerId: o.id } },
          h("td.mono", timeOf(o.created_ts)),
          h(`td.${o.side}`, o.side),
          h("td.asset", o.asset),
          h("td.num.mono", fmtFiat(o.price, o.fiat)),
          h("td.num.mono", fmtAsset(o.amount)),
          h("td.num.mono.muted", fmtAsset(o.locked)),
          h("td.num.mono", fmtAsset(o.filled)),
          h("td.mono", `${fmtAsset(o.min_amount)} – ${fmtAsset(o.max_amount)}`),
          h("td.methods", (o.payment_methods || []).map((m) => h("span.chip", m))),
          h("td.mono", `${o.payment_window} min`),
          h("td", statusBadge(o.status)),
          h("td.actions", offerActions(o).map((a) => button(o, a))),
        ),
      ),
    );
  };

  const schedule = rafThrottle(render);
  store.on("mine", schedule);
  return { render: schedule };
}
