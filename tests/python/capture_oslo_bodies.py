"""Captures what oslo.messaging really puts on the wire, as fixtures for the decoder's tests.

Run with oslo.messaging, oslo.versionedobjects and pika installed, against a RabbitMQ:
    python capture_oslo_bodies.py amqp://guest:guest@127.0.0.1:5672/%2f OUTDIR

A Nova-shaped RPC server (topic `conductor-<run>`) serves a real oslo client's cast and call;
a side queue bound to the same topic copies the requests. A call sent by hand with its
`_reply_q` pointing at another side queue captures the server's real reply, and one to an
unknown method captures a real failure reply.
"""
import json
import os
import sys
import time
import uuid

import oslo_messaging
import pika
from oslo_versionedobjects import base as ovo_base
from oslo_versionedobjects import fields

import oslo_capture


class NovaObject(ovo_base.VersionedObject):
    """Nova's object base: its objects travel as `nova_object.*` keys."""

    OBJ_PROJECT_NAMESPACE = "nova"
    OBJ_SERIAL_NAMESPACE = "nova_object"


class NovaSerializer(ovo_base.VersionedObjectSerializer):
    OBJ_BASE_CLASS = NovaObject


@ovo_base.VersionedObjectRegistry.register
class Instance(NovaObject):
    """A few of Nova's Instance fields."""

    VERSION = "2.7"
    fields = {
        "uuid": fields.UUIDField(),
        "host": fields.StringField(nullable=True),
        "vm_state": fields.StringField(),
        "flavor_id": fields.IntegerField(),
    }


class ConductorManager:
    target = oslo_messaging.Target(namespace="compute_task", version="1.17")

    def schedule_and_build_instances(self, ctxt, **kwargs):
        pass

    def object_action(self, ctxt, objinst, objmethod, args, kwargs):
        objinst.host = "node1"
        return {"host": objinst.host, "saved": True}


def main(amqp_url, out):
    serializer = NovaSerializer()
    with oslo_capture.rpc_server(amqp_url, "conductor", "c1", [ConductorManager()],
                                 executor="threading", serializer=serializer) as cap:
        capture(cap, serializer, out)


def capture(cap, serializer, out):
    """A real cast and call, then a reply and a failure to calls sent by hand."""
    topic, ch, copy_q, reply_q = cap.topic, cap.ch, cap.copy_q, cap.reply_q
    client = oslo_messaging.get_rpc_client(
        cap.transport, oslo_messaging.Target(topic=topic, namespace="compute_task"),
        timeout=10, serializer=serializer)
    ctxt = {"request_id": "req-6d1c2a7e-0c1b-4a8e-9f1e-3b6f7f0a1c2d",
            "user_id": "4f2b1a", "project_id": "9c8d7e", "is_admin": False}
    inst = Instance(uuid="8f2c6d3e-1a4b-4c5d-8e9f-0a1b2c3d4e5f", host=None,
                    vm_state="building", flavor_id=1)
    client.prepare(version="1.17").cast(
        ctxt, "schedule_and_build_instances", build_requests=[inst],
        host_mapping_cache={}, block_device_mapping=[], tags=[])
    client.prepare(version="1.0").call(
        ctxt, "object_action", objinst=inst, objmethod="save", args=[], kwargs={})
    # By hand: the same request shape, replied to a queue we read.
    for name, method in [("reply", "object_action"), ("failure", "no_such_method")]:
        msg = {"method": method, "namespace": "compute_task", "version": "1.0",
               "args": {"objinst": serializer.serialize_entity(ctxt, inst),
                        "objmethod": "save", "args": [], "kwargs": {}},
               "_msg_id": uuid.uuid4().hex, "_reply_q": reply_q, "_timeout": 10,
               "_unique_id": uuid.uuid4().hex}
        envelope = {"oslo.version": "2.0", "oslo.message": json.dumps(msg)}
        props = pika.BasicProperties(content_type="application/json",
                                     content_encoding="utf-8")
        ch.basic_publish("nova", topic, json.dumps(envelope), props)
    time.sleep(3)
    bodies = {}
    for q, names in [(copy_q, ["cast", "call"]), (reply_q, ["reply", "failure"])]:
        for name in names:
            for _ in range(50):
                _, _, body = ch.basic_get(q, auto_ack=True)
                if body:
                    break
                time.sleep(0.1)
            bodies[name] = body
    # The server answers on threads: tell the two replies apart by what they say.
    if json.loads(json.loads(bodies["reply"])["oslo.message"])["failure"]:
        bodies["reply"], bodies["failure"] = bodies["failure"], bodies["reply"]
    for name, body in bodies.items():
        with open(os.path.join(out, f"{name}.json"), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
