// P2P notifications (stored inbox + live pushes), newest first; a click opens the trade.

import { dateTimeOf } from "../../format.js";
import { h, rafThrottle } from "../dom.js";

const KIND = {
  "p2p.trade_opened": "opened",
  "p2p.trade_paid": "paid",
  "p2p.trade_released": "released",
  "p2p.trade_cancelled": "cancelled",
  "p2p.trade_expired": "expired",
  "p2p.trade_disputed": "dispute",
  "p2p.dispute_resolved": "resolved",
  "p2p.message": "message",
};

export function mountInbox(pane, { store, onSelect }) {
  const list = pane.querySelector(".inbox-list");
  const empty = pane.querySelector(".empty");

  const render = () => {
    empty.hidden = store.inbox.length > 0;
    list.replaceChildren(
      ...store.inbox.map((n) =>
        h(
          "li.clickable",
          { onclick: () => n.ref && onSelect(String(n.ref)) },
          h("span.mono.muted", dateTimeOf(n.ts)),
          h("span.badge.badge-info", KIND[n.kind] || n.kind),
          h("span", n.message || ""),
        ),
      ),
    );
  };

  const schedule = rafThrottle(render);
  store.on("inbox", schedule);
  return { render: schedule };
}
