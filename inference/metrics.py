"""Prometheus metrics of serving: predictions, their latency, the model cache and the prediction log.

Exposed at ``/metrics`` (``core.metrics``). Under gunicorn each worker process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``gunicorn.conf.py``) and a scrape sums them, so the numbers are the
server's, whichever worker answers the scrape. Label values are bounded: ``model`` and ``version`` are only
ever a version this process has resolved, never a name a client made up.
"""

from prometheus_client import Counter, Gauge, Histogram

# ``protocol`` is the API that asked: ``mds`` (/predict), ``v2-rest`` and ``v2-grpc`` (the Open Inference Protocol,
# inference/v2), ``mlflow`` (MLflow's scoring protocol).
PREDICTIONS = Counter(
    "mds_predictions",
    "Answers of prediction requests, by model, version, engine, protocol and status (errors included; gRPC "
    "statuses as their HTTP equivalents).",
    ["model", "version", "engine", "protocol", "status"],
)
PREDICTED_ROWS = Counter("mds_predicted_rows", "Rows predicted.", ["model", "version", "engine", "protocol"])
# From 0.5 ms (a one-row ONNX answer takes ~1.5 ms end to end) to 10 s (a 100k-row batch).
PREDICTION_SECONDS = Histogram(
    "mds_prediction_seconds",
    "Time spent on an answer (parsing, model, rendering), by model, version, engine and protocol.",
    ["model", "version", "engine", "protocol"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

CACHE_HITS = Counter("mds_model_cache_hits", "Requests served by a version already in memory.", ["model", "version"])
CACHE_LOADS = Counter("mds_model_cache_loads", "Versions loaded from MLflow into memory.", ["model", "version"])
CACHE_LOAD_SECONDS = Histogram(
    "mds_model_cache_load_seconds",
    "Time to fetch a version's ONNX file and open its session.",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
CACHE_EVICTIONS = Counter(
    "mds_model_cache_evictions", "Versions dropped from memory to keep the cache's bounds.", ["model", "version"]
)

LOG_WRITTEN = Counter("mds_prediction_log_written", "Predictions written to the prediction log.")
LOG_DROPPED = Counter(
    "mds_prediction_log_dropped",
    "Predictions left out of the log: its queue was full, or the database refused a batch.",
    ["reason"],
)
LOG_QUEUED = Gauge(
    "mds_prediction_log_queued", "Predictions waiting to be written to the log.", multiprocess_mode="livesum"
)
