#!/usr/bin/env bash
# Throwaway PostgreSQL cluster for development and tests.
#
# Usage: scripts/dev/local-postgres.sh start|stop|status|env|destroy
#
#   start    initialise (first time) and start the cluster, create the databases
#            `operational` and `analytics`, write the env file; idempotent.
#   stop     fast shutdown; exit 0 also when not running.
#   status   print `running on 127.0.0.1:<port>` (exit 0) or `not running` (exit 1).
#   env      print DB_URL, ANALYTICS_URL and MIGRATION_ENVIRONMENT lines (exit 1 if not running).
#   destroy  stop, then remove the cluster, the state files and the env file this script wrote.
#
# Environment:
#   LOCAL_PG_DIR      state directory (default: <project>/.local/pg)
#   MIGRATE_ENV_FILE  env file to write (default: <project>/migrate.env)
#   PG_BIN            directory holding initdb and pg_ctl (default: /usr/lib/postgresql/15/bin,
#                     else `pg_config --bindir`)
#
# State directory contents: data/ (cluster), run/ (unix socket directory), server.log,
# port, password, cluster_dir (absolute path of the directory that really holds data/, run/
# and server.log). When the server's OS user cannot reach the state directory (running as
# root with the project under a mode-700 directory) or the socket path would be too long,
# the cluster lives in ${TMPDIR:-/tmp}/migrate-wrapper-pg-<hash> and data/, run/ and
# server.log in the state directory are symlinks to it.
#
# Exit codes: 0 success; 1 error (or `status`/`env` when not running); 2 usage error.
set -euo pipefail

readonly PROG="local-postgres.sh"
readonly MARKER="# Written by scripts/dev/local-postgres.sh"
readonly DATABASES=(operational analytics)
readonly PG_OS_USER=postgres

