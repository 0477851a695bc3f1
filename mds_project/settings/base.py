"""Settings every configuration shares, read from the environment.

``local`` adds the embedded, single-machine defaults (SQLite, in-process tasks, a fixed development key);
``production`` requires the secrets and servers instead. ``MLFLOW_TRACKING_URI`` and ``MDS_S3_*`` move the
model registry and dataset uploads onto a real server in either.
"""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Everything the embedded mode keeps (SQLite DB, uploads, MLflow store) lives under one directory.
MDS_DATA_DIR = Path(env.str("MDS_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens: stored as SHA-512 digests, with an expiry (REST_KNOX below).
    "knox",
    "drf_spectacular",
    # Swagger UI and Redoc served from our own static files: no third-party script on the admin's origin.
    "drf_spectacular_sidecar",
    "core",
    "registry_mirror",
    "training",
    "inference",
    # The local stack's provisioning command (scripts/stack.sh): operations, wired here with the apps.
    "mds_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # A NUL or lone surrogate in the path, query or form is a 400 before any view (PostgreSQL refuses NUL: a 500).
    "core.middleware.UnstorableInputMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mds_project.urls"
WSGI_APPLICATION = "mds_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASES: local.py (SQLite in MDS_DATA_DIR unless DATABASE_URL is set) and production.py (DATABASE_URL).
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = MDS_DATA_DIR / "static"

# Uploaded datasets: local files by default, S3 (MinIO, SeaweedFS, AWS) when MDS_S3_BUCKET is set.
MEDIA_ROOT = MDS_DATA_DIR / "media"
MDS_S3_BUCKET = env.str("MDS_S3_BUCKET", default="")
if MDS_S3_BUCKET:
    from boto3.s3.transfer import TransferConfig as _TransferConfig
    from botocore.config import Config as _BotoConfig

    _transfer_config = _TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
    # s3transfer reads up to 10 parts ahead by default (boto3's constructor does not take this): a 100 MB dataset
    # upload grew the web process by ~92 MB with it, by ~37 MB with 2.
    _transfer_config.max_in_memory_upload_chunks = 2
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MDS_S3_BUCKET,
            "endpoint_url": env.str("MDS_S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("AWS_DEFAULT_REGION", default="us-east-1"),
            # A client config replaces django-storages' own, so path addressing and s3v4 are set here.
            "client_config": _BotoConfig(
                # MinIO and SeaweedFS serve buckets by path, not by virtual host.
                s3={"addressing_style": "path"},
                signature_version="s3v4",
                # boto3 >= 1.36 adds CRC checksums to every request by default, which some non-AWS S3
                # servers reject: only send and check them where the S3 API requires it.
                request_checksum_calculation=env.str("AWS_REQUEST_CHECKSUM_CALCULATION", default="when_required"),
                response_checksum_validation=env.str("AWS_RESPONSE_CHECKSUM_VALIDATION", default="when_required"),
                retries={"max_attempts": 3, "mode": "standard"},
            ),
            # Datasets are private; the bucket policy decides, never a per-object public ACL.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
            # Uploads go in 8 MB parts, two in flight and two read ahead (see below).
            "transfer_config": _transfer_config,
            # A dataset opened for reading (the worker) is downloaded to a temporary file past 8 MB; django-storages'
            # default (0) keeps the whole object in memory.
            "max_memory_size": 8 * 1024 * 1024,
        },
    }
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
# Static files as the apps ship them; production.py serves the compressed, hashed copies collectstatic makes.
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.exception_handler.api_exception_handler",
    # JSON bodies holding NUL or lone surrogates are a 400 naming the field, as in the path or query (core.middleware).
    "DEFAULT_PARSER_CLASSES": [
        "core.parsers.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # `format` is a /predict parameter (onnx|sklearn), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Model Distribution Server",
    "DESCRIPTION": "Train a model from a CSV, register it in MLflow, serve predictions.",
    "VERSION": "0.1.0",
    # The schema and its docs are for signed-in users (admin session or API token), like every endpoint.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "core.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`: each choice set gets a name of its own (a batch job's are a training job's).
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "core.models.JobStatus",
        "TrialStatusEnum": "inference.models.Trial.Status",
        "WebhookDeliveryStatusEnum": "core.webhooks.models.WebhookDelivery.Status",
    },
}
# Largest `?limit=` of a paginated list (GET /train, /models/...); larger asks get this many.
MDS_PAGE_MAX_LIMIT = env.int("MDS_PAGE_MAX_LIMIT", default=500)
# Per-user request rates ("30/hour", "5/minute"; "off" for none), counted in the cache below.
MDS_THROTTLE_TRAIN = env.str("MDS_THROTTLE_TRAIN", default="30/hour")
MDS_THROTTLE_PREDICT = env.str("MDS_THROTTLE_PREDICT", default="off")
# Throttle counters must be shared by every process of a deployment: Redis when CACHE_URL (or REDIS_URL) names
# one, this process's memory otherwise (enough for the embedded mode's single process).
_cache_url = env.str("CACHE_URL", default="") or env.str("REDIS_URL", default="")
if _cache_url.startswith(("redis://", "rediss://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _cache_url,
            "KEY_PREFIX": "mds",
        }
    }
