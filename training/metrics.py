"""Training jobs as Prometheus metrics, read from the database at scrape time.

Jobs run in Celery worker processes that no web process shares memory or metric files with; the database is
what they all share, so every web or inference process reports the same numbers whichever one is scraped.
"""

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum

from .models import TrainingJob

# Seconds: a small CSV trains in a few, a 40k-row forest in about a minute, the task time limit is 35 minutes.
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
FINISHED = (TrainingJob.Status.SUCCEEDED, TrainingJob.Status.FAILED)


class TrainingJobCollector:
    def collect(self):
        from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

        by_status = dict(TrainingJob.objects.values_list("status").annotate(n=Count("id")).order_by())
        jobs = GaugeMetricFamily("mds_training_jobs", "Training jobs by their current status.", labels=["status"])
        for status in TrainingJob.Status:
            jobs.add_metric([status.value], by_status.get(status.value, 0))
        yield jobs

        durations = HistogramMetricFamily(
            "mds_training_job_duration_seconds",
            "Time from a finished training job's start to its end, by outcome.",
            labels=["status"],
        )
        timed = TrainingJob.objects.filter(
            status__in=FINISHED, started_at__isnull=False, finished_at__isnull=False
        ).annotate(duration=ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField()))
        for status in FINISHED:
            sums = timed.filter(status=status).aggregate(
                total=Sum("duration"),
                count=Count("id"),
                **{
                    f"le_{bound}": Count("id", filter=Q(duration__lte=timedelta(seconds=bound)))
                    for bound in DURATION_BUCKETS
                },
            )
            buckets = [(str(float(bound)), sums[f"le_{bound}"]) for bound in DURATION_BUCKETS]
            buckets.append(("+Inf", sums["count"]))
            total = sums["total"].total_seconds() if sums["total"] else 0.0
            durations.add_metric([status.value], buckets, total)
        yield durations
