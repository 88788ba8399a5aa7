// Balances table: free / locked / total, live from the `balances` channel.

import { fmtAmount } from "../format.js";
import { h, rafThrottle } from "./dom.js";

export function mountBalances(root, { account }) {
  const pane = root.querySelector('[data-pane="balances"]');
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");
  const render = () => {
    const list = [...account.balances.values()].sort((a, b) => a.asset.localeCompare(b.asset));
    empty.hidden = list.length > 0;
    tbody.replaceChildren(
      ...list.map((b) =>
        h(
          "tr",
          h("td.asset", b.asset),
          h("td.num.mono", fmtAmount(b.free)),
          h("td.num.mono.muted", fmtAmount(b.locked)),
          h("td.num.mono", fmtAmount(b.total)),
        ),
      ),
    );
  };
  const schedule = rafThrottle(render);
  account.on("balances", schedule);
  return { render: schedule };
}