elif _cache_url:
    CACHES = {"default": env.cache_url_config(_cache_url)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery --------------------------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# CELERY_BROKER_URL and CELERY_TASK_ALWAYS_EAGER: local.py (in-process without a broker) and production.py.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge after the task ran, so a killed worker's job is redelivered; tasks guard against running twice.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Training is long and CPU bound: one message at a time per worker process.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=30 * 60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=35 * 60)
# Redis re-delivers an unacknowledged message after this; it must outlast the longest task (core/checks.py).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=60 * 60)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- MLflow --------------------------------------------------------------------------------------------------
# An MLflow server's URL, or by default a store in MDS_DATA_DIR, shared by every process that shares the directory.
MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default=f"sqlite:///{MDS_DATA_DIR / 'mlflow' / 'mlflow.db'}")
# Where a new experiment keeps artifacts when the tracking URI is a local database (embedded mode);
# an MLflow server decides this itself (its --artifacts-destination).
MLFLOW_ARTIFACT_ROOT = env.str("MLFLOW_ARTIFACT_ROOT", default=(MDS_DATA_DIR / "mlflow" / "artifacts").as_uri())
MLFLOW_EXPERIMENT_NAME = env.str("MLFLOW_EXPERIMENT_NAME", default="mds")
# Bounded retries against an MLflow server: a down server surfaces as MlflowUnavailable within seconds (the
# Celery task then retries with backoff) instead of after MLflow's default of 7 retries with long backoff.
MLFLOW_HTTP_REQUEST_MAX_RETRIES = env.int("MLFLOW_HTTP_REQUEST_MAX_RETRIES", default=2)
MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR = env.int("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", default=1)
MLFLOW_HTTP_REQUEST_TIMEOUT = env.int("MLFLOW_HTTP_REQUEST_TIMEOUT", default=30)
# Links from the admin to the MLflow UI.
MLFLOW_UI_URL = env.str("MLFLOW_UI_URL", default="http://127.0.0.1:5001")

