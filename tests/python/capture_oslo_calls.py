"""Prints, as JSON, the calls real oslo.messaging puts on the wire, and the replies its server
sends while it works on a call with a call-monitor timeout (keep-alives, then the answer).

Run with oslo.messaging and pika installed, against a RabbitMQ:
    python capture_oslo_calls.py amqp://guest:guest@127.0.0.1:5672/%2f

Two calls go to a real RPC server on topic `scheduler-<run>`, exchange `nova`:
- `plain`: `call(timeout=5)`, as most of Nova's calls (`object_action`, `ping`);
- `monitored`: `prepare(timeout=1800, call_monitor_timeout=60)`, as Nova's
  `select_destinations` (`long_rpc_timeout`, `rpc_response_timeout`).
A side queue bound to the same topic keeps a copy of each request. Then the monitored request
is sent again by hand with a 2 s monitor, its `_reply_q` pointing at a queue of ours, to a
method that works for 1.5 s: the server sends a keep-alive every half monitor, then the answer.

Output: {"plain": M, "monitored": M, "replies": [R, ...]}, M = {"expiration", "properties",
"body"}, R = the reply bodies in arrival order; bodies are the raw text.
"""
import json
import sys
import time
import uuid

import oslo_messaging
import pika

import oslo_capture


class SchedulerManager:
    """An endpoint in the shape of nova-scheduler's (version 4.5, no namespace)."""

    target = oslo_messaging.Target(version="4.5")

    def select_destinations(self, ctxt, spec_obj, instance_uuids, **kwargs):
        time.sleep(spec_obj.get("think", 0))
        return [[{"service_host": "node1"}]]


def message(ch, queue):
    for _ in range(100):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method:
            return props, body
        time.sleep(0.05)
    raise TimeoutError(f"nothing arrived in {queue}")


def described(props, body):
    keep = ["content_type", "content_encoding", "delivery_mode", "priority", "expiration",
            "correlation_id", "reply_to", "headers"]
    return {"expiration": props.expiration,
            "properties": {k: getattr(props, k) for k in keep},
            "body": body.decode()}


def main(amqp_url):
    with oslo_capture.rpc_server(amqp_url, "scheduler", "s1", [SchedulerManager()]) as cap:
        out = capture(cap)
    print(json.dumps(out))


def capture(cap):
    """The two calls, then the keep-alives and answer of the call sent by hand."""
    topic, ch, copy_q, reply_q = cap.topic, cap.ch, cap.copy_q, cap.reply_q
    out = {}
    client = oslo_messaging.get_rpc_client(
        cap.transport, oslo_messaging.Target(topic=topic, version="4.5"))
    ctxt = {"request_id": "req-6d1c", "user_id": "u1", "project_id": "p1"}
    kwargs = {"spec_obj": {"think": 0}, "instance_uuids": ["abc"]}
    client.prepare(timeout=5).call(ctxt, "select_destinations", **kwargs)
    out["plain"] = described(*message(ch, copy_q))
    client.prepare(timeout=1800, call_monitor_timeout=60).call(
        ctxt, "select_destinations", **kwargs)
    out["monitored"] = described(*message(ch, copy_q))
    # The same monitored request by hand, answered into our queue: a 2 s monitor gets a
    # keep-alive every second while the method sleeps 1.5 s.
    request = json.loads(json.loads(out["monitored"]["body"])["oslo.message"])
    request.update({"_msg_id": uuid.uuid4().hex, "_reply_q": reply_q, "_timeout": 2,
                    "_unique_id": uuid.uuid4().hex,
                    "args": {"spec_obj": {"think": 1.5}, "instance_uuids": ["abc"]}})
    envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(request)}
    ch.basic_publish("nova", topic, json.dumps(envelope), pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8", expiration="60000"))
    message(ch, copy_q)
    replies = []
    while not replies or not json.loads(json.loads(replies[-1])["oslo.message"])["ending"]:
        replies.append(message(ch, reply_q)[1].decode())
    out["replies"] = replies
    return out


if __name__ == "__main__":
    main(sys.argv[1])
