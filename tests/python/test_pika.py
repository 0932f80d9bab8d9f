"""What a student does with pika's BlockingConnection, checked against the broker in AMQP_URL."""
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, UnroutableError

from conftest import connect


@pytest.fixture
def conn(amqp_url):
    c = connect(amqp_url)
    yield c
    if c.is_open:
        c.close()


@pytest.fixture
def ch(conn):
    """A channel in confirm mode, so a publish returns once the broker has routed it."""
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def drain(ch, queue):
    """Every message now in `queue`, in order, acknowledged."""
    bodies = []
    while True:
        method, _props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return bodies
        bodies.append(body.decode())


def get_within(ch, queue, seconds, auto_ack=True):
    """basic_get until a message arrives or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None or time.monotonic() > deadline:
            return method, props, body
        time.sleep(0.05)


def consume_until(conn, received, count, seconds=5):
    """Run the connection's I/O loop until `received` has `count` entries."""
    deadline = time.monotonic() + seconds
    while len(received) < count and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)


def test_hello_world(conn, ch, names):
    q = names.queue("hello")
    ok = ch.queue_declare(q)
    assert ok.method.queue == q
    assert ok.method.message_count == 0
    assert ok.method.consumer_count == 0

    ch.basic_publish("", q, b"Hello World!")
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"Hello World!"
    assert method.exchange == ""
    assert method.routing_key == q
    assert method.redelivered is False
    assert method.message_count == 0
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)

    received = []

    def on_message(channel, method, props, body):
        received.append((method.routing_key, body))

    tag = ch.basic_consume(q, on_message, auto_ack=True)
    ch.basic_publish("", q, b"Hello again", pika.BasicProperties(content_type="text/plain"))
    consume_until(conn, received, 1)
    assert received == [(q, b"Hello again")]
    ch.basic_cancel(tag)


def test_direct_exchange_routes_by_exact_key(ch, names):
    x = names.exchange("direct")
    errors, everything = names.queue("direct-errors"), names.queue("direct-all")
    ch.exchange_declare(x, "direct")
    for q in (errors, everything):
        ch.queue_declare(q)
    ch.queue_bind(errors, x, "error")
    for key in ("info", "warning", "error"):
        ch.queue_bind(everything, x, key)

    for key in ("info", "error", "debug", "warning", "Error"):
        ch.basic_publish(x, key, key.encode())

    assert drain(ch, errors) == ["error"]
    assert drain(ch, everything) == ["info", "error", "warning"]


def test_fanout_exchange_ignores_routing_key(ch, names):
    x = names.exchange("fanout")
    qs = [names.queue(f"fanout-{i}") for i in range(3)]
    ch.exchange_declare(x, "fanout")
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, x, "whatever")

    ch.basic_publish(x, "", b"one")
    ch.basic_publish(x, "some.key", b"two")

    for q in qs:
        assert drain(ch, q) == ["one", "two"]


def test_topic_exchange_wildcards(ch, names):
    x = names.exchange("topic")
    q1, q2 = names.queue("topic-orange"), names.queue("topic-rabbit-lazy")
    ch.exchange_declare(x, "topic")
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    ch.queue_bind(q1, x, "*.orange.*")
    ch.queue_bind(q2, x, "*.*.rabbit")
    ch.queue_bind(q2, x, "lazy.#")

    keys = [
        "quick.orange.rabbit",  # both
        "lazy.orange.elephant",  # both
        "quick.orange.fox",  # q1
        "lazy.brown.fox",  # q2
        "lazy.pink.rabbit",  # q2 once, though two bindings match
        "quick.brown.fox",  # none
        "orange",  # none: * is exactly one word
        "quick.orange.new.rabbit",  # none
        "lazy",  # q2: # matches zero words
        "lazy.orange.new.rabbit",  # q2
    ]
    for key in keys:
        ch.basic_publish(x, key, key.encode())

    assert drain(ch, q1) == ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"]
    assert drain(ch, q2) == [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "lazy.brown.fox",
        "lazy.pink.rabbit",
        "lazy",
        "lazy.orange.new.rabbit",
    ]


