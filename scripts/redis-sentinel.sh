#!/usr/bin/env bash
# Starts the local Redis Sentinel setup the Sentinel tests use, on 127.0.0.1:
# a master and a replica on 7101 and 7102, and three sentinels on 26379-26381
# watching them as "paymux" (quorum 2). The data nodes persist nothing.
# Safe to run again and again: a healthy setup is left alone (fast), and
# stopped processes are started. Which data node is the master is the
# sentinels' business: after a failover it may be 7102, which is healthy and
# left so; a node that was down comes back as a replica of the master the
# sentinels name. It returns once the setup is healthy (see healthy).
set -euo pipefail

HOST=127.0.0.1
NAME=paymux
NODES=(7101 7102)
SENTINELS=(26379 26380 26381)
DATA=/var/lib/redis-sentinel
LOGS=/var/log/redis-sentinel

log() { printf '== redis-sentinel: %s\n' "$*"; }
die() { log "$*"; exit 1; }
cli() { local port=$1; shift; redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null | tr -d '\r'; }
up() { [ "$(cli "$1" ping)" = PONG ]; }
# field: the value of "name:value" in an INFO reply on stdin.
field() { sed -n "s/^$1://p"; }
# load_master fills SM with the sentinel on $1's SENTINEL MASTER reply,
# which redis-cli prints as alternating name and value lines. Parsed in
# bash, not awk: the healthy check runs on every call of this script and
# should cost a handful of processes.
declare -A SM
load_master() {
  local k="" line
  SM=()
  while IFS= read -r line; do
    line=${line%$'\r'}
    if [ -z "$k" ]; then k=$line; else SM[$k]=$line; k=""; fi
  done < <(redis-cli -h "$HOST" -p "$1" sentinel master "$NAME" 2>/dev/null)
}

# master_port_of: the port the sentinel on $1 names as the master, or nothing.
master_port_of() {
  local reply
  reply=$(cli "$1" sentinel get-master-addr-by-name "$NAME") || return 0
  [ "$(sed -n 1p <<<"$reply")" = "$HOST" ] && sed -n 2p <<<"$reply"
  return 0
}

