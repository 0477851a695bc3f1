"""The abstract base every model of the apps inherits."""

from django.db import models


class BaseModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class JobStatus(models.TextChoices):
    """Where a job (training, batch scoring) stands."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    # "success" is the word clients of the original service already parse.
    SUCCEEDED = "success", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# Models of core's packages, imported here so that Django registers them with the app (and its migrations).
from .webhooks.models import WebhookDelivery, WebhookSubscription  # noqa: E402

__all__ = ["BaseModel", "WebhookDelivery", "WebhookSubscription"]
