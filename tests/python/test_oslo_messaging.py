"""Nova-style RPC with a real oslo.messaging server and client over the broker in AMQP_URL."""
import importlib
import os
import queue
import re
import time
import urllib.parse
import uuid

import oslo_messaging
import oslo_messaging.opts
import pika
import pytest
from oslo_concurrency import lockutils
from oslo_config import cfg

from conftest import connect

WAIT = 10  # seconds to wait for a cast to arrive


def oslo_url(amqp_url):
    """amqp://user:pass@host:port/%2f -> rabbit://user:pass@host:port/ (oslo's form)."""
    u = urllib.parse.urlsplit(amqp_url)
    vhost = urllib.parse.unquote(u.path[1:]) if u.path else ""
    if vhost == "/":
        vhost = ""
    return urllib.parse.urlunsplit(("rabbit", u.netloc, "/" + urllib.parse.quote(vhost, safe=""), "", ""))


def test_oslo_url_conversion():
    assert oslo_url("amqp://guest:guest@127.0.0.1:5672/%2f") == "rabbit://guest:guest@127.0.0.1:5672/"
    assert oslo_url("amqp://guest:guest@127.0.0.1:5672/") == "rabbit://guest:guest@127.0.0.1:5672/"
    assert oslo_url("amqp://u:p@h:1/vh") == "rabbit://u:p@h:1/vh"


class ComputeManager:
    """An endpoint in the shape of nova-compute's (version 6.0, no namespace)."""

    target = oslo_messaging.Target(version="6.0")

    def __init__(self, host):
        self.host = host
        self.casts = queue.Queue()

    def build_and_run_instance(self, ctxt, instance, **kwargs):
        self.casts.put(("build_and_run_instance", instance, kwargs))

    def get_host(self, ctxt):
        return self.host

    def add(self, ctxt, a, b):
        return {"sum": a + b, "host": self.host}


def register_global_only_opts(conf):
    """The RPC client and server read the `oslo_messaging_metrics` group (and, from 18.3, the
    `oslo_messaging_tracing` group) from the transport's conf, but oslo.messaging registers
    those options on the global cfg.CONF only. A private ConfigOpts needs them too."""
    for module, group in [
        ("oslo_messaging._metrics.client", "oslo_messaging_metrics"),
        ("oslo_messaging._tracing.client", "oslo_messaging_tracing"),
    ]:
        try:
            opts = getattr(importlib.import_module(module), group)
        except (ImportError, AttributeError):  # not in this release
            continue
        conf.register_opts(opts, group=group)


# oslo.messaging's rabbit driver settings the tests run under: its defaults, and the four
# options upstream's admin guide recommends together in 2026 (quorum topic queues, transient
# quorum reply queues, one stream per fanout topic, stable queue names), which need a prefetch.
SETTINGS = {
    "classic": {},
    "recommended": {
        "rabbit_quorum_queue": True,
        "rabbit_transient_quorum_queue": True,
        "rabbit_stream_fanout": True,
        "use_queue_manager": True,
        "rabbit_qos_prefetch_count": 10,
    },
}
# Unused transient queues (fanout, reply) go away soon after the run.
TRANSIENT_TTL = 60