def test_headers_exchange_all_and_any(ch, names):
    x = names.exchange("headers")
    q_all, q_any = names.queue("headers-all"), names.queue("headers-any")
    ch.exchange_declare(x, "headers")
    ch.queue_declare(q_all)
    ch.queue_declare(q_any)
    ch.queue_bind(q_all, x, "", arguments={"x-match": "all", "format": "pdf", "type": "report"})
    ch.queue_bind(q_any, x, "", arguments={"x-match": "any", "format": "pdf", "type": "log"})

    messages = {
        "pdf-report": {"format": "pdf", "type": "report"},
        "pdf-log": {"format": "pdf", "type": "log"},
        "zip-report": {"format": "zip", "type": "report"},
        "zip-log": {"format": "zip", "type": "log"},
        "pdf-report-extra": {"format": "pdf", "type": "report", "size": 42},
        "no-headers": None,
    }
    for body, headers in messages.items():
        # The routing key plays no part in a headers exchange.
        ch.basic_publish(x, "ignored", body.encode(), pika.BasicProperties(headers=headers))

    assert drain(ch, q_all) == ["pdf-report", "pdf-report-extra"]
    assert drain(ch, q_any) == ["pdf-report", "pdf-log", "zip-log", "pdf-report-extra"]


def test_publisher_confirms(conn, names):
    ch = conn.channel()
    assert ch.confirm_delivery() is None
    q = names.queue("confirms")
    ch.queue_declare(q)
    for i in range(10):
        # Returns only after the broker's basic.ack; a nack would raise NackError.
        ch.basic_publish("", q, f"m{i}".encode())
    ok = ch.queue_declare(q, passive=True)
    assert ok.method.message_count == 10
    # A message to a queue that does not exist is still confirmed (no mandatory flag).
    ch.basic_publish("", names.queue("nowhere"), b"dropped")


def test_mandatory_unroutable_raises(ch, names):
    x = names.exchange("mandatory")
    ch.exchange_declare(x, "direct")
    with pytest.raises(UnroutableError) as info:
        ch.basic_publish(x, "no-binding", b"lost", mandatory=True)
    [returned] = info.value.messages
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.method.exchange == x
    assert returned.method.routing_key == "no-binding"
    assert returned.body == b"lost"

    with pytest.raises(UnroutableError):
        ch.basic_publish("", names.queue("absent"), b"lost too", mandatory=True)
    # The channel stays open after a return.
    assert ch.is_open
    q = names.queue("mandatory-ok")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"routed", mandatory=True)
    assert drain(ch, q) == ["routed"]


def test_prefetch_one_round_robin_with_manual_ack(conn, ch, names):
    """Two consumers with prefetch 1 take turns; each gets its next message only after its ack."""
    q = names.queue("work")
    ch.queue_declare(q)
    held = {}  # consumer -> list of (delivery_tag, int body), in arrival order
    channels = {}
    for who in ("a", "b"):
        c = conn.channel()
        c.basic_qos(prefetch_count=1)
        held[who] = []
        c.basic_consume(q, lambda c, m, p, b, who=who: held[who].append((m.delivery_tag, int(b))))
        channels[who] = c

    def wait_until(total):
        deadline = time.monotonic() + 5
        while sum(map(len, held.values())) < total and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        conn.process_data_events(time_limit=0.2)  # let any extra delivery show up
        return sum(map(len, held.values()))

    for i in range(1, 7):
        ch.basic_publish("", q, str(i).encode())

    assert wait_until(2) == 2
    assert sorted(held["a"][0][1:] + held["b"][0][1:]) == [1, 2]
    # Ack whichever holds the older message; only that consumer may receive the next one.
    for n in range(3, 7):
        who = min(held, key=lambda k: held[k][-1][1])
        other = "b" if who == "a" else "a"
        before = list(held[other])
        channels[who].basic_ack(held[who][-1][0])
        assert wait_until(n) == n
        assert held[who][-1][1] == n
        assert held[other] == before

    bodies = sorted([[m for _tag, m in held["a"]], [m for _tag, m in held["b"]]])
    assert bodies == [[1, 3, 5], [2, 4, 6]]
    for who, c in channels.items():
        c.basic_ack(held[who][-1][0])
        c.close()
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_prefetch_one_busy_consumer_gets_no_more(conn, ch, names):
    """Fair dispatch: a consumer holding an unacked message is skipped."""
    q = names.queue("fair")
    ch.queue_declare(q)
    held, worked = [], []
    slow, fast = conn.channel(), conn.channel()
    for c in (slow, fast):
        c.basic_qos(prefetch_count=1)
    slow.basic_consume(q, lambda c, m, p, b: held.append((m.delivery_tag, b)))

    def work(channel, method, props, body):
        worked.append(body)
        channel.basic_ack(method.delivery_tag)

    fast.basic_consume(q, work)

    for i in range(4):
        ch.basic_publish("", q, f"job{i}".encode())
    deadline = time.monotonic() + 5
    while len(held) + len(worked) < 4 and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.1)

    assert len(held) == 1
    assert len(worked) == 3
    assert sorted([held[0][1]] + worked) == [b"job0", b"job1", b"job2", b"job3"]
    slow.basic_ack(held[0][0])
    slow.close()
    fast.close()


