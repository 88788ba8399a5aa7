"""Process plumbing for the embedded servers: ports, child processes, errors.

Every server is a child process of the caller in its own session (a Ctrl-C on the
terminal does not reach it; the owner stops it, last), and on Linux it receives
its stop signal if the owner dies, so a killed test run leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("hftx.embedded")

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
PORT_ATTEMPTS = 5


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


class PortInUse(EmbeddedError):
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


# ------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class SystemAccount:
    name: str
    uid: int
    gid: int


def die_with_parent(sig: int) -> Callable[[], None] | None:
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

    def wait_ready(
        self, ready: Callable[[], bool], port: int, timeout: float, bind_errors: tuple[str, ...]
    ) -> None:
        """Poll ``ready()`` until it is true. PortInUse when the server exited and its
        log shows one of ``bind_errors``; EmbeddedError when it exited otherwise, or
        was not ready within ``timeout`` seconds (it is stopped then)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                tail = self.log_tail()
                if any(marker in tail for marker in bind_errors):
                    raise PortInUse(f"port {port} is taken")
                raise EmbeddedError(f"{self.name} exited at start:\n{tail}")
            if ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedError(
                    f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.01)

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


def spawn(
    name: str,
    argv: Sequence[str | Path],
    log_path: Path,
    stop_signal: int,
    *,
    run_as: SystemAccount | None = None,
    cwd: Path | None = None,
) -> ServerProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    account: dict[str, Any] = {}
    if run_as is not None:
        account = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(stop_signal),
            **account,
        )
    return ServerProcess(name, proc, log_path, stop_signal)


def start_on_port(
    name: str,
    port: int | None,
    host: str,
    launch: Callable[[int], ServerProcess],
    ready: Callable[[ServerProcess, int], None],
) -> tuple[ServerProcess, int]:
    """``launch(port)`` then ``ready(server, port)``; with ``port=None`` on free ports,
    trying another when the chosen one was taken meanwhile (``ready`` raises
    PortInUse). A server that does not become ready is stopped."""
    attempts = 1 if port is not None else PORT_ATTEMPTS
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        server = launch(chosen)
        try:
            ready(server, chosen)
        except PortInUse:
            server.stop()
            if port is not None:
                raise
            continue
        except BaseException:
            server.stop()
            raise
        return server, chosen
    raise EmbeddedError(f"no free port for {name} after {attempts} attempts")
