"""What the tasks and the transaction tests write."""

from django.db import models


class Signup(models.Model):
    email = models.EmailField(unique=True)
    welcomed = models.BooleanField(default=False)

    class Meta:
        app_label = "shop"
