"""``manage.py pgq_worker`` and ``manage.py pgq_migrate``."""
