#!/bin/bash
# Run once by the postgres image on its first start (empty data volume): POSTGRES_DB is Django's database,
# this adds MLflow's own beside it.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE \"${MLFLOW_DB_NAME:-mlflow}\" OWNER \"$POSTGRES_USER\""
