"""Django settings for battloop, read from environment variables.

BATTLOOP_DATA_DIR       where the embedded instance keeps its database, lake and reports
                        (default: ./battloop-data)
BATTLOOP_DATABASE_URL   database URL; default is SQLite (WAL) in the data directory.
                        postgresql://user@host:5432/name switches to PostgreSQL.
BATTLOOP_SECRET_KEY     secret for sessions and signatures (a per-instance key is
                        generated into the data directory when unset)
BATTLOOP_DEBUG          1 to enable debug pages (never in production)
BATTLOOP_ALLOWED_HOSTS  comma-separated host names (default: localhost,127.0.0.1)
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

DATA_DIR = Path(os.environ.get("BATTLOOP_DATA_DIR", Path.cwd() / "battloop-data")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    env_key = os.environ.get("BATTLOOP_SECRET_KEY")
    if env_key:
        return env_key
    key_file = DATA_DIR / "secret.key"
    if not key_file.exists():
        # One key per instance, kept with the data it protects.
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("BATTLOOP_DEBUG", "0") == "1"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("BATTLOOP_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "battloop.web",
    "battloop.registry",
    "battloop.telemetry",
    "battloop.health",
    "battloop.triage",
    "battloop.logistics",
    "battloop.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "battloop.web.problems.RejectNulBytesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "battloop.config.urls"
WSGI_APPLICATION = "battloop.config.wsgi.application"
ASGI_APPLICATION = "battloop.config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

_default_sqlite = f"sqlite:///{DATA_DIR / 'battloop.sqlite3'}"
DATABASE_URL = os.environ.get("BATTLOOP_DATABASE_URL", _default_sqlite)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers (the web app) work while an import writes; IMMEDIATE makes
        # every transaction take the write lock up front, so two concurrent imports
        # serialize instead of failing half-way with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 60,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-battloop.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOCALE_PATHS = [Path(__file__).resolve().parents[1] / "web" / "locale"]

# Chart and interaction assets come from npm packages installed at setup (make install),
# served by WhiteNoise: nothing is fetched from the internet at run time.
_ASSETS = Path(__file__).resolve().parents[1] / "web" / "assets" / "node_modules"
STATICFILES_DIRS = [
    (prefix, str(_ASSETS / sub)) for prefix, sub in (("vendor/echarts", "echarts/dist"), ("vendor/htmx", "htmx.org/dist"))
    if (_ASSETS / sub).is_dir()
]
WHITENOISE_USE_FINDERS = True  # also serve from the finders, so tests and `serve` need no collectstatic step
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
BATTLOOP_IMPORTS_INLINE = os.environ.get("BATTLOOP_IMPORTS_INLINE", "0") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BATTLOOP_LOG_LEVEL", "WARNING")},
}