die() {
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
usage() {
    printf 'usage: %s start|stop|status|env|destroy\n' "$PROG" >&2
    exit 2
}

[[ $# -eq 1 ]] || usage
CMD=$1
case "$CMD" in
    start | stop | status | env | destroy) ;;
    -h | --help | help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) usage ;;
esac

# --- paths ------------------------------------------------------------------------------------

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
PROJECT_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

abspath() { # absolute path without requiring it to exist (relative to the caller's cwd)
    case "$1" in
        /*) printf '%s\n' "$1" ;;
        *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
    esac
}

[[ -z "${LOCAL_PG_DIR+x}" || -n "${LOCAL_PG_DIR}" ]] || die "LOCAL_PG_DIR is set but empty"
[[ -z "${MIGRATE_ENV_FILE+x}" || -n "${MIGRATE_ENV_FILE}" ]] || die "MIGRATE_ENV_FILE is set but empty"
STATE_DIR=$(abspath "${LOCAL_PG_DIR:-$PROJECT_ROOT/.local/pg}")
STATE_DIR=${STATE_DIR%/}
ENV_FILE=$(abspath "${MIGRATE_ENV_FILE:-$PROJECT_ROOT/migrate.env}")
case "$STATE_DIR" in *"'"* | *$'\n'*) die "LOCAL_PG_DIR must not contain quotes or newlines: $STATE_DIR" ;; esac
cd / # every path below is absolute; `/` is readable by the server's OS user too

# --- PostgreSQL binaries ----------------------------------------------------------------------

if [[ -n "${PG_BIN:-}" ]]; then
    BIN=$PG_BIN
elif [[ -d /usr/lib/postgresql/15/bin ]]; then
    BIN=/usr/lib/postgresql/15/bin
elif command -v pg_config >/dev/null 2>&1; then
    BIN=$(pg_config --bindir)
else
    die "PostgreSQL server binaries not found: set PG_BIN to the directory holding initdb and pg_ctl"
fi
for tool in initdb pg_ctl; do
    [[ -x "$BIN/$tool" ]] || die "$tool not found in $BIN (set PG_BIN to the directory holding initdb and pg_ctl)"
done
if [[ -x "$BIN/psql" ]]; then PSQL="$BIN/psql"; else PSQL=$(command -v psql) || die "psql not found"; fi

# --- running the server tools as a non-root user ----------------------------------------------

AS_PG=()
if [[ $EUID -eq 0 ]]; then
    id -u "$PG_OS_USER" >/dev/null 2>&1 || die "running as root needs a '$PG_OS_USER' OS user (the server refuses to run as root)"
    command -v runuser >/dev/null 2>&1 || die "running as root needs runuser (util-linux)"
    AS_PG=(runuser -u "$PG_OS_USER" --)
fi
as_pg() { "${AS_PG[@]}" "$@"; }

# Give a directory this script created to the server's OS user.
give_to_pg() { if [[ $EUID -eq 0 ]]; then chown "$PG_OS_USER:" "$@"; fi; }

# True when the server's OS user can traverse into $1.
pg_can_reach() { if [[ $EUID -eq 0 ]]; then as_pg test -x "$1" 2>/dev/null; else test -x "$1"; fi; }

# --- small helpers ----------------------------------------------------------------------------

write_file() { # write_file PATH MODE CONTENT: atomic replace, owned by the invoking user
    local tmp
    tmp=$(mktemp "$(dirname -- "$1")/.$(basename -- "$1").XXXXXX")
    printf '%s\n' "$3" >"$tmp"
    chmod "$2" "$tmp"
    mv -f -- "$tmp" "$1"
}

read_line() { # first line of a file, or nothing
    local line=""
    if [[ -f "$1" ]]; then IFS= read -r line <"$1" || true; fi
    printf '%s' "$line"
}

new_password() {
    local raw
    raw=$(head -c 256 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')
    [[ ${#raw} -ge 24 ]] || die "could not generate a password"
    printf '%s' "${raw:0:24}"
}

port_is_free() {
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(1)
EOF
    else
        ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
    fi
}

free_port() {
    local p
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        if port_is_free "$p"; then
            echo "$p"
            return
        fi
    done
    die "could not find a free TCP port"
}

# --- where the cluster lives ------------------------------------------------------------------

fallback_dir() {
    local base=${TMPDIR:-/tmp} hash
    base=${base%/}
    [[ -d "$base" ]] && pg_can_reach "$base" || base=/tmp
    hash=$(printf '%s' "$STATE_DIR" | sha256sum | cut -c1-12)
    printf '%s/migrate-wrapper-pg-%s\n' "$base" "$hash"
}

# Sets CL (the directory holding data/, run/, server.log) from the record, if any.
load_cluster_dir() {
    CL=$(read_line "$STATE_DIR/cluster_dir")
    [[ -n "$CL" && -d "$CL" ]] || CL=""
}

# Chooses, creates and records CL. Only `start` calls this.
setup_cluster_dir() {
    load_cluster_dir
    if [[ -z "$CL" ]]; then
        CL=$STATE_DIR
        # Socket paths are limited to 107 bytes: <run>/.s.PGSQL.NNNNN plus margin.
        if ! pg_can_reach "$STATE_DIR" || [[ $((${#STATE_DIR} + 19)) -gt 100 ]]; then
            CL=$(fallback_dir)
        fi
    fi
    if [[ "$CL" != "$STATE_DIR" ]]; then
        if [[ -e "$CL" || -L "$CL" ]]; then
            [[ -d "$CL" && ! -L "$CL" ]] || die "$CL exists and is not a directory"
            local owner
            owner=$(stat -c %U "$CL")
            if [[ $EUID -eq 0 ]]; then
                [[ "$owner" == "$PG_OS_USER" ]] || die "$CL is owned by $owner, not $PG_OS_USER; remove it"
            else
                [[ "$owner" == "$(id -un)" ]] || die "$CL is owned by $owner; remove it"
            fi
        else
            mkdir -m 700 -- "$CL"
            give_to_pg "$CL"
        fi
        pg_can_reach "$CL" || die "the $PG_OS_USER user cannot reach $CL (set TMPDIR to a directory it can traverse)"
        local name
        for name in data run server.log; do
            if [[ -e "$STATE_DIR/$name" && ! -L "$STATE_DIR/$name" ]]; then
                die "$STATE_DIR/$name exists but the cluster lives in $CL; run '$PROG destroy' first"
            fi
            ln -sfn -- "$CL/$name" "$STATE_DIR/$name"
        done
    fi
    if [[ ! -d "$CL/data" ]]; then
        mkdir -m 700 -- "$CL/data"
        give_to_pg "$CL/data"
    fi
    if [[ ! -d "$CL/run" ]]; then
        mkdir -m 700 -- "$CL/run"
        give_to_pg "$CL/run"
    fi
    if [[ ! -f "$CL/server.log" ]]; then
        (umask 077 && : >"$CL/server.log")
        give_to_pg "$CL/server.log"
    fi
    [[ "$(read_line "$STATE_DIR/cluster_dir")" == "$CL" ]] || write_file "$STATE_DIR/cluster_dir" 644 "$CL"
}

# --- server state -----------------------------------------------------------------------------

postmaster_is_zombie() { # a killed postmaster stays a zombie until init reaps it
    local pid stat
    pid=$(head -n 1 "$CL/data/postmaster.pid" 2>/dev/null || true)
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    stat=$(cat "/proc/$pid/stat" 2>/dev/null || true)
    stat=${stat##*) }
    [[ "${stat%% *}" == Z ]]
}

is_running() {
    [[ -n "$CL" && -f "$CL/data/PG_VERSION" ]] || return 1
    as_pg "$BIN/pg_ctl" status -D "$CL/data" >/dev/null 2>&1 || return 1
    ! postmaster_is_zombie
}

running_port() { # the port from postmaster.pid (line 4), else the recorded one
    local p=""
    if [[ -f "$CL/data/postmaster.pid" ]]; then p=$(sed -n 4p "$CL/data/postmaster.pid" 2>/dev/null || true); fi
    [[ "$p" =~ ^[0-9]+$ ]] || p=$(read_line "$STATE_DIR/port")
    printf '%s' "$p"
}

psql_admin() { # psql_admin PORT SQL...: superuser over the unix socket (trust)
    local port=$1
    shift
    env -u PGSERVICE -u PGSERVICEFILE -u PGOPTIONS -u PGHOSTADDR -u PGPASSFILE \
        "$PSQL" -X -q -v ON_ERROR_STOP=1 -h "$CL/run" -p "$port" -U postgres -d postgres "$@" </dev/null
}

env_lines() { # env_lines PORT PASSWORD
    local base="postgres://postgres:$2@127.0.0.1:$1"
    printf 'DB_URL=%s/operational?sslmode=disable\n' "$base"
    printf 'ANALYTICS_URL=%s/analytics?sslmode=disable\n' "$base"
    printf 'MIGRATION_ENVIRONMENT=dev\n'
}

# Writes the env file; sets WRITTEN_ENV_FILE.
write_env_file() {
    local port=$1 password=$2 target=$ENV_FILE content
    content="$MARKER
# Local throwaway cluster (state: $STATE_DIR). Regenerated by '$PROG start'.
$(env_lines "$port" "$password")"
    if [[ -e "$target" && "$(read_line "$target")" != "$MARKER" ]]; then
        local fallback="$STATE_DIR/migrate.env"
        [[ "$target" != "$fallback" ]] || die "$target was not written by this script; refusing to overwrite it"
        warn "$target was not written by this script; left it untouched and wrote $fallback instead"
        target=$fallback
    fi
    mkdir -p -- "$(dirname -- "$target")"
    write_file "$target" 600 "$content"
    WRITTEN_ENV_FILE=$target
}

start_server() { # start_server PORT: returns 0, or 1 when the port was taken, dies otherwise
    local port=$1 offset out rc=0
    offset=$(($(stat -c %s "$CL/server.log" 2>/dev/null || echo 0) + 1))
    # fd 9 (the state lock) must not leak into the postmaster.
    out=$(as_pg "$BIN/pg_ctl" start -w -t 60 -D "$CL/data" -l "$CL/server.log" \
        -o "-p $port -k '$CL/run' -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        </dev/null 2>&1 9>&-) || rc=$?
    [[ $rc -eq 0 ]] && return 0
    local log
    log=$(tail -c +"$offset" "$CL/server.log" 2>/dev/null || true)
    if grep -q 'could not create any TCP/IP sockets\|Address already in use' <<<"$log"; then
        return 1
    fi
    printf '%s\n' "$out" >&2
    printf '%s\n' "$log" | tail -n 20 >&2
    die "pg_ctl start failed (log: $CL/server.log)"
}

summary() {
    printf 'local postgres running on 127.0.0.1:%s (state: %s)\n' "$1" "$STATE_DIR"
    printf 'env file: %s\n' "$WRITTEN_ENV_FILE"
}

# --- commands ---------------------------------------------------------------------------------

cmd_start() {
    (umask 022 && mkdir -p -- "$STATE_DIR")
    if command -v flock >/dev/null 2>&1; then
        exec 9>>"$STATE_DIR/.lock"
        flock -w 120 9 || die "timed out waiting for another '$PROG' on $STATE_DIR"
    fi
    setup_cluster_dir

    local password port
    password=$(read_line "$STATE_DIR/password")
    [[ "$password" =~ ^[A-Za-z0-9]{16,}$ ]] || password=""

    if [[ ! -f "$CL/data/PG_VERSION" ]]; then
        # A fresh (or half-initialised) cluster.
        find "$CL/data" -mindepth 1 -delete
        [[ -n "$password" ]] || password=$(new_password)
        local pwfile out
        pwfile="$CL/.pwfile"
        (umask 077 && printf '%s\n' "$password" >"$pwfile")
        give_to_pg "$pwfile"
        out=$(as_pg "$BIN/initdb" -D "$CL/data" -U postgres -E UTF8 --no-locale --no-sync \
            --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" </dev/null 2>&1) || {
            rm -f -- "$pwfile"
            printf '%s\n' "$out" >&2
            die "initdb failed"
        }
        rm -f -- "$pwfile"
        write_file "$STATE_DIR/password" 600 "$password"
    fi

    local waited=0
    while postmaster_is_zombie && [[ $waited -lt 20 ]]; do
        sleep 0.5
        waited=$((waited + 1))
    done
    if is_running; then
        port=$(running_port)
    else
        port=$(read_line "$STATE_DIR/port")
        if ! [[ "$port" =~ ^[0-9]+$ ]] || ! port_is_free "$port"; then port=$(free_port); fi
        local attempt
        for attempt in 1 2 3 4 5; do
            if start_server "$port"; then break; fi
            [[ $attempt -lt 5 ]] || die "could not start the server: no free port after $attempt attempts"
            port=$(free_port)
        done
    fi
    [[ "$(read_line "$STATE_DIR/port")" == "$port" ]] || write_file "$STATE_DIR/port" 644 "$port"

    if [[ -z "$password" ]]; then
        # Running cluster whose password file was lost: set a new one.
        password=$(new_password)
        psql_admin "$port" -c "ALTER ROLE postgres PASSWORD '$password'" >/dev/null ||
            die "could not set the password (log: $CL/server.log)"
        write_file "$STATE_DIR/password" 600 "$password"
    fi

    local db
    local exists
    for db in "${DATABASES[@]}"; do
        exists=$(psql_admin "$port" -tA -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ||
            die "cannot connect to the server on port $port (log: $CL/server.log)"
        if [[ -z "$exists" ]]; then
            psql_admin "$port" -c "CREATE DATABASE $db" >/dev/null || die "could not create database $db"
        fi
    done

    write_env_file "$port" "$password"
    summary "$port"
}

cmd_stop() {
    load_cluster_dir
    if ! is_running; then
        echo "not running"
        return 0
    fi
    as_pg "$BIN/pg_ctl" stop -D "$CL/data" -m fast -w -t 60 </dev/null >/dev/null
    echo "stopped"
}

cmd_status() {
    load_cluster_dir
    if is_running; then
        printf 'running on 127.0.0.1:%s\n' "$(running_port)"
    else
        echo "not running"
        exit 1
    fi
}

cmd_env() {
    load_cluster_dir
    is_running || die "not running (state: $STATE_DIR); run '$PROG start' first"
    local password
    password=$(read_line "$STATE_DIR/password")
    [[ -n "$password" ]] || die "no password recorded in $STATE_DIR/password; run '$PROG start'"
    env_lines "$(running_port)" "$password"
}

cmd_destroy() {
    cmd_stop >/dev/null
    load_cluster_dir
    if [[ -n "$CL" && "$CL" != "$STATE_DIR" ]]; then
        case "$(basename -- "$CL")" in
            migrate-wrapper-pg-*) rm -rf -- "$CL" ;;
            *) warn "not removing unexpected cluster directory $CL" ;;
        esac
    fi
    if [[ -d "$STATE_DIR" ]]; then
        rm -rf -- "$STATE_DIR/data" "$STATE_DIR/run"
        rm -f -- "$STATE_DIR/server.log" "$STATE_DIR/port" "$STATE_DIR/password" \
            "$STATE_DIR/cluster_dir" "$STATE_DIR/.lock" "$STATE_DIR/.pwfile"
        local f
        for f in "$STATE_DIR/migrate.env" "$ENV_FILE"; do
            if [[ "$(read_line "$f")" == "$MARKER" ]]; then rm -f -- "$f"; fi
        done
        rmdir -- "$STATE_DIR" 2>/dev/null || true
        if [[ -z "${LOCAL_PG_DIR:-}" ]]; then rmdir -- "$PROJECT_ROOT/.local" 2>/dev/null || true; fi
    elif [[ "$(read_line "$ENV_FILE")" == "$MARKER" ]]; then
        rm -f -- "$ENV_FILE"
    fi
    echo "destroyed"
}

CL=""
WRITTEN_ENV_FILE=""
"cmd_$CMD"
