"""Run a Django script in a process of its own on a fresh PostgreSQL test database.

For what an in-process test cannot show on PostgreSQL (threads racing on row locks, the
database pool's connections): the script's body runs after `django.setup()` with a new
test database made from `DATABASE_URL` and dropped afterwards; its last printed line is
JSON, returned as a dict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

from tests.serverproc import PG_URL, ROOT

PRELUDE = """\
import asyncio, json, os, threading, time
os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
import django
django.setup()
from django.db import connection, connections, transaction

connection.creation.create_test_db(verbosity=0, autoclobber=True)
try:
{body}
finally:
    connections.close_all()
    connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
"""
CLEARED = ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH", "TEST_DATABASE_NAME", "DB_THREADS")


def run_on_postgres(body: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Run `body` (Python, any indentation) on a fresh database; its last JSON line."""
    name = f"practalk_script_{uuid.uuid4().hex[:10]}"
    child = {k: v for k, v in os.environ.items() if k not in CLEARED and not k.startswith("PYTEST")}
    child.update(
        TESTING="1",
        VAR_DIR=str(tmp_path),
        PYTHONWARNINGS="ignore",
        DATABASE_URL=f"{PG_URL}/{name}",
        **env,
    )
    script = PRELUDE.format(body=textwrap.indent(textwrap.dedent(body), "    "))
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
