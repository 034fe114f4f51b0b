"""Integration tests; a package so tests/contrib/django is not imported as `django`."""
