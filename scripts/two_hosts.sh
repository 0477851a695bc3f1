#!/usr/bin/env bash
# Two machines' worth of MDS on one: each "host" is a network namespace with its own address on a private bridge,
# its own hostname and its own /tmp, running a Celery worker and an inference replica against one stack. The
# hosts share nothing but PostgreSQL, Redis, S3 and the MLflow server, reached over the bridge; the stack's
# directory (secrets, data) is hidden from them. scripts/two_hosts_check.py then checks, through the API:
#   (a) 10 trainings spread over both hosts' workers (each job row names the host:pid that ran it);
#   (b) a host's worker killed (SIGKILL) mid-training: the other host finishes the job, once, one MLflow version;
#   (c) an alias moved by a maintainer is served by both replicas within MDS_ALIAS_CHECK_INTERVAL + 1 s;
#   (d) a batch job (POST /batch) of dozens of chunks scored by both hosts' workers (each chunk row names the
#       host:pid that scored it), one host's worker killed mid-job: the result holds every input row once, in order.
# Prints a pass/fail report and exits non-zero if a check failed. Everything it makes (namespaces, bridge,
# addresses, forwarder, stack processes) is removed at exit, also on failure or Ctrl-C. Run as root:
#
#   sudo scripts/two_hosts.sh
#
# The stack is started here, from nothing, in $TWO_HOSTS_DIR/stack with STACK_HOST on the bridge (STACK_* move
# its ports and databases, as for scripts/stack.sh; the databases default to mds_two_hosts and mlflow_two_hosts,
# which are emptied first). PostgreSQL is the machine's and listens on 127.0.0.1 only: socat forwards the
# bridge address's PostgreSQL port to it, so the hosts connect as any other machine would.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BEGAN=$(date +%s)

: "${VENV:=$ROOT/.venv}"
: "${STACK_PG_PORT:=5432}" "${STACK_REDIS_PORT:=6379}" "${STACK_S3_PORT:=8333}" "${STACK_MLFLOW_PORT:=5001}"
: "${STACK_WEB_PORT:=8001}" "${STACK_INFERENCE_PORT:=8002}"
: "${STACK_DJANGO_DB:=mds_two_hosts}" "${STACK_MLFLOW_DB:=mlflow_two_hosts}"
: "${TWO_HOSTS_DIR:=$ROOT/var/two_hosts}"
# A /24 nobody else uses; derived from the web port so that two runs with different ports do not collide.
: "${TWO_HOSTS_SUBNET:=10.213.$((STACK_WEB_PORT % 250))}"
# How often a replica looks for a newer alias move (the product's default): (c) checks the move within it + 1 s.
: "${MDS_ALIAS_CHECK_INTERVAL:=1}"
# A dead host's job is taken over once its heartbeat is STALE_AFTER old, at the next dispatcher round: ~20 s here
# (60 + 15 s by default). Another host cannot see whether a process lives, so the heartbeat decides.
: "${MDS_HEARTBEAT_INTERVAL:=3}" "${MDS_HEARTBEAT_STALE_AFTER:=15}" "${MDS_DISPATCH_INTERVAL:=5}"
# The broker hands a dead worker's message out again after the visibility timeout; the lease takes over sooner, so
# this only bounds the time limits below it, which must let a training finish on a busy two-core machine.
: "${CELERY_VISIBILITY_TIMEOUT:=300}" "${CELERY_TASK_SOFT_TIME_LIMIT:=240}" "${CELERY_TASK_TIME_LIMIT:=270}"
# 1: only (d), the batch check (the network is checked all the same), e.g. while working on batch scoring.
: "${TWO_HOSTS_BATCH_ONLY:=0}"
# (d)'s input is ~27 MB: 512 kB chunks make 54 of them, enough for both hosts to take several before the kill.
: "${MDS_BATCH_CHUNK_BYTES:=524288}"
export MDS_BATCH_CHUNK_BYTES STACK_PG_PORT STACK_REDIS_PORT STACK_S3_PORT STACK_MLFLOW_PORT STACK_WEB_PORT STACK_INFERENCE_PORT \
  STACK_DJANGO_DB STACK_MLFLOW_DB MDS_DISPATCH_INTERVAL CELERY_VISIBILITY_TIMEOUT CELERY_TASK_SOFT_TIME_LIMIT \
  CELERY_TASK_TIME_LIMIT VENV
