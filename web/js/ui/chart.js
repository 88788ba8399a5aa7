// Candlestick chart on a <canvas> (no library): candles, volume, price axis,
// time axis, last-price line, crosshair readout. Seeds from GET candles, then
// folds live trades into the current candle and reloads periodically.

import { addTrade, candlesFromTrades, INTERVAL_MS, niceTicks, normalizeCandles } from "../candles.js";
import { incrementDecimals } from "../decimal.js";
import { pad2 } from "../format.js";
import { normalizeTrade } from "../market_feed.js";

const COLORS = {
  up: "#1fbf75",
  down: "#ef4d56",
  grid: "rgba(255,255,255,0.05)",
  axis: "#7d8597",
  text: "#c9ced8",
  cross: "rgba(200,205,215,0.35)",
  vol: 0.35,
};
const AXIS_W = 68;
const TIME_H = 20;
const RELOAD_MS = 30000;
const LIMIT = 150;
const FALLBACK_TRADES = 1000;

function css(name, fallback) {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

export function mountChart(root, { http, feed, ws, getMarket }) {
  const canvas = root.querySelector("canvas");
  const info = root.querySelector(".chart-info");
  const msg = root.querySelector(".chart-msg");
  const intervals = root.querySelectorAll("[data-interval]");
  const ctx = canvas.getContext("2d");
  let candles = [];
  let interval = "1m";
  let hover = null; // {x, y}
  let loadToken = 0;
  let reloadTimer = null;
  let source = "";
  const font = `11px ${css("--mono", "ui-monospace, monospace")}`;

  const setMsg = (text) => {
    msg.textContent = text || "";
    msg.hidden = !text;
  };

  async function load() {
    const market = getMarket();
    if (!market) return;
    const token = ++loadToken;
    let list = [];
    let error = null;
    try {
      list = normalizeCandles(await http.candles(market.id, interval, LIMIT));
      source = "";
    } catch (e) {
      error = e;
    }
    if (!list.length) {
      // No candle history served (yet): build it from the recent trades.
      try {
        const trades = await http.trades(market.id, FALLBACK_TRADES);
        list = candlesFromTrades(trades.map(normalizeTrade), interval);
        source = list.length ? "from recent trades" : "";
      } catch {
        /* keep the first error */
      }
    }
    if (token !== loadToken) return;
    if (list.length || !candles.length) candles = list;
    setMsg(candles.length ? "" : error ? `Chart unavailable: ${error}` : "No trades yet");
    draw();
  }

  function scheduleReload() {
    clearInterval(reloadTimer);
    reloadTimer = setInterval(load, RELOAD_MS);
  }

  function fmtTime(ts) {
    const d = new Date(ts);
    if (interval === "1d") return `${d.getMonth() + 1}/${d.getDate()}`;
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  }

  function draw() {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const hgt = canvas.clientHeight;
    if (!w || !hgt) return;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(hgt * dpr);
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    ctx.font = font;
    const market = getMarket();
    const decimals = market ? incrementDecimals(market.price_increment) : 2;
    const plotW = w - AXIS_W;
    const plotH = hgt - TIME_H;
    const volH = plotH * 0.2;
    const priceH = plotH - volH - 8;
    // candle width: 6..14 px, wider while there is little history
    const slot = Math.max(6, Math.min(14, Math.floor(plotW / Math.max(1, candles.length))));
    const n = Math.max(1, Math.floor(plotW / slot));
    const shown = candles.slice(-n);
    if (!shown.length) {
      info.textContent = "";
      return;
    }
    let lo = Infinity;
    let hi = -Infinity;
    let vmax = 0;
    for (const c of shown) {
      lo = Math.min(lo, c.l);
      hi = Math.max(hi, c.h);
      vmax = Math.max(vmax, c.v);
    }
    if (hi === lo) {
      hi += hi * 0.001 || 1;
      lo -= lo * 0.001 || 1;
    }
    const padP = (hi - lo) * 0.08;
    hi += padP;
    lo -= padP;
    const y = (p) => 6 + ((hi - p) / (hi - lo)) * priceH;
    const x0 = plotW - shown.length * slot;
    const xOf = (i) => x0 + i * slot + slot / 2;

    // grid + price axis
    ctx.fillStyle = COLORS.axis;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const t of niceTicks(lo, hi, Math.max(2, Math.floor(priceH / 45)))) {
      const yy = Math.round(y(t)) + 0.5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(0, yy);
      ctx.lineTo(plotW, yy);
      ctx.stroke();
      ctx.fillText(t.toFixed(decimals), plotW + 6, yy);
    }
    // time axis
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const every = Math.max(1, Math.ceil(70 / slot));
    shown.forEach((c, i) => {
      if (Math.floor(c.ts / INTERVAL_MS[interval]) % every !== 0) return;
      const xx = Math.round(xOf(i)) + 0.5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(xx, 0);
      ctx.lineTo(xx, plotH);
      ctx.stroke();
      ctx.fillText(fmtTime(c.ts), xx, plotH + 4);
    });

    // volume
    shown.forEach((c, i) => {
      if (!vmax) return;
      const vh = (c.v / vmax) * volH;
      ctx.globalAlpha = COLORS.vol;
      ctx.fillStyle = c.c >= c.o ? COLORS.up : COLORS.down;
      ctx.fillRect(xOf(i) - slot * 0.35, plotH - vh, slot * 0.7, vh);
      ctx.globalAlpha = 1;
    });

    // candles
    shown.forEach((c, i) => {
      const color = c.c >= c.o ? COLORS.up : COLORS.down;
      const xx = Math.round(xOf(i)) + 0.5;
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(xx, y(c.h));
      ctx.lineTo(xx, y(c.l));
      ctx.stroke();
      const top = y(Math.max(c.o, c.c));
      const bh = Math.max(1, y(Math.min(c.o, c.c)) - top);
      ctx.fillRect(Math.round(xx - slot * 0.35), top, Math.round(slot * 0.7), bh);
    });

    // last price line
    const last = shown[shown.length - 1];
    const ly = Math.round(y(last.c)) + 0.5;
    ctx.strokeStyle = last.c >= last.o ? COLORS.up : COLORS.down;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(0, ly);
    ctx.lineTo(plotW, ly);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = ctx.strokeStyle;
    ctx.fillRect(plotW, ly - 8, AXIS_W, 16);
    ctx.fillStyle = "#0b0e14";
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(last.c.toFixed(decimals), plotW + 6, ly);

    // crosshair + readout
    let focus = last;
    if (hover && hover.x < plotW && hover.y < plotH) {
      const i = Math.floor((hover.x - x0) / slot);
      if (i >= 0 && i < shown.length) focus = shown[i];
      ctx.strokeStyle = COLORS.cross;
      ctx.beginPath();
      ctx.moveTo(0, hover.y + 0.5);
      ctx.lineTo(plotW, hover.y + 0.5);
      ctx.moveTo(hover.x + 0.5, 0);
      ctx.lineTo(hover.x + 0.5, plotH);
      ctx.stroke();
      if (hover.y < 6 + priceH) {
        const p = hi - ((hover.y - 6) / priceH) * (hi - lo);
        ctx.fillStyle = "#2a3140";
        ctx.fillRect(plotW, hover.y - 8, AXIS_W, 16);
        ctx.fillStyle = COLORS.text;
        ctx.fillText(p.toFixed(decimals), plotW + 6, hover.y);
      }
    }
    const d = new Date(focus.ts);
    info.textContent =
      `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}${interval === "1d" ? "" : ` ${fmtTime(focus.ts)}`}  ` +
      `O ${focus.o.toFixed(decimals)}  H ${focus.h.toFixed(decimals)}  L ${focus.l.toFixed(decimals)}  ` +
      `C ${focus.c.toFixed(decimals)}  V ${+focus.v.toFixed(6)}` +
      (source ? `  · ${source}` : "");
  }

  let drawQueued = false;
  const redraw = () => {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      draw();
    });
  };

  canvas.addEventListener("mousemove", (e) => {
    const r = canvas.getBoundingClientRect();
    hover = { x: e.clientX - r.left, y: e.clientY - r.top };
    redraw();
  });
  canvas.addEventListener("mouseleave", () => {
    hover = null;
    redraw();
  });
  new ResizeObserver(redraw).observe(canvas);

  intervals.forEach((btn) =>
    btn.addEventListener("click", () => {
      interval = btn.dataset.interval;
      intervals.forEach((b) => b.classList.toggle("active", b === btn));
      candles = [];
      draw();
      load();
    }),
  );

  feed.on("trade", (t) => {
    if (!candles.length && !t.ts) return;
    addTrade(candles, interval, t.ts || Date.now(), t.price, t.size);
    setMsg("");
    redraw();
  });
  ws.on("ready", load);

  return {
    setMarket() {
      candles = [];
      setMsg("Loading…");
      draw();
      load();
      scheduleReload();
    },
  };
}