# --- Training ------------------------------------------------------------------------------------------------
MDS_DEFAULT_MODEL_NAME = env.str("MDS_DEFAULT_MODEL_NAME", default="rf_regressor")
# Longest `?wait=` a client may ask for on POST /train, in seconds.
MDS_TRAIN_MAX_WAIT = env.int("MDS_TRAIN_MAX_WAIT", default=600)
# Requests per web server process that may wait (`?wait=`) at once: each holds a server thread, and eight waiting
# requests held every thread of a web server (/health stopped answering). The others are answered at once.
MDS_TRAIN_MAX_WAITERS = env.int("MDS_TRAIN_MAX_WAITERS", default=2)
# Starts of one training job (retries, redeliveries, re-queues after a lost worker) before it is failed; above
# MDS_TRAIN_RETRIES + 1, so a dependency outage alone never exhausts it.
MDS_TRAIN_MAX_ATTEMPTS = env.int("MDS_TRAIN_MAX_ATTEMPTS", default=12)
# Size budget of a forest whose request leaves its size open (training/sizing.py). Nodes across the served forest
# set each tree's max_leaf_nodes: ~40 B of ONNX, ~73 B of pickle per node, so 2M nodes is ~80 MB of ONNX whatever
# the rows. Above MDS_TRAIN_MAX_SAMPLES training rows each tree fits on a bootstrap sample of that many rows, which
# bounds the fit time. A request whose estimated worker memory passes MDS_TRAIN_MEMORY_BUDGET (or whose ONNX
# would pass protobuf's 2 GiB) is refused with 400 `model_too_large`.
MDS_MAX_MODEL_NODES = env.int("MDS_MAX_MODEL_NODES", default=2_000_000)
MDS_TRAIN_MAX_SAMPLES = env.int("MDS_TRAIN_MAX_SAMPLES", default=100_000)
MDS_TRAIN_MEMORY_BUDGET = env.int("MDS_TRAIN_MEMORY_BUDGET", default=4 * 1024**3)
# A running job writes its progress at most this often (seconds); each write is also a cancellation checkpoint.
MDS_PROGRESS_INTERVAL = env.float("MDS_PROGRESS_INTERVAL", default=2.0)
# More columns than this in a /train upload or a /predict body is a 400 (`too_many_columns`), checked before
# any per-column work.
MDS_MAX_COLUMNS = env.int("MDS_MAX_COLUMNS", default=1000)
# Largest training CSV accepted, counted as it streams in (413 `too_large` at the first byte over it). An upload
# is spooled to a temporary file (FILE_UPLOAD_TEMP_DIR), never held in memory whole.
MDS_TRAIN_MAX_UPLOAD_BYTES = env.int("MDS_TRAIN_MAX_UPLOAD_BYTES", default=200 * 1024 * 1024)
# Rows of an upload the web process parses and checks before answering (fewer for files of over 100 columns);
# the worker checks the rest and fails the job naming the column and row. 10 000 rows parse in ~50 ms.
MDS_TRAIN_CHECK_ROWS = env.int("MDS_TRAIN_CHECK_ROWS", default=10_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env.int("FILE_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)
# Where uploads are spooled (empty: the system's temporary directory): room for one training CSV per request.
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default="") or None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"alembic": {"level": "WARNING"}},
}

# --- Faults and recovery ----------------------------------------------------------------------------------------
# A job that hits a transient fault (MLflow, S3 or the database unreachable) is retried up to MDS_TRAIN_RETRIES
# times, MDS_RETRY_BACKOFF * 2**n seconds apart and at most MDS_RETRY_BACKOFF_MAX: 5, 10, 20, 40, 60, 60... so an
# outage of ~7 minutes is ridden out, and a job starts again at most a minute after its dependency is back.
MDS_TRAIN_RETRIES = env.int("MDS_TRAIN_RETRIES", default=10)
MDS_RETRY_BACKOFF = env.float("MDS_RETRY_BACKOFF", default=5.0)
MDS_RETRY_BACKOFF_MAX = env.float("MDS_RETRY_BACKOFF_MAX", default=60.0)
# A running job's execution refreshes `heartbeat_at` this often; the dispatcher re-queues a job whose heartbeat
# is older than MDS_HEARTBEAT_STALE_AFTER (its worker died, hangs or lost the database), long before the broker's
# visibility timeout would hand its message out again. Worst case, a job whose whole worker died resumes after
# STALE_AFTER + DISPATCH_INTERVAL (75 s by default); on the same machine a dead process is noticed at once.
MDS_HEARTBEAT_INTERVAL = env.float("MDS_HEARTBEAT_INTERVAL", default=10.0)
MDS_HEARTBEAT_STALE_AFTER = env.float("MDS_HEARTBEAT_STALE_AFTER", default=60.0)
# The dispatcher (beat, and every worker as it starts) sends jobs that are queued without a message: accepted
# while the broker was down (after MDS_DISPATCH_GRACE seconds, the time the request's own send has), re-queued
# from a dead execution, or sent MDS_DISPATCH_RESEND_AFTER seconds ago and still not started (a message lost
# with its broker). A duplicate message is harmless: the job's claim lets one execution run it.
MDS_DISPATCH_INTERVAL = env.float("MDS_DISPATCH_INTERVAL", default=15.0)
MDS_DISPATCH_GRACE = env.float("MDS_DISPATCH_GRACE", default=10.0)
MDS_DISPATCH_RESEND_AFTER = env.float("MDS_DISPATCH_RESEND_AFTER", default=300.0)
# Embedded mode (no broker: tasks in-process) trains off the request thread when this is on (local.py turns it on):
# `POST /train` answers 202 at once and one training thread of the web process runs the job under its lease, as a
# worker would (training/services/embedded.py). Off, the job runs inside the request that committed it.
MDS_EMBEDDED_BACKGROUND_TRAINING = False
# Each dependency check of /health/ready answers within this many seconds.
MDS_READY_TIMEOUT = env.float("MDS_READY_TIMEOUT", default=2.0)

