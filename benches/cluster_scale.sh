#!/bin/sh
# BENCHMARKS.md section 4, cluster: `rabbitscope doctor` and `rabbitscope snapshot` on a
# three-node RabbitMQ cluster holding 10,000 queues, and `snapshot` on the one node on 5672
# holding the same topology.
#
# Starts three RabbitMQ nodes of its own beside the one on 5672 (names, ports, data, cookie
# and configuration under a temporary directory, as tests/common/cluster.rs does), declares
# the topology with pika, times each command RUNS times with /usr/bin/time, then stops the
# nodes and deletes the vhost it made on 5672.
#
#   PYTHON=.venv/bin/python RABBITSCOPE=target/release/rabbitscope benches/cluster_scale.sh
#
# PYTHON needs pika (tests/python/requirements.txt). SINGLE=0 skips the one-node comparison.
set -eu

PYTHON=${PYTHON:-.venv/bin/python}
RABBITSCOPE=${RABBITSCOPE:-target/release/rabbitscope}
RUNS=${RUNS:-3}
SINGLE=${SINGLE:-1}
VHOST=scale10k
# The vhost on 5672: a name of its own, so a vhost someone else made is never deleted.
SINGLE_VHOST=rabbitscope-cluster-scale-$$
BIN=/usr/lib/rabbitmq/bin
[ -x "$BIN/rabbitmq-server" ] || BIN=$(dirname "$(command -v rabbitmq-server)")

DIR=$(mktemp -d /tmp/rabbitscope-scale-XXXXXX)
NODES="a b c"

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One of RabbitMQ's own scripts (not Debian's wrappers, which switch to the rabbitmq user and
# its cookie) with this cluster's cookie and environment.
rmq() {
    script=$1
    shift
    HOME=$DIR RABBITMQ_CONF_ENV_FILE=$DIR/rabbitmq-env.conf "$BIN/$script" "$@"
}

node_name() { echo "rs-scale-$1-$$@localhost"; }

stop_all() {
    for n in $NODES; do
        rmq rabbitmqctl -n "$(node_name "$n")" stop >/dev/null 2>&1 || true
    done
    if [ "$SINGLE" = 1 ]; then
        curl -s -u guest:guest -X DELETE "http://127.0.0.1:15672/api/vhosts/$SINGLE_VHOST" || true
    fi
    rm -rf "$DIR"
}
trap stop_all EXIT INT TERM

printf '%s' "$(head -c 15 /dev/urandom | base64 | tr -dc A-Z)XYZ" >"$DIR/.erlang.cookie"
chmod 400 "$DIR/.erlang.cookie"
echo '[rabbitmq_management].' >"$DIR/enabled_plugins"
cat >"$DIR/rabbitmq-env.conf" <<EOF
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
EOF

for n in $NODES; do
    home=$DIR/$n
    mkdir -p "$home"
    amqp=$(free_port)
    mgmt=$(free_port)
    echo "$amqp" >"$home/amqp_port"
    echo "$mgmt" >"$home/management_port"
    cat >"$home/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$amqp
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt
loopback_users.guest = true
EOF
    RABBITMQ_NODENAME=$(node_name "$n") RABBITMQ_DIST_PORT=$(free_port) \
        RABBITMQ_MNESIA_BASE=$home/mnesia RABBITMQ_LOG_BASE=$home/log \
        RABBITMQ_CONFIG_FILE=$home/rabbitmq.conf \
        RABBITMQ_ADVANCED_CONFIG_FILE=$home/advanced.config \
        RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/enabled_plugins RABBITMQ_PID_FILE=$home/pid \
        rmq rabbitmq-server -detached >/dev/null 2>&1
done
for n in $NODES; do
    rmq rabbitmqctl -n "$(node_name "$n")" await_startup --timeout 180 >/dev/null
done
for n in b c; do
    rmq rabbitmqctl -n "$(node_name "$n")" stop_app >/dev/null
    rmq rabbitmqctl -n "$(node_name "$n")" join_cluster "$(node_name a)" >/dev/null
    rmq rabbitmqctl -n "$(node_name "$n")" start_app >/dev/null
