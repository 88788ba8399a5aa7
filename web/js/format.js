// Display formatting helpers (no money math: see decimal.js).

import { groupThousands, toFixedDec, incrementDecimals, isDecimal } from "./decimal.js";

export function pad2(n) {
  return String(n).padStart(2, "0");
}

/** Local HH:MM:SS of a millisecond timestamp. */
export function timeOf(ts) {
  if (!ts) return "";
  const d = new Date(Number(ts));
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** Local YYYY-MM-DD HH:MM:SS. */
export function dateTimeOf(ts) {
  if (!ts) return "";
  const d = new Date(Number(ts));
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${timeOf(ts)}`;
}

/** Price string with the market's price decimals and thousands grouping. */
export function fmtPrice(market, s) {
  if (!isDecimal(s)) return s ?? "—";
  return groupThousands(toFixedDec(s, market ? incrementDecimals(market.price_increment) : 2));
}

/** Size string with the market's size decimals. */
export function fmtSize(market, s) {
  if (!isDecimal(s)) return s ?? "—";
  return toFixedDec(s, market ? incrementDecimals(market.size_increment) : 8);
}

/** Any decimal string, grouped; unknown values as a dash. */
export function fmtAmount(s) {
  if (s === undefined || s === null || s === "") return "—";
  return isDecimal(s) ? groupThousands(s) : String(s);
}
