"""Reads of datasets and training jobs."""

from django.db.models import QuerySet

from .models import TrainingJob


def training_job_list() -> QuerySet[TrainingJob]:
    return TrainingJob.objects.select_related("dataset").order_by("-created_at")


def training_job_get(*, job_id: int) -> TrainingJob:
    return training_job_list().get(pk=job_id)
