# One image for every service of docker-compose.yml: `pgq migrate`, the workers, `pgq beat`,
# `pgq dashboard`, the example web apps and the SMTP sink. Run alone it prints pgq's help.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs: a local .venv or an embedded Postgres's data directory
# (.pgqueue) in the checkout must not end up in the image.
COPY pyproject.toml README.md ./
COPY pgqueue ./pgqueue
COPY sql ./sql
# dashboard: for pgq dashboard. examples: what the examples import (aiosmtpd, Pillow, fpdf2),
# plus tzdata, so the cron schedule's time zone resolves even without system zone files.
RUN pip install --no-cache-dir ".[dashboard,examples]"
# After the install, so that editing an example does not reinstall the dependencies.
COPY examples ./examples

# Every example's directory is importable, so `--app stack_app:app` finds them all.
ENV PYTHONPATH=/src/examples/stack:/src/examples/signup:/src/examples/thumbnails:/src/examples/csv_import:/src/examples/reports:/src/examples/nightly_cleanup

# Jobs run as an ordinary user, not as root. /data is the shared files volume (images,
# CSV files, thumbnails); made here so that the fresh volume belongs to that user.
RUN useradd --create-home --uid 10001 app && mkdir /data && chown app /data
USER app

WORKDIR /src/examples/stack
CMD ["pgq", "--help"]
