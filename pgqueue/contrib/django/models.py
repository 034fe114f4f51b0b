"""No models: pgqueue's tables are its own SQL migrations, not Django's.

This module exists because Django sends ``post_migrate`` only to apps that have
one, and :mod:`pgqueue.contrib.django.apps` uses that signal to bring pgqueue's
schema up to date whenever ``manage.py migrate`` runs.
"""
