// My P2P trades (as buyer or seller), newest first: state, payment-deadline
// countdown, whose move it is. A click opens the trade.

import { fmtAsset, fmtFiat } from "../../p2p/money.js";
import { countdown, isOverdue, needsMyAction, partyOf } from "../../p2p/rules.js";
import { dateTimeOf } from "../../format.js";
import { h, rafThrottle } from "../dom.js";
import { roleLabel, statusBadge, who } from "./bits.js";

/** Deadline cell text of a trade. */
export function deadlineText(t, now = Date.now()) {
  if (t.status !== "PENDING") return t.paid_ts && t.status === "PAID" ? "paid" : "";
  if (isOverdue(t, now)) return "expiring…";
  return countdown(Number(t.expires_ts) - now);
}

export function mountMyTrades(pane, { store, onSelect, getSelected, count }) {
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");

  const render = () => {
    const me = store.me;
    const now = Date.now();
    const list = [...store.trades.values()].sort((a, b) => Number(b.created_ts) - Number(a.created_ts));
    const todo = list.filter((t) => needsMyAction(t, partyOf(t, me), now)).length;
    count.textContent = todo ? String(todo) : "";
    count.title = todo ? `${todo} trade(s) waiting for you` : "";
    empty.hidden = list.length > 0;
    const selected = getSelected();
    tbody.replaceChildren(
      ...list.map((t) => {
        const party = partyOf(t, me);
        const other = party === "buyer" ? t.seller : t.buyer;
        const mine = needsMyAction(t, party, now);
        return h(
          `tr.clickable${t.id === selected ? ".selected" : ""}${mine ? ".todo" : ""}`,
          { dataset: { tradeId: t.id }, onclick: () => onSelect(t.id), title: mine ? "Your move" : "" },
          h("td.mono", dateTimeOf(t.created_ts)),
          h(`td.${party === "buyer" ? "buy" : "sell"}`, roleLabel(party)),
          h("td.num.mono", fmtAsset(t.amount, t.asset)),
          h("td.num.mono", fmtFiat(t.fiat_amount, t.fiat)),
          h("td.num.mono.muted", fmtFiat(t.price)),
          h("td", who(other, me)),
          h("td", statusBadge(t.status)),
          h("td.mono.deadline", { dataset: { deadline: t.id } }, deadlineText(t, now)),
        );
      }),
    );
  };

  /** Every second: only the countdown cells. */
  const tick = () => {
    const now = Date.now();
    for (const cell of tbody.querySelectorAll("[data-deadline]")) {
      const t = store.trades.get(cell.dataset.deadline);
      if (t) cell.textContent = deadlineText(t, now);
    }
  };

  const schedule = rafThrottle(render);
  store.on("trades", schedule);
  return { render: schedule, tick };
}
