"""DJANGO_SETTINGS_MODULE of the test project's subprocesses; the DSN comes from the test."""

import os

from tests.contrib.django.djproject.config import DSN_VARIABLE, project_settings

globals().update(project_settings(os.environ[DSN_VARIABLE]))
