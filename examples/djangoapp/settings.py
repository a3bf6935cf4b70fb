"""Settings of the example Django project: production-like (no debug, no sessions, no admin), SQLite."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

DEBUG = False
SECRET_KEY = os.environ.get("DJANGOAPP_SECRET_KEY", "workerbench-example-not-a-secret")
ALLOWED_HOSTS = ["*"]  # a benchmark on loopback; the test corpus sends odd Host values
ROOT_URLCONF = "examples.djangoapp.urls"
WSGI_APPLICATION = "examples.djangoapp.wsgi.application"
INSTALLED_APPS = ["examples.djangoapp"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the JSON write is csrf_exempt, as an API endpoint is
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [HERE / "templates"],
    "APP_DIRS": False,
    "OPTIONS": {
        # Cached loader (Django's default without DEBUG, spelt out): each process compiles a template once.
        "loaders": [("django.template.loaders.cached.Loader", ["django.template.loaders.filesystem.Loader"])],
    },
}]

DB_PATH = Path(os.environ.get("DJANGOAPP_DB") or Path(tempfile.gettempdir()) / "workerbench-djangoapp.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DB_PATH,
        # Every worker process writes: WAL lets readers go on beside a writer, IMMEDIATE takes the write lock
        # at BEGIN (no deadlock-prone lock upgrade), and a writer waits up to 20 s for the lock instead of
        # failing with "database is locked" under load.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
        # Django's default: a connection per request. Its docs advise against persistent connections under ASGI,
        # and SQLite's open is cheap; both interfaces get the same.
        "CONN_MAX_AGE": 0,
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"stderr": {"class": "logging.StreamHandler"}},
           "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}}}
