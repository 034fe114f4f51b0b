"""``celery.contrib.django`` for pgqueue."""
