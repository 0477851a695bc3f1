"""System checks on settings that must agree with each other; ``manage.py check`` and every command run them.

https://docs.djangoproject.com/en/5.2/topics/checks/
"""

from django.conf import settings
from django.core.checks import Error, register


@register("celery")
def celery_time_limits(app_configs, **kwargs):
    """Soft time limit < hard time limit < the broker's visibility timeout.

    The soft limit lets a task clean up before the hard limit kills it; Redis hands a message that is still
    unacknowledged after the visibility timeout to another worker, so a task running longer would run twice.
    """
    soft = getattr(settings, "CELERY_TASK_SOFT_TIME_LIMIT", None)
    hard = getattr(settings, "CELERY_TASK_TIME_LIMIT", None)
    visibility = (getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}).get("visibility_timeout")
    errors = []
    if soft is not None and hard is not None and soft >= hard:
        errors.append(
            Error(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({soft} s) must be below CELERY_TASK_TIME_LIMIT ({hard} s).",
                hint="Lower CELERY_TASK_SOFT_TIME_LIMIT or raise CELERY_TASK_TIME_LIMIT.",
                id="mds.E001",
            )
        )
    if hard is not None and visibility is not None and hard >= visibility:
        errors.append(
            Error(
                f"CELERY_TASK_TIME_LIMIT ({hard} s) must be below the broker's visibility timeout ({visibility} s): "
                "a task still running then is delivered to another worker and runs twice.",
                hint="Raise CELERY_VISIBILITY_TIMEOUT or lower CELERY_TASK_TIME_LIMIT.",
                id="mds.E002",
            )
        )
    return errors


@register("celery")
def heartbeat_timing(app_configs, **kwargs):
    """A heartbeat counts as stale only after several missed beats, or live jobs would be re-queued under load."""
    interval = getattr(settings, "MDS_HEARTBEAT_INTERVAL", None)
    stale_after = getattr(settings, "MDS_HEARTBEAT_STALE_AFTER", None)
    if interval is None or stale_after is None or stale_after >= 3 * interval:
        return []
    return [
        Error(
            f"MDS_HEARTBEAT_STALE_AFTER ({stale_after} s) must be at least 3 x MDS_HEARTBEAT_INTERVAL ({interval} s): "
            "a job whose heartbeat is merely late would be taken from its live execution.",
            hint="Raise MDS_HEARTBEAT_STALE_AFTER or lower MDS_HEARTBEAT_INTERVAL.",
            id="mds.E003",
        )
    ]
