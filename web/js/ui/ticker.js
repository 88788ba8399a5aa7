// Ticker strip: last, best bid/ask, spread, 24h change / high / low / volume.

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
  const change = cell("change");
  const high = cell("high");
  const low = cell("low");
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
    const price = (p) => (isDecimal(p) ? fmtPrice(m, p) : "—");
    high.textContent = price(t.high_24h);
    low.textContent = price(t.low_24h);
    if (isDecimal(lastP) && isDecimal(t.open_24h)) {
      const sign = cmpDec(lastP, t.open_24h);
      const diff = sign < 0 ? subDec(t.open_24h, lastP) : subDec(lastP, t.open_24h); // >= 0
      change.textContent = (sign > 0 ? "+" : sign < 0 ? "-" : "") + fmtPrice(m, diff);
      change.className = `stat-value ${sign > 0 ? "up" : sign < 0 ? "down" : ""}`;
    } else {
      change.textContent = "—";
      change.className = "stat-value";
    }
    vol.textContent = isDecimal(t.volume_24h) ? `${groupThousands(fmtSize(m, t.volume_24h))} ${m ? m.base : ""}` : "—";
    document.title = isDecimal(lastP) && m ? `${fmtPrice(m, lastP)} ${m.base}/${m.quote} · hftx` : "hftx";
  };

  const schedule = rafThrottle(render);
  feed.on("ticker", schedule);
  feed.on("trades", schedule);
  feed.on("book", schedule);
  return { render: schedule, reset: () => (prevLast = null) };
}