export STACK_DIR=$TWO_HOSTS_DIR/stack STACK_HOST=$TWO_HOSTS_SUBNET.1

BIN=$VENV/bin
TAG=mds$STACK_WEB_PORT # interface names stay under 16 characters
BRIDGE=${TAG}br
HOSTS=(a b)
declare -A ADDR=([a]=$TWO_HOSTS_SUBNET.2 [b]=$TWO_HOSTS_SUBNET.3) HOLDER=()
netns() { echo "$TAG-$1"; }
hostname_of() { echo "mds-host-$1"; }

log() { printf '[two-hosts] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
report() { printf '%s\n' "$*"; }

cleanup() {
  local status=$? h ns pids
  trap - EXIT INT TERM
  set +e
  log "cleaning up"
  for h in "${HOSTS[@]}"; do
    ns=$(netns "$h")
    ip netns list | grep -q "^$ns\b" || continue
    pids=$(ip netns pids "$ns")
    [[ -z $pids ]] || kill -TERM $pids 2>/dev/null
  done
  for _ in {1..75}; do
    pids=$(for h in "${HOSTS[@]}"; do ip netns pids "$(netns "$h")" 2>/dev/null; done)
    [[ -n $pids ]] || break
    sleep 0.2
  done
  [[ -z $pids ]] || kill -KILL $pids 2>/dev/null
  if [[ -n ${STACK_STARTED:-} ]]; then bash scripts/stack.sh stop >"$TWO_HOSTS_DIR/stack-stop.log" 2>&1; fi
  [[ -z ${FORWARDER:-} ]] || kill "$FORWARDER" 2>/dev/null
  for h in "${HOSTS[@]}"; do
    ip link del "$TAG$h" 2>/dev/null # and its peer in the namespace
    ip netns del "$(netns "$h")" 2>/dev/null
  done
  ip link del "$BRIDGE" 2>/dev/null
  [[ -z ${KEEP_TMP:-} ]] || rmdir "$KEEP_TMP" 2>/dev/null
  local left
  left=$( (ip netns list | grep "^$TAG-"; ip -br link | grep "^$TAG") 2>/dev/null)
  [[ -z $left ]] || log "left behind: $left"
  report "total run time: $(($(date +%s) - BEGAN)) s"
  exit "$status"
}

[[ $(id -u) == 0 ]] || die "network namespaces need root"
for tool in ip unshare nsenter socat curl; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[[ -x $BIN/celery ]] || die "no $BIN/celery: run make stack once (or make install) first"
! ip -4 -o addr | grep -q " $TWO_HOSTS_SUBNET\." || die "$TWO_HOSTS_SUBNET.0/24 is in use here; set TWO_HOSTS_SUBNET"
! ip netns list | grep -q "^$TAG-" || die "namespaces $TAG-* exist already (another run?)"
mkdir -p "$TWO_HOSTS_DIR"
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- The network: a bridge with the stack's address, one veth pair per host, addresses only on them. ---
log "bridge $BRIDGE $STACK_HOST/24, hosts ${ADDR[a]} and ${ADDR[b]}"
ip link add "$BRIDGE" type bridge
ip addr add "$STACK_HOST/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
for h in "${HOSTS[@]}"; do
  ns=$(netns "$h")
  ip netns add "$ns"
  ip link add "$TAG$h" type veth peer name "$TAG${h}p"
  ip link set "$TAG$h" master "$BRIDGE" up
  ip link set "$TAG${h}p" netns "$ns"
  ip -n "$ns" link set "$TAG${h}p" name eth0
  ip -n "$ns" addr add "${ADDR[$h]}/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

# PostgreSQL on the bridge: it sees the forwarder's 127.0.0.1 and applies its loopback rules (trust, here).
socat "TCP-LISTEN:$STACK_PG_PORT,bind=$STACK_HOST,reuseaddr,fork" "TCP:127.0.0.1:$STACK_PG_PORT" &
FORWARDER=$!

# --- The stack, bound to the bridge address; its own worker stops once its environment is copied. ---
log "starting the stack on $STACK_HOST (log: $TWO_HOSTS_DIR/stack-start.log)"
STACK_STARTED=1
STACK_FRESH=1 bash scripts/stack.sh start >"$TWO_HOSTS_DIR/stack-start.log" 2>&1 ||
  {
    tail -n 30 "$TWO_HOSTS_DIR/stack-start.log" >&2
    die "the stack did not start"
  }
set -a
# shellcheck disable=SC1091
. "$STACK_DIR/stack.env"
set +a
# The hosts run with the services' own environment (settings, secrets, URLs), as a deployment tool would hand it
# to a new machine; only the database's address differs: the forwarder's on the bridge.
mapfile -d '' -t STACK_ENV <"/proc/$(cat "$STACK_DIR/run/worker.pid")/environ"
bash scripts/stack.sh stop worker >>"$TWO_HOSTS_DIR/stack-start.log" 2>&1
HOST_ENV=()
for item in "${STACK_ENV[@]}"; do
  case $item in
    SUPERVISOR_*) continue ;;
    DATABASE_URL=*) item=${item/@127.0.0.1:/@$STACK_HOST:} ;;
  esac
  HOST_ENV+=("$item")
