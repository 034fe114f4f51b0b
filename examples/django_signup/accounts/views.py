"""``POST /signup`` writes the user and enqueues the welcome e-mail in one transaction;
``GET /tasks/<id>`` reads the e-mail's task back through Django's task API."""

import re

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from accounts.tasks import send_welcome_email

try:
    from django.tasks.exceptions import TaskResultDoesNotExist  # Django 6 and newer
except ImportError:  # Django 4.2 to 5.2, with the django-tasks backport
    from django_tasks.exceptions import TaskResultDoesNotExist

# Deliberately loose: the point of the example is the queue, not e-mail validation.
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class SignupFailed(Exception):
    """Stands for any error after the enqueue: a failed write, a bug, a timeout."""


@csrf_exempt  # an API for curl; an HTML form would carry Django's CSRF token instead
@require_POST
def signup(request: HttpRequest) -> JsonResponse:
    email = request.POST.get("email", "").strip()
    if not EMAIL.match(email):
        return JsonResponse({"error": "give a plausible email=..."}, status=400)
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=email, email=email)
            # On Django's connection, inside this transaction: no on_commit needed.
            result = send_welcome_email.enqueue(user.pk)
            if request.POST.get("fail"):  # to watch the rollback: curl -d fail=1 ...
                raise SignupFailed("failed on purpose, after the enqueue")
    except IntegrityError:
        return JsonResponse({"error": f"{email} has already signed up"}, status=409)
    except SignupFailed as exc:
        # Rolled back: no user row and no job, so no e-mail for a signup that never was.
        return JsonResponse({"error": str(exc), "kept": "nothing"}, status=500)
    return JsonResponse({"user_id": user.pk, "task_id": result.id}, status=202)


@require_GET
def task_status(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        result = send_welcome_email.get_result(task_id)
    except TaskResultDoesNotExist:
        return JsonResponse({"error": f"no task {task_id}"}, status=404)
    body = {"id": result.id, "status": result.status, "enqueued_at": result.enqueued_at,
            "finished_at": result.finished_at}
    if result.status == "SUCCESSFUL":
        body["return_value"] = result.return_value
    if result.errors:  # the last line of the worker's traceback: "LookupError: ..."
        body["error"] = result.errors[-1].traceback.strip().splitlines()[-1]
    return JsonResponse(body)
