"""Batch jobs as Prometheus metrics, read from the database at scrape time (chunks run on the workers, which share
only the database with the process that answers ``/metrics``)."""

from django.db.models import Count, Sum

from ..models import BatchJob


class BatchJobCollector:
    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        by_status = dict(BatchJob.objects.values_list("status").annotate(n=Count("id")).order_by())
        jobs = GaugeMetricFamily("mds_batch_jobs", "Batch jobs by their current status.", labels=["status"])
        for status in BatchJob.Status:
            jobs.add_metric([status.value], by_status.get(status.value, 0))
        yield jobs
        rows = CounterMetricFamily(
            "mds_batch_rows",
            "Rows of batch jobs scored (outcome `done`) or rejected (`skipped`), by model and version.",
            labels=["model", "version", "outcome"],
        )
        sums = (
            BatchJob.objects.values_list("model_name", "model_version")
            .annotate(done=Sum("rows_done"), skipped=Sum("rows_skipped"))
            .order_by()
        )
        for model, version, done, skipped in sums:
            rows.add_metric([model, str(version), "done"], done or 0)
            rows.add_metric([model, str(version), "skipped"], skipped or 0)
        yield rows