@pytest.fixture(scope="module", params=list(SETTINGS))
def rpc(request, amqp_url, tmp_path_factory):
    """A transport with control exchange `nova` and two compute servers, node1 and node2,
    under one of the SETTINGS."""
    # oslo.messaging retries a failed connection forever; find out quickly whether the broker
    # speaks AMQP at all.
    connect(amqp_url).close()
    run = uuid.uuid4().hex[:12]
    # The recommended settings declare the control exchange durable, and oslo.messaging falls
    # back to non-durable queues (which a quorum queue refuses) on a broker that already has a
    # non-durable one, as in a cloud migrating from the defaults: give them their own.
    control_exchange = "nova" if request.param == "classic" else f"nova-{run}"
    oslo_messaging.set_transport_defaults(control_exchange)
    conf = cfg.ConfigOpts()
    conf([])  # parse no command line, read no config files
    register_global_only_opts(conf)
    # The driver reads some options (the queue manager's) when the transport is made.
    for group, opts in oslo_messaging.opts.list_opts():
        conf.register_opts(opts, group=group)
    settings = dict(SETTINGS[request.param], rabbit_transient_queues_ttl=TRANSIENT_TTL)
    if settings.get("use_queue_manager"):
        # The queue manager counts names in /dev/shm/<host>_<process>_qmanager under an
        # external lock: a host of this run's own keeps runs apart.
        lockutils.set_defaults(lock_path=str(tmp_path_factory.mktemp("locks")))
        settings.update(hostname=f"host-{run}", processname="pytest-oslo")
    for option, value in settings.items():
        conf.set_override(option, value, group="oslo_messaging_rabbit")
    transport = oslo_messaging.get_rpc_transport(conf, url=oslo_url(amqp_url))
    assert conf.control_exchange == control_exchange

    topic = f"compute-{run}"
    endpoints, servers = {}, []
    try:
        for host in ("node1", "node2"):
            endpoints[host] = ComputeManager(host)
            server = oslo_messaging.get_rpc_server(
                transport,
                oslo_messaging.Target(topic=topic, server=host),
                [endpoints[host]],
                executor="threading",
                access_policy=oslo_messaging.DefaultRPCAccessPolicy,
            )
            server.start()
            servers.append(server)
        client = oslo_messaging.get_rpc_client(
            transport, oslo_messaging.Target(topic=topic, version="6.0"), timeout=WAIT
        )
        yield {
            "run": run,
            "topic": topic,
            "client": client,
            "endpoints": endpoints,
            "settings": request.param,
            "transport": transport,
        }
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            server.wait()
        reply_q = getattr(transport._driver, "_reply_q", None)
        transport.cleanup()
        # Delete what the servers and client declared and left behind.
        conn = connect(amqp_url)
        try:
            ch = conn.channel()
            for q in [topic, f"{topic}.node1", f"{topic}.node2", f"{topic}_fanout", reply_q]:
                if q:
                    ch.queue_delete(q)
            for x in [f"{topic}_fanout", control_exchange]:
                if x != "nova":
                    ch.exchange_delete(x)
        finally:
            conn.close()
        if settings.get("use_queue_manager"):
            counter = f"/dev/shm/host-{run}_pytest-oslo_qmanager"
            if os.path.exists(counter):
                os.remove(counter)


def drain_casts(endpoints, count, seconds=WAIT):
    """Wait until `count` casts have arrived in total, then return (host, cast) pairs."""
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(got) < count:
        for endpoint in endpoints.values():
            while not endpoint.casts.empty():
                got.append((endpoint.host, endpoint.casts.get_nowait()))
        time.sleep(0.02)
    return got


def test_cast_reaches_endpoint(rpc):
    rpc["client"].cast({}, "build_and_run_instance", instance="x")
    # A cast to the topic goes to exactly one of the servers sharing the topic queue.
    [(host, cast)] = drain_casts(rpc["endpoints"], 1)
    assert host in ("node1", "node2")
    assert cast == ("build_and_run_instance", "x", {})
    time.sleep(0.2)
    assert drain_casts(rpc["endpoints"], 1, seconds=0) == []


def test_casts_are_shared_round_robin(rpc):
    for i in range(4):
        rpc["client"].cast({}, "build_and_run_instance", instance=f"i{i}")
    got = drain_casts(rpc["endpoints"], 4)
    assert sorted(cast[1] for _host, cast in got) == ["i0", "i1", "i2", "i3"]
    hosts = [host for host, _cast in got]
    assert hosts.count("node1") == 2 and hosts.count("node2") == 2


def test_cast_to_server_reaches_that_server(rpc):
    node1 = rpc["endpoints"]["node1"]
    node2 = rpc["endpoints"]["node2"]
    rpc["client"].prepare(server="node2").cast({}, "build_and_run_instance", instance="y", node="n2")
    assert node2.casts.get(timeout=WAIT) == ("build_and_run_instance", "y", {"node": "n2"})
    assert node1.casts.empty()


