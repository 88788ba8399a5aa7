// Ticker strip: last, best bid/ask, spread, 24h volume.

import { fmtPrice, fmtSize } from "../format.js";
import { cmpDec, groupThousands, isDecimal, subDec } from "../decimal.js";
import { rafThrottle } from "./dom.js";

export function mountTicker(root, feed, getMarket) {
  const cell = (name) => root.querySelector(`[data-t=${name}] .stat-value`);
  const last = cell("last");
  const bid = cell("bid");
  const ask = cell("ask");
  const spread = cell("spread");
  const vol = cell("vol");
  let prevLast = null;

  const render = () => {
    const m = getMarket();
    const t = feed.ticker || {};
    const bb = feed.book && feed.book.bestBid();
    const ba = feed.book && feed.book.bestAsk();
    const bidP = bb ? bb[0] : t.best_bid;
    const askP = ba ? ba[0] : t.best_ask;
    const lastP = t.last ?? (feed.trades[0] && feed.trades[0].price);
    last.textContent = isDecimal(lastP) ? fmtPrice(m, lastP) : "—";
    if (isDecimal(lastP) && isDecimal(prevLast) && lastP !== prevLast) {
      last.className = `stat-value ${cmpDec(lastP, prevLast) > 0 ? "up" : "down"}`;
    }
    if (isDecimal(lastP)) prevLast = lastP;
    bid.textContent = isDecimal(bidP) ? fmtPrice(m, bidP) : "—";
    ask.textContent = isDecimal(askP) ? fmtPrice(m, askP) : "—";
    spread.textContent = isDecimal(bidP) && isDecimal(askP) ? fmtPrice(m, subDec(askP, bidP).replace(/^-/, "")) : "—";
    vol.textContent = isDecimal(t.volume_24h) ? `${groupThousands(fmtSize(m, t.volume_24h))} ${m ? m.base : ""}` : "—";
    document.title = isDecimal(lastP) && m ? `${fmtPrice(m, lastP)} ${m.base}/${m.quote} · hftx` : "hftx";
  };

  const schedule = rafThrottle(render);
  feed.on("ticker", schedule);
  feed.on("trades", schedule);
  feed.on("book", schedule);
  return { render: schedule, reset: () => (prevLast = null) };
}
