# shellcheck shell=bash
# The miniature production shape, shared by ops/cluster/{up,status,down} and ops/failover-test: where
# everything lives, its ports, and how each process is started and stopped. Every address is
# on loopback; nothing here touches the machine's own PostgreSQL (5432); Redis (6379) is used.

source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

CLUSTER_DIR=${VOUCHER_CLUSTER_DIR:-/var/tmp/voucher-cluster}
PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800
# PostgreSQL node N listens on PG_PORT_BASE+N, its Patroni REST API on REST_PORT_BASE+N.
PG_PORT_BASE=54320
REST_PORT_BASE=18000
# HAProxy: writes to the current primary, and the public port in front of the replicas.
PG_WRITE_PORT=54320
PUBLIC_PORT=8480
HAPROXY_STATS_PORT=8404
# voucherd replica N listens on VOUCHERD_PORT_BASE+N.
VOUCHERD_PORT_BASE=8480
# Where cargo puts the release binaries (CARGO_TARGET_DIR is honoured).
BIN_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/release
NODES=(1 2)
SCOPE=voucher-cluster
ADMIN_LOGIN=admin:demo-admin-pass

pg_port() { echo $((PG_PORT_BASE + $1)); }
rest_port() { echo $((REST_PORT_BASE + $1)); }
voucherd_port() { echo $((VOUCHERD_PORT_BASE + $1)); }
secret() { cat "$CLUSTER_DIR/secrets/$1"; }
cluster_database_url() { echo "postgres://$APP_ROLE:$(secret app)@127.0.0.1:$PG_WRITE_PORT/voucher"; }

pidfile() { echo "$CLUSTER_DIR/run/$1.pid"; }
running() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# start NAME USER CMD...: starts CMD in its own session as USER, logging to log/NAME.log.
start_process() {
    local name=$1 user=$2
    shift 2
    if running "$name"; then return 0; fi
    if [ "$user" = root ]; then
        setsid "$@" >>"$CLUSTER_DIR/log/$name.log" 2>&1 </dev/null &
    else
        setsid setpriv --reuid="$user" --regid="$user" --init-groups -- "$@" \
            >>"$CLUSTER_DIR/log/$name.log" 2>&1 </dev/null &
    fi
    echo $! >"$(pidfile "$name")"
}