# --- Registry mirror -----------------------------------------------------------------------------------------
# Models and versions asked of MLflow per request while syncing (MLflow caps registered-model pages at 1000).
MDS_MIRROR_PAGE_SIZE = env.int("MDS_MIRROR_PAGE_SIZE", default=200)
# Every training syncs its own model; this periodic full sync also catches changes made in MLflow's own UI.
MDS_MIRROR_SYNC_INTERVAL = env.int("MDS_MIRROR_SYNC_INTERVAL", default=300)
# --- Webhooks --------------------------------------------------------------------------------------------------
# A delivery answered with anything but 2xx (or not within MDS_WEBHOOK_TIMEOUT seconds; redirects are not followed)
# is tried again MDS_WEBHOOK_RETRY_BASE * 2**(n-1) seconds later, at most MDS_WEBHOOK_RETRY_MAX, until
# MDS_WEBHOOK_MAX_ATTEMPTS attempts failed: 8 attempts over ~21 minutes by default (10, 20, 40 ... 640 s apart).
MDS_WEBHOOK_MAX_ATTEMPTS = env.int("MDS_WEBHOOK_MAX_ATTEMPTS", default=8)
MDS_WEBHOOK_RETRY_BASE = env.float("MDS_WEBHOOK_RETRY_BASE", default=10.0)
MDS_WEBHOOK_RETRY_MAX = env.float("MDS_WEBHOOK_RETRY_MAX", default=3600.0)
# Short: a slow receiver holds a worker (or embedded mode's sender thread) this long per attempt.
MDS_WEBHOOK_TIMEOUT = env.float("MDS_WEBHOOK_TIMEOUT", default=5.0)
# A sender holds a delivery this long; one whose sender did not report by then (a message the broker never took,
# a dead process) is sent again by the sweeper, which runs every MDS_WEBHOOK_SWEEP_INTERVAL seconds (beat, or a
# thread of the web process in embedded mode) and also sends the retries that are due.
MDS_WEBHOOK_LEASE = env.float("MDS_WEBHOOK_LEASE", default=60.0)
MDS_WEBHOOK_SWEEP_INTERVAL = env.float("MDS_WEBHOOK_SWEEP_INTERVAL", default=10.0)
# Webhooks go to public addresses only (core/webhooks/destinations.py): not to loopback, private or link-local ones
# such as a cloud's metadata service, which a subscription's URL would otherwise let reach. local.py allows them.
MDS_WEBHOOK_ALLOW_PRIVATE = env.bool("MDS_WEBHOOK_ALLOW_PRIVATE", default=False)
# Embedded mode (no broker) sends on a thread of the web process when this is on (local.py turns it on); off, a
# delivery is sent inside the request that committed it, after the commit (the tests).
MDS_WEBHOOK_BACKGROUND = False

# How often beat looks for models whose retraining schedule is due (a policy's `schedule` is at least this coarse).
MDS_RETRAIN_SCHEDULE_INTERVAL = env.float("MDS_RETRAIN_SCHEDULE_INTERVAL", default=300.0)
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html (run `celery -A mds_project beat`)
CELERY_BEAT_SCHEDULE = {
    "training-jobs-dispatch": {
        "task": "training.tasks.training_jobs_dispatch_task",
        "schedule": MDS_DISPATCH_INTERVAL,
        "options": {"expires": MDS_DISPATCH_INTERVAL},
    },
    "retrain-schedule": {
        "task": "training.tasks.retrain_schedule_task",
        "schedule": MDS_RETRAIN_SCHEDULE_INTERVAL,
        "options": {"expires": MDS_RETRAIN_SCHEDULE_INTERVAL},
    },
    "registry-mirror-sync": {
        "task": "registry_mirror.tasks.registry_mirror_sync_task",
        "schedule": float(MDS_MIRROR_SYNC_INTERVAL),
        # A run that waited longer than one interval is superseded by the next one.
        "options": {"expires": float(MDS_MIRROR_SYNC_INTERVAL)},
    },
    "webhook-deliveries-dispatch": {
        "task": "core.webhooks.tasks.webhook_deliveries_dispatch_task",
        "schedule": MDS_WEBHOOK_SWEEP_INTERVAL,
        "options": {"expires": MDS_WEBHOOK_SWEEP_INTERVAL},
    },
}

