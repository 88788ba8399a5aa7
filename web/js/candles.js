// Candle normalisation and chart scaling. Accepts either objects
// ({ts|t|time|start, open|o, high|h, low|l, close|c, volume|v}) or arrays
// [ts, open, high, low, close, volume]. Floats here are for drawing only.

const pick = (o, ...keys) => {
  for (const k of keys) if (o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
};

/** Normalise a candle list to [{ts, o, h, l, c, v}] (numbers), sorted by ts. */
export function normalizeCandles(list) {
  const out = [];
  for (const raw of list || []) {
    let c;
    if (Array.isArray(raw)) {
      c = { ts: raw[0], o: raw[1], h: raw[2], l: raw[3], c: raw[4], v: raw[5] };
    } else if (raw && typeof raw === "object") {
      c = {
        ts: pick(raw, "ts", "t", "time", "start", "open_time"),
        o: pick(raw, "open", "o"),
        h: pick(raw, "high", "h"),
        l: pick(raw, "low", "l"),
        c: pick(raw, "close", "c"),
        v: pick(raw, "volume", "v", "base_volume"),
      };
    } else continue;
    const n = {
      ts: Number(c.ts),
      o: Number(c.o),
      h: Number(c.h),
      l: Number(c.l),
      c: Number(c.c),
      v: Number(c.v ?? 0) || 0,
    };
    if ([n.ts, n.o, n.h, n.l, n.c].every(Number.isFinite)) out.push(n);
  }
  out.sort((a, b) => a.ts - b.ts);
  return out;
}

export const INTERVAL_MS = { "1m": 60e3, "5m": 300e3, "15m": 900e3, "1h": 3600e3, "1d": 86400e3 };

/** Fold a live trade into the candle list (mutates; returns the list). */
export function addTrade(candles, interval, ts, price, size) {
  const ms = INTERVAL_MS[interval] || 60e3;
  const bucket = Math.floor(ts / ms) * ms;
  const p = Number(price);
  const s = Number(size) || 0;
  if (!Number.isFinite(p)) return candles;
  const last = candles[candles.length - 1];
  if (last && last.ts === bucket) {
    last.h = Math.max(last.h, p);
    last.l = Math.min(last.l, p);
    last.c = p;
    last.v += s;
  } else if (!last || bucket > last.ts) {
    candles.push({ ts: bucket, o: p, h: p, l: p, c: p, v: s });
  }
  return candles;
}

/** Candles built from trades ({ts, price, size}, any order), for when no candle history is served. */
export function candlesFromTrades(trades, interval) {
  const sorted = [...trades].filter((t) => t.ts).sort((a, b) => a.ts - b.ts || a.trade_id - b.trade_id);
  const out = [];
  for (const t of sorted) addTrade(out, interval, t.ts, t.price, t.size);
  return out;
}

/** "Nice" axis ticks between lo and hi, about `count` of them. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const ticks = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(t);
  return ticks;
}
