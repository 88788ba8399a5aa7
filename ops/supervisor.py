"""Run the whole exchange on one machine: ``python -m ops.supervisor [--demo] [NAME ...]``.

1. starts the embedded Valkey / PostgreSQL when ``REDIS_URL`` / ``DATABASE_URL`` are
   unset (``ops.embedded``) and exports their URLs to every child;
2. runs the ``release`` entry of the Procfile once, to completion (a failure stops
   everything);
3. runs the other Procfile entries with honcho's ``Manager`` (prefixed, coloured
   output). When any of them exits, all the others are stopped and the supervisor
   exits with its code: nothing is restarted behind your back. SIGINT / SIGTERM
   stop the children (SIGTERM to each process group, SIGKILL after 5 s). An
   embedded server that exits (killed, crashed) ends the run the same way, exit
   code 1: the processes would otherwise answer 503 and retry forever;
4. stops the embedded servers last.

If the supervisor itself is killed (``kill -9``, the OOM killer), nothing it started
lives on (Linux): each process gets SIGKILL and each embedded server its stop signal
from the kernel (parent-death signals), so the next run finds the port and the data
dir free instead of orphans still serving, settling and draining.

The children get our environment plus what ``.env`` in the working directory sets
and the environment does not.

An entry whose Python module does not exist (yet) is skipped with a log line.
``NAME ...`` limits the run to those entries (``release`` always runs).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import honcho.process

from ops.embedded import EmbeddedServices
from ops.processes import EmbeddedError, die_with_parent
from ops.settings import Settings, get_settings

log = logging.getLogger("hftx.supervisor")

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = ROOT / "Procfile"
RELEASE = "release"
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_SHELL_OPERATORS = frozenset("();<>|&")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    command: str


def parse_procfile(text: str) -> list[Entry]:
    """``name: command`` lines; blank lines and ``#`` comments ignored; names unique."""
    entries: list[Entry] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        name, command = name.strip(), command.strip()
        if not sep or not name or not command or not name.replace("_", "").isalnum():
            raise ValueError(f"Procfile line {number}: expected 'name: command', got {raw!r}")
        if any(e.name == name for e in entries):
            raise ValueError(f"Procfile line {number}: duplicate process name {name!r}")
        entries.append(Entry(name, command))
    return entries


def command_module(command: str) -> str | None:
    """The Python module a Procfile command runs, if it is one we can tell.

    ``python -m pkg.mod ...`` -> ``pkg.mod``;
    ``arq [options] pkg.mod.WorkerSettings`` -> ``pkg.mod``.
    """
    argv = shlex.split(command)
    if not argv:
        return None
    program = Path(argv[0]).name
    if program.startswith("python") and "-m" in argv[1:-1]:
        return argv[argv.index("-m") + 1]
    if program == "arq":
        targets = [a for a in argv[1:] if _DOTTED.fullmatch(a)]
        if targets:
            return targets[-1].rsplit(".", 1)[0]
    return None


def runnable_module(module: str) -> bool:
    """Whether ``module`` exists; a package also needs a ``__main__`` to run with -m."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{module}.__main__") is not None
        return True
    except (ImportError, ValueError) as exc:
        log.warning("cannot resolve module %s: %s", module, exc)
        return False


def split_available(entries: Sequence[Entry]) -> list[Entry]:
    """The entries whose module exists; each missing one is logged and skipped."""
    available: list[Entry] = []
    for entry in entries:
        module = command_module(entry.command)
        if module is not None and not runnable_module(module):
            log.warning(
                "skipping %s: module %s does not exist yet (%s)", entry.name, module, entry.command
            )
            continue
        available.append(entry)
    return available


def child_env(settings: Settings, services: EmbeddedServices, *, demo: bool) -> dict[str, str]:
    """The environment of every child: ours, then the variables of ``.env`` in the
    working directory that ours lacks (as honcho and foreman do: several settings are
    read from the environment only, e.g. ``HFTX_ADDRESS_SECRET``, ``HFTX_NODE_ID``,
    the limits), the service URLs, the venv first on PATH."""
    from dotenv import dotenv_values

    env = dict(os.environ)
    for name, value in dotenv_values(".env").items():
        if value is not None:
            env.setdefault(name, value)
    env.update(services.env)
    env["PORT"] = str(settings.port)
    env["PYTHONUNBUFFERED"] = "1"
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")]) if env.get("PATH") else bin_dir
    if demo:
        env["HFTX_DEMO"] = "1"
    return env


def run_release(entry: Entry, env: dict[str, str]) -> int:
    log.info("release: %s", entry.command)
    return subprocess.run(entry.command, shell=True, env=env, cwd=ROOT).returncode


class ServerWatch:
    """Ends the run (SIGTERM to ourselves: honcho stops every process) when an
    embedded server is no longer running."""

    def __init__(self, services: EmbeddedServices, interval: float = 0.5) -> None:
        self.services = services
        self.interval = interval
        self.exited: list[tuple[str, int | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="server-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            exited = self.services.exited()
            if exited:
                for name, code in exited:
                    log.error("embedded %s exited (code %s): stopping everything", name, code)
                self.exited = exited
                os.kill(os.getpid(), signal.SIGTERM)
                return


def exec_command(command: str) -> str:
    """``command`` as given to ``sh -c``, with ``exec`` in front when it is one simple
    command, so that the shell becomes the program: the program is then the direct
    child of the supervisor's process for it, and its parent-death signal (which a
    fork does not inherit) is its own. A command with shell operators, or that begins
    with a variable assignment or ``exec``, is left as it is."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # unbalanced quotes: let the shell say so
        return command
    if (
        not words
        or "=" in words[0]
        or words[0] == "exec"
        or any(w and set(w) <= _SHELL_OPERATORS for w in words)
    ):
        return command
    return f"exec {command}"