# --- Inference -----------------------------------------------------------------------------------------------
# Versions kept loaded per process, bounded by count and by artifact bytes (least recently used goes first).
# In memory a version takes about 4x its ONNX file while its ONNX session is open, and its pickle plus a third
# once sklearn has loaded.
MDS_MODEL_CACHE_SIZE = env.int("MDS_MODEL_CACHE_SIZE", default=8)
MDS_MODEL_CACHE_BYTES = env.int("MDS_MODEL_CACHE_BYTES", default=1024**3)
# `latest` and aliases are re-resolved after this many seconds (in the background; the known version serves).
MDS_ALIAS_TTL = env.float("MDS_ALIAS_TTL", default=30.0)
# An alias moved through MDS is served at once by the process that moved it; every other process notices the move
# within this many seconds: it reads the newest promotion record's id (one indexed read) at most this often.
MDS_ALIAS_CHECK_INTERVAL = env.float("MDS_ALIAS_CHECK_INTERVAL", default=1.0)
# Threads a large batch is split across (ONNX: its rows; sklearn forests: their trees); 0 means the CPU budget
# (the cores this process's affinity and cgroup quota allow, not the machine's), shared among concurrent requests.
MDS_ONNX_THREADS = env.int("MDS_ONNX_THREADS", default=0)
# The default engine (format=auto) where the compiled forest walk is not built (no C compiler; with it, sklearn
# serves every batch once loaded): sklearn from this many rows on, and always sklearn when training recorded an
# ONNX relative difference above the tolerance. bench/engines.py on 2 vCPU, 100 trees: ONNX won at 1000 rows
# (full depth 11.6k vs 7.6k rows/s; max_depth=12 11.7k vs 10.7k), sklearn at 3000 (11.6k vs 5.9k; 24.7k vs 16.5k)
# and 10 000 (2-2.5x); sklearn's ~15 ms per call loses below.
MDS_AUTO_SKLEARN_MIN_ROWS = env.int("MDS_AUTO_SKLEARN_MIN_ROWS", default=2000)
MDS_AUTO_MAX_REL_DIFF = env.float("MDS_AUTO_MAX_REL_DIFF", default=1e-4)
# Larger requests are refused with 413.
MDS_PREDICT_MAX_ROWS = env.int("MDS_PREDICT_MAX_ROWS", default=100_000)
MDS_PREDICT_MAX_BYTES = env.int("MDS_PREDICT_MAX_BYTES", default=64 * 1024 * 1024)
# What /predict serves without `version` or `alias`; a new model's first version gets it, promotion moves it.
MDS_SERVING_ALIAS = env.str("MDS_SERVING_ALIAS", default="champion")
# Promotion gate: an alias moves to a version whose holdout RMSE is worse than the current holder's by more than
# this fraction only with "force": true.
MDS_PROMOTION_TOLERANCE = env.float("MDS_PROMOTION_TOLERANCE", default=0.05)
# The alias a retrained version gets at once (docs/retraining.md); only the gate moves MDS_SERVING_ALIAS.
MDS_CHALLENGER_ALIAS = env.str("MDS_CHALLENGER_ALIAS", default="challenger")
# explain=true walks every row's path through every tree: ~0.1 s per 1000 rows with 100 full-depth trees.
MDS_EXPLAIN_MAX_ROWS = env.int("MDS_EXPLAIN_MAX_ROWS", default=1000)
# Seconds a process trusts an API token (and its user's permissions) once checked: a revoked token or role
# works that long there (a token's expiry is checked on every request). 5 s keeps one token lookup per token
# and process every 5 s on the prediction path; 0 looks the token up on every request.
MDS_TOKEN_CACHE_TTL = env.float("MDS_TOKEN_CACHE_TTL", default=5.0)
# Seconds a token checked by a process is still trusted there while the database cannot be reached (a revoked
# token too, if revoked in that window and the outage follows): loaded versions keep serving through an outage.
# 0: every request needs the database once MDS_TOKEN_CACHE_TTL has passed.
MDS_TOKEN_OUTAGE_GRACE = env.float("MDS_TOKEN_OUTAGE_GRACE", default=300.0)
# Days a new API token works (issue_token, POST /tokens, the admin); 0 or empty: until revoked.
MDS_TOKEN_TTL_DAYS = float(env.str("MDS_TOKEN_TTL_DAYS", default="30").strip() or 0)
# https://jazzband.github.io/django-rest-knox/settings/ — the header stays `Authorization: Token <key>`.
REST_KNOX = {
    "TOKEN_TTL": timedelta(days=MDS_TOKEN_TTL_DAYS) if MDS_TOKEN_TTL_DAYS > 0 else None,
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}

