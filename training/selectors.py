"""Reads of datasets and training jobs."""

from django.db.models import QuerySet
from django.urls import reverse

from registry_mirror.models import ModelVersion
from registry_mirror.origins import OriginLink

from .models import Dataset, TrainingJob


def training_job_list() -> QuerySet[TrainingJob]:
    return TrainingJob.objects.select_related("dataset").order_by("-created_at")


def training_job_get(*, job_id: int) -> TrainingJob:
    return training_job_list().get(pk=job_id)


def model_version_origin_links(version: ModelVersion) -> list[OriginLink]:
    """Admin links to the job that registered ``version`` and its dataset (or a dataset with the same hash)."""
    job = training_job_list().filter(key=version.job_key).first() if version.job_key else None
    if job is not None:
        dataset = job.dataset
    elif version.dataset_sha256:
        dataset = Dataset.objects.filter(sha256=version.dataset_sha256).first()
    else:
        dataset = None
    links = []
    if job is not None:
        links.append(OriginLink("training job", str(job), reverse("admin:training_trainingjob_change", args=[job.pk])))
    if dataset is not None:
        links.append(OriginLink("dataset", str(dataset), reverse("admin:training_dataset_change", args=[dataset.pk])))
    return links
