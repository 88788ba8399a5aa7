"""Deposit addresses: one stable bech32 address per (user, asset).

An address is ``bech32("hftx", HMAC-SHA256(secret, "user|asset")[:20])`` (BIP-173
checksum, so a typo is caught before any lookup). The pure part (encode, decode,
derive) has no I/O; :func:`deposit_address` registers the address in ``{g}:addr``
(address -> ``user|asset``) and :func:`resolve` looks it up.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

from engine import keys

HRP = "hftx"
ADDR_KEY = keys.GLOBAL_ADDRESSES
_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
_DEV_SECRET = "hftx-dev-address-secret"


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convertbits(
    data: bytes | list[int], frombits: int, tobits: int, pad: bool
) -> list[int] | None:
    acc, bits, out = 0, 0, []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            return None
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or ((acc << (tobits - bits)) & maxv):
        return None
    return out


def bech32_encode(hrp: str, payload: bytes) -> str:
    """BIP-173 bech32 string of ``payload`` under human-readable part ``hrp``."""
    data = _convertbits(payload, 8, 5, True)
    assert data is not None
    checksum = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    data += [(checksum >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data)


def bech32_decode_words(s: str) -> tuple[str, list[int]] | None:
    """``(hrp, 5-bit words)`` of a string with a valid BIP-173 checksum, else None."""
    if not 8 <= len(s) <= 90 or (s.lower() != s and s.upper() != s):
        return None
    if any(ord(c) < 33 or ord(c) > 126 for c in s):
        return None
    s = s.lower()
    sep = s.rfind("1")
    if sep < 1 or sep + 7 > len(s):
        return None
    hrp, rest = s[:sep], s[sep + 1 :]
    if any(c not in _CHARSET for c in rest):
        return None
    data = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + data) != 1:
        return None
    return hrp, data[:-6]


def bech32_decode(s: str) -> tuple[str, bytes] | None:
    """``(hrp, payload)`` of a valid bech32 string, or None (bad checksum, mixed case...)."""
    decoded = bech32_decode_words(s)
    if decoded is None:
        return None
    payload = _convertbits(decoded[1], 5, 8, False)
    return None if payload is None else (decoded[0], bytes(payload))


def is_valid(address: str) -> bool:
    """True when ``address`` is a well-formed hftx address (checksum included)."""
    decoded = bech32_decode(address)
    return decoded is not None and decoded[0] == HRP and len(decoded[1]) == 20


def derive(user: str, asset: str, secret: str) -> str:
    """The deposit address of ``user`` for ``asset`` (deterministic, pure)."""
    mac = hmac.new(secret.encode(), f"{user}|{asset}".encode(), hashlib.sha256).digest()
    return bech32_encode(HRP, mac[:20])


def address_secret() -> str:
    """Server secret for address derivation (``HFTX_ADDRESS_SECRET``)."""
    return os.environ.get("HFTX_ADDRESS_SECRET", _DEV_SECRET)


@dataclass(frozen=True, slots=True)
class Owner:
    user: str
    asset: str


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


async def deposit_address(redis: Any, user: str, asset: str, secret: str | None = None) -> str:
    """The user's stable address for ``asset``, registered so that it resolves."""
    address = derive(user, asset, secret or address_secret())
    await redis.hsetnx(ADDR_KEY, address, f"{user}|{asset}")
    return address


async def resolve(redis: Any, address: str) -> Owner | None:
    """The owner of a registered address; None when invalid or unknown."""
    if not is_valid(address):
        return None
    value = await redis.hget(ADDR_KEY, address.lower())
    if value is None:
        return None
    user, _, asset = _text(value).rpartition("|")
    return Owner(user, asset)
