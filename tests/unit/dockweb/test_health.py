"""The /healthz view and `manage.py check`, each in a fresh interpreter (Django settings load once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

CLIENT = """
import json, django
django.setup()
from django.test import Client
r = Client().get("/healthz")
print(json.dumps({"status": r.status_code, "body": json.loads(r.content)}))
"""


def run_python(code_or_args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKWEB_") and k != "DATABASE_URL"}
    full_env.update(DJANGO_SETTINGS_MODULE="dockweb.settings", DOCKWEB_SECRET_KEY="test", **env)
    return subprocess.run([sys.executable, *code_or_args], cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_health_answers_ok_when_the_database_is_reachable(tmp_path):
    r = run_python(["-c", CLIENT], DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3",
                   DOCKWEB_ALLOWED_HOSTS="testserver")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == {"status": 200, "body": {"status": "ok"}}


def test_health_answers_503_when_the_database_is_unreachable(tmp_path):
    r = run_python(["-c", CLIENT], DATABASE_URL=f"sqlite:///{tmp_path}/missing-dir/db.sqlite3",
                   DOCKWEB_ALLOWED_HOSTS="testserver")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    assert result["status"] == 503
    assert result["body"]["status"] == "error"
    assert "unable to open database file" in result["body"]["database"]


def test_django_system_check_passes(tmp_path):
    r = run_python(["manage.py", "check"], DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3")
    assert r.returncode == 0, r.stderr
    assert "no issues" in r.stdout
