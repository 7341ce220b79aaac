"""Start the real app under daphne in a subprocess (websockets included), for tests and benches."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The PostgreSQL server of the scale-out tests (a fresh database is made on it per run).
PG_URL = os.environ.get("TWO_PROCESS_PG_URL", "postgresql://postgres@127.0.0.1:5432")


def database_env() -> dict[str, str]:
    """What a server subprocess needs to use this test run's database (SQLite or PostgreSQL)."""
    from django.db import connection

    name = str(connection.settings_dict["NAME"])
    if connection.vendor == "postgresql":
        # The suite run against PostgreSQL (DATABASE_URL set): its test database, not a file.
        return {"DATABASE_URL": f"{os.environ['DATABASE_URL'].rsplit('/', 1)[0]}/{name}"}
    return {"SQLITE_PATH": name}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaphneServer:
    """One daphne process serving project.asgi on loopback."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(tempfile.mkstemp(prefix="daphne-", suffix=".log")[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> DaphneServer:
        env = {**os.environ, "TESTING": "1", "DEBUG": "0", "PYTHONUNBUFFERED": "1", **self.env}
        env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
        cmd = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(self.port),
            "project.asgi:application",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health/", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int | None = None) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if sig is not None:
            self.proc.send_signal(sig)
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def reachable(host: str, port: int) -> bool:
    """Whether something listens on host:port."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def manage(*args: str, env: dict[str, str]) -> str:
    """Run `manage.py` with env in the checkout; its standard output."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@dataclass
class Cluster:
    """Daphne processes on one fresh PostgreSQL database and one Redis (with a key prefix)."""

    servers: list[DaphneServer]
    data: dict[str, Any]
    env: dict[str, str]
    prefix: str


@contextlib.contextmanager
def postgres_redis_cluster(
    *, name: str, redis_url: str, env: dict[str, str], setup: str, processes: int = 2
) -> Iterator[Cluster]:
    """`processes` daphnes sharing a new database `practalk_<name>_<tag>` and Redis.

    `setup` is a `manage.py shell` script run after migrating; its last printed line is JSON
    and becomes `Cluster.data`. `env` may use `{prefix}` (the run's unique key prefix). The
    database is dropped and the prefix's keys deleted afterwards.
    """
    # These services run on every machine of this kind and in CI: missing is a failure.
    assert reachable("127.0.0.1", 5432), "PostgreSQL must run on 127.0.0.1:5432"
    assert reachable("127.0.0.1", 6379), "Redis must run on 127.0.0.1:6379"
    import psycopg
    import redis

    tag = secrets.token_hex(4)
    db_name = f"practalk_{name}_{tag}"
    prefix = f"practalk{name.replace('_', '')}{tag}"
    own = {
        "DATABASE_URL": f"{PG_URL}/{db_name}",
        "REDIS_URL": redis_url,
        "CHANNEL_LAYER_PREFIX": prefix,
        "TESTING": "1",
        "DEBUG": "0",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        **{key: value.format(prefix=prefix) for key, value in env.items()},
    }
    child_env = {**os.environ, **own}
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    servers: list[DaphneServer] = []
    try:
        manage("migrate", "--noinput", "-v", "0", env=child_env)
        data = json.loads(manage("shell", "-c", setup, env=child_env).strip().splitlines()[-1])
        servers = [DaphneServer(own) for _ in range(processes)]
        for server in servers:
            server.start()
        yield Cluster(servers, data, child_env, prefix)
    finally:
        for server in servers:
            server.stop()
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        r = redis.Redis.from_url(redis_url)
        for key in r.scan_iter(f"*{prefix}*", count=1000):
            r.delete(key)
        r.close()
