// Depth ladder: asks above, spread, bids below; size and cumulative-depth bars.
// Click a level to copy its price into the order form.

import { addDec, isDecimal, normalize, subDec } from "../decimal.js";
import { fmtPrice, fmtSize } from "../format.js";
import { h, rafThrottle } from "./dom.js";

const ROWS = 25;

function makeRows(container, side, onPick) {
  const rows = [];
  for (let i = 0; i < ROWS; i++) {
    const depth = h("div.bar.bar-depth");
    const size = h("div.bar.bar-size");
    const price = h("span.c-price");
    const amt = h("span.c-size");
    const total = h("span.c-total");
    const row = h(`div.ladder-row.${side}`, { hidden: true }, depth, size, price, amt, total);
    row.addEventListener("click", (e) => row.dataset.price && onPick(row.dataset.price, e));
    container.append(row);
    rows.push({ row, depth, size, price, amt, total });
  }
  return rows;
}

export function mountOrderBook(root, feed, { getMarket, getOwnPrices, onPick }) {
  const asksEl = root.querySelector(".ladder-asks");
  const bidsEl = root.querySelector(".ladder-bids");
  const mid = root.querySelector(".ladder-mid");
  const foot = root.querySelector(".ladder-foot");
  const askRows = makeRows(asksEl, "ask", onPick);
  const bidRows = makeRows(bidsEl, "bid", onPick);

  const fill = (rows, levels, market, maxSize, maxTotal, own) => {
    let cum = "0";
    const cums = levels.map(([, s]) => (cum = addDec(cum, s)));
    rows.forEach((r, i) => {
      const lvl = levels[i];
      if (!lvl) {
        r.row.hidden = true;
        delete r.row.dataset.price;
        return;
      }
      const [p, s] = lvl;
      r.row.hidden = false;
      r.row.dataset.price = p;
      r.row.classList.toggle("own", own.has(normalize(p)));
      r.price.textContent = fmtPrice(market, p);
      r.amt.textContent = fmtSize(market, s);
      r.total.textContent = fmtSize(market, cums[i]);
      // widths are display-only, floats are fine here
      r.size.style.width = `${Math.min(100, (100 * Number(s)) / maxSize)}%`;
      r.depth.style.width = `${Math.min(100, (100 * Number(cums[i])) / maxTotal)}%`;
    });
  };

  const render = () => {
    const market = getMarket();
    const book = feed.book;
    root.classList.toggle("stale", feed.stale);
    if (!book || !market) return;
    const asks = book.askLevels().slice(0, ROWS);
    const bids = book.bidLevels().slice(0, ROWS);
    const sizes = [...asks, ...bids].map(([, s]) => Number(s));
    const maxSize = Math.max(1e-18, ...sizes);
    const sum = (lv) => lv.reduce((a, [, s]) => a + Number(s), 0);
    const maxTotal = Math.max(1e-18, sum(asks), sum(bids));
    const own = getOwnPrices();
    fill(askRows, asks, market, maxSize, maxTotal, own.sell);
    fill(bidRows, bids, market, maxSize, maxTotal, own.buy);
    const ba = asks[0];
    const bb = bids[0];
    const last = feed.ticker && feed.ticker.last;
    const spread = ba && bb ? subDec(ba[0], bb[0]) : null;
    mid.replaceChildren(
      h("span.mid-last", isDecimal(last) ? fmtPrice(market, last) : "—"),
      h("span.mid-spread", spread && !spread.startsWith("-") ? `spread ${fmtPrice(market, spread)}` : ""),
    );
    foot.textContent = book.synced
      ? `seq ${book.seq} · crc32 ok${feed.stats.resyncs ? ` · resyncs ${feed.stats.resyncs}` : ""}`
      : feed.stats.lastReason
        ? `resyncing (${feed.stats.lastReason})…`
        : "waiting for snapshot…";
  };

  const schedule = rafThrottle(render);
  feed.on("book", schedule);
  feed.on("ticker", schedule);
  return { render: schedule };
}
