"""Settings, embedded services, release step and supervisor."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as sync_redis
import redis.asyncio as aredis

from engine import functions
from ops import embedded, migrate
from ops.processes import EmbeddedError, free_port
from ops.release import release
from ops.settings import Settings, load_or_create_secret
from ops.supervisor import (
    Entry,
    command_module,
    exec_command,
    parse_procfile,
    split_available,
)
from ops.valkey import start_valkey

ROOT = Path(__file__).resolve().parent.parent
ENV_NAMES = ["REDIS_URL", "DATABASE_URL", "PORT", "HFTX_JWT_SECRET", "HFTX_DATA_DIR"]


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No hftx variables set, cwd in a temp dir; os.environ restored afterwards."""
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("HFTX_") or name in ENV_NAMES:
            del os.environ[name]
    monkeypatch.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


# -------------------------------------------------------------------- settings


def test_settings_defaults_point_at_the_embedded_servers(clean_env: Path) -> None:
    s = Settings()
    assert s.embedded_redis and s.embedded_database
    assert s.redis_url == "redis://127.0.0.1:6390/0"
    assert s.database_url == "postgresql://postgres@127.0.0.1:5490/postgres"
    assert s.port == 9001 and s.demo is False and s.node_id is None
    assert s.data_dir == clean_env / ".hftx"
    assert s.allowed_origins == []


def test_settings_from_environment(clean_env: Path) -> None:
    os.environ.update(
        REDIS_URL="redis://cache:6379/0",
        DATABASE_URL="postgresql://u@db/x",
        PORT="8080",
        HFTX_ALLOWED_ORIGINS="https://a.example/, http://localhost:9001",
        HFTX_DEMO="true",
        HFTX_NODE_ID="12",
        HFTX_JWT_SECRET="s" * 40,
        HFTX_DATA_DIR="data",
    )
    s = Settings()
    assert not s.embedded_redis and not s.embedded_database
    assert (s.redis_url, s.database_url, s.port) == (
        "redis://cache:6379/0",
        "postgresql://u@db/x",
        8080,
    )
    assert s.allowed_origins == ["https://a.example", "http://localhost:9001"]
    assert s.demo is True and s.node_id == 12
    assert s.jwt_secret == "s" * 40
    assert s.data_dir == clean_env / "data"
    assert not (clean_env / "data" / "jwt_secret").exists()  # explicit secret: nothing written


def test_settings_reject_an_out_of_range_node_id(clean_env: Path) -> None:
    os.environ["HFTX_NODE_ID"] = "1024"
    with pytest.raises(ValueError, match="node_id"):
        Settings()


def test_generated_jwt_secret_is_persisted_and_private(clean_env: Path) -> None:
    first = Settings().jwt_secret
    assert len(first) >= 32
    path = clean_env / ".hftx" / "jwt_secret"
    assert path.read_text().strip() == first
    assert path.stat().st_mode & 0o777 == 0o600
    assert Settings().jwt_secret == first
    assert load_or_create_secret(clean_env / "other") != first


# ------------------------------------------------------------------ supervisor


def test_repository_procfile() -> None:
    entries = parse_procfile((ROOT / "Procfile").read_text())
    assert {e.name: e.command for e in entries} == {
        "web": "python -m api",
        "worker": "arq --custom-log-dict ops.logconfig.ARQ workers.jobs.WorkerSettings",
        "settler": "python -m workers.settler",
        "drain": "python -m workers.drain",
        "release": "python -m ops.release",
    }


@pytest.mark.parametrize("text", ["web python -m api", "web:", ": cmd", "a b: cmd", "x: a\nx: b"])
def test_bad_procfiles_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Procfile line"):
        parse_procfile(text)


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("python -m api", "api"),
        ("python3 -m workers.drain --batch 10", "workers.drain"),
        ("arq workers.jobs.WorkerSettings", "workers.jobs"),
        ("arq --watch workers workers.jobs.WorkerSettings", "workers.jobs"),
        ("arq --custom-log-dict ops.logconfig.ARQ workers.jobs.WorkerSettings", "workers.jobs"),
        ("uvicorn api.app:app", None),
    ],
)
def test_command_module(command: str, module: str | None) -> None:
    assert command_module(command) == module


