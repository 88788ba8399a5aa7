// Own fills (from GET /fills, order.place results and the private `orders` channel).

import { fmtPrice, fmtSize, timeOf } from "../format.js";
import { h, rafThrottle } from "./dom.js";

export function mountFills(root, { account, getMarketById }) {
  const pane = root.querySelector('[data-pane="fills"]');
  const tbody = pane.querySelector("tbody");
  const empty = pane.querySelector(".empty");
  const render = () => {
    empty.hidden = account.fills.length > 0;
    empty.textContent = account.fillsError
      ? `Fill history unavailable (${account.fillsError}); new fills appear live.`
      : "No fills yet";
    tbody.replaceChildren(
      ...account.fills.slice(0, 100).map((f) => {
        const m = getMarketById(f.market);
        return h(
          "tr",
          h("td.mono", timeOf(f.ts)),
          h("td", f.market || ""),
          h(`td.${f.side}`, f.side || ""),
          h("td.num.mono", fmtPrice(m, f.price)),
          h("td.num.mono", fmtSize(m, f.size)),
          h("td.num.mono", `${f.fee ?? ""} ${f.fee_asset || ""}`),
          h("td", f.liquidity || ""),
          h("td.mono", String(f.trade_id ?? "")),
        );
      }),
    );
  };
  const schedule = rafThrottle(render);
  account.on("fills", schedule);
  return { render: schedule };
}
