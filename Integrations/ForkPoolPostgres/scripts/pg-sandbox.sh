#!/usr/bin/env bash
# pg-sandbox.sh COMMAND [ARG…]: runs COMMAND beside a throw-away PostgreSQL cluster, then stops
# the cluster and deletes it.
#
# Finds PostgreSQL's server programs from Debian's packages (installing `postgresql` with
# apt-get when they are missing), makes a cluster in a temporary folder (as the `postgres` user
# when run as root: initdb refuses root), starts it on a free TCP port, and gives COMMAND:
#   FORKPOOL_PG_URL      postgres://postgres@127.0.0.1:PORT/forkpool_test (trust authentication)
#   FORKPOOL_PG_PORT     the port
#   FORKPOOL_PG_RESTART  a script that restarts the server (fast shutdown) and waits for it
#   FORKPOOL_PG_STOP / FORKPOOL_PG_START  scripts that stop / start it
# As root, it also installs iproute2 when `ip` is missing (the network-namespace test needs
# it; that test needs root, and is skipped without it). Not root, it installs with sudo, and
# only PostgreSQL (without sudo it says what to install).
# The server listens on every address, but lets in only loopback and 10.213.0.0/16 (the
# addresses the tests give their network namespaces).
set -euo pipefail

# (Nothing found is no failure: under pipefail, ls's status would end the script unsaid.)
find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true; }

BIN=$(find_bin)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "pg-sandbox: PostgreSQL's server is not installed; installing it from Debian's packages" >&2
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || {
            echo "pg-sandbox: no sudo to install it with: install Debian's postgresql package (apt-get install postgresql) as root, or run this as root" >&2
            exit 1
        }
        SUDO=sudo
    fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    BIN=$(find_bin)
fi
[ -n "$BIN" ] || { echo "pg-sandbox: no PostgreSQL server programs under /usr/lib/postgresql" >&2; exit 1; }
# The network-namespace test's `ip` (iproute2), from Debian's packages when it is missing: as
# root only (the test needs root; without it the test is skipped, and no sudo is asked for).
if [ "$(id -u)" = 0 ] && ! command -v ip >/dev/null 2>&1 && [ ! -x /usr/sbin/ip ]; then
    echo "pg-sandbox: installing iproute2 (ip netns) from Debian's packages" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >&2 || true
fi

DIR=$(mktemp -d /tmp/forkpool-pg.XXXXXX)
chmod 755 "$DIR"
cleanup() {
    [ -x "$DIR/stop" ] && "$DIR/stop" >/dev/null 2>&1
    rm -rf "$DIR"
}
trap cleanup EXIT
RUN=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$DIR"
    RUN=(runuser -u postgres --)
fi

# A free port: one nothing answers on (bash's /dev/tcp; no other tool needed).
PORT=""
for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then PORT=$candidate; break; fi
done
[ -n "$PORT" ] || { echo "pg-sandbox: found no free port" >&2; exit 1; }
"${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
cat >>"$DIR/data/pg_hba.conf" <<HBA
host all all 10.213.0.0/16 trust
HBA
cat >>"$DIR/data/postgresql.conf" <<CONF
listen_addresses = '*'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF

PG_CTL=("${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60)
for name in start stop restart; do
    mode=""
    if [ "$name" != start ]; then mode="-m fast"; fi
    printf '#!/bin/sh\nexec %s %s %s\n' "$(printf '%q ' "${PG_CTL[@]}")" "$name" "$mode" >"$DIR/$name"
    chmod +x "$DIR/$name"
done

"$DIR/start" >/dev/null
"${RUN[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres forkpool_test

export FORKPOOL_PG_URL="postgres://postgres@127.0.0.1:$PORT/forkpool_test"
export FORKPOOL_PG_PORT="$PORT"
export FORKPOOL_PG_RESTART="$DIR/restart" FORKPOOL_PG_STOP="$DIR/stop" FORKPOOL_PG_START="$DIR/start"
echo "pg-sandbox: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on port $PORT ($DIR)" >&2
"$@"
