#!/usr/bin/env bash
# Serve MDS in embedded mode: SQLite, local files, in-process training, MLflow UI over the same store.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PORT:=8000}" "${MLFLOW_UI_PORT:=5001}" "${MDS_DATA_DIR:=$PWD/var}"
export PORT MDS_DATA_DIR MLFLOW_UI_URL="${MLFLOW_UI_URL:-http://127.0.0.1:$MLFLOW_UI_PORT}"
# gunicorn's mds_project.wsgi would otherwise default to production settings. Local settings serve static files
# from the apps, so there is nothing to collect.
export DJANGO_SETTINGS_MODULE=mds_project.settings.local
mkdir -p "$MDS_DATA_DIR/mlflow/artifacts" "$MDS_DATA_DIR/logs"

python manage.py migrate --noinput -v0
python manage.py bootstrap_local

# The MLflow UI reads the same SQLite store and artifact directory the service writes.
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
  mlflow server --backend-store-uri "sqlite:///$MDS_DATA_DIR/mlflow/mlflow.db" \
  --default-artifact-root "$MDS_DATA_DIR/mlflow/artifacts" \
  --host 127.0.0.1 --port "$MLFLOW_UI_PORT" --workers 1 >"$MDS_DATA_DIR/logs/mlflow-ui.log" 2>&1 &
mlflow_pid=$!
trap 'kill "$mlflow_pid" 2>/dev/null || true' EXIT INT TERM

echo "MDS API:   http://127.0.0.1:$PORT  (Ctrl-C stops both)"
gunicorn mds_project.wsgi --config gunicorn.conf.py --bind "127.0.0.1:$PORT"
