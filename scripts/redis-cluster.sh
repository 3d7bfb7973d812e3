#!/usr/bin/env bash
# Starts the local Redis Cluster the Cluster tests use: three masters, no
# replicas, on 127.0.0.1:7001-7003, keeping nothing on disk but each node's
# cluster config. Safe to run again and again: a healthy cluster is left
# alone (fast), stopped nodes are started, and nodes that are up but not one
# cluster (a create that died half way, a config from another cluster) are
# wiped and the cluster created afresh. It returns once every node reports
# cluster_state:ok.
set -euo pipefail

HOST=127.0.0.1
PORTS=(7001 7002 7003)
DATA=/var/lib/redis-cluster
LOGS=/var/log/redis-cluster

log() { printf '== redis-cluster: %s\n' "$*"; }
die() { log "$*"; exit 1; }
cli() { local port=$1; shift; redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null | tr -d '\r'; }

# healthy: every node agrees it is in one cluster of three masters that
# serves every slot. cluster_state:ok alone would also pass two nodes that
# formed a cluster without the third.
healthy() {
  local p info n=${#PORTS[@]}
  for p in "${PORTS[@]}"; do
    info=$(cli "$p" cluster info)
    grep -qx cluster_state:ok <<<"$info" || return 1
    grep -qx "cluster_known_nodes:$n" <<<"$info" || return 1
    grep -qx "cluster_size:$n" <<<"$info" || return 1
  done
}

# formed_before: every node remembers other nodes (a config from an earlier
# run), so after a restart they may find one another without a create.
formed_before() {
  local p
  for p in "${PORTS[@]}"; do
    [ "$(cli "$p" cluster info | sed -n 's/^cluster_known_nodes://p')" -gt 1 ] 2>/dev/null || return 1
  done
}

wait_healthy() {
  local tries=$1
  for _ in $(seq 1 "$tries"); do
    healthy && return 0
    sleep 0.5
  done
  return 1
}

healthy && exit 0

mkdir -p "$DATA" "$LOGS"
# Two runs at once (a developer's shell and a test script) must not both
# create the cluster.
exec 9>"$DATA/.lock"
flock -w 120 9 || die "another run holds $DATA/.lock"
healthy && exit 0

started=0
for p in "${PORTS[@]}"; do
  if [ "$(cli "$p" ping)" = PONG ]; then
    [ "$(cli "$p" info cluster | sed -n 's/^cluster_enabled://p')" = 1 ] \
      || die "port $p answers but is not a cluster node; stop it first"
    continue
  fi
  mkdir -p "$DATA/$p"
  redis-server --daemonize yes --bind "$HOST" --port "$p" \
    --save "" --appendonly no \
    --dir "$DATA/$p" --pidfile "$DATA/$p/redis.pid" --logfile "$LOGS/$p.log" \
    --cluster-enabled yes --cluster-config-file "$DATA/$p/nodes.conf" --cluster-node-timeout 5000 \
    9>&- # the daemon must not inherit the lock and hold it for its lifetime
  started=1
done
for p in "${PORTS[@]}"; do
  for _ in $(seq 1 100); do
    [ "$(cli "$p" ping)" = PONG ] && break
    sleep 0.1
  done
  [ "$(cli "$p" ping)" = PONG ] || die "node $p did not start; see $LOGS/$p.log"
done

# Nodes restarted from the config of a cluster they formed before find one
# another again on their own within a few seconds.
if [ "$started" = 1 ] && formed_before && wait_healthy 20; then
  log "rejoined on ports ${PORTS[*]}"
  exit 0
fi

log "creating the cluster on ports ${PORTS[*]}"
addrs=()
for p in "${PORTS[@]}"; do
  # RESET HARD refuses a master holding keys, hence FLUSHALL first; test data
  # is all there is on these nodes.
  cli "$p" flushall >/dev/null || true
  [ "$(cli "$p" cluster reset hard)" = OK ] || die "CLUSTER RESET HARD failed on $p"
  addrs+=("$HOST:$p")
done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$LOGS/create.log" 2>&1 \
  || die "redis-cli --cluster create failed; see $LOGS/create.log"
wait_healthy 60 || die "cluster_state is not ok on every node after 30 s; see $LOGS/"
log "up on ports ${PORTS[*]}"
