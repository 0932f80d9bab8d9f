#!/bin/sh
# Records one instance boot (record_boot.py) in a vhost of its own, then drops the vhost
# (`notifications`: the classic settings with Nova's notifications on):
#   rabbitmq  on the RabbitMQ at 127.0.0.1:5672 (management API on 15672, guest/guest), with
#             `rabbitscope record`, which turns the firehose on for that vhost and off again;
#   embedded  on a `rabbitscope broker --transient` of its own, with its --record.
#   assets/traces/record.sh classic|2026|notifications [python] [rabbitscope] [rabbitmq|embedded] [output]
# The output is assets/traces/nova-boot-<settings>.yaml unless given.
set -eu
settings=$1
python=${2:-python3}
rabbitscope=${3:-rabbitscope}
broker=${4:-rabbitmq}
here=$(dirname "$0")
output=${5:-$here/nova-boot-$settings.yaml}
vhost=nova-boot-$settings

boot() {
  "$python" -W ignore "$here/record_boot.py" "rabbit://guest:guest@$1/$vhost" \
    --settings "$settings"
}

case $broker in
rabbitmq)
  api=http://127.0.0.1:15672/api
  curl -fsS -u guest:guest -X PUT "$api/vhosts/$vhost"
  curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$vhost/guest"
  trap 'curl -fsS -u guest:guest -X DELETE "$api/vhosts/$vhost"' EXIT
  "$rabbitscope" record "amqp://guest:guest@127.0.0.1:5672/$vhost" \
    -o "$output" --duration 600 &
  recorder=$!
  sleep 3 # the recorder writes its header once it has turned the firehose on
  boot 127.0.0.1:5672
  sleep 2 # the last events reach the recorder
  kill -INT $recorder
  wait $recorder
  ;;
embedded)
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  "$rabbitscope" broker --transient --listen 127.0.0.1:0 --vhost "$vhost" \
    --record "$output" --record-vhost "$vhost" 2>"$log" &
  recorder=$!
  # The trace's header is written before the broker announces its address.
  address=
  for _ in $(seq 100); do
    address=$(sed -n '/broker listening/s/.* address=\([0-9.:]*\).*/\1/p' "$log")
    [ -n "$address" ] && break
    kill -0 $recorder 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$address" ]; then
    cat "$log" >&2
    kill -INT $recorder 2>/dev/null || true
    exit 1
  fi
  status=0
  boot "$address" || status=$?
  # Every event is on the broker's own stream at once: it is stopped straight away.
  kill -INT $recorder
  wait $recorder
  exit $status
  ;;
*)
  echo "record.sh: the broker is rabbitmq or embedded, not $broker" >&2
  exit 2
  ;;
esac
