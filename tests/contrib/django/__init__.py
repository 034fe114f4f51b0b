"""Tests of pgqueue.contrib.django against a real Postgres, with a tiny Django project."""

if __name__ == "django":  # imported as a top-level package: Django itself would be shadowed
    raise ImportError(
        "tests/contrib/__init__.py is missing, so pytest imports tests/contrib/django as the "
        "package 'django' (hiding Django itself): create an empty tests/contrib/__init__.py"
    )
