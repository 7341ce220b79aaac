"""Bench machinery: a fresh database, servers pinned to their own core, people and sessions.

The bench process is the load client. It pins itself to the last CPU and starts every
server (daphne, the bare baseline, the fake model) from a short window in which it is
pinned to the CPU meant for that server, so the child and all its threads inherit it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.serverproc import DaphneServer  # noqa: E402

# Limits raised so they never interfere with a measurement.
UNLIMITED_ENV = {
    "AI_DAILY_LIMIT": "1000000",
    "MESSAGES_PER_10S": "1000000",
    "SOCKET_FRAMES_PER_SECOND": "1000000",
    "SOCKET_FRAMES_BURST": "1000000",
    "MAX_SOCKETS_PER_USER": "1000000",
    "AI_MAX_RETRIES": "0",
    "LOG_LEVEL": "WARNING",
    "TESTING": "1",
    "DEBUG": "0",
}


def _cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


CPUS = _cpus()
# Servers on the first CPU, the load client (and the fake model) on the last one.
SERVER_CPUS: set[int] | None = {CPUS[0]} if len(CPUS) >= 2 else None
CLIENT_CPUS: set[int] | None = {CPUS[-1]} if len(CPUS) >= 2 else None


def pin_self_to_client_cpu() -> None:
    """Pin the bench (load client) to its own CPU, away from the servers."""
    if CLIENT_CPUS is not None:
        os.sched_setaffinity(0, CLIENT_CPUS)


@contextlib.contextmanager
def spawn_pinned(cpus: set[int] | None) -> Iterator[None]:
    """Children started inside this block run on `cpus` (affinity is inherited at fork)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(proc: psutil.Process) -> float:
    """CPU time of a process, all its threads, in seconds.

    Read from the scheduler's nanosecond counters (/proc/<pid>/task/*/schedstat) where
    available: psutil's cpu_times() counts in 10 ms ticks, too coarse for one reply.
    """
    total = 0
    try:
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        total = 0
    if total:
        return total / 1e9
    times = proc.cpu_times()
    return times.user + times.system


@dataclass
class CpuMeter:
    """CPU used by some processes between start() and stop(), as seconds and % of one core."""

    procs: list[psutil.Process]
    _cpu0: float = 0.0
    _t0: float = 0.0
    seconds: float = 0.0
    wall: float = 0.0

    def start(self) -> CpuMeter:
        self._cpu0 = sum(cpu_seconds(p) for p in self.procs)
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.seconds = sum(cpu_seconds(p) for p in self.procs) - self._cpu0
        self.wall = time.monotonic() - self._t0
        return self

    @property
    def percent(self) -> float:
        return 100.0 * self.seconds / self.wall if self.wall > 0 else 0.0


class Budget:
    """The run's time budget: parts ask how much is left and shrink or skip."""

    def __init__(self, seconds: float) -> None:
        self.started = time.monotonic()
        self.seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def left(self) -> float:
        return self.seconds - self.elapsed


# ---------------------------------------------------------------------------- environment


