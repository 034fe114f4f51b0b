"""``celery.contrib`` for pgqueue: the parts a Celery project imports."""
