// Recent trades tape (newest first). Live trades flash briefly.

import { fmtPrice, fmtSize, timeOf } from "../format.js";
import { h, rafThrottle } from "./dom.js";

export function mountTrades(root, feed, getMarket) {
  const body = root.querySelector(".trades-body");
  let flash = new Set();

  const render = () => {
    const m = getMarket();
    body.replaceChildren(
      ...feed.trades.slice(0, 60).map((t) =>
        h(
          `div.trade-row.${t.side === "sell" ? "sell" : "buy"}${flash.has(t.trade_id) ? ".flash" : ""}`,
          { title: `trade #${t.trade_id}` },
          h("span.c-price", fmtPrice(m, t.price)),
          h("span.c-size", fmtSize(m, t.size)),
          h("span.c-time", timeOf(t.ts)),
        ),
      ),
    );
    flash = new Set();
  };
  const schedule = rafThrottle(render);
  feed.on("trades", (_list, fresh) => {
    if (feed.trades.length && fresh.length < feed.trades.length) for (const t of fresh) flash.add(t.trade_id);
    schedule();
  });
  return { render: schedule };
}
