"""The django_signup example project: settings, URLs and the WSGI entry point."""
