"""dockweb/settings.py: the DOCKWEB_* helpers fail loudly on bad values; DATABASE_URL maps to DATABASES."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

VARS = ("DOCKWEB_DEBUG", "DOCKWEB_SECRET_KEY", "DOCKWEB_ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL",
        "DOCKWEB_CHANNEL_LAYER")


@pytest.fixture
def load_settings(monkeypatch):
    """Import dockweb.settings afresh under the given environment."""
    for name in VARS:
        monkeypatch.delenv(name, raising=False)

    def load(**env: str):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        sys.modules.pop("dockweb.settings", None)
        return importlib.import_module("dockweb.settings")

    yield load
    sys.modules.pop("dockweb.settings", None)


@pytest.fixture
def settings(load_settings):
    return load_settings(DOCKWEB_SECRET_KEY="test-secret")


def test_without_a_secret_key_outside_debug_the_settings_refuse_to_load(load_settings):
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_SECRET_KEY must be set"):
        load_settings()


def test_an_empty_secret_key_is_refused(load_settings):
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_SECRET_KEY"):
        load_settings(DOCKWEB_SECRET_KEY="")


def test_debug_runs_without_a_secret_key(load_settings):
    s = load_settings(DOCKWEB_DEBUG="1")
    assert s.DEBUG is True
    assert s.SECRET_KEY.startswith("django-insecure-")


def test_the_secret_key_comes_from_the_environment(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="s3cret")
    assert s.SECRET_KEY == "s3cret"
    assert s.DEBUG is False


def test_a_misspelt_debug_value_stops_the_settings(load_settings):
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_DEBUG='ture' is not a boolean"):
        load_settings(DOCKWEB_DEBUG="ture")


def test_the_default_database_is_sqlite_in_the_project(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="x")
    db = s.DATABASES["default"]
    assert (db["ENGINE"], db["NAME"]) == ("django.db.backends.sqlite3", str(s.BASE_DIR / "db.sqlite3"))


def test_sqlite_takes_the_write_lock_at_begin_and_waits_for_it(load_settings):
    # web, worker, beat and the events listener share the file: no "database is locked" on a lock upgrade
    options = load_settings(DOCKWEB_SECRET_KEY="x").DATABASES["default"]["OPTIONS"]
    assert options["transaction_mode"] == "IMMEDIATE"
    assert options["timeout"] >= 5
    assert "journal_mode=WAL" in options["init_command"]


def test_postgres_gets_no_sqlite_options(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="x", DATABASE_URL="postgres://u:p@db:5432/dockweb")
    assert s.DATABASES["default"]["OPTIONS"] == {}


def test_an_unknown_channel_layer_is_refused(load_settings):
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_CHANNEL_LAYER='rabbit'"):
        load_settings(DOCKWEB_SECRET_KEY="x", DOCKWEB_CHANNEL_LAYER="rabbit")


def test_redis_url_feeds_celery_and_channels(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="x", REDIS_URL="redis://10.0.0.5:6379/2", DOCKWEB_CHANNEL_LAYER="redis")
    assert s.CELERY_BROKER_URL == "redis://10.0.0.5:6379/2"
    assert s.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] == ["redis://10.0.0.5:6379/2"]


def test_database_url_sets_the_default_database(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="x", DATABASE_URL="postgres://u:p@db:5432/dockweb")
    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert s.DATABASES["default"]["HOST"] == "db"


def test_allowed_hosts_come_from_a_comma_list(load_settings):
    s = load_settings(DOCKWEB_SECRET_KEY="x", DOCKWEB_ALLOWED_HOSTS=" a.example , ,b.example")
    assert s.ALLOWED_HOSTS == ["a.example", "b.example"]


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", " On "])
def test_env_bool_reads_true_words(settings, monkeypatch, value):
    monkeypatch.setenv("DOCKWEB_X", value)
    assert settings.env_bool("DOCKWEB_X", False) is True


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_env_bool_reads_false_words(settings, monkeypatch, value):
    monkeypatch.setenv("DOCKWEB_X", value)
    assert settings.env_bool("DOCKWEB_X", True) is False


def test_env_bool_unset_gives_the_default(settings, monkeypatch):
    monkeypatch.delenv("DOCKWEB_X", raising=False)
    assert settings.env_bool("DOCKWEB_X", True) is True


def test_env_bool_names_the_variable_and_value_it_refuses(settings, monkeypatch):
    monkeypatch.setenv("DOCKWEB_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"DOCKWEB_X='maybe' is not a boolean"):
        settings.env_bool("DOCKWEB_X", False)


def test_env_int_reads_integers_and_refuses_others(settings, monkeypatch):
    monkeypatch.setenv("DOCKWEB_N", " 42 ")
    assert settings.env_int("DOCKWEB_N", 0) == 42
    monkeypatch.setenv("DOCKWEB_N", "4x")
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_N='4x' is not an integer"):
        settings.env_int("DOCKWEB_N", 0)
    monkeypatch.delenv("DOCKWEB_N")
    assert settings.env_int("DOCKWEB_N", 7) == 7


def test_env_str_without_default_requires_the_variable(settings, monkeypatch):
    monkeypatch.delenv("DOCKWEB_S", raising=False)
    with pytest.raises(ImproperlyConfigured, match="DOCKWEB_S must be set"):
        settings.env_str("DOCKWEB_S")
    assert settings.env_str("DOCKWEB_S", "dflt") == "dflt"
    monkeypatch.setenv("DOCKWEB_S", "")
    assert settings.env_str("DOCKWEB_S") == ""


def test_env_list_unset_gives_a_copy_of_the_default(settings, monkeypatch):
    monkeypatch.delenv("DOCKWEB_L", raising=False)
    default = ["a"]
    result = settings.env_list("DOCKWEB_L", default)
    assert result == ["a"] and result is not default


def test_sqlite_url_relative_path_is_under_the_project(settings):
    db = settings.database_from_url("sqlite:///data/x.db", base_dir=Path("/srv/dockweb"))
    assert db == {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/dockweb/data/x.db"}


def test_sqlite_url_with_four_slashes_is_absolute(settings):
    assert settings.database_from_url("sqlite:////var/lib/dockweb/db.sqlite3")["NAME"] == "/var/lib/dockweb/db.sqlite3"


def test_sqlite_url_without_a_path_is_in_memory(settings):
    assert settings.database_from_url("sqlite://")["NAME"] == ":memory:"
    assert settings.database_from_url("sqlite://:memory:")["NAME"] == ":memory:"


def test_postgres_url_gives_every_connection_field(settings):
    db = settings.database_from_url("postgresql://dock%40web:p%3Ass@db.local:6543/dockweb?sslmode=require")
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "dockweb",
        "USER": "dock@web",
        "PASSWORD": "p:ss",
        "HOST": "db.local",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_postgres_url_without_port_leaves_it_to_the_driver(settings):
    assert settings.database_from_url("postgres://u@db/dockweb")["PORT"] == ""


def test_postgres_url_without_a_database_name_is_refused(settings):
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        settings.database_from_url("postgres://u:p@db:5432/")


def test_unsupported_scheme_is_refused_without_showing_the_password(settings):
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'mysql'") as info:
        settings.database_from_url("mysql://root:hunter2@db/dockweb")
    assert "hunter2" not in str(info.value)
    assert "root:***@db" in str(info.value)


def test_bad_port_is_refused(settings):
    with pytest.raises(ImproperlyConfigured, match="bad port"):
        settings.database_from_url("postgres://u:p@db:notaport/dockweb")
