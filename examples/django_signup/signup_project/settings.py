"""Settings of the django_signup example: one Postgres for Django's tables and pgqueue's jobs.

``DATABASE_URL`` says which (default: ``postgresql://postgres@127.0.0.1:5432/django_signup``;
psycopg parses it, so a ``host=... dbname=...`` string works too).
pgqueue needs no setting of its own: it lives in the same database, in the
schema ``pgqueue``, and ``manage.py migrate`` creates it.
"""

import os
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-signup-example-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "pgqueue.contrib.django",  # pgq_worker, pgq_migrate; tasks.py autodiscovery
    "accounts",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "signup_project.urls"
WSGI_APPLICATION = "signup_project.wsgi.application"

_db = conninfo_to_dict(
    os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/django_signup"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.get("dbname", "django_signup"),
        "USER": _db.get("user", ""),
        "PASSWORD": _db.get("password", ""),
        "HOST": _db.get("host", ""),
        "PORT": _db.get("port", ""),
    }
}

# Django's task API, run by pgqueue workers (manage.py pgq_worker).
TASKS = {
    "default": {
        "BACKEND": "pgqueue.contrib.django.TasksBackend",
        "QUEUES": ["default", "emails"],
    }
}
# pgqueue's own settings; everything else keeps its default (see pgqueue.Settings).
PGQUEUE = {"QUEUES": ["default", "emails"]}

# "Sending" writes each e-mail to a file in sent_emails/: no mail server needed.
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("SIGNUP_MAIL_DIR", str(BASE_DIR / "sent_emails"))
DEFAULT_FROM_EMAIL = "welcome@example.com"

USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
