"""Real servers for tests (see ``ops.throwaway``)."""

from ops.throwaway import postgres_server, valkey_cluster, valkey_server

__all__ = ["postgres_server", "valkey_cluster", "valkey_server"]
