"""Reads of datasets and training jobs."""

from django.db.models import Q, QuerySet
from django.urls import reverse

from registry_mirror.models import ModelVersion
from registry_mirror.origins import OriginLink
from registry_mirror.selectors import mlflow_ui_links

from .models import Dataset, TrainingJob


def training_job_list(*, user=None) -> QuerySet[TrainingJob]:
    """Training jobs, newest first: all of them, or with ``user`` those that user may see."""
    jobs = TrainingJob.objects.select_related("dataset").order_by("-created_at")
    return jobs if user is None else jobs.filter(visible_to(user))


def training_job_get(*, job_id: int, user=None) -> TrainingJob:
    """``TrainingJob.DoesNotExist`` also for another user's job: its existence is not theirs to know."""
    return training_job_list(user=user).get(pk=job_id)


def dataset_list(*, user=None) -> QuerySet[Dataset]:
    datasets = Dataset.objects.order_by("-created_at")
    return datasets if user is None else datasets.filter(visible_to(user, owner="uploaded_by"))


def visible_to(user, *, owner: str = "created_by") -> Q:
    """The rows ``user`` may see: all with ``training.view_all_jobs`` (maintainers), else their own."""
    if user.has_perm("training.view_all_jobs"):
        return Q()
    return Q(**{owner: user}) if user.is_authenticated else Q(pk__in=[])


def model_version_origin_links(version: ModelVersion) -> list[OriginLink]:
    """Admin links to the job that registered ``version`` and its dataset (or a dataset with the same hash)."""
    job = training_job_list().filter(key=version.job_key).first() if version.job_key else None
    dataset: Dataset | None
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


def training_job_links(job: TrainingJob) -> list[tuple[str, str, str]]:
    """``(label, url, text)`` of a job's registered version in the mirror and its run in the MLflow UI."""
    links = []
    version = (
        ModelVersion.objects.filter(name=job.model_name, version=job.registered_version).first()
        if job.registered_version
        else None
    )
    if version is not None:
        links.append(
            (
                "registered version",
                reverse("admin:registry_mirror_modelversion_change", args=[version.pk]),
                str(version),
            )
        )
        ui = mlflow_ui_links(version)
        # The run's page needs its experiment id, which the mirror records (a job only knows the run id).
        links += [(f"MLflow {key}", ui[key], ui[key]) for key in ("run", "version") if key in ui]
    return links


def dataset_storage_name(dataset_id: int, user) -> str | None:
    """The storage name of dataset ``dataset_id`` if ``user`` may see it, else ``None``."""
    return dataset_list(user=user).filter(pk=dataset_id).values_list("file", flat=True).first()
