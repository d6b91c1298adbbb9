"""`manage.py check --deploy` is clean with production settings given through the environment."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

PRODUCTION = {
    "DOCKWEB_DEBUG": "0",
    "DOCKWEB_SECRET_KEY": secrets.token_urlsafe(50),
    "DOCKWEB_ALLOWED_HOSTS": "dockweb.example.org",
    "DOCKWEB_SECURE_COOKIES": "1",
    "DOCKWEB_SSL_REDIRECT": "1",
    "DOCKWEB_HSTS_SECONDS": "31536000",
    "DOCKWEB_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DOCKWEB_HSTS_PRELOAD": "1",
}


def check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("DOCKWEB_") and k != "DATABASE_URL"}
    full.update(DJANGO_SETTINGS_MODULE="dockweb.settings", DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", **env)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    r = check_deploy(tmp_path, **PRODUCTION)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "System check identified no issues (0 silenced)." in r.stdout


def test_check_deploy_complains_without_them(tmp_path):
    r = check_deploy(tmp_path, DOCKWEB_SECRET_KEY=PRODUCTION["DOCKWEB_SECRET_KEY"])
    assert r.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in r.stderr + r.stdout