class _Program(honcho.process.Popen):
    """The ``sh -c`` of a Procfile entry, ``exec``'ing its program when it can, which
    gets SIGKILL when its parent (the fork of the supervisor running it) dies."""

    def __init__(self, cmd: str, **kwargs: Any) -> None:
        super().__init__(exec_command(cmd), preexec_fn=die_with_parent(signal.SIGKILL), **kwargs)


class SupervisedProcess(honcho.process.Process):
    """honcho's ``Process`` (run by honcho in a fork of the supervisor), made to die
    with the supervisor: the fork gets SIGKILL when the supervisor dies, the program
    (``exec``'d by its shell) SIGKILL when the fork dies. Without it a ``kill -9`` of
    the supervisor, or of its process group, left web, settler, drain and worker
    running in their own sessions, holding the port and reconnecting to the next run's
    servers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._child_ctor = _Program
        self._supervisor = os.getpid()

    def run(self, events: Any = None, ignore_signals: bool = False) -> None:
        set_signal = die_with_parent(signal.SIGKILL)
        if set_signal is not None:
            set_signal()
            if os.getppid() != self._supervisor:  # it died before we could ask
                os._exit(1)
        super().run(events, ignore_signals)


def run_processes(
    entries: Sequence[Entry], env: dict[str, str], services: EmbeddedServices | None = None
) -> int:
    """Run ``entries`` until one exits, an embedded server of ``services`` exits, or we
    are signalled; their exit code (1 for a server that exited)."""
    from honcho.manager import Manager

    manager = Manager()
    manager._process_ctor = SupervisedProcess
    for entry in entries:
        manager.add_process(entry.name, entry.command, env=env, cwd=str(ROOT))
    watch = ServerWatch(services) if services is not None else None
    if watch is not None:
        watch.start()
    try:
        manager.loop()
    finally:
        if watch is not None:
            watch.stop()
    if watch is not None and watch.exited:
        return 1
    return int(manager.returncode or 0)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ops.supervisor", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--demo", action="store_true", help="demo mode (sets HFTX_DEMO=1)")
    parser.add_argument(
        "--procfile", type=Path, default=PROCFILE, help="default: the repository's Procfile"
    )
    parser.add_argument(
        "names", nargs="*", help="only these Procfile entries (release always runs)"
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.demo:
        settings.demo = True
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s supervisor %(levelname)s %(message)s"
    )
    entries = parse_procfile(args.procfile.read_text())
    unknown = set(args.names) - {e.name for e in entries}
    if unknown:
        parser.error(f"not in {args.procfile}: {', '.join(sorted(unknown))}")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        with EmbeddedServices(settings) as services:
            return _serve(args, settings, entries, services)
    except EmbeddedError as exc:  # a server that cannot start: say why, no traceback
        log.error("%s", exc)
        return 1


def _serve(
    args: argparse.Namespace,
    settings: Settings,
    entries: Sequence[Entry],
    services: EmbeddedServices,
) -> int:
    """Release, then the long-running processes, with the embedded servers up."""
    env = child_env(settings, services, demo=args.demo)
    available = split_available(entries)
    release = [e for e in available if e.name == RELEASE]
    if release:
        code = run_release(release[0], env)
        if code != 0:
            log.error("release failed (exit code %d); stopping", code)
            return code
    else:
        log.warning("no runnable release entry: Lua library, migrations and seed not applied")
    processes = [
        e for e in available if e.name != RELEASE and (not args.names or e.name in args.names)
    ]
    if not processes:
        log.warning("no long-running process to start; embedded services up until Ctrl-C")
        for name, value in services.env.items():
            log.info("%s=%s", name, value)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
        return 0
    log.info("web on http://%s:%d (data in %s)", settings.host, settings.port, settings.data_dir)
    return run_processes(processes, env, services)


if __name__ == "__main__":
    sys.exit(main())
