# One image for every pgqueue service in docker-compose.yml: `pgq migrate`, `pgq worker`
# and the example signup web app. Run alone it prints pgq's help.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package and the example need: a local .venv or an embedded Postgres's data
# directory (.pgqueue) in the checkout must not end up in the image.
COPY pyproject.toml README.md ./
COPY pgqueue ./pgqueue
COPY sql ./sql
COPY examples ./examples
RUN pip install --no-cache-dir .

# Jobs run as an ordinary user, not as root.
RUN useradd --create-home --uid 10001 app
USER app

# `pgq worker --app signup_app:app` imports signup_app from the working directory.
WORKDIR /src/examples/signup
CMD ["pgq", "--help"]