# healthy: every sentinel names the same master, which answers as a master
# with a replica connected, and knows that replica and the two other
# sentinels. Without the last two a sentinel could not fail over (the tests
# force failovers), though clients would already find the master. SENTINEL
# MASTER carries the address GET-MASTER-ADDR-BY-NAME gives, in one call.
healthy() {
  local s master="" info
  for s in "${SENTINELS[@]}"; do
    load_master "$s"
    [ "${SM[ip]:-}" = "$HOST" ] && [ -n "${SM[port]:-}" ] || return 1
    [ "${SM[flags]:-}" = master ] || return 1 # not down, no failover under way
    [ -z "$master" ] || [ "${SM[port]}" = "$master" ] || return 1
    master=${SM[port]}
    [ "${SM[num-slaves]:-0}" -ge 1 ] 2>/dev/null || return 1
    [ "${SM[num-other-sentinels]:-0}" -ge $((${#SENTINELS[@]} - 1)) ] 2>/dev/null || return 1
  done
  info=$(redis-cli -h "$HOST" -p "$master" info replication 2>/dev/null) || return 1
  [[ $info == *$'role:master\r'* ]] || return 1
  [[ $info =~ connected_slaves:([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] || return 1
}

wait_healthy() {
  local tries=$1
  for _ in $(seq 1 "$tries"); do
    healthy && return 0
    sleep 0.5
  done
  return 1
}

# named_master: the port the sentinels name as the master: the answer of
# the sentinel with the highest config epoch, which has seen the latest
# failover (the others may lag behind it for a moment). Nothing when no
# sentinel answers.
named_master() {
  local s best=-1 named=""
  for s in "${SENTINELS[@]}"; do
    load_master "$s"
    [ "${SM[ip]:-}" = "$HOST" ] && [ -n "${SM[port]:-}" ] || continue
    [ "${SM[config-epoch]:-0}" -gt "$best" ] 2>/dev/null || continue
    best=${SM[config-epoch]:-0}
    named=${SM[port]}
  done
  echo "$named"
}

is_master() { up "$1" && [ "$(cli "$1" info replication | field role)" = master ]; }

# current_master: the data node that should be the master. The sentinels'
# choice when it is up and a master; else a node that is up and a master;
# else the node the sentinels name although it is down (so that their view
# and the nodes' agree once it starts); else the first node.
current_master() {
  local p named
  named=$(named_master)
  if [ -n "$named" ] && is_master "$named"; then
    echo "$named"; return
  fi
  for p in "${NODES[@]}"; do
    is_master "$p" && { echo "$p"; return; }
  done
  for p in "${NODES[@]}"; do
    [ "$p" = "$named" ] && { echo "$p"; return; }
  done
  echo "${NODES[0]}"
}

all_up() {
  local p
  for p in "${NODES[@]}" "${SENTINELS[@]}"; do up "$p" || return 1; done
}

any_node_up() {
  local p
  for p in "${NODES[@]}"; do up "$p" && return 0; done
  return 1
}

any_sentinel_up() {
  local s
  for s in "${SENTINELS[@]}"; do up "$s" && return 0; done
  return 1
}

wait_up() {
  local p
  for p in "$@"; do
    for _ in $(seq 1 100); do
      up "$p" && break
      sleep 0.1
    done
    up "$p" || die "port $p did not start; see $LOGS/$p.log"
  done
}

# start_node starts the data node on $1, a replica of the node on $2 if
# given. --repl-diskless-sync-delay 0: a replica's full sync starts at once
# rather than after 5 s of waiting for more replicas to share it; there is
# one, and after every failover the old master resyncs in full (it took
# writes the new master never saw), which the failover test waits for. The
# RDB file a replica's sync leaves in its dir is removed first: a node
# loads it on start whatever --save says, and would bring back old keys.
start_node() {
  local p=$1 args=()
  [ $# -gt 1 ] && args=(--replicaof "$HOST" "$2")
  mkdir -p "$DATA/$p"
  rm -f "$DATA/$p/dump.rdb"
  redis-server --daemonize yes --bind "$HOST" --port "$p" \
    --save "" --appendonly no --repl-diskless-sync-delay 0 "${args[@]}" \
    --dir "$DATA/$p" --pidfile "$DATA/$p/redis.pid" --logfile "$LOGS/$p.log" \
    9>&- # the daemon must not inherit the lock and hold it for its lifetime
  wait_up "$p"
}

healthy && exit 0

mkdir -p "$DATA" "$LOGS"
# Two runs at once (a developer's shell and a test script) must not both
# start the same processes.
exec 9>"$DATA/.lock"
flock -w 120 9 || die "another run holds $DATA/.lock"
healthy && exit 0

for p in "${NODES[@]}"; do
  up "$p" || continue
  [ "$(cli "$p" info server | field redis_mode)" = standalone ] \
    || die "port $p answers but is not a plain Redis server; stop it first"
done
for s in "${SENTINELS[@]}"; do
  up "$s" || continue
  [ "$(cli "$s" info server | field redis_mode)" = sentinel ] \
    || die "port $s answers but is not a sentinel; stop it first"
done

# Everything runs but the setup is not healthy: most likely a failover is
# settling (the old master turns replica some 8 s after it) or a replica is
# syncing. The sentinels sort that out themselves; stepping in now would
# undo their work.
if all_up && wait_healthy 40; then
  exit 0
fi

# The sentinels fail a dead master over to its replica within seconds
# (down-after 1 s). Give them that time rather than restart the dead master
# empty under its replica's data.
if any_sentinel_up && any_node_up; then
  for _ in $(seq 1 20); do
    up "$(current_master)" && break
    sleep 0.5
  done
fi

master=$(current_master)
if ! up "$master"; then
  start_node "$master"
  log "started master on $master"
fi
for p in "${NODES[@]}"; do
  [ "$p" = "$master" ] && continue
  if up "$p"; then
    # A second master, or a replica of a node that is not the master:
    # replicas of a dead master are what a failover leaves behind when the
    # sentinels were down.
    info=$(cli "$p" info replication)
    if [ "$(field role <<<"$info")" != slave ] || [ "$(field master_port <<<"$info")" != "$master" ]; then
      cli "$p" replicaof "$HOST" "$master" >/dev/null
      log "made $p a replica of $master"
    fi
    continue
  fi
  start_node "$p" "$master"
  log "started replica on $p of $master"
done

# Sentinels that name another master (theirs died and came back empty as
# a replica, or the nodes were set right above) watch the master afresh.
for s in "${SENTINELS[@]}"; do
  up "$s" || continue
  m=$(master_port_of "$s")
  [ "$m" = "$master" ] && continue
  cli "$s" sentinel remove "$NAME" >/dev/null
  [ "$(cli "$s" sentinel monitor "$NAME" "$HOST" "$master" 2)" = OK ] || die "SENTINEL MONITOR failed on $s"
  cli "$s" sentinel set "$NAME" down-after-milliseconds 1000 failover-timeout 5000 parallel-syncs 1 >/dev/null
  log "sentinel $s watches $master (it named ${m:-nothing})"
done

# A sentinel rewrites its config file with what it learns (replicas, the
# other sentinels, failovers), so it is written afresh only when the
# sentinel starts: an old one may name a master from before the data nodes
# restarted. The running sentinels introduce themselves to a new one.
for s in "${SENTINELS[@]}"; do
  up "$s" && continue
  mkdir -p "$DATA/$s"
  cat >"$DATA/$s/sentinel.conf" <<EOF
bind $HOST
port $s
daemonize yes
pidfile $DATA/$s/sentinel.pid
logfile $LOGS/$s.log
dir $DATA/$s
sentinel monitor $NAME $HOST $master 2
sentinel down-after-milliseconds $NAME 1000
sentinel failover-timeout $NAME 5000
sentinel parallel-syncs $NAME 1
EOF
  redis-server "$DATA/$s/sentinel.conf" --sentinel 9>&- # not the lock either
  wait_up "$s"
  log "started sentinel on $s watching $master"
done

wait_healthy 60 || die "not healthy after 30 s; see $LOGS/"
log "up: master $(master_port_of "${SENTINELS[0]}"), sentinels ${SENTINELS[*]}"
