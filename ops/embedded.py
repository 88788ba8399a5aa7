"""The embedded Valkey and PostgreSQL a local run needs, and ``python -m ops.embedded``.

``EmbeddedServices`` starts them (persistent, under the data dir) with the
launchers of ``ops.valkey`` and ``ops.postgres``; the tests use those launchers
directly for throwaway servers (``ops.throwaway``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from ops.postgres import Postgres, start_postgres
from ops.processes import EmbeddedError, PortInUse, port_is_free
from ops.settings import RUN_URLS_FILE, Settings, get_settings
from ops.valkey import Valkey, start_valkey

log = logging.getLogger("hftx.embedded")
_S = TypeVar("_S")


class EmbeddedServices:
    """The embedded servers a local run needs, persistent under the data dir.

    Starts Valkey (AOF fsynced as ``HFTX_VALKEY_APPENDFSYNC`` says, ``<data dir>/valkey``)
    when ``REDIS_URL`` is unset and
    PostgreSQL (``<data dir>/pg``) when ``DATABASE_URL`` is unset, on the configured
    ports (``HFTX_VALKEY_PORT`` 6390, ``HFTX_PG_PORT`` 5490) or any free port if
    those are taken, and exports ``REDIS_URL`` / ``DATABASE_URL`` into
    ``os.environ`` (until ``stop()``) so that child processes see them. A lock
    file keeps a second run off the same data dir. ``stop()`` (or leaving the
    ``with`` block, or SIGTERM inside it) stops what was started, PostgreSQL first.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.valkey: Valkey | None = None
        self.postgres: Postgres | None = None
        self._lock_fd: int | None = None
        self._previous_sigterm: signal._HANDLER | None = None
        self._saved_env: dict[str, str | None] = {}

    @property
    def env(self) -> dict[str, str]:
        """The variables exported for children."""
        return {
            "REDIS_URL": self.settings.redis_url,
            "DATABASE_URL": self.settings.database_url,
            "HFTX_DATA_DIR": str(self.settings.data_dir),
        }

    def start(self) -> EmbeddedServices:
        s = self.settings
        if s.embedded_redis or s.embedded_database:
            s.data_dir.mkdir(parents=True, exist_ok=True)
            self._lock_data_dir(s.data_dir)
        try:
            if s.embedded_redis:
                self.valkey = _on_preferred_port(
                    "valkey",
                    s.valkey_port,
                    lambda port: start_valkey(
                        s.data_dir / "valkey",
                        port=port,
                        persistent=True,
                        appendfsync=s.valkey_appendfsync,
                    ),
                )
                s.redis_url = self.valkey.url
            if s.embedded_database:
                self.postgres = _on_preferred_port(
                    "postgres",
                    s.pg_port,
                    lambda port: start_postgres(s.data_dir / "pg", port=port, durable=True),
                )
                s.database_url = self.postgres.url
        except BaseException:
            self.stop()
            raise
        self._saved_env = {name: os.environ.get(name) for name in self.env}
        os.environ.update(self.env)
        self._write_run_urls()
        return self

    def _write_run_urls(self) -> None:
        """Tell tools on the same data dir where the started servers are (removed at stop)."""
        urls = {}
        if self.valkey is not None:
            urls["REDIS_URL"] = self.settings.redis_url
        if self.postgres is not None:
            urls["DATABASE_URL"] = self.settings.database_url
        if urls:
            path = self.settings.data_dir / RUN_URLS_FILE
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(urls) + "\n")
            tmp.replace(path)

    def stop(self) -> None:
        """Stop what was started (idempotent)."""
        try:
            if self.postgres is not None:
                self.postgres.stop()
                log.info("embedded postgres stopped")
        finally:
            try:
                if self.valkey is not None:
                    self.valkey.stop()
                    log.info("embedded valkey stopped")
            finally:
                if self.valkey is not None or self.postgres is not None:
                    (self.settings.data_dir / RUN_URLS_FILE).unlink(missing_ok=True)
                self._unlock()
                self._restore_env()

    def exited(self) -> list[tuple[str, int | None]]:
        """``(name, exit code)`` of each started server that is no longer running."""
        out: list[tuple[str, int | None]] = []
        for name, server in (("valkey", self.valkey), ("postgres", self.postgres)):
            if server is not None and not server.process.alive():
                out.append((name, server.process.proc.returncode))
        return out

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def __enter__(self) -> EmbeddedServices:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None

    def _lock_data_dir(self, data_dir: Path) -> None:
        import fcntl

        fd = os.open(data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EmbeddedError(
                f"{data_dir} is in use by another hftx run (lock {data_dir / '.lock'}); "
                "stop it or set HFTX_DATA_DIR to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _on_preferred_port(name: str, port: int, start: Callable[[int | None], _S]) -> _S:
    """``start(port)``, or ``start(None)`` (any free port) if ``port`` is taken."""
    if port_is_free(port):
        try:
            return start(port)
        except PortInUse:
            pass  # taken between the check and the bind
    log.warning("port %d is taken; embedded %s uses a free port", port, name)
    return start(None)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ops.embedded``: run only the embedded servers until Ctrl-C / SIGTERM."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ops.embedded", description=main.__doc__)
    parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(name)s %(message)s")
    with EmbeddedServices(settings) as services:
        for name, value in services.env.items():
            print(f"export {name}={value}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
