#!/bin/sh
# BENCHMARKS.md section 4, cluster: `rabbitscope doctor` and `rabbitscope snapshot` on a
# three-node RabbitMQ cluster holding 10,000 queues, and on one node alone holding the same
# topology.
#
# Starts four RabbitMQ nodes of its own beside the one on 5672, which it never touches
# (names, ports, data, cookie and configuration under a temporary directory, as
# tests/common/cluster.rs does): a, b and c joined in a cluster, s alone. Declares the
# topology on each with pika, times each command RUNS times with /usr/bin/time, then stops
# the nodes and removes the directory.
#
#   PYTHON=.venv/bin/python RABBITSCOPE=target/release/rabbitscope benches/cluster_scale.sh
#
# PYTHON needs pika (tests/python/requirements.txt). SINGLE=0 skips the one-node comparison;
# HOLD=1 keeps the nodes up until Enter is pressed. CHROOT=/opt/rabbitmq4 runs the nodes from
# the RabbitMQ 4.0 chroot `.ci/rabbitmq4` makes instead of this machine's RabbitMQ.
set -eu

PYTHON=${PYTHON:-.venv/bin/python}
RABBITSCOPE=${RABBITSCOPE:-target/release/rabbitscope}
RUNS=${RUNS:-3}
SINGLE=${SINGLE:-1}
VHOST=scale10k
CHROOT=${CHROOT:-}
BIN=/usr/lib/rabbitmq/bin
[ -n "$CHROOT" ] || [ -x "$BIN/rabbitmq-server" ] || BIN=$(dirname "$(command -v rabbitmq-server)")

# The directory as this script sees it, and as the nodes do.
DIR=$(mktemp -d "$CHROOT/tmp/rabbitscope-scale-XXXXXX")
IN=${DIR#"$CHROOT"}
NODES="a b c"
[ "$SINGLE" = 1 ] && ALL="$NODES s" || ALL=$NODES

free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One of RabbitMQ's own scripts (not Debian's wrappers, which switch to the rabbitmq user and
# its cookie) with this cluster's cookie and environment.
rmq() {
    script=$1
    shift
    if [ -n "$CHROOT" ]; then
        HOME=$IN RABBITMQ_CONF_ENV_FILE=$IN/rabbitmq-env.conf chroot "$CHROOT" "$BIN/$script" "$@"
    else
        HOME=$IN RABBITMQ_CONF_ENV_FILE=$IN/rabbitmq-env.conf "$BIN/$script" "$@"
    fi
}

node_name() { echo "rs-scale-$1-$$@localhost"; }

stop_all() {
    # The joined nodes before the one they joined.
    for n in s c b a; do
        rmq rabbitmqctl -n "$(node_name "$n")" stop >/dev/null 2>&1 || true
    done
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

for n in $ALL; do
    home=$DIR/$n
    mkdir -p "$home"
    amqp=$(free_port)
    mgmt=$(free_port)
    echo "$amqp" >"$home/amqp_port"
    echo "$mgmt" >"$home/management_port"
    dist=$(free_port)
    cat >"$home/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$amqp
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt
loopback_users.guest = true
EOF
    # From the directory, where a node that fails writes its crash dump.
    (
        cd "$DIR"
        inside=$IN/$n
        RABBITMQ_NODENAME=$(node_name "$n") RABBITMQ_DIST_PORT=$dist \
            RABBITMQ_MNESIA_BASE=$inside/mnesia RABBITMQ_LOG_BASE=$inside/log \
            RABBITMQ_CONFIG_FILE=$inside/rabbitmq.conf \
            RABBITMQ_ADVANCED_CONFIG_FILE=$inside/advanced.config \
            RABBITMQ_ENABLED_PLUGINS_FILE=$IN/enabled_plugins RABBITMQ_PID_FILE=$inside/pid \
            rmq rabbitmq-server -detached
    ) >/dev/null 2>&1
done
# `wait PIDFILE`: until the node has written its pid and started (await_startup fails on a
# node not yet listed by epmd).
for n in $ALL; do
    rmq rabbitmqctl -n "$(node_name "$n")" wait "$IN/$n/pid" --timeout 180 >/dev/null
done
for n in b c; do
    rmq rabbitmqctl -n "$(node_name "$n")" stop_app >/dev/null
    # Its complaints of the other nodes' tables while it joins are of no matter.
    rmq rabbitmqctl -n "$(node_name "$n")" join_cluster "$(node_name a)" >/dev/null 2>&1
    rmq rabbitmqctl -n "$(node_name "$n")" start_app >/dev/null
done
for n in a s; do
    [ -d "$DIR/$n" ] || continue
    rmq rabbitmqctl -n "$(node_name "$n")" add_vhost "$VHOST" >/dev/null
    rmq rabbitmqctl -n "$(node_name "$n")" set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
done
echo "nodes $ALL up in $DIR; management of node a on $(cat "$DIR/a/management_port")"

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

[ "$SINGLE" = 1 ] && declare_topology "$VHOST" "$(cat "$DIR/s/amqp_port")"

# doctor and snapshot of the vhost through node `n`.
measure() {
    what=$1
    url=amqp://guest:guest@127.0.0.1:$(cat "$DIR/$2/amqp_port")/$VHOST
    management=http://127.0.0.1:$(cat "$DIR/$2/management_port")
    echo "load: $(uptime)"
    timed "$what doctor" doctor "$url" --management "$management" --fail-on never
    timed "$what snapshot" snapshot "$url" --management "$management" --vhost "$VHOST" \
        --format json
}
measure cluster a
[ "$SINGLE" = 1 ] && measure one-node s
echo "load: $(uptime)"

if [ "${HOLD:-0}" = 1 ]; then
    echo "holding the cluster; press Enter to stop it"
    read -r _
fi
