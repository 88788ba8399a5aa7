"""Example bots: a market maker and a random-flow trader.

Each is an async function taking a logged-in :class:`client.HftxClient`
(``run_market_maker``, ``run_random_trader``) and a module runnable with
``python -m client.bots.<name>``.
"""
