#!/bin/sh
# Records one instance boot (record_boot.py) with `rabbitscope record`, in a vhost of its own
# on a RabbitMQ with the management plugin, then deletes the vhost.
#   assets/traces/record.sh classic|2026 [python] [rabbitscope]
set -eu
settings=$1
python=${2:-python3}
rabbitscope=${3:-rabbitscope}
here=$(dirname "$0")
vhost=nova-boot-$settings
api=http://127.0.0.1:15672/api
curl -fsS -u guest:guest -X PUT "$api/vhosts/$vhost"
curl -fsS -u guest:guest -X PUT -H 'content-type: application/json' \
  -d '{"configure":".*","write":".*","read":".*"}' "$api/permissions/$vhost/guest"
trap 'curl -fsS -u guest:guest -X DELETE "$api/vhosts/$vhost"' EXIT
"$rabbitscope" record "amqp://guest:guest@127.0.0.1:5672/$vhost" \
  -o "$here/nova-boot-$settings.yaml" --duration 600 &
recorder=$!
sleep 3 # the recorder writes its header once it has turned the firehose on
"$python" -W ignore "$here/record_boot.py" "rabbit://guest:guest@127.0.0.1:5672/$vhost" \
  --settings "$settings"
sleep 2 # the last events reach the recorder
kill -INT $recorder
wait $recorder
