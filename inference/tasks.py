"""Celery entry points of serving's monitoring (daily, by beat) and live trials: thin wrappers around the services."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def monitoring_reports_record_task() -> None:
    """Record the last day's drift and live performance of every version that served predictions in it."""
    from .monitoring import monitoring_reports_record

    monitoring_reports_record()


@shared_task(acks_late=True, ignore_result=True)
def prediction_log_prune_task() -> None:
    """Delete logged predictions older than ``MDS_PREDICTION_LOG_DAYS`` days."""
    from .monitoring import prediction_log_prune

    prediction_log_prune()


@shared_task(acks_late=True, ignore_result=True)
def trial_evaluate_task(trial_id: int) -> None:
    """Evaluate a running trial after feedback reached it (and decide, as its policy says)."""
    from .trials.services import trial_evaluate

    trial_evaluate(trial_id=trial_id)


@shared_task(acks_late=True, ignore_result=True)
def trials_evaluate_task() -> None:
    """Evaluate every running trial (beat)."""
    from .trials.services import trials_evaluate_running

    trials_evaluate_running()
