"""Celery entry points for the registry mirror: thin wrappers around the sync service."""

from celery import shared_task

from core.errors import MlflowUnavailable


@shared_task(
    acks_late=True,
    autoretry_for=(MlflowUnavailable,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=3,
    ignore_result=True,
)
def registry_mirror_sync_task(model_name: str | None = None) -> None:
    """Sync the mirror from MLflow (one model after a training, everything when beat runs it)."""
    from .services import registry_mirror_sync

    registry_mirror_sync(model_name=model_name)
