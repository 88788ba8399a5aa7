"""Exact decimal amounts: wire strings, integer steps of a market's increments.

Prices and sizes travel as decimal strings; arithmetic is done on integers (steps of
``price_increment`` / ``size_increment``) or :class:`fractions.Fraction`, never floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Literal

Amount = str | int | Decimal
"""What the client accepts for a price or size. Floats are refused."""

Rounding = Literal["exact", "down", "up"]


def parse_decimal(value: Amount) -> Decimal:
    """Parse an amount, refusing floats, booleans, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise TypeError(f"amounts must be str, int or Decimal, not {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"invalid decimal {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"invalid decimal {value!r}")
    return number


def to_wire(value: Amount) -> str:
    """The decimal string sent on the wire (strings pass through unchanged)."""
    number = parse_decimal(value)
    return value if isinstance(value, str) else format(number, "f")


def to_fraction(value: Amount) -> Fraction:
    """Exact rational value of an amount."""
    return Fraction(parse_decimal(value))


def format_scaled(units: int, decimals: int) -> str:
    """``units / 10**decimals`` as a fixed-point string with exactly ``decimals`` digits."""
    if decimals <= 0:
        return str(units * 10**-decimals)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def fraction_str(value: Fraction, max_decimals: int = 18) -> str:
    """An exact fraction as a plain decimal string (for logs and display).

    Exact when the value has at most ``max_decimals`` decimals, else rounded down.
    """
    for decimals in range(max_decimals + 1):
        scaled = value * 10**decimals
        if scaled.denominator == 1:
            return format_scaled(scaled.numerator, decimals)
    scaled = value * 10**max_decimals
    return format_scaled(scaled.numerator // scaled.denominator, max_decimals)


@dataclass(frozen=True)
class Grid:
    """A market increment such as ``"0.01"``: converts amounts to and from integer steps.

    Formatting uses the number of decimals written in the increment, which is how the
    exchange renders prices and sizes.
    """

    increment: str

    def __post_init__(self) -> None:
        if parse_decimal(self.increment) <= 0:
            raise ValueError(f"increment must be positive: {self.increment!r}")

    @property
    def decimals(self) -> int:
        exponent = Decimal(self.increment).as_tuple().exponent
        assert isinstance(exponent, int)
        return max(0, -exponent)

    @property
    def step(self) -> Fraction:
        return to_fraction(self.increment)

    def steps(self, value: Amount | Fraction, rounding: Rounding = "exact") -> int:
        """Number of increments in ``value``; ``exact`` raises if it is not aligned."""
        ratio = (value if isinstance(value, Fraction) else to_fraction(value)) / self.step
        if rounding == "down":
            return ratio.numerator // ratio.denominator
        if rounding == "up":
            return -(-ratio.numerator // ratio.denominator)
        if ratio.denominator != 1:
            raise ValueError(f"{value} is not a multiple of {self.increment}")
        return ratio.numerator

    def format(self, steps: int) -> str:
        """The decimal string of ``steps`` increments."""
        units = self.step * steps * 10**self.decimals
        assert units.denominator == 1
        return format_scaled(units.numerator, self.decimals)

    def align(self, value: Amount | Fraction, rounding: Rounding = "down") -> str:
        """``value`` rounded to the grid, as a string."""
        return self.format(self.steps(value, rounding))
