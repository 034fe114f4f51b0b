"""The App as a worker loads it: ``--app pgqueue.contrib.django.worker:app``.

Importing this module sets Django up first (from ``DJANGO_SETTINGS_MODULE``) if
nothing has yet. ``manage.py pgq_worker`` hands this path to ``pgq worker``, so
the child processes of ``--pool processes``, which start afresh and import the
app by path, get a configured Django and every app's ``tasks`` module too. It
also lets the ``pgq`` commands that take ``--app`` work on a Django project::

    DJANGO_SETTINGS_MODULE=mysite.settings pgq beat --app pgqueue.contrib.django.worker:app
"""

from __future__ import annotations

import os

import django
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from pgqueue.contrib.django.application import DjangoApp, get_app

PATH = f"{__name__}:app"

if not apps.ready:
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ImproperlyConfigured(
            f"{PATH} needs Django's settings: set DJANGO_SETTINGS_MODULE (manage.py "
            "pgq_worker does), or configure Django before importing this module"
        )
    django.setup()

app: DjangoApp = get_app()
