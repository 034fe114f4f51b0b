"""WSGI entry point (``gunicorn signup_project.wsgi``); ``manage.py runserver`` uses it too."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signup_project.settings")
application = get_wsgi_application()