@pytest.mark.parametrize(
    ("command", "given"),
    [
        ("python -m api", "exec python -m api"),
        (
            "arq --watch 'a b' workers.jobs.WorkerSettings",
            "exec arq --watch 'a b' workers.jobs.WorkerSettings",
        ),
        ("python -c 'import time; time.sleep(1)'", "exec python -c 'import time; time.sleep(1)'"),
        ("python -m ops.release && python -m api", "python -m ops.release && python -m api"),
        ("sleep 1; echo done", "sleep 1; echo done"),
        ("python -m api | tee log", "python -m api | tee log"),
        ("python -m api > log 2>&1", "python -m api > log 2>&1"),
        ("(cd web && python -m api)", "(cd web && python -m api)"),
        ("PORT=1 python -m api", "PORT=1 python -m api"),
        ("exec python -m api", "exec python -m api"),
        ("python -c 'unbalanced", "python -c 'unbalanced"),
    ],
)
def test_a_simple_procfile_command_is_execd_by_its_shell(command: str, given: str) -> None:
    """So that the program, not a shell in between, is the supervisor's child and dies
    with it (its parent-death signal is not inherited through the shell's fork)."""
    assert exec_command(command) == given


def test_missing_modules_are_skipped() -> None:
    entries = [
        Entry("ok", "python -m ops.release"),
        Entry("missing", "python -m hftx_no_such_module"),
        Entry("no_main", "python -m engine"),  # a package without __main__
        Entry("other", "sleep 1"),
    ]
    assert [e.name for e in split_available(entries)] == ["ok", "other"]