# --- Prediction log, feedback and drift ----------------------------------------------------------------------
# Every /predict answer is logged (inputs, outputs, version, engine) off the request path; `false` turns it off.
MDS_PREDICTION_LOG = env.bool("MDS_PREDICTION_LOG", default=True)
# Logged predictions (and the actuals fed back for them) are deleted after this many days by beat.
MDS_PREDICTION_LOG_DAYS = env.int("MDS_PREDICTION_LOG_DAYS", default=30)
# The in-process queue in front of the database: past either bound new entries are dropped (and counted), so a
# slow or absent database never slows predictions down nor grows a worker's memory without end.
MDS_PREDICTION_LOG_QUEUE = env.int("MDS_PREDICTION_LOG_QUEUE", default=10_000)
MDS_PREDICTION_LOG_QUEUE_BYTES = env.int("MDS_PREDICTION_LOG_QUEUE_BYTES", default=128 * 1024 * 1024)
# Rows per INSERT, and the longest a logged prediction waits in the queue (seconds).
MDS_PREDICTION_LOG_BATCH = env.int("MDS_PREDICTION_LOG_BATCH", default=200)
MDS_PREDICTION_LOG_INTERVAL = env.float("MDS_PREDICTION_LOG_INTERVAL", default=1.0)
# A writer thread per process drains the queue; tests write it explicitly instead (prediction_log_flush).
MDS_PREDICTION_LOG_BACKGROUND = True
# A feature has drifted when the population stability index of its logged inputs against the training window's
# deciles exceeds this (0.1-0.25 is the usual "moderate shift" band); below MDS_DRIFT_MIN_ROWS logged rows the
# answer is `null`, since sampling noise alone gives a PSI of about (bins - 1) / rows.
MDS_DRIFT_PSI_THRESHOLD = env.float("MDS_DRIFT_PSI_THRESHOLD", default=0.2)
MDS_DRIFT_MIN_ROWS = env.int("MDS_DRIFT_MIN_ROWS", default=200)
# Beat runs these once a day: the monitoring report of every version with logged predictions, and the pruning.
CELERY_BEAT_SCHEDULE |= {
    "monitoring-reports": {
        "task": "inference.tasks.monitoring_reports_record_task",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600.0},
    },
    "prediction-log-prune": {
        "task": "inference.tasks.prediction_log_prune_task",
        "schedule": 24 * 3600.0,
        "options": {"expires": 3600.0},
    },
}

