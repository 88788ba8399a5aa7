// Exact decimal-string arithmetic for money. Prices and sizes travel as strings
// (PROTOCOL.md); everything here works on strings and BigInt, never on floats.

const DEC_RE = /^\d+(\.\d+)?$/;

/** True if `s` is an unsigned decimal string like "1", "0.5", "30000.10". */
export function isDecimal(s) {
  return typeof s === "string" && DEC_RE.test(s);
}

/** Number of fractional digits written in `s` ("0.0100" -> 4). */
export function decimalsOf(s) {
  const i = s.indexOf(".");
  return i < 0 ? 0 : s.length - i - 1;
}

/** Significant fractional digits of an increment ("0.010" -> 2, "1" -> 0). */
export function incrementDecimals(inc) {
  return decimalsOf(normalize(inc));
}

/** Canonical form: no leading zeros in the integer part, no trailing fractional zeros. */
export function normalize(s) {
  let [ip, fp = ""] = s.split(".");
  ip = ip.replace(/^0+(?=\d)/, "");
  fp = fp.replace(/0+$/, "");
  return fp ? `${ip}.${fp}` : ip;
}

/** Integer units of `s` at `scale` decimals; null if `s` has non-zero digits beyond. */
export function toUnits(s, scale) {
  const [ip, fp = ""] = s.split(".");
  if (fp.length > scale && /[1-9]/.test(fp.slice(scale))) return null;
  const frac = fp.slice(0, scale).padEnd(scale, "0");
  return BigInt(ip + frac);
}

/** Decimal string of `units` (BigInt, may be negative) at `scale` decimals. */
export function fromUnits(units, scale) {
  const neg = units < 0n;
  let digits = (neg ? -units : units).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return neg ? `-${digits}` : digits;
}

/** -1, 0 or 1 comparing two unsigned decimal strings by value. */
export function cmpDec(a, b) {
  const scale = Math.max(decimalsOf(a), decimalsOf(b));
  const x = toUnits(a, scale);
  const y = toUnits(b, scale);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** True if the decimal string is zero ("0", "0.000"). */
export function isZero(s) {
  return !/[1-9]/.test(s);
}

/** True if `s` is an exact multiple of the (positive) increment `inc`. */
export function isMultipleOf(s, inc) {
  const scale = Math.max(decimalsOf(s), decimalsOf(inc));
  const step = toUnits(inc, scale);
  return step > 0n && toUnits(s, scale) % step === 0n;
}

function binary(a, b, op, extraScale = 0) {
  const scale = Math.max(decimalsOf(a), decimalsOf(b));
  return fromUnits(op(toUnits(a, scale), toUnits(b, scale)), scale + extraScale);
}

export function addDec(a, b) {
  return normalize(binary(a, b, (x, y) => x + y));
}

/** a - b; may return a negative string ("-0.5"). */
export function subDec(a, b) {
  const r = binary(a, b, (x, y) => x - y);
  return r.startsWith("-") ? `-${normalize(r.slice(1))}` : normalize(r);
}

/** Exact product of two decimal strings. */
export function mulDec(a, b) {
  const sa = decimalsOf(a);
  const sb = decimalsOf(b);
  return normalize(fromUnits(toUnits(a, sa) * toUnits(b, sb), sa + sb));
}

/** Largest multiple of `inc` that is <= `s` (s >= 0). */
export function floorToIncrement(s, inc) {
  const scale = Math.max(decimalsOf(s), decimalsOf(inc));
  const step = toUnits(inc, scale);
  const v = toUnits(s, scale);
  return fromUnits(v - (v % step), scale);
}

/** floor(num / den) to a multiple of `inc`; null if den is zero. */
export function divFloorToIncrement(num, den, inc) {
  const scale = Math.max(decimalsOf(num), decimalsOf(den), decimalsOf(inc));
  const n = toUnits(num, scale);
  const d = toUnits(den, scale);
  const step = toUnits(inc, scale);
  if (d === 0n || step === 0n) return null;
  // q (in units of `scale`) = n * 10^scale / d, then floored to the step.
  const q = (n * 10n ** BigInt(scale)) / d;
  return fromUnits(q - (q % step), scale);
}

/** `pct` percent (integer 0..100) of `s`, floored to `inc`. */
export function percentOf(s, pct, inc) {
  const scale = Math.max(decimalsOf(s), decimalsOf(inc));
  const v = (toUnits(s, scale) * BigInt(pct)) / 100n;
  const step = toUnits(inc, scale);
  return fromUnits(v - (v % step), scale);
}

/**
 * Fixed-decimals rendering for display: pads with zeros, truncates extra digits
 * (values on the wire already carry the market's precision, so nothing is lost).
 */
export function toFixedDec(s, decimals) {
  if (!isDecimal(s)) return s ?? "";
  const [ip, fp = ""] = s.split(".");
  const intPart = ip.replace(/^0+(?=\d)/, "");
  if (decimals <= 0) return intPart;
  return `${intPart}.${fp.slice(0, decimals).padEnd(decimals, "0")}`;
}

/** Thousands separators on the integer part of a decimal string (display only). */
export function groupThousands(s) {
  if (typeof s !== "string") return "";
  const neg = s.startsWith("-");
  const body = neg ? s.slice(1) : s;
  const [ip, fp] = body.split(".");
  const grouped = ip.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-" : "") + (fp !== undefined ? `${grouped}.${fp}` : grouped);
}
