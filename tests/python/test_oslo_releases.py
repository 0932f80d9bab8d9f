"""oslo.messaging on its default settings against a broker that behaves as RabbitMQ 4.3.

Its rabbit driver declares non-durable, non-exclusive queues (the topic queues, `reply_...`):
4.3 denies the deprecated feature `transient_nonexcl_queues` and closes the connection with
541, and the driver retries for ever. With `deprecated_features.permit.transient_nonexcl_queues
= true` the same settings work. AMQP_URL is the broker under test; each test states which of
the two it expects, so a run picks one by node id.
"""
import logging
import threading
import time
import uuid

import oslo_messaging
import oslo_messaging.opts
from oslo_config import cfg

from conftest import connect
from test_oslo_messaging import ComputeManager, oslo_url, register_global_only_opts

WAIT = 10  # seconds


def default_transport(amqp_url):
    """A transport on oslo.messaging's default rabbit settings, control exchange `nova`."""
    oslo_messaging.set_transport_defaults("nova")
    conf = cfg.ConfigOpts()
    conf([])
    register_global_only_opts(conf)
    for group, opts in oslo_messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
    # Retry quickly, so the refusal shows up in the log more than once within WAIT.
    conf.set_override("rabbit_retry_interval", 1, group="oslo_messaging_rabbit")
    return oslo_messaging.get_rpc_transport(conf, url=oslo_url(amqp_url))


def server(transport, topic):
    return oslo_messaging.get_rpc_server(
        transport,
        oslo_messaging.Target(topic=topic, server="node1"),
        [ComputeManager("node1")],
        executor="threading",
        access_policy=oslo_messaging.DefaultRPCAccessPolicy,
    )


class Records(logging.Handler):
    """The driver's log lines, as they come."""

    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_default_settings_are_refused_with_541(amqp_url):
    connect(amqp_url).close()  # the broker answers at all
    records = Records()
    logging.getLogger("oslo.messaging._drivers.impl_rabbit").addHandler(records)
    topic = f"compute-{uuid.uuid4().hex[:12]}"
    rpc = server(default_transport(amqp_url), topic)
    # start() declares the topic queues and retries for ever: it never returns here.
    threading.Thread(target=rpc.start, daemon=True).start()
    deadline = time.monotonic() + WAIT
    refusals = []
    while time.monotonic() < deadline and len(refusals) < 2:
        refusals = [line for line in records.lines if "(541) INTERNAL_ERROR" in line]
        time.sleep(0.05)
    assert len(refusals) >= 2, records.lines  # refused, retried, refused again
    assert "INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated." in refusals[0]
    assert "By default, this feature is not permitted anymore." in refusals[0]
    # Nothing was declared.
    conn = connect(amqp_url)
    try:
        ch = conn.channel()
        try:
            ch.queue_declare(topic, passive=True)
            raise AssertionError(f"{topic} exists")
        except Exception as e:  # pika closes the channel with 404
            assert "404" in str(e) or "NOT_FOUND" in str(e), e
    finally:
        if conn.is_open:
            conn.close()


def test_default_settings_work_when_permitted(amqp_url):
    connect(amqp_url).close()
    transport = default_transport(amqp_url)
    topic = f"compute-{uuid.uuid4().hex[:12]}"
    rpc = server(transport, topic)
    rpc.start()
    try:
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic, version="6.0"), timeout=WAIT
        )
        assert client.call({}, "add", a=2, b=3) == {"sum": 5, "host": "node1"}
    finally:
        rpc.stop()
        rpc.wait()
        reply_q = getattr(transport._driver, "_reply_q", None)
        transport.cleanup()
        conn = connect(amqp_url)
        try:
            ch = conn.channel()
            for q in [topic, f"{topic}.node1", f"{topic}_fanout", reply_q]:
                if q:
                    ch.queue_delete(q)
            ch.exchange_delete(f"{topic}_fanout")
        finally:
            conn.close()
