# shellcheck shell=bash
# Shared by the ops scripts: find or install, then start, PostgreSQL and Redis on loopback.
# Where they already listen on their usual ports, they are used as they are.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGHOST_ADDR=127.0.0.1
PGPORT_NUM=5432
REDIS_PORT=6379
# The application's own role: a local, loopback-only development credential, not a secret.
APP_ROLE=voucher
APP_PASSWORD=voucher

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

APT_UPDATED=0
# apt_install PKG...: installs the Debian packages that are not installed yet.
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get to install them"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_for_port_quietly HOST PORT: whether it listens within about 3 s.
wait_for_port_quietly() {
    for _ in $(seq 1 6); do
        port_open "$1" "$2" && return 0
        sleep 0.5
    done
    return 1
}

wait_for_port() {
    local host=$1 port=$2 what=$3
    for _ in $(seq 1 60); do
        port_open "$host" "$port" && return 0
        sleep 0.5
    done
    die "$what did not start listening on $host:$port"
}

# The oldest rustc that builds Cargo.lock: cargo refuses a dependency whose rust-version is newer
# than the compiler (uuid 1.29 needs 1.89; time 0.3.55, icu_*, zip and rust_xlsxwriter 1.88).
RUST_MIN=1.89

ensure_toolchain() {
    command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install a Rust toolchain ($RUST_MIN or newer) with rustup first"
    local rustc_version
    rustc_version=$(rustc --version 2>/dev/null | awk '{print $2}')
    rustc_version=${rustc_version%%-*}
    if [ -z "$rustc_version" ] ||
        [ "$(printf '%s\n%s\n' "$RUST_MIN" "$rustc_version" | sort -V | head -n 1)" != "$RUST_MIN" ]; then
        die "rustc ${rustc_version:-(none)} is older than $RUST_MIN, which the locked dependencies need: rustup update stable"
    fi
    cargo fmt --version >/dev/null 2>&1 || die "rustfmt is missing: rustup component add rustfmt"
    cargo clippy --version >/dev/null 2>&1 || die "clippy is missing: rustup component add clippy"
    command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
}

ensure_postgres() {
    command -v psql >/dev/null 2>&1 || apt_install postgresql-client
    if port_open "$PGHOST_ADDR" "$PGPORT_NUM"; then
        log "PostgreSQL already listening on $PGHOST_ADDR:$PGPORT_NUM"
    else
        apt_install postgresql
        # Under systemd the package has created and started the cluster already.
        if wait_for_port_quietly "$PGHOST_ADDR" "$PGPORT_NUM"; then
            log "PostgreSQL started by its package (its service: systemctl stop postgresql stops it)"
            return 0
        fi
        local version
        version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
        if [ -z "$version" ]; then
            version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
            log "creating PostgreSQL $version cluster"
            as_root pg_createcluster "$version" main >/dev/null
        fi
        log "starting PostgreSQL $version on $PGHOST_ADDR:$PGPORT_NUM"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        wait_for_port "$PGHOST_ADDR" "$PGPORT_NUM" PostgreSQL
    fi
}

# Runs SQL as a superuser: over TCP as postgres where trust allows it, else through the
# socket as the postgres system user (Debian's default peer authentication).
pg_admin() {
    if PGCONNECT_TIMEOUT=3 psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -d postgres -w -tAc 'select 1' >/dev/null 2>&1; then
        psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U postgres -d postgres -w -v ON_ERROR_STOP=1 -qtA "$@"
    else
        # From / : the postgres user cannot enter the caller's directory, and psql says so.
        (cd / && as_root runuser -u postgres -- psql -p "$PGPORT_NUM" -d postgres -v ON_ERROR_STOP=1 -qtA "$@")
    fi
}

# The application's role, allowed to create databases (each #[sqlx::test] makes its own).
ensure_role() {
    pg_admin -c "do \$\$ begin
        if not exists (select from pg_roles where rolname = '$APP_ROLE') then
            create role $APP_ROLE login createdb password '$APP_PASSWORD';
        end if; end \$\$;" >/dev/null
}

# ensure_database NAME: the application role and a database it owns.
ensure_database() {
    local db=$1
    ensure_role
    if [ "$(pg_admin -c "select 1 from pg_database where datname = '$db'")" != "1" ]; then
        log "creating database $db"
        pg_admin -c "create database $db owner $APP_ROLE" >/dev/null
    fi
}

database_url() { echo "postgres://$APP_ROLE:$APP_PASSWORD@$PGHOST_ADDR:$PGPORT_NUM/$1"; }

# recreate_scratch_database NAME: a throwaway database with every migration applied by psql,
# for the query macros to check SQL against at compile time.
recreate_scratch_database() {
    local db=$1
    ensure_role
    pg_admin -c "drop database if exists $db with (force)" >/dev/null
    pg_admin -c "create database $db owner $APP_ROLE" >/dev/null
    local f
    for f in "$ROOT"/migrations/*.sql; do
        PGPASSWORD=$APP_PASSWORD psql -h "$PGHOST_ADDR" -p "$PGPORT_NUM" -U "$APP_ROLE" -d "$db" \
            -v ON_ERROR_STOP=1 -q -f "$f" >/dev/null
    done
}

ensure_redis() {
    if port_open 127.0.0.1 "$REDIS_PORT"; then
        log "Redis already listening on 127.0.0.1:$REDIS_PORT"
        return 0
    fi
    apt_install redis-server
    # Where systemd runs (a Debian machine, not a container or chroot), installing the package
    # has already started its redis-server service on 127.0.0.1:6379: use that one rather than
    # start a second server, which could not bind the port.
    if wait_for_port_quietly 127.0.0.1 "$REDIS_PORT"; then
        log "Redis started by its package (its service: systemctl stop redis-server stops it)"
        return 0
    fi
    log "starting Redis on 127.0.0.1:$REDIS_PORT"
    as_root mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/voucher.log
    wait_for_port 127.0.0.1 "$REDIS_PORT" Redis
}

ensure_services() {
    ensure_postgres
    ensure_redis
}