def test_call_returns_result(rpc):
    result = rpc["client"].call({}, "add", a=2, b=3)
    assert result["sum"] == 5
    assert result["host"] in ("node1", "node2")
    # Several calls share one reply queue and are told apart by _msg_id.
    for i in range(5):
        assert rpc["client"].call({}, "add", a=i, b=10)["sum"] == i + 10


def test_call_to_named_server(rpc):
    assert rpc["client"].prepare(server="node1").call({}, "get_host") == "node1"
    assert rpc["client"].prepare(server="node2").call({}, "get_host") == "node2"


def test_fanout_cast_reaches_every_server(rpc):
    rpc["client"].prepare(fanout=True).cast({}, "build_and_run_instance", instance="all")
    for host in ("node1", "node2"):
        assert rpc["endpoints"][host].casts.get(timeout=WAIT) == (
            "build_and_run_instance",
            "all",
            {},
        )


def test_call_to_unknown_method_raises_remote_error(rpc):
    # The server's NoSuchMethod comes back in the reply's `failure` field.
    with pytest.raises(oslo_messaging.RemoteError) as info:
        rpc["client"].call({}, "no_such_method")
    assert info.value.exc_type == "NoSuchMethod"
    assert "no_such_method" in info.value.value


def test_call_nobody_serves_times_out(rpc):
    client = rpc["client"].prepare(topic=f"nobody-{rpc['run']}", timeout=2)
    with pytest.raises(oslo_messaging.MessagingTimeout):
        client.call({}, "get_host")


def redeclare(amqp_url, queue, durable, arguments, auto_delete=False):
    """Declares `queue` again as given: None when the broker finds it equivalent to the queue
    it has, else the broker's 406 text. A queue's type can only be asked this way over AMQP."""
    conn = connect(amqp_url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue, durable=durable, auto_delete=auto_delete, arguments=arguments)
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 406, e
        return e.reply_text
    finally:
        if conn.is_open:
            conn.close()


def queue_exists(amqp_url, queue):
    conn = connect(amqp_url)
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    finally:
        if conn.is_open:
            conn.close()


def test_declared_queues_have_the_settings_types(rpc, amqp_url):
    # A call makes the client's reply queue; the servers made the topic and fanout queues.
    assert rpc["client"].call({}, "add", a=1, b=1)["sum"] == 2
    topic = rpc["topic"]
    reply_q = rpc["transport"]._driver._reply_q
    expires = {"x-expires": TRANSIENT_TTL * 1000}
    if rpc["settings"] == "recommended":
        quorum = {"x-queue-type": "quorum"}
        for q in (topic, f"{topic}.node1", f"{topic}.node2"):
            assert redeclare(amqp_url, q, True, quorum) is None, q
        assert redeclare(amqp_url, reply_q, True, dict(quorum, **expires)) is None
        # One stream for the topic's fanout, kept for the transient TTL.
        stream = {"x-queue-type": "stream", "x-max-age": f"{TRANSIENT_TTL}s"}
        assert redeclare(amqp_url, f"{topic}_fanout", True, stream) is None
        # The queue manager names the reply queue after the host and process, not a uuid.
        assert re.fullmatch(rf"reply_host-{rpc['run']}:pytest-oslo:\d+", reply_q), reply_q
        refused = redeclare(amqp_url, topic, True, {"x-queue-type": "classic"})
        assert "inequivalent arg 'x-queue-type'" in refused and "'quorum'" in refused, refused
    else:
        for q in (topic, f"{topic}.node1", f"{topic}.node2"):
            assert redeclare(amqp_url, q, False, {}) is None, q
        assert redeclare(amqp_url, reply_q, False, expires) is None
        assert re.fullmatch(r"reply_[0-9a-f]{32}", reply_q), reply_q
        assert not queue_exists(amqp_url, f"{topic}_fanout")
        refused = redeclare(amqp_url, topic, True, {"x-queue-type": "quorum"})
        assert refused is not None
