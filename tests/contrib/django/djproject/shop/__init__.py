"""The test project's only app: sign-ups, and tasks of both APIs (pgqueue's and Django's)."""