def _supervise(
    procfile: str,
    data_dir: Path,
    tmp: Path,
    cwd: Path = ROOT,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``ops.supervisor`` over ``procfile`` with none of our HFTX_ settings (plus
    ``extra_env``), its embedded servers on free ports, in ``cwd``."""
    (tmp / "Procfile").write_text(procfile)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFTX_") and k not in ENV_NAMES}
    env |= {
        "HFTX_DATA_DIR": str(data_dir),
        "HFTX_VALKEY_PORT": str(free_port()),
        "HFTX_PG_PORT": str(free_port()),
        **(extra_env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ops.supervisor", "--procfile", str(tmp / "Procfile")],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return "".join(seen)
    raise AssertionError(f"{needle!r} not seen in:\n{''.join(seen)}")


def test_supervisor_runs_release_first_and_stops_everything_on_sigterm(tmp_path: Path) -> None:
    procfile = (
        "release: python -c \"import os; print('released', os.environ['REDIS_URL'])\"\n"
        "sleeper: python -c \"import os, time; print('up', os.environ['DATABASE_URL'], "
        'flush=True); time.sleep(60)"\n'
        "missing: python -m hftx_no_such_module\n"
    )
    proc = _supervise(procfile, tmp_path / "data", tmp_path)
    try:
        out = _read_until(proc, "sleeper | up postgresql://")
        assert "skipping missing: module hftx_no_such_module does not exist yet" in out
        assert out.index("released redis://") < out.index("sleeper started")
        lock_pid = int((tmp_path / "data" / ".lock").read_text())
        assert lock_pid == proc.pid
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143
    assert "sending SIGTERM to sleeper" in rest
    assert rest.index("sleeper stopped") < rest.index("embedded postgres stopped")
    assert rest.index("embedded postgres stopped") < rest.index("embedded valkey stopped")


def test_supervisor_stops_all_when_one_process_exits(tmp_path: Path) -> None:
    procfile = (
        "release: python -c pass\n"
        'sleeper: python -c "import time; time.sleep(60)"\n'
        'crasher: python -c "import time, sys; time.sleep(0.5); sys.exit(3)"\n'
    )
    proc = _supervise(procfile, tmp_path / "data", tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert "crasher stopped (rc=3)" in out
    assert "sending SIGTERM to sleeper" in out
    assert "embedded valkey stopped" in out


def test_supervisor_stops_all_when_an_embedded_server_dies(tmp_path: Path) -> None:
    """A soak run: kill -9 of the embedded Valkey left every process up, answering 503
    and retrying forever (the server a zombie nobody waited for)."""
    procfile = (
        "release: python -c pass\n"
        "sleeper: python -c \"import time; print('up', flush=True); time.sleep(60)\"\n"
    )
    proc = _supervise(procfile, tmp_path / "data", tmp_path)
    try:
        out = _read_until(proc, "sleeper | up")
        found = re.search(r"valkey ready on \S+ \(pid (\d+)", out)
        assert found, out
        os.kill(int(found.group(1)), signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 1, rest
    assert "embedded valkey exited (code -9): stopping everything" in rest
    assert "sending SIGTERM to sleeper" in rest
    assert rest.index("sleeper stopped") < rest.index("embedded postgres stopped")


def test_supervisor_refuses_a_valkey_left_running_on_its_data_dir(tmp_path: Path) -> None:
    """An orphan of a killed supervisor: one line saying which pid to stop, exit 1, no
    second server on the same append-only file and no traceback."""
    orphan = start_valkey(tmp_path / "data" / "valkey", persistent=True)
    try:
        procfile = "release: python -c pass\nsleeper: sleep 60\n"
        proc = _supervise(procfile, tmp_path / "data", tmp_path)
        out, _ = proc.communicate(timeout=60)
    finally:
        orphan.stop()
    assert proc.returncode == 1, out
    assert f"valkey-server (pid {orphan.process.pid}) already runs on" in out
    assert "Traceback" not in out and "sleeper started" not in out


def test_supervisor_does_not_start_processes_after_a_failed_release(tmp_path: Path) -> None:
    procfile = 'release: python -c "raise SystemExit(5)"\nsleeper: sleep 60\n'
    proc = _supervise(procfile, tmp_path / "data", tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 5, out
    assert "release failed (exit code 5)" in out
    assert "sleeper started" not in out


# ------------------------------------------------------------ embedded services


def test_embedded_services_persist_across_restarts(clean_env: Path) -> None:
    os.environ["HFTX_VALKEY_PORT"] = str(free_port())
    os.environ["HFTX_PG_PORT"] = str(free_port())
    settings = Settings()
    with embedded.EmbeddedServices(settings) as services:
        assert os.environ["REDIS_URL"] == settings.redis_url
        assert os.environ["DATABASE_URL"] == settings.database_url
        r = sync_redis.Redis.from_url(settings.redis_url)
        assert r.config_get("appendonly") == {"appendonly": "yes"}
        r.set("kept", "1")
        r.close()
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (7)")
        exported = {k: os.environ.pop(k) for k in ("REDIS_URL", "DATABASE_URL")}
        with pytest.raises(EmbeddedError, match="in use by another hftx run"):
            embedded.EmbeddedServices(Settings()).start()  # a second run on the same dir
        os.environ.update(exported)
        assert services.valkey is not None and services.postgres is not None
        ports = (services.valkey.port, services.postgres.port)
    assert not any(_port_open(p) for p in ports)
    assert "REDIS_URL" not in os.environ and "DATABASE_URL" not in os.environ

    restarted = Settings()
    started = time.monotonic()
    with embedded.EmbeddedServices(restarted):
        assert time.monotonic() - started < 5
        r = sync_redis.Redis.from_url(restarted.redis_url)
        assert r.get("kept") == b"1"
        r.close()
        with psycopg.connect(restarted.database_url) as conn:
            assert conn.execute("SELECT x FROM kept").fetchall() == [(7,)]


def test_tools_on_the_data_dir_find_servers_that_moved_port(clean_env: Path) -> None:
    """The configured Valkey port is taken, so the run's Valkey moves; a tool started
    on the same data dir without REDIS_URL (``api.admin``, ``analytics``) finds it."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    os.environ["HFTX_VALKEY_PORT"] = str(taken.getsockname()[1])
    os.environ["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/x"  # only Valkey embedded
    try:
        with embedded.EmbeddedServices(Settings()) as services:
            assert services.valkey is not None
            assert services.valkey.port != taken.getsockname()[1]
            del os.environ["REDIS_URL"]  # a tool started from another shell
            tool = Settings()
            assert tool.redis_url == services.valkey.url and tool.embedded_redis
            assert tool.database_url == "postgresql://nobody@127.0.0.1:1/x"
            assert sync_redis.Redis.from_url(tool.redis_url).ping()
        assert Settings().redis_url == f"redis://127.0.0.1:{taken.getsockname()[1]}/0"
    finally:
        taken.close()


def test_embedded_services_leave_given_urls_alone(clean_env: Path) -> None:
    os.environ["REDIS_URL"] = "redis://127.0.0.1:1/0"
    os.environ["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/x"
    with embedded.EmbeddedServices(Settings()) as services:
        assert services.valkey is None and services.postgres is None
        assert os.environ["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert not (clean_env / ".hftx" / ".lock").exists()


# --------------------------------------------------------------------- release


@pytest.mark.pg
async def test_release_loads_migrates_and_seeds_idempotently(
    redis_real: aredis.Redis, valkey_url: str, pg_url: str
) -> None:
    await redis_real.function_delete("hftx")
    name = f"release_{uuid.uuid4().hex[:12]}"
    database_url = migrate.create_database(pg_url, name)
    try:
        first = await release(valkey_url, database_url)
        assert first.library_version == functions.library_source()[0]
        assert await functions.loaded_version(redis_real) == first.library_version
        assert first.migrations_applied == [m.name for m in migrate.load_migrations()]
        assert first.markets_created == ["BTC-USD", "ETH-USD", "SOL-USD"]
        assert first.skipped == []

        again = await release(valkey_url, database_url)
        assert again.migrations_applied == [] and again.markets_created == []
        assert migrate.applied(database_url) == first.migrations_applied
    finally:
        migrate.drop_database(pg_url, name)


@pytest.mark.cluster
@pytest.mark.pg
async def test_release_on_a_cluster(
    redis_cluster: object, valkey_cluster_urls: list[str], pg_url: str
) -> None:
    name = f"release_{uuid.uuid4().hex[:12]}"
    database_url = migrate.create_database(pg_url, name)
    try:
        report = await release(valkey_cluster_urls[1], database_url)
    finally:
        migrate.drop_database(pg_url, name)
    assert report.markets_created == ["BTC-USD", "ETH-USD", "SOL-USD"]
    for url in valkey_cluster_urls:
        async with aredis.Redis.from_url(url) as node:
            assert await functions.loaded_version(node) == report.library_version


def test_embedded_services_move_off_a_taken_port(clean_env: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        os.environ["HFTX_VALKEY_PORT"] = str(taken)
        os.environ["DATABASE_URL"] = "postgresql://unused@127.0.0.1:1/x"
        with embedded.EmbeddedServices(Settings()) as services:
            assert services.valkey is not None and services.valkey.port != taken
            assert os.environ["REDIS_URL"] == services.valkey.url
            with sync_redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
                assert client.ping()


def test_supervisor_children_get_the_dotenv_variables_the_environment_lacks(
    tmp_path: Path,
) -> None:
    """README: configuration comes from the environment or a ``.env`` file; settings
    read from the environment only (the address secret, the limits) must see it too."""
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(
        "HFTX_ADDRESS_SECRET=from-dotenv\nHFTX_SETTLE_WAIT=0.25\nHFTX_NODE_ID=7\n"
    )
    show = "import os; print('got', *(os.environ.get(k) for k in {names!r}), flush=True)"
    names = ["HFTX_ADDRESS_SECRET", "HFTX_SETTLE_WAIT", "HFTX_NODE_ID"]
    procfile = f'release: python -c pass\nshow: python -c "{show.format(names=names)}"\n'
    proc = _supervise(
        procfile, tmp_path / "data", tmp_path, cwd=work,
        extra_env={"HFTX_NODE_ID": "9", "PYTHONPATH": str(ROOT)},  # the environment wins
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert "| got from-dotenv 0.25 9" in out, out
