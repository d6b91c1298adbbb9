"""The control-plane unit tests pass on a real PostgreSQL server too: run them again against a throwaway cluster."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.unit.dockweb.support import REPO, postgres_server


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("DOCKWEB_TEST_DATABASE_URL", "").startswith("postgres"),
                    reason="this is the PostgreSQL run itself")
def test_the_control_plane_unit_tests_pass_on_postgresql():
    with postgres_server() as url:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
        env["DOCKWEB_TEST_DATABASE_URL"] = url
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                            "tests/unit/dockweb"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary, summary


def test_the_tests_use_the_database_they_were_given(db):
    from django.db import connection

    url = os.environ.get("DOCKWEB_TEST_DATABASE_URL", "sqlite://")
    assert connection.vendor == ("postgresql" if url.startswith("postgres") else "sqlite")
