#!/bin/bash
# Run once by the postgres image on its first start (empty data volume). POSTGRES_USER is the server's superuser,
# for administration only; the services connect as MDS_DB_USER, a role that owns Django's and MLflow's databases
# and may do nothing else (no superuser, no new roles or databases).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v role="$MDS_DB_USER" -v password="$MDS_DB_PASSWORD" -v mds_db="${MDS_DB_NAME:-mds}" \
  -v mlflow_db="${MLFLOW_DB_NAME:-mlflow}" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
CREATE DATABASE :"mds_db" OWNER :"role";
CREATE DATABASE :"mlflow_db" OWNER :"role";
SQL
