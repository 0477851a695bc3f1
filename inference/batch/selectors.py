"""Reads of batch jobs shared by the API and the admin."""

from django.db.models import QuerySet

from ..models import BatchJob


def batch_jobs_visible(user) -> QuerySet[BatchJob]:
    """The batch jobs ``user`` may follow, newest first: their own, or every one with ``view_all_batch_jobs``."""
    jobs = BatchJob.objects.order_by("-created_at")
    if user.is_superuser or user.has_perm("inference.view_all_batch_jobs"):
        return jobs
    return jobs.filter(created_by=user)
