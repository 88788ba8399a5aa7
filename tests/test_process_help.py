"""The Procfile's processes and the ops tools: ``--help`` describes them and starts
nothing, and the settler logs at ``HFTX_LOG_LEVEL`` like every other process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# nothing listens on port 1: a tool that tried to connect would fail
UNREACHABLE = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HFTX_") and k != "LOGLEVEL"}
    env.update(HFTX_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO), **extra)
    return env


@pytest.mark.parametrize("module", ["ops.release", "ops.migrate", "workers.settler"])
def test_help_prints_usage_and_connects_to_nothing(module: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        env=_env(tmp_path, **UNREACHABLE),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: python -m {module}")
    assert "Traceback" not in done.stderr


def _settler_log(valkey_url: str, tmp_path: Path, level: str, seconds: float) -> str:
    """stderr of a settler run for at most ``seconds`` (until it logs its start)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.settler"],
        env=_env(tmp_path, REDIS_URL=valkey_url, HFTX_LOG_LEVEL=level, LOGLEVEL="INFO"),
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        os.set_blocking(proc.stderr.fileno(), False)  # type: ignore[union-attr]
        out = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and b"settler started" not in out:
            out += proc.stderr.read() or b""  # type: ignore[union-attr]
            time.sleep(0.05)
            assert proc.poll() is None, out.decode()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    out += proc.stderr.read() or b""  # type: ignore[union-attr]
    return out.decode()


def test_settler_logs_at_hftx_log_level(valkey_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    info = _settler_log(valkey_url, tmp_path, "info", 60)
    assert "hftx.settler INFO settler started" in info
    took = time.monotonic() - started
    # WARNING: the same start is not logged (LOGLEVEL, which it used to read, says INFO)
    quiet = _settler_log(valkey_url, tmp_path, "WARNING", max(3.0, 2 * took))
    assert "settler started" not in quiet


def test_hftx_help_prints_its_whole_header(tmp_path: Path) -> None:
    script = (REPO / "hftx").read_text().splitlines()
    header = []
    for line in script[1:]:  # after the shebang, up to the first line that is no comment
        if not line.startswith("#"):
            break
        header.append(line[2:] if line.startswith("# ") else line[1:])
    done = subprocess.run(
        [str(REPO / "hftx"), "--help"], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == header
    assert "PYTHON=/path/to/python3" in done.stdout


def test_drain_help_names_the_variable_behind_each_option(tmp_path: Path) -> None:
    """README sends readers to ``python -m workers.drain --help`` for these."""
    done = subprocess.run(
        [sys.executable, "-m", "workers.drain", "--help"],
        env=_env(tmp_path, **UNREACHABLE),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    for name, default in [("BATCH", "4000"), ("WRITERS", "2"), ("CLAIM_IDLE_MS", "5000")]:
        assert f"HFTX_DRAIN_{name}, default {default})" in text
    assert "(HFTX_DRAIN_TRIM_KEEP_MS, default 600000)" in text


@pytest.mark.parametrize("content", [None, b"", b"not gzip"])
def test_snapshots_restore_of_a_bad_file_is_an_error_line(
    content: bytes | None, valkey_url: str, pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "2026-01-31.json.gz"
    if content is not None:
        path.write_bytes(content)
    done = subprocess.run(
        [sys.executable, "-m", "snapshots", "restore", str(path)],
        env=_env(tmp_path, REDIS_URL=valkey_url, DATABASE_URL=pg_url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
