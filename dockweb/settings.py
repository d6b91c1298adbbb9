"""Django settings for dockweb, read from DOCKWEB_* environment variables through helpers that fail loudly."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    """Return the variable's value, or default; raise when it is unset and there is no default."""
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    """Return the variable as a boolean (1/0, true/false, yes/no, on/off); raise on anything else."""
    value = os.environ.get(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1/0, true/false, yes/no or on/off")


def env_int(name: str, default: int) -> int:
    """Return the variable as an integer; raise when it is not one."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """Return the variable as a comma-separated list, blanks dropped."""
    value = os.environ.get(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str, base_dir: Path = BASE_DIR) -> dict:
    """Turn a DATABASE_URL (sqlite:///path, postgres://user:pass@host:port/name) into a DATABASES entry."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        # sqlite:///db.sqlite3 is relative to the project, sqlite:////var/lib/x.db absolute, sqlite:// in memory.
        path = unquote(parts.path)
        if path in ("", "/", "/:memory:") or parts.netloc == ":memory:":
            name = ":memory:"
        else:
            name = path[1:] if path.startswith("/") else path
            name = str(Path(name) if Path(name).is_absolute() else base_dir / name)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
    if scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL {_redact(url)!r} names no database (…/DBNAME)")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL {_redact(url)!r} has a bad port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(port) if port else "",
            "OPTIONS": dict(parse_qsl(parts.query)),
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL {_redact(url)!r}: unsupported scheme {parts.scheme!r} (use sqlite:// or postgres://)"
    )


def _redact(url: str) -> str:
    """Hide the password of a database URL in error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


DEBUG = env_bool("DOCKWEB_DEBUG", False)
if DEBUG:
    # A fixed development key so sessions survive restarts; never used without DOCKWEB_DEBUG.
    SECRET_KEY = env_str("DOCKWEB_SECRET_KEY", "django-insecure-dockweb-development-only")
else:
    SECRET_KEY = os.environ.get("DOCKWEB_SECRET_KEY", "")
    if not SECRET_KEY:
        raise ImproperlyConfigured("DOCKWEB_SECRET_KEY must be set (or DOCKWEB_DEBUG=1 for development)")

ALLOWED_HOSTS = env_list("DOCKWEB_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    # daphne first: its runserver serves HTTP and websockets through asgi.py.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "dockweb.core",
    "dockweb.accounts",
    "dockweb.hosts",
    "dockweb.containers",
    "dockweb.images",
    "dockweb.volumes",
    "dockweb.backups",
    "dockweb.networks",
    "dockweb.live",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WhiteNoise serves collected static files from Daphne itself: no separate file server on a single host.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dockweb.core.middleware.AuditSourceMiddleware",
]

ROOT_URLCONF = "dockweb.urls"
WSGI_APPLICATION = "dockweb.wsgi.application"
ASGI_APPLICATION = "dockweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env_str("DATABASE_URL", "sqlite:///db.sqlite3"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker, beat and the events listener write to one SQLite file: take the write lock at BEGIN
    # (IMMEDIATE) and wait for it, instead of failing with "database is locked" on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20,
                                       "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("DOCKWEB_STATIC_ROOT", str(BASE_DIR / "staticfiles")))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

# Security: production values come from the environment, so `manage.py check --deploy` can pass behind TLS
# while `./dockweb.sh up` on http://127.0.0.1 still logs in (secure cookies would never be sent over http).
SECURE_COOKIES = env_bool("DOCKWEB_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("DOCKWEB_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DOCKWEB_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DOCKWEB_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DOCKWEB_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("DOCKWEB_CSRF_TRUSTED_ORIGINS", [])
if env_bool("DOCKWEB_BEHIND_TLS_PROXY", False):
    # Only behind a proxy that sets X-Forwarded-Proto itself; otherwise any client could claim https.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The engine of the first host (`manage.py dockweb_init` creates it): the socket `./dockweb.sh up` runs.
ENGINE_URL = env_str("DOCKWEB_ENGINE_URL", "unix://" + env_str("DOCKWEB_ENGINE_SOCKET", "/run/dockweb/engine.sock"))
ENGINE_TIMEOUT = env_int("DOCKWEB_ENGINE_TIMEOUT", 60)
ENGINE_API_VERSION = env_str("DOCKWEB_ENGINE_API_VERSION", "1.44")

# Redis: Celery's broker and the Channels layer. `./dockweb.sh up` starts a private one unless REDIS_URL is set.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6390/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Job rows hold status, progress and log: no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "dockweb"
CELERY_TASK_TIME_LIMIT = env_int("DOCKWEB_JOB_TIME_LIMIT", 3600)
CELERY_TASK_SOFT_TIME_LIMIT = max(CELERY_TASK_TIME_LIMIT - 30, 1)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("DOCKWEB_CELERY_EAGER", False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
RECONCILE_SECONDS = env_int("DOCKWEB_RECONCILE_SECONDS", 60)

_CHANNEL_LAYER = env_str("DOCKWEB_CHANNEL_LAYER", "redis")
if _CHANNEL_LAYER == "redis":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL]}}}
elif _CHANNEL_LAYER == "memory":
    # One process only (tests): groups do not reach other processes.
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    raise ImproperlyConfigured(f"DOCKWEB_CHANNEL_LAYER={_CHANNEL_LAYER!r}: use redis or memory")

# Live terminals: a dropped socket keeps its exec for LIVE_EXEC_GRACE seconds (a socket of the same user may
# resume it); a terminal with no input or output for LIVE_EXEC_IDLE seconds is closed. With LIVE_KEEP_TRANSCRIPTS,
# each session's output is kept under LIVE_TRANSCRIPT_DIR for site admins (the Transcript admin page).
LIVE_EXEC_GRACE = env_int("DOCKWEB_LIVE_EXEC_GRACE", 60)
LIVE_EXEC_IDLE = env_int("DOCKWEB_LIVE_EXEC_IDLE", 30 * 60)
LIVE_KEEP_TRANSCRIPTS = env_bool("DOCKWEB_LIVE_KEEP_TRANSCRIPTS", False)
LIVE_TRANSCRIPT_DIR = Path(env_str("DOCKWEB_LIVE_TRANSCRIPT_DIR", str(BASE_DIR / "var" / "transcripts")))
# Uploaded build contexts wait here for the worker of the host (it runs on the same machine as the web).
BUILD_CONTEXT_DIR = Path(env_str("DOCKWEB_BUILD_CONTEXT_DIR", str(BASE_DIR / "var" / "build-contexts")))
# dockweb's own backup store (backup policies that encrypt keep their archives here or in S3).
BACKUP_DIR = Path(env_str("DOCKWEB_BACKUP_DIR",
                          str(Path(env_str("DOCKWEB_STATE_DIR", "/var/lib/dockweb-control")) / "backups")))

REST_FRAMEWORK = {
    # Token first: an anonymous API call answers 401 naming its scheme (WWW-Authenticate), not a bare 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dockweb.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "dockweb.core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "dockweb API",
    "DESCRIPTION": "The control plane's REST API: containers, images, volumes, jobs, teams, tokens, audit.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema names endpoints, not data: API clients may fetch it before they have a token.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"dockweb": {"handlers": ["console"], "level": env_str("DOCKWEB_LOG_LEVEL", "INFO")}},
}
