"""The configuration module of Celery's "First steps" (``app.config_from_object('celeryconfig')``).

Only the broker line differs: the test database instead of RabbitMQ. The result
backend is left as the docs write it; pgqueue keeps results with the jobs.
"""

import os

broker_url = os.environ["CELERY_DOCS_BROKER"]
result_backend = "rpc://"

task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]
timezone = "Europe/Oslo"
enable_utc = True

# Route a misbehaving task to a dedicated queue.
task_routes = {
    "tasks.add": "low-priority",
}
