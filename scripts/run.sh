#!/usr/bin/env bash
# Serve MDS in embedded mode: SQLite, local files, in-process training, and an MLflow server over its own SQLite
# store that both the service (over HTTP, as in production) and the MLflow UI use.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${PORT:=8000}" "${MLFLOW_UI_PORT:=5001}" "${MDS_DATA_DIR:=$PWD/var}"
export PORT MDS_DATA_DIR MLFLOW_UI_URL="${MLFLOW_UI_URL:-http://127.0.0.1:$MLFLOW_UI_PORT}"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-http://127.0.0.1:$MLFLOW_UI_PORT}"
# gunicorn's mds_project.wsgi would otherwise default to production settings. Local settings serve static files
# from the apps, so there is nothing to collect.
export DJANGO_SETTINGS_MODULE=mds_project.settings.local
mkdir -p "$MDS_DATA_DIR/mlflow/artifacts" "$MDS_DATA_DIR/logs"

# --serve-artifacts: clients read and write artifacts through the server, as they do in production.
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true \
  mlflow server --backend-store-uri "sqlite:///$MDS_DATA_DIR/mlflow/mlflow.db" \
  --artifacts-destination "$MDS_DATA_DIR/mlflow/artifacts" --serve-artifacts \
  --host 127.0.0.1 --port "$MLFLOW_UI_PORT" --workers 1 >"$MDS_DATA_DIR/logs/mlflow-ui.log" 2>&1 &
mlflow_pid=$!
trap 'kill "$mlflow_pid" 2>/dev/null || true' EXIT INT TERM

python manage.py migrate --noinput -v0
# The MLflow server takes ~10 s to start; the experiment is created through it.
for _ in $(seq 120); do
  curl --silent --fail --max-time 2 --output /dev/null "http://127.0.0.1:$MLFLOW_UI_PORT/health" && break
  kill -0 "$mlflow_pid" 2>/dev/null || { echo "mlflow server failed: $MDS_DATA_DIR/logs/mlflow-ui.log" >&2; exit 1; }
  sleep 0.5
done
python manage.py bootstrap_local

echo "MDS API:   http://127.0.0.1:$PORT  (Ctrl-C stops both)"
gunicorn mds_project.wsgi --config gunicorn.conf.py --bind "127.0.0.1:$PORT"
