#!/usr/bin/env bash
# Counts the statements PostgreSQL runs per placed order in a surge drop, from
# the server's own log. It turns log_statement=all on for the run (ALTER
# SYSTEM: needs a superuser, and a server whose log is the file below) and
# off again, whatever happens.
#
#   go build -o /tmp/surge-bin ./examples/surge
#   scripts/pg-statements-per-order.sh 3000 -window 5s -accounts 100 -bcrypt-cost 4 -plot ''
#
# SURGE picks the binary (default /tmp/surge-bin); PGLOG the server log
# (default /var/log/postgresql/postgresql-15-main.log).
set -euo pipefail
n=${1:?usage: $0 BUYERS [surge flags...]}
shift
surge=${SURGE:-/tmp/surge-bin}
log=${PGLOG:-/var/log/postgresql/postgresql-15-main.log}
psql_() { psql -h 127.0.0.1 -U postgres -d test -Atq "$@"; }
psql_ -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
trap 'psql_ -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null' EXIT
sleep 1
from=$(($(wc -l <"$log") + 1))
out=$("$surge" -q -n "$n" -store postgres "$@")
echo "$out" | grep -E "^drop:|RESULT"
placed=$(echo "$out" | sed -nE 's/^drop: .* ([0-9]+) orders placed.*/\1/p')
tail -n "+$from" "$log" | python3 -c '
import re, sys, collections
placed = int(sys.argv[1])
lines = sys.stdin.read().split("\n")
count = collections.Counter()
for i, line in enumerate(lines):
    m = re.search(r"LOG:  (execute [^:]*|statement): (.*)$", line)
    if not m:
        continue
    q = m.group(2).strip() or (lines[i + 1].strip() if i + 1 < len(lines) else "")
    q = re.sub(r"\b[a-z0-9]+_(shop|paymux)_", r"\1_", q)
    q = re.sub(r"\$\d+(, \$\d+)+", "$..", q)[:100]
    count[q] += 1
for q, c in count.most_common(20):
    print(f"{c:7d} {c / placed:6.2f}  {q}")
total = sum(count.values())
print(f"{total} statements, {total / placed:.2f} per placed order ({placed} placed)")
' "$placed"
