#!/bin/bash
# Entrypoint of the prov postgres image.
#
#   (no arguments) | postgres [ARGS] | -ARG...   run the server (initialising PGDATA if empty)
#   anything else                                exec'd as given (e.g. bash, pg_isready, psql)
#
# Server mode: as root, fix the ownership of PGDATA and re-exec this script as the postgres
# user (setpriv, from util-linux). As postgres: when PGDATA holds no cluster yet, initialise it
# from the environment, then exec postgres in the foreground, so that it is PID 1 and shuts
# down cleanly on SIGTERM (smart) or SIGINT (fast; the image's STOPSIGNAL).
#
# Environment (read only when initialising an empty PGDATA):
#   POSTGRES_PASSWORD  required; password of POSTGRES_USER
#   POSTGRES_USER      role to create (LOGIN, owner of POSTGRES_DB); default postgres
#   POSTGRES_DB        database to create; default: POSTGRES_USER
# Result: superuser postgres (local peer auth only, unless POSTGRES_USER=postgres, which then
# gets the password), listen on all addresses, scram-sha-256 for every other connection.
set -euo pipefail

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
PGBIN=/usr/lib/postgresql/15/bin
INIT_MARKER=prov-init.done

log() { printf 'prov-postgres: %s\n' "$*" >&2; }
die() {
  printf 'prov-postgres: error: %s\n' "$*" >&2
  exit 1
}

if [ "$#" -eq 0 ] || [ "${1:0:1}" = - ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
shift

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  # Only files not yet owned by postgres (cheap on an initialised volume).
  find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
  chmod 0700 "$PGDATA"
  chown postgres:postgres /var/run/postgresql
  chmod 2775 /var/run/postgresql
  export HOME=/var/lib/postgresql USER=postgres LOGNAME=postgres
  exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" postgres "$@"
fi

init_failed() {
  log "initialisation failed: emptying $PGDATA so that the next start retries"
  "$PGBIN/pg_ctl" -D "$PGDATA" -s -m immediate stop >/dev/null 2>&1 || true
  find "$PGDATA" -mindepth 1 -maxdepth 1 \! -name lost+found -exec rm -rf '{}' +
}

init_cluster() {
  local user=${POSTGRES_USER:-postgres}
  local db=${POSTGRES_DB:-$user}
  local password=${POSTGRES_PASSWORD:-}
  [ -n "$password" ] ||
    die "PGDATA ($PGDATA) is empty and POSTGRES_PASSWORD is not set: set POSTGRES_PASSWORD (and POSTGRES_USER, POSTGRES_DB) to initialise the database"
  if find "$PGDATA" -mindepth 1 -maxdepth 1 \! -name lost+found | grep -q .; then
    die "PGDATA ($PGDATA) is not empty but holds no cluster (no PG_VERSION): refusing to initialise over it; empty or remove the volume"
  fi

  log "initialising $PGDATA: role '$user', database '$db'"
  # From here on, a failure leaves no half-initialised data directory behind: the next
  # start retries from scratch.
  trap init_failed ERR
  "$PGBIN/initdb" -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null

  local sockdir
  sockdir=$(mktemp -d)
  # Temporary server: no TCP, and a private socket directory, so that neither clients nor
  # a pg_isready healthcheck see it before initialisation is complete.
  "$PGBIN/pg_ctl" -D "$PGDATA" -w -s -o "-c listen_addresses='' -c unix_socket_directories=$sockdir" start

  local -a psql=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -U postgres -d postgres
    -v "user=$user" -v "pw=$password" -v "db=$db")
  if [ "$user" = postgres ]; then
    "${psql[@]}" <<<"ALTER ROLE postgres PASSWORD :'pw';"
  else
    "${psql[@]}" <<<"CREATE ROLE :\"user\" LOGIN PASSWORD :'pw';"
  fi
  if [ "$db" != postgres ]; then
    "${psql[@]}" <<<"CREATE DATABASE :\"db\" OWNER :\"user\";"
  fi

  "$PGBIN/pg_ctl" -D "$PGDATA" -w -s -m fast stop
  rmdir "$sockdir"

  cat >"$PGDATA/pg_hba.conf" <<'EOF'
# Written by prov-postgres-entrypoint at initialisation.
# TYPE  DATABASE  USER      ADDRESS  METHOD
local   all       postgres           peer
local   all       all                scram-sha-256
host    all       all       all      scram-sha-256
EOF
  date -u +%Y-%m-%dT%H:%M:%SZ >"$PGDATA/$INIT_MARKER"
  trap - ERR
  log "initialisation complete"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  init_cluster
elif [ ! -e "$PGDATA/$INIT_MARKER" ]; then
  die "PGDATA ($PGDATA) holds a cluster but no $INIT_MARKER: an earlier initialisation was interrupted; remove the volume and start again"
else
  log "PGDATA ($PGDATA) already initialised (PostgreSQL $(cat "$PGDATA/PG_VERSION")): skipping initialisation"
fi

exec "$PGBIN/postgres" -D "$PGDATA" -c listen_addresses='*' "$@"
