"""P2P key layout: the global indexes in ``{g}`` and the keys in an account's shard.

An offer lives in its owner's shard, a trade (with its escrow and message thread)
in the seller's shard; the global indexes may only over-report (written before the
shard call, cleaned after it or by the sweep).
"""

from __future__ import annotations

from engine import accounts

OFFERS = "{g}:p2p:offers"  # zset: side|asset|fiat|owner|offer id, score created ms
OFFER_OWNER = "{g}:p2p:oid"  # hash: offer id -> owner
TRADE_PARTIES = "{g}:p2p:tid"  # hash: trade id -> seller|buyer
EXPIRY = "{g}:p2p:exp"  # zset: seller|trade id, score payment deadline ms
RESERVATIONS = "{g}:p2p:rsv"  # zset: buyer|offer id|trade id|seller, score ms
DISPUTES = "{g}:p2p:disputes"  # zset: seller|trade id, score ms


def prefix(user: str) -> str:
    return accounts.account_keys(user)[0][:-3]


def offer_key(owner: str, offer_id: str) -> str:
    return f"{prefix(owner)}p2p:o:{offer_id}"


def trade_key(seller: str, trade_id: str) -> str:
    return f"{prefix(seller)}p2p:t:{trade_id}"


def shard(user: str) -> list[str]:
    """KEYS[1..2] of every P2P call: the shard's balances and account stream."""
    p = prefix(user)
    return [p + "bal", p + "ev"]
