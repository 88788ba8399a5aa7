"""Embedded PostgreSQL: ``initdb`` (once) and ``postgres`` of the ``pgserver`` wheel.

``start_postgres(dir)`` runs it on a loopback port. PostgreSQL refuses to run as
root, so under root it runs as an unprivileged system user (``pgserver``, the same
account the pgserver package creates; created with ``useradd`` when missing),
exactly as ``pgserver.postgres_server`` does.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ops.processes import (
    LOOPBACK,
    START_TIMEOUT,
    EmbeddedError,
    ServerProcess,
    SystemAccount,
    spawn,
    start_on_port,
)

log = logging.getLogger("hftx.embedded")


def pg_bin_dir() -> Path:
    """``pginstall/bin`` of the pgserver wheel (found without importing pgserver)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError("the pgserver package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedError(f"postgres binaries not found in {bin_dir}")
    return bin_dir


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

    def ready() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    server.wait_ready(ready, port, timeout, ("could not bind", "Address already in use"))


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

    def launch(chosen: int) -> ServerProcess:
        argv: list[str | Path] = [
            pg_bin_dir() / "postgres", "-D", data_dir, "-p", str(chosen), "-h", host, "-k", "",
        ]  # fmt: skip
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        return spawn(
            f"postgres:{chosen}",
            argv,
            data_dir.parent / f"{data_dir.name}.log",
            signal.SIGINT,  # "fast" shutdown: roll back open transactions, checkpoint, exit
            run_as=account,
            cwd=data_dir,
        )

    def ready(server: ServerProcess, chosen: int) -> None:
        _postgres_ready(server, Postgres(server, data_dir, host, chosen).url, chosen, timeout)

    server, chosen = start_on_port("postgres", port, host, launch, ready)
    log.info("postgres ready on %s:%d (pid %d, dir %s)", host, chosen, server.pid, data_dir)
    return Postgres(server, data_dir, host, chosen)