class BenchEnv:
    """A fresh SQLite database in a temporary folder, and Django set up against it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="practalk-bench-"))
        self.sqlite_path = self.dir / "bench.sqlite3"
        self.base_env = {
            **UNLIMITED_ENV,
            "SQLITE_PATH": str(self.sqlite_path),
            "VAR_DIR": str(self.dir),
            "DJANGO_SETTINGS_MODULE": "project.settings",
        }
        self.servers: list[Any] = []

    def migrate(self) -> None:
        """Create the schema (and the shipped personas) in a subprocess."""
        env = {**os.environ, **self.base_env}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )

    def setup_django(self) -> None:
        """Django in this process, on the same database (for data set-up and checks)."""
        os.environ.update(self.base_env)
        os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost,testserver"
        import django

        django.setup()

    def start_app(self, extra: dict[str, str] | None = None) -> AppServer:
        """The real app under daphne on loopback, pinned to the server CPU."""
        env = {**self.base_env, **(extra or {})}
        server = DaphneServer(env)
        with spawn_pinned(SERVER_CPUS):
            server.start(timeout=60)
        assert server.proc is not None
        app = AppServer(server, psutil.Process(server.proc.pid))
        self.servers.append(app)
        return app

    def close(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.stop()
        with contextlib.suppress(OSError):
            for path in sorted(self.dir.glob("*"), reverse=True):
                path.unlink()
            self.dir.rmdir()


@dataclass
class AppServer:
    """One daphne process serving the app."""

    daphne: DaphneServer
    proc: psutil.Process

    @property
    def port(self) -> int:
        return self.daphne.port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, conversation_id: Any) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/chat/{conversation_id}/"

    def stop(self, *, kill: bool = False) -> None:
        import signal

        self.daphne.stop(signal.SIGKILL if kill else None)
        log = self.daphne.log
        with contextlib.suppress(OSError):
            log.unlink()

    def errors(self) -> list[str]:
        """The exceptions daphne logged, one line each (a bench run should have none)."""
        try:
            lines = self.daphne.output().splitlines()
        except OSError:
            return []
        found: list[str] = []
        in_traceback = False
        for line in lines:
            if line.startswith("Traceback"):
                in_traceback = True
            elif in_traceback and line and not line.startswith((" ", "\t")):
                in_traceback = False
                if not line.startswith(("During handling", "The above exception")):
                    found.append(line.strip()[:200])
            elif " ERROR " in line:
                found.append(line.split(" ERROR ", 1)[1].strip()[:200])
            elif "took too long to shut down and was killed" in line:
                # daphne cancelled a consumer still busy 10 s after its page closed: its
                # disconnect clean-up may not have run.
                found.append("daphne killed a consumer that took too long to shut down")
        return list(dict.fromkeys(found))


@dataclass
class FakeModel:
    """The fake OpenAI-compatible server, in its own process on the client CPU."""

    proc: subprocess.Popen[str]
    base_url: str
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.proc.pid)

    @classmethod
    def start(cls) -> FakeModel:
        with spawn_pinned(CLIENT_CPUS):
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.fakes.fake_openai", "--port", "0", "--tokens", "5"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("http"):
            proc.kill()
            raise RuntimeError(f"fake model did not start: {line!r}")
        return cls(proc, line)

    @property
    def root(self) -> str:
        return self.base_url.rsplit("/v1", 1)[0]

    def records(self) -> list[dict[str, Any]]:
        """Every request the fake saw (times are time.monotonic() seconds)."""
        with urllib.request.urlopen(self.root + "/_fake/requests", timeout=30) as response:
            return json.loads(response.read())

    def reset(self) -> None:
        request = urllib.request.Request(self.root + "/_fake/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def last_user_text(record: dict[str, Any]) -> str:
    """The last user message of a recorded chat request."""
    body = record.get("body") or {}
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else ""
    return ""


def raise_fd_limit(want: int) -> int:
    """Raise the soft open-files limit (1,000 sockets need headroom); returns the new limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


@dataclass
class Ctx:
    """What every part of the bench gets."""

    env: BenchEnv
    fake: FakeModel
    report: Any  # bench.report.Report
    quick: bool
    budget: Budget

    def app_env(self, **extra: str) -> dict[str, str]:
        """Environment for a daphne serving the app against the fake model."""
        return {"OPENAI_BASE_URL": self.fake.base_url, "OPENAI_API_KEY": "bench", **extra}


def start_baseline(model_url: str, model_client: str = "raw") -> tuple[subprocess.Popen[str], str]:
    """The bare websockets server (bench/baseline.py), pinned to the server CPU."""
    with spawn_pinned(SERVER_CPUS):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.baseline",
                "--model-url",
                model_url,
                "--model-client",
                model_client,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("ws://"):
        proc.kill()
        raise RuntimeError(f"baseline did not start: {line!r}")
    return proc, line


def stop_process(proc: subprocess.Popen[Any]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


class NoiseMonitor:
    """CPU used on this machine by processes that are not the bench's (other people's work).

    Samples twice a second: all CPUs' busy time minus the CPU time of the bench process and
    its children. A benchmark on a shared 2-core machine is only as good as this number.
    """

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="noise", daemon=True)
        self.samples: list[tuple[float, float]] = []  # (time, other processes' % of a core)
        self._me = psutil.Process()

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def _ours(self, last: dict[int, float]) -> float:
        """CPU seconds our processes used since the last call.

        psutil's cpu_times (not the per-thread schedstat sum) because it never goes down
        when a thread exits; 10 ms ticks are plenty for half-second samples.
        """
        used = 0.0
        procs = [self._me]
        with contextlib.suppress(psutil.Error):
            procs += self._me.children(recursive=True)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                now = times.user + times.system
                used += max(0.0, now - last.get(proc.pid, 0.0))
                last[proc.pid] = now
        return used

    def _run(self) -> None:
        last: dict[int, float] = {}
        self._ours(last)
        busy, t = self._busy(), time.monotonic()
        while not self._stop.wait(self.interval):
            ours = self._ours(last)
            busy2, t2 = self._busy(), time.monotonic()
            other = max(0.0, (busy2 - busy) - ours)
            self.samples.append((t2, 100.0 * other / (t2 - t)))
            busy, t = busy2, t2

    def start(self) -> NoiseMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def between(self, start: float, end: float) -> tuple[float, float]:
        """Mean and max % of a core used by other processes in a time window."""
        values = [v for t, v in self.samples if start <= t <= end]
        if not values:
            return 0.0, 0.0
        return sum(values) / len(values), max(values)
