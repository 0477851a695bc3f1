# One image for web, inference, worker, beat and the MLflow server (mlflow, psycopg and boto3 are all in
# requirements.txt). Configuration and secrets come from the environment at run time: see .env.example.
# The compiled forest walk (inference/compiled_forest.py), built by setup.py in a stage of its own so that the
# image carries no compiler.
FROM python:3.11-slim-bookworm AS forest-walk
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml setup.py README.md ./
COPY inference/forest_walk.c inference/
RUN pip install --no-cache-dir "setuptools>=68" && python setup.py build_ext --inplace

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=mds_project.settings.production \
    MDS_DATA_DIR=/var/lib/mds \
    MLFLOW_DISABLE_TELEMETRY=true \
    DO_NOT_TRACK=true

# libgomp1: scikit-learn's and onnxruntime's OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
COPY --from=forest-walk /build/inference/_forest_walk.*.so inference/
# Static files are collected at build time. Production settings require these variables to import; collectstatic
# connects to nothing, and the real values come from the environment at run time.
RUN DJANGO_SECRET_KEY=build-time-collectstatic-only-this-key-signs-nothing-at-all DATABASE_URL=sqlite:// CELERY_BROKER_URL=memory:// \
    DJANGO_ALLOWED_HOSTS=localhost MLFLOW_TRACKING_URI=http://localhost python manage.py collectstatic --noinput -v0 \
    && useradd --system --uid 10001 --create-home --home-dir /home/mds mds \
    && chown -R mds /var/lib/mds

USER mds
EXPOSE 8000
CMD ["gunicorn", "mds_project.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000"]
