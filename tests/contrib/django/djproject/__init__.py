"""A tiny Django project for the tests: one app (shop), its tasks, pgqueue's settings."""
