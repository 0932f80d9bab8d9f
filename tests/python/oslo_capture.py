"""What the capture scripts share: a real oslo.messaging RPC server on a fresh topic of the
`nova` exchange, with two side queues of ours (a copy of every request sent to the topic, and
a queue for replies to requests sent by hand), all taken away again at the end.
"""
import contextlib
import uuid

import oslo_messaging
import pika
from oslo_config import cfg

from test_oslo_messaging import oslo_url, register_global_only_opts


class Capture:
    """What a capture works with: the transport, the topic, a pika channel and its queues."""

    def __init__(self, transport, topic, ch, copy_q, reply_q):
        self.transport, self.topic, self.ch = transport, topic, ch
        self.copy_q, self.reply_q = copy_q, reply_q


@contextlib.contextmanager
def rpc_server(amqp_url, prefix, server_name, endpoints, **server_options):
    """Starts the server `server_name` on topic `<prefix>-<run>` and yields a Capture."""
    oslo_messaging.set_transport_defaults("nova")
    conf = cfg.ConfigOpts()
    conf([])
    register_global_only_opts(conf)
    transport = oslo_messaging.get_rpc_transport(conf, url=oslo_url(amqp_url))
    conf.set_override("rabbit_transient_queues_ttl", 60, group="oslo_messaging_rabbit")
    run = uuid.uuid4().hex[:12]
    topic = f"{prefix}-{run}"
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.exchange_declare("nova", "topic", durable=False)
    copy_q, reply_q = f"capture-{run}", f"reply_capture{run}"
    ch.queue_declare(copy_q, auto_delete=True)
    ch.queue_bind(copy_q, "nova", topic)
    ch.queue_declare(reply_q, auto_delete=True)
    server = oslo_messaging.get_rpc_server(
        transport, oslo_messaging.Target(topic=topic, server=server_name), endpoints,
        access_policy=oslo_messaging.DefaultRPCAccessPolicy, **server_options)
    server.start()
    try:
        yield Capture(transport, topic, ch, copy_q, reply_q)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        for q in [topic, f"{topic}.{server_name}", copy_q, reply_q]:
            ch.queue_delete(q)
        conn.close()
