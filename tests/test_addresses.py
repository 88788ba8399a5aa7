"""Deposit addresses: BIP-173 bech32, deterministic derivation, typo detection, lookup."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import addresses

# BIP-173 test vectors
VALID = [
    "A12UEL5L",
    "a12uel5l",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11" + "q" * 82 + "c8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
]
INVALID = [
    "\x201nwldj5",  # hrp character out of range
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",  # no separator
    "1pzry9x0s0muk",  # empty hrp
    "x1b4n0q5v",  # invalid data character
    "li1dgmt3",  # too short checksum
    "A1G7SGD8",  # checksum computed with uppercase hrp
    "A12UEL5l",  # mixed case
]


@pytest.mark.parametrize("s", VALID)
def test_bip173_valid_strings_decode(s: str) -> None:
    decoded = addresses.bech32_decode_words(s)
    assert decoded is not None
    assert decoded[0] == s.lower()[: s.lower().rfind("1")]


@pytest.mark.parametrize("s", INVALID)
def test_bip173_invalid_strings_are_rejected(s: str) -> None:
    assert addresses.bech32_decode_words(s) is None


def test_address_is_stable_per_user_and_asset() -> None:
    a = addresses.derive("alice", "BTC", "secret")
    assert a == addresses.derive("alice", "BTC", "secret")
    assert a.startswith("hftx1") and len(a) == 43 and addresses.is_valid(a)
    others = {addresses.derive(u, x, "secret") for u in ("alice", "bob") for x in ("BTC", "USD")}
    assert len(others) == 4
    assert addresses.derive("alice", "BTC", "other secret") != a


@given(st.binary(min_size=20, max_size=20), st.data())
def test_any_single_character_typo_is_caught(payload: bytes, data: st.DataObject) -> None:
    address = addresses.bech32_encode("hftx", payload)
    assert addresses.bech32_decode(address) == ("hftx", payload)
    i = data.draw(st.integers(min_value=5, max_value=len(address) - 1))
    c = data.draw(
        st.sampled_from([c for c in "qpzry9x8gf2tvdw0s3jn54khce6mua7l" if c != address[i]])
    )
    assert not addresses.is_valid(address[:i] + c + address[i + 1 :])


async def test_registered_address_resolves_to_its_owner(redis: Any) -> None:
    address = await addresses.deposit_address(redis, "alice", "BTC")
    assert await addresses.deposit_address(redis, "alice", "BTC") == address
    assert await addresses.resolve(redis, address) == addresses.Owner("alice", "BTC")
    assert await addresses.resolve(redis, address.upper()) == addresses.Owner("alice", "BTC")
    assert await addresses.resolve(redis, addresses.derive("bob", "BTC", "x")) is None
    assert await addresses.resolve(redis, address[:-1] + "x") is None
    assert await addresses.resolve(redis, "not an address") is None
