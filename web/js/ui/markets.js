// Market selector with the market's trading status.

import { h } from "./dom.js";

export function mountMarkets({ select, badge }, { onSelect }) {
  let markets = [];

  select.addEventListener("change", () => {
    const m = markets.find((x) => x.id === select.value);
    if (m) onSelect(m);
  });

  return {
    setMarkets(list, currentId) {
      markets = list;
      select.replaceChildren(...list.map((m) => h("option", { value: m.id }, `${m.base}/${m.quote}`)));
      if (currentId) select.value = currentId;
    },
    showStatus(market) {
      const st = market ? market.status || "TRADING" : "";
      badge.textContent = st === "TRADING" ? "" : st.replace("_", " ");
      badge.hidden = !st || st === "TRADING";
      badge.className = `badge badge-${st === "HALT" ? "sell" : "warn"}`;
      if (market) select.value = market.id;
    },
  };
}
