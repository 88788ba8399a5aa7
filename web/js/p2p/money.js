// P2P money on strings (decimal.js): the fiat a buyer pays for an amount of an asset,
// and their display. Prices and fiat amounts have at most 2 decimals; asset amounts
// at most the asset's `scale` (GET /assets). Never a JS number.

import { decimalsOf, fromUnits, groupThousands, isDecimal, normalize, toUnits } from "../decimal.js";

export const FIAT_DECIMALS = 2;

/**
 * Fiat owed for `amount` of the asset at `price` fiat per whole unit, rounded up to
 * the cent exactly as the server does; null if an input is not a valid decimal for
 * its precision.
 */
export function fiatAmount(price, amount, scale) {
  if (!isDecimal(price) || !isDecimal(amount) || !Number.isInteger(scale) || scale < 0) return null;
  const cents = toUnits(price, FIAT_DECIMALS);
  const units = toUnits(amount, scale);
  if (cents === null || units === null) return null;
  const den = 10n ** BigInt(scale);
  const owed = (cents * units + den - 1n) / den; // ceil: both are >= 0
  return fromUnits(owed, FIAT_DECIMALS);
}

/** "1,234.50 EUR" (fiat strings always show their 2 decimals). */
export function fmtFiat(s, fiat = "") {
  if (!isDecimal(s)) return s ? String(s) : "—";
  const [ip, fp = ""] = normalize(s).split(".");
  const fixed = `${ip}.${fp.padEnd(FIAT_DECIMALS, "0")}`;
  return `${groupThousands(fixed)}${fiat ? ` ${fiat}` : ""}`;
}

/** Asset amount without trailing zeros, grouped: "0.0123 BTC". */
export function fmtAsset(s, asset = "") {
  if (!isDecimal(s)) return s ? String(s) : "—";
  return `${groupThousands(normalize(s))}${asset ? ` ${asset}` : ""}`;
}

/** Too many decimals for `scale`? (e.g. 9 decimals of an 8-decimal asset) */
export function tooPrecise(s, scale) {
  return isDecimal(s) && decimalsOf(s) > scale && toUnits(s, scale) === null;
}