done

# --- The hosts: a holder process owns each host's namespaces (network, hostname, mounts); services join them. ---
in_host() {
  local h=$1
  shift
  nsenter --target "${HOLDER[$h]}" --net --uts --mount --wd="$ROOT" -- env -i "${HOST_ENV[@]}" \
    DJANGO_ALLOWED_HOSTS="${ADDR[$h]}" MDS_DATA_DIR="$TWO_HOSTS_DIR/host-$h/data" MDS_ALIAS_CHECK_INTERVAL="$MDS_ALIAS_CHECK_INTERVAL" \
    MDS_HEARTBEAT_INTERVAL="$MDS_HEARTBEAT_INTERVAL" MDS_HEARTBEAT_STALE_AFTER="$MDS_HEARTBEAT_STALE_AFTER" \
    MDS_BATCH_CHUNK_BYTES="$MDS_BATCH_CHUNK_BYTES" "$@"
}
# A checkout (or venv, or run directory) under /tmp stays visible through the host's own, empty /tmp: the machine's
# /tmp is bound aside first, then each such directory is bound back at its own path.
KEEP_TMP=$(mktemp -d /run/two-hosts-tmp.XXXXXX)
UNDER_TMP=()
for dir in "$ROOT" "$(realpath "$VENV")" "$TWO_HOSTS_DIR"; do [[ $dir != /tmp/* ]] || UNDER_TMP+=("$dir"); done
for h in "${HOSTS[@]}"; do
  mkdir -p "$TWO_HOSTS_DIR/host-$h/data"
  # The host's own hostname (the lease's host:pid and Celery's node name), its own /tmp, no view of $STACK_DIR.
  ip netns exec "$(netns "$h")" unshare --uts --mount --propagation private -- bash -c '
    set -e
    hostname "$1"
    mount --bind /tmp "$3"
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    for dir in "${@:4}"; do mkdir -p "$dir" && mount --bind "$3/${dir#/tmp/}" "$dir"; done
    umount -l "$3"
    mount -t tmpfs -o mode=700 tmpfs "$2"
    exec sleep infinity' holder "$(hostname_of "$h")" "$STACK_DIR" "$KEEP_TMP" "${UNDER_TMP[@]}" &
  HOLDER[$h]=$!
  for _ in {1..50}; do
    [[ $(nsenter --target "${HOLDER[$h]}" --uts hostname 2>/dev/null) == "$(hostname_of "$h")" ]] && break
    sleep 0.1
  done
done

probe() { in_host "$1" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$2" "$3" 2>/dev/null; }
network_ok=true
for h in "${HOSTS[@]}"; do
  seen=()
  for service in postgres:$STACK_PG_PORT redis:$STACK_REDIS_PORT s3:$STACK_S3_PORT mlflow:$STACK_MLFLOW_PORT; do
    probe "$h" "$STACK_HOST" "${service#*:}" && seen+=("${service%:*}") || network_ok=false
    ! probe "$h" 127.0.0.1 "${service#*:}" || network_ok=false
  done
  hidden=$(in_host "$h" bash -c 'ls -A "$0" | wc -l' "$STACK_DIR")
  [[ $hidden == 0 ]] || network_ok=false
  report "       host $h: $(in_host "$h" hostname) ${ADDR[$h]} (netns $(netns "$h")) reaches ${seen[*]} on" \
    "$STACK_HOST; none on its own 127.0.0.1; $hidden files of the stack's directory visible"
done
latency_direct=$(env "${HOST_ENV[@]}" "$BIN/python" scripts/two_hosts_check.py pg-latency "$MDS_STACK_DATABASE_URL")
latency_bridge=$(in_host a "$BIN/python" scripts/two_hosts_check.py pg-latency "${MDS_STACK_DATABASE_URL/@127.0.0.1:/@$STACK_HOST:}")
report "       PostgreSQL from the stack's side (127.0.0.1): $latency_direct"
report "       PostgreSQL from host a (forwarder on $STACK_HOST): $latency_bridge"
$network_ok && report "[PASS] network: each host reaches the four shared services over the bridge, and nothing else" ||
  report "[FAIL] network: a host missed a shared service, or found one on its own loopback or filesystem"

# The same command as scripts/stack.sh runs; a restarted worker appends to its host's log.
start_worker() {
  in_host "$1" "$BIN/celery" -A mds_project worker --loglevel INFO --concurrency 1 --hostname "training@%h" \
    --without-gossip --without-mingle >>"$TWO_HOSTS_DIR/host-$1/worker.log" 2>&1 &
}
worker_running() {
  local pid
  for pid in $(ip netns pids "$(netns "$1")"); do
    grep -qa celery "/proc/$pid/cmdline" 2>/dev/null && return 0
  done
  return 1
}
wait_ready() {
  local h=$1 dir=$TWO_HOSTS_DIR/host-$1 readies=${2:-1} deadline=$((SECONDS + 120))
  until (($(grep -c " ready\.$" "$dir/worker.log" 2>/dev/null) >= readies)) &&
    curl --silent --fail --max-time 2 --output /dev/null "http://${ADDR[$h]}:$STACK_INFERENCE_PORT/health"; do
    ((SECONDS < deadline)) || {
      tail -n 20 "$dir/worker.log" "$dir/inference.log" >&2
      die "host $h's worker or replica not ready after 120 s"
    }
    sleep 0.5
  done
}

log "starting a worker and an inference replica in each host"
for h in "${HOSTS[@]}"; do
  : >"$TWO_HOSTS_DIR/host-$h/worker.log"
  start_worker "$h"
  in_host "$h" "$BIN/python" -m mds_project.inference_server --bind "${ADDR[$h]}:$STACK_INFERENCE_PORT" \
    >"$TWO_HOSTS_DIR/host-$h/inference.log" 2>&1 &
done
for h in "${HOSTS[@]}"; do wait_ready "$h"; done
log "hosts ready after $(($(date +%s) - BEGAN)) s"

hosts_args=()
for h in "${HOSTS[@]}"; do
  hosts_args+=(--host "$(hostname_of "$h"),$(netns "$h"),http://${ADDR[$h]}:$STACK_INFERENCE_PORT")
done
checks=0
if [[ $TWO_HOSTS_BATCH_ONLY != 1 ]]; then
  "$BIN/python" scripts/two_hosts_check.py run "${hosts_args[@]}" --alias-check-interval "$MDS_ALIAS_CHECK_INTERVAL" ||
    checks=$?
fi
# (b) killed one host's worker: (d) needs both again.
for h in "${HOSTS[@]}"; do
  worker_running "$h" && continue
  log "restarting host $h's worker for (d)"
  start_worker "$h"
  wait_ready "$h" $(($(grep -c " ready\.$" "$TWO_HOSTS_DIR/host-$h/worker.log") + 1))
done
"$BIN/python" scripts/two_hosts_check.py batch "${hosts_args[@]}" || checks=$?
$network_ok && ((checks == 0)) && report "RESULT: PASS" || report "RESULT: FAIL"
$network_ok && exit "$checks"
exit 1
