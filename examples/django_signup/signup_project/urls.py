"""Two endpoints: sign up, and read the welcome e-mail's task back."""

from accounts import views
from django.urls import path

urlpatterns = [
    path("signup", views.signup),
    path("tasks/<str:task_id>", views.task_status),
]
