"""Midnight snapshots, restore, reconciliation (DESIGN.md §6).

- :mod:`snapshots.snapshot`: read every shard atomically, store in PostgreSQL and as
  gzip JSON; ``midnight_snapshot`` is the arq cron job.
- :mod:`snapshots.restore`: rebuild an empty Redis from a snapshot plus the events
  recorded after it; ``canonical_dump`` to compare states.
- :mod:`snapshots.reconcile`: every balance recomputed from the ledger vs Redis.

``python -m snapshots {snapshot,restore,reconcile,dump}``.
"""