done
A=$(node_name a)
rmq rabbitmqctl -n "$A" add_vhost "$VHOST" >/dev/null
rmq rabbitmqctl -n "$A" set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
AMQP_A=$(cat "$DIR/a/amqp_port")
MGMT_A=$(cat "$DIR/a/management_port")
echo "cluster of $NODES up in $DIR; management of node a on $MGMT_A"

# 2,000 topic exchanges, 10,000 queues (each declared through node i % 3, so a classic queue
# lives there; every 30th a quorum queue of three members), each bound to two exchanges.
declare_topology() {
    "$PYTHON" - "$@" <<'EOF'
import sys, threading, time
import pika

vhost, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
EXCHANGES, QUEUES = 2000, 10000

def channel(port):
    params = pika.ConnectionParameters("127.0.0.1", port, vhost,
                                       pika.PlainCredentials("guest", "guest"))
    return pika.BlockingConnection(params).channel()

ch = channel(ports[0])
for e in range(EXCHANGES):
    ch.exchange_declare(f"scale.x{e}", "topic", durable=True)
ch.connection.close()

def declare(node):
    ch = channel(ports[node])
    for i in range(node, QUEUES, len(ports)):
        name = f"scale.q{i}"
        if i % 30 == 0:
            args = {"x-queue-type": "quorum", "x-quorum-initial-group-size": 3}
        else:
            args = {}
        ch.queue_declare(name, durable=True, arguments=args)
        for e in (i % EXCHANGES, (i + 1) % EXCHANGES):
            ch.queue_bind(name, f"scale.x{e}", f"q{i}.#")
    ch.connection.close()

started = time.time()
threads = [threading.Thread(target=declare, args=(n,)) for n in range(len(ports))]
for t in threads: t.start()
for t in threads: t.join()
print(f"declared {EXCHANGES} exchanges and {QUEUES} queues in {time.time() - started:.0f} s")
EOF
}

declare_topology "$VHOST" $(for n in $NODES; do cat "$DIR/$n/amqp_port"; done)

timed() {
    label=$1
    shift
    for run in $(seq "$RUNS"); do
        /usr/bin/time -f "$label run $run: %e s, %M KiB" "$RABBITSCOPE" "$@" >"$DIR/out" 2>"$DIR/err" || true
        tail -n 1 "$DIR/err"
    done
    echo "  (last output: $(head -c 120 "$DIR/out" | head -n 1))"
}

echo "load: $(uptime)"
timed "cluster doctor" doctor "amqp://guest:guest@127.0.0.1:$AMQP_A/$VHOST" \
    --management "http://127.0.0.1:$MGMT_A" --fail-on never
timed "cluster snapshot" snapshot "amqp://guest:guest@127.0.0.1:$AMQP_A/$VHOST" \
    --management "http://127.0.0.1:$MGMT_A" --vhost "$VHOST" --format json
echo "load: $(uptime)"

if [ "$SINGLE" = 1 ]; then
    curl -sf -u guest:guest -X PUT "http://127.0.0.1:15672/api/vhosts/$SINGLE_VHOST" >/dev/null
    curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
        -d '{"configure":".*","write":".*","read":".*"}' \
        "http://127.0.0.1:15672/api/permissions/$SINGLE_VHOST/guest" >/dev/null
    declare_topology "$SINGLE_VHOST" 5672
    echo "load: $(uptime)"
    timed "one-node doctor" doctor "amqp://guest:guest@127.0.0.1:5672/$SINGLE_VHOST" --fail-on never
    timed "one-node snapshot" snapshot "amqp://guest:guest@127.0.0.1:5672/$SINGLE_VHOST" \
        --vhost "$SINGLE_VHOST" --format json
    echo "load: $(uptime)"
fi

if [ "${HOLD:-0}" = 1 ]; then
    echo "holding the cluster; press Enter to stop it"
    read -r _
fi