# --- Live trials (inference.trials) -----------------------------------------------------------------------------
# The other version's scoring of a trial's rows waits in a bounded in-process queue, drained by one thread: past
# this many entries new ones are dropped (counted), so a trial never slows or fails an answer.
MDS_TRIAL_SHADOW_QUEUE = env.int("MDS_TRIAL_SHADOW_QUEUE", default=1000)
# A thread per process scores them; tests score explicitly instead (trial_shadow_flush).
MDS_TRIAL_SHADOW_BACKGROUND = True
# The evidence is computed on at most this many of a trial's newest paired rows, with this many bootstrap resamples:
# 0.1-0.4 s for 5000 rows x 1000 resamples on a 2 vCPU machine: each feedback's evaluation stays bounded.
MDS_TRIAL_MAX_ROWS = env.int("MDS_TRIAL_MAX_ROWS", default=5000)
MDS_TRIAL_BOOTSTRAP = env.int("MDS_TRIAL_BOOTSTRAP", default=1000)
# Beat re-evaluates every running trial this often (seconds), besides the evaluation each feedback triggers.
MDS_TRIAL_EVALUATE_INTERVAL = env.float("MDS_TRIAL_EVALUATE_INTERVAL", default=60.0)
# When @challenger is moved through MDS to a version other than @champion, start a trial with these options (JSON,
# as POST /models/<name>/trial takes them, e.g. {"mode": "canary", "share": 0.1}); empty: trials start by the API.
MDS_TRIAL_ON_CHALLENGER = env.json("MDS_TRIAL_ON_CHALLENGER", default={})
CELERY_BEAT_SCHEDULE |= {
    "trials-evaluate": {
        "task": "inference.tasks.trials_evaluate_task",
        "schedule": MDS_TRIAL_EVALUATE_INTERVAL,
        "options": {"expires": MDS_TRIAL_EVALUATE_INTERVAL},
    },
}

# --- Batch scoring (inference/batch) ----------------------------------------------------------------------------
# A batch input is split into chunks of about this many bytes, one task each: 64 MiB keeps every CSV part above
# S3's 5 MiB minimum for the server-side copy that joins them, and gives a 0.8 GB file a dozen tasks to spread.
MDS_BATCH_CHUNK_BYTES = env.int("MDS_BATCH_CHUNK_BYTES", default=64 * 1024 * 1024)
# A chunk is parsed and scored in pieces of at most this many bytes (CSV) or rows (Parquet): what a worker holds.
MDS_BATCH_PIECE_BYTES = env.int("MDS_BATCH_PIECE_BYTES", default=8 * 1024 * 1024)
MDS_BATCH_PIECE_ROWS = env.int("MDS_BATCH_PIECE_ROWS", default=100_000)
# Largest batch input uploaded to POST /batch (file or raw body), counted as it streams to a temporary file (413
# `too_large` at the first byte over it). Inputs already in storage (`dataset=`, `object=`) have no such cap.
MDS_BATCH_MAX_UPLOAD_BYTES = env.int("MDS_BATCH_MAX_UPLOAD_BYTES", default=20 * 1024**3)
# The sweeper re-sends lost plan, chunk and join messages and takes back chunks whose worker is gone.
CELERY_BEAT_SCHEDULE |= {
    "batch-jobs-sweep": {
        "task": "inference.tasks.batch_jobs_sweep_task",
        "schedule": MDS_DISPATCH_INTERVAL,
        "options": {"expires": MDS_DISPATCH_INTERVAL},
    },
}

# --- Metrics -------------------------------------------------------------------------------------------------
# /metrics answers a valid API token, or any request from the loopback interface without X-Forwarded-For; set this
# to false where a reverse proxy on the same machine would make every client look local.
MDS_METRICS_ALLOW_LOOPBACK = env.bool("MDS_METRICS_ALLOW_LOOPBACK", default=True)

# --- MLflow's scoring protocol (/invocations, /ping, /version) -------------------------------------------------
# The model /invocations answers when its query string names none: NAME, NAME@alias, NAME/VERSION or NAME/latest
# (empty: /predict's default, MDS_DEFAULT_MODEL_NAME at MDS_SERVING_ALIAS).
MDS_SERVE_MODEL = env.str("MDS_SERVE_MODEL", default="")
# MLflow's clients send no credentials. True lets callers without a token use /invocations, answered by
# MDS_SERVE_MODEL only (required with it: a system check), on a private network only: anyone who reaches the
# port can predict. Still logged and counted, and throttled per client address at this rate ("off" for none).
MDS_INVOCATIONS_ANONYMOUS = env.bool("MDS_INVOCATIONS_ANONYMOUS", default=False)
MDS_THROTTLE_INVOCATIONS_ANONYMOUS = env.str("MDS_THROTTLE_INVOCATIONS_ANONYMOUS", default="6000/minute")
