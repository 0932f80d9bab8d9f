"""A Nova-style RPC server under a program name of its choosing, as `nova-conductor` would run:
oslo.messaging names its connections `<program>:<pid>:<uuid>` after sys.argv[0].

    python named_rpc_server.py PROGRAM TOPIC    (AMQP_URL names the broker)

Prints `ready` once the server consumes, then serves until its stdin closes.
"""
import os
import sys

from oslo_config import cfg
import oslo_messaging

from test_oslo_messaging import ComputeManager, oslo_url, register_global_only_opts


def main():
    program, topic = sys.argv[1], sys.argv[2]
    # What a console script sees when started as /usr/bin/nova-conductor.
    sys.argv[0] = f"/usr/bin/{program}"
    oslo_messaging.set_transport_defaults("nova")
    conf = cfg.ConfigOpts()
    conf([])
    register_global_only_opts(conf)
    transport = oslo_messaging.get_rpc_transport(conf, url=oslo_url(os.environ["AMQP_URL"]))
    server = oslo_messaging.get_rpc_server(
        transport,
        oslo_messaging.Target(topic=topic, server="controller"),
        [ComputeManager("controller")],
        executor="threading",
        access_policy=oslo_messaging.DefaultRPCAccessPolicy,
    )
    server.start()
    print("ready", flush=True)
    sys.stdin.read()
    server.stop()
    server.wait()
    transport.cleanup()


if __name__ == "__main__":
    main()
