"""Shared fixtures: the broker under test and unique, cleaned-up names."""
import os
import uuid

import pika
import pytest

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"


@pytest.fixture(scope="session")
def amqp_url():
    """The broker under test, from AMQP_URL (defaults to a local RabbitMQ)."""
    return os.environ.get("AMQP_URL", DEFAULT_URL)


def connect(url):
    params = pika.URLParameters(url)
    # Fail within seconds, not minutes, when the broker does not answer.
    params.connection_attempts = 2
    params.retry_delay = 1
    params.socket_timeout = 5
    params.stack_timeout = 10
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


class Names:
    """Hands out names unique to this run and deletes what was declared with them."""

    def __init__(self, url):
        self.url = url
        self.run = uuid.uuid4().hex[:12]
        self.queues = []
        self.exchanges = []

    def queue(self, label):
        name = f"pytest.{label}.{self.run}"
        self.queues.append(name)
        return name

    def exchange(self, label):
        name = f"pytest.{label}.{self.run}"
        self.exchanges.append(name)
        return name

    def cleanup(self):
        conn = connect(self.url)
        try:
            ch = conn.channel()
            for q in self.queues:
                ch.queue_delete(q)
            for x in self.exchanges:
                ch.exchange_delete(x)
        finally:
            conn.close()


@pytest.fixture
def names(amqp_url):
    n = Names(amqp_url)
    yield n
    n.cleanup()