def test_nack_requeue_redelivers(ch, names):
    q = names.queue("nack")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"try again")

    method, _props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"try again"
    assert method.redelivered is False
    ch.basic_nack(method.delivery_tag, requeue=True)

    method, _props, body = get_within(ch, q, 5, auto_ack=False)
    assert body == b"try again"
    assert method.redelivered is True
    ch.basic_ack(method.delivery_tag)
    assert ch.basic_get(q) == (None, None, None)


def test_passive_declare_of_missing_queue_is_404(conn, names):
    ch = conn.channel()
    q = names.queue("missing")
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare(q, passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text.startswith("NOT_FOUND")
    assert q in info.value.reply_text
    assert ch.is_closed
    # Only the channel closed; the connection carries on.
    assert conn.is_open
    assert conn.channel().queue_declare(names.queue("after-404")).method.message_count == 0


def test_redeclare_with_other_durability_is_406(conn, names):
    q = names.queue("durability")
    conn.channel().queue_declare(q, durable=False)
    ch = conn.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        ch.queue_declare(q, durable=True)
    assert info.value.reply_code == 406
    assert info.value.reply_text.startswith("PRECONDITION_FAILED")
    assert "durable" in info.value.reply_text
    assert conn.is_open
    # The same declaration again is fine.
    assert conn.channel().queue_declare(q, durable=False).method.queue == q


def test_message_ttl_dead_letters_with_x_death(ch, names):
    dlx = names.exchange("dlx")
    dead = names.queue("dead")
    source = names.queue("ttl")
    ch.exchange_declare(dlx, "direct")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx, "expired-key")
    ch.queue_declare(
        source,
        arguments={
            "x-message-ttl": 100,
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": "expired-key",
        },
    )
    ch.basic_publish("", source, b"short-lived", pika.BasicProperties(headers={"mine": "kept"}))

    method, props, body = get_within(ch, dead, 5)
    assert method is not None, "the expired message never reached the dead-letter queue"
    assert body == b"short-lived"
    assert method.exchange == dlx
    assert method.routing_key == "expired-key"
    headers = props.headers
    assert headers["mine"] == "kept"
    [death] = headers["x-death"]
    assert death["reason"] == "expired"
    assert death["count"] == 1
    assert death["queue"] == source
    assert death["exchange"] == ""
    assert death["routing-keys"] == [source]
    assert headers["x-first-death-reason"] == "expired"
    assert headers["x-first-death-queue"] == source
    assert ch.queue_declare(source, passive=True).method.message_count == 0


def test_server_named_exclusive_queue(amqp_url, conn, ch):
    ok = ch.queue_declare("", exclusive=True)
    q = ok.method.queue
    assert q.startswith("amq.gen-")
    ch.basic_publish("", q, b"to myself")
    assert drain(ch, q) == ["to myself"]

    other = connect(amqp_url)
    try:
        with pytest.raises(ChannelClosedByBroker) as info:
            other.channel().basic_consume(q, lambda *a: None)
        assert info.value.reply_code == 405  # RESOURCE_LOCKED: exclusive to its connection
    finally:
        other.close()

    conn.close()  # an exclusive queue goes with its connection
    other = connect(amqp_url)
    try:
        with pytest.raises(ChannelClosedByBroker) as info:
            other.channel().queue_declare(q, passive=True)
        assert info.value.reply_code == 404
    finally:
        other.close()
