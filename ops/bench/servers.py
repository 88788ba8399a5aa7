"""Throwaway servers for benchmarks (the same launcher as the tests)."""

from ops.throwaway import postgres_server, valkey_server

bench_valkey = valkey_server

__all__ = ["bench_valkey", "postgres_server", "valkey_server"]
