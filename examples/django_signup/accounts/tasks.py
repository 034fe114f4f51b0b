"""The welcome e-mail, written against Django's standard task API; pgqueue workers run it."""

from django.contrib.auth import get_user_model
from django.core.mail import send_mail

try:
    from django.tasks import task  # Django 6 and newer
except ImportError:  # Django 4.2 to 5.2: the backport, pip install django-tasks
    from django_tasks import task


@task(queue_name="emails")
def send_welcome_email(user_id: int) -> dict[str, str]:
    """Runs in the worker. The job carries the id only: the row is the truth at run time."""
    user = get_user_model().objects.get(pk=user_id)
    subject = "Welcome aboard!"
    send_mail(subject, f"Hello {user.email}, thanks for signing up.", None, [user.email])
    return {"to": user.email, "subject": subject}