# stop_process NAME [SIGNAL]: TERM (or SIGNAL), then KILL after 10 s.
stop_process() {
    local name=$1 signal=${2:-TERM} f pid
    f=$(pidfile "$name")
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$signal" "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

# The postmaster of node N, from its data directory (empty when it is not running).
postmaster_pid() {
    local f=$CLUSTER_DIR/pg$1/data/postmaster.pid pid
    [ -f "$f" ] || return 0
    pid=$(head -n 1 "$f" 2>/dev/null || true)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
    return 0
}

# The Patroni REST API of node N, one path (role, health); empty when it does not answer.
rest() { curl -s -m 2 "http://127.0.0.1:$(rest_port "$1")/$2" 2>/dev/null || true; }

# The first node whose Patroni answers 200 on the REST endpoint $1, or nothing.
node_answering() {
    local n
    for n in "${NODES[@]}"; do
        if curl -s -o /dev/null -m 1 -w '%{http_code}' "http://127.0.0.1:$(rest_port "$n")/$1" 2>/dev/null | grep -q 200; then
            echo "$n"
            return 0
        fi
    done
}

# The node whose Patroni says it is the primary now, or nothing.
primary_node() { node_answering primary; }

# The node that is a streaming synchronous standby now, or nothing.
sync_standby_node() { node_answering sync; }

start_etcd() {
    start_process etcd postgres etcd --name voucher-etcd \
        --data-dir "$CLUSTER_DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "voucher-etcd=http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster-state new --enable-v2=false
}

start_patroni() { start_process "patroni$1" postgres patroni "$CLUSTER_DIR/pg$1/patroni.yml"; }

start_haproxy() {
    start_process haproxy root haproxy -W -db -f "$CLUSTER_DIR/haproxy.cfg"
}

start_voucherd() {
    local n=$1
    start_process "voucherd$n" root env \
        DATABASE_URL="$(cluster_database_url)" \
        REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
        VOUCHER_KEY_DIR="$CLUSTER_DIR/keys" \
        VOUCHER_BIND="127.0.0.1:$(voucherd_port "$n")" \
        VOUCHER_TRUSTED_PROXIES=127.0.0.1/32 \
        VOUCHER_PLATFORM_RATE=100000 VOUCHER_PLATFORM_BURST=100000 \
        VOUCHER_DB_MAX_CONNECTIONS=20 \
        VOUCHER_BOOTSTRAP_ADMIN="$ADMIN_LOGIN" \
        RUST_LOG=info,sqlx=warn \
        "$BIN_DIR/voucherd" serve
}

write_patroni_config() {
    local n=$1 dir=$CLUSTER_DIR/pg$1
    cat >"$dir/patroni.yml" <<YAML
scope: $SCOPE
namespace: /voucher/
name: pg$n
restapi:
  listen: 127.0.0.1:$(rest_port "$n")
  connect_address: 127.0.0.1:$(rest_port "$n")
etcd3:
  hosts: 127.0.0.1:$ETCD_CLIENT_PORT
bootstrap:
  dcs:
    # A lost leader is replaced within ttl seconds; loop_wait + 2 * retry_timeout <= ttl.
    ttl: 10
    loop_wait: 1
    retry_timeout: 3
    maximum_lag_on_failover: 0
    # No acknowledged commit on one node only: a commit waits for the synchronous standby,
    # and with no standby, commits wait (strict) rather than go on alone.
    synchronous_mode: true
    synchronous_mode_strict: true
    # A crashed primary fails over at once when a synchronous standby can take over, rather
    # than being restarted in place.
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 256MB
        max_connections: 100
        shared_buffers: 64MB
        synchronous_commit: "on"
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - data-checksums
postgresql:
  listen: 127.0.0.1:$(pg_port "$n")
  connect_address: 127.0.0.1:$(pg_port "$n")
  data_dir: $dir/data
  bin_dir: $PG_BIN
  pgpass: $dir/pgpass
  remove_data_directory_on_rewind_failure: true
  remove_data_directory_on_diverged_timelines: true
  authentication:
    superuser:
      username: postgres
      password: $(secret superuser)
    replication:
      username: replicator
      password: $(secret replication)
    rewind:
      username: postgres
      password: $(secret superuser)
  parameters:
    unix_socket_directories: $dir
  pg_hba:
    - local all postgres peer
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
YAML
    chown postgres:postgres "$dir/patroni.yml"
    chmod 600 "$dir/patroni.yml"
}

write_haproxy_config() {
    local n
    {
        cat <<CFG
global
    maxconn 4000
    log stderr format short local0 notice

defaults
    log global
    timeout connect 2s
    timeout check 1s

# Stats page (read-only, loopback): which PostgreSQL node and which replicas are up.
listen stats
    mode http
    bind 127.0.0.1:$HAPROXY_STATS_PORT
    stats enable
    stats uri /
    timeout client 30s
    timeout server 30s

# Writes: only the node whose Patroni answers 200 on /primary. A node marked down has its
# sessions cut, so no client stays on a demoted primary.
listen postgres_primary
    mode tcp
    bind 127.0.0.1:$PG_WRITE_PORT
    timeout client 30m
    timeout server 30m
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
CFG
        for n in "${NODES[@]}"; do
            echo "    server pg$n 127.0.0.1:$(pg_port "$n") check port $(rest_port "$n")"
        done
        cat <<CFG

# The public port: the voucherd replicas, checked on /healthz (alive), not /readyz, so that
# while no primary answers the replicas stay in and answer 503 overloaded with Retry-After
# themselves. A connection refused by a dead replica is sent to the other one.
listen voucherd
    mode http
    bind 127.0.0.1:$PUBLIC_PORT
    timeout client 60s
    timeout server 60s
    balance roundrobin
    option redispatch
    retries 2
    retry-on conn-failure
    option httpchk GET /healthz
    default-server inter 1s fall 2 rise 1
CFG
        for n in "${NODES[@]}"; do
            echo "    server voucherd$n 127.0.0.1:$(voucherd_port "$n") check"
        done
    } >"$CLUSTER_DIR/haproxy.cfg"
}

random_secret() { head -c 18 /dev/urandom | base64 | tr -d '/+=\n'; }

# psql as the cluster's superuser through the write port: psql_primary DB ARGS...
psql_primary() {
    local db=$1
    shift
    PGPASSWORD=$(secret superuser) PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$PG_WRITE_PORT" -U postgres -d "$db" \
        -v ON_ERROR_STOP=1 -qtA "$@"
}

# wait_until SECONDS DESCRIPTION CMD...: polls CMD every half second.
wait_until() {
    local seconds=$1 what=$2
    shift 2
    local i
    for i in $(seq 1 $((seconds * 2))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "$what did not happen within ${seconds}s (logs: $CLUSTER_DIR/log)"
}
has_primary() { [ -n "$(primary_node)" ]; }
has_sync_standby() { [ -n "$(sync_standby_node)" ]; }
