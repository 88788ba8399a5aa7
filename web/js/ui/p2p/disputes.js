// Admin: trades in dispute, oldest first. A click opens the trade (facts, thread,
// release / refund).

import { fmtAsset, fmtFiat } from "../../p2p/money.js";
import { dateTimeOf } from "../../format.js";
import { h, rafThrottle } from "../dom.js";
import { who } from "./bits.js";

export function mountDisputes(pane, { store, onSelect, getSelected, count }) {
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");

  const render = () => {
    const me = store.me;
    const list = store.disputes;
    count.textContent = list.length ? String(list.length) : "";
    empty.hidden = list.length > 0;
    const selected = getSelected();
    tbody.replaceChildren(
      ...list.map((t) =>
        h(
          `tr.clickable${t.id === selected ? ".selected" : ""}`,
          { dataset: { tradeId: t.id }, onclick: () => onSelect(t.id) },
          h("td.mono", dateTimeOf(t.dispute && t.dispute.ts)),
          h("td.mono", t.id),
          h("td.num.mono", fmtAsset(t.amount, t.asset)),
          h("td.num.mono", fmtFiat(t.fiat_amount, t.fiat)),
          h("td", who(t.seller, me)),
          h("td", who(t.buyer, me)),
          h("td", t.dispute ? (String(t.dispute.by) === String(t.buyer) ? "buyer" : "seller") : ""),
          h("td.reason", t.dispute ? t.dispute.reason : ""),
        ),
      ),
    );
  };

  const schedule = rafThrottle(render);
  store.on("disputes", schedule);
  return { render: schedule };
}
