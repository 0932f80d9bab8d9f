"""Boots one instance through Nova's own RPC clients, over real oslo.messaging, to a broker.

nova-api, nova-conductor, nova-scheduler and nova-compute each run in a process of their own
(their own AMQP connection, named after the service, and their own reply queue). The RPC
clients, the versioned objects, the serializer and oslo.messaging are Nova's and oslo's; what
stands in for a cloud (database, Placement, hypervisor, Neutron) sits *below* the RPC layer:
the servers' endpoints are small managers with Nova's method names, versions and namespaces.

    python record_boot.py rabbit://guest:guest@127.0.0.1:5672/nova-boot \
        [--settings classic|2026|notifications]

The boot, message by message:
  1. nova-api -> conductor   cast schedule_and_build_instances 1.17 (namespace compute_task)
  2. conductor -> scheduler  call select_destinations 4.5, and its reply
  3. conductor -> compute    cast build_and_run_instance 6.0 to compute.<host>
  4. compute -> conductor    call object_action 3.0 (Instance.save), and its reply
  5. compute -> schedulers   fanout cast update_instance_info 4.2 to scheduler_fanout
  6. nova-api -> compute     cast external_instance_event 6.0 (network-vif-plugged) to
                             compute-alt.<host> (compute RPC 6.5 has the second server)
  7. compute -> conductor    call object_action 3.0 (Instance.save: ACTIVE), and its reply

With --settings notifications, Nova's notifier is on as well (messagingv2, legacy and versioned):
the scheduler sends scheduler.select_destinations.start/.end within 2, nova-compute
compute.instance.create.start / instance.create.start within 3 and the .end ones after 7.
"""

import argparse
import multiprocessing
import os
import sys
import tempfile
import uuid

HOST = "compute-1"
# Where nova-conductor and nova-scheduler run.
CONTROLLER = "controller-1"
NODE = "compute-1.example.org"
PROJECT = "6f70656e737461636b20202020202020"
USER = "64656d6f" + "0" * 24
INSTANCE = str(uuid.UUID("0b6f6e6f-7661-4000-8000-626f6f74696e"))
IMAGE = str(uuid.UUID("c1a55e5e-0000-4000-8000-000000000001"))
CELL = str(uuid.UUID("ce11ce11-0000-4000-8000-000000000001"))

# The 2026 recommended settings of upstream's admin guide
# (oslo.messaging doc/source/admin/rabbit.rst); the stream fanout needs a prefetch.
SETTINGS_2026 = {
    "rabbit_quorum_queue": True,
    "rabbit_transient_quorum_queue": True,
    "rabbit_stream_fanout": True,
    "use_queue_manager": True,
    "rabbit_qos_prefetch_count": 10,
}

# oslo.messaging's notifier on, over the RPC transport, with Nova's own notification options:
# `notifications` carries the legacy ones; nova 34's notification_format default
# (`unversioned`) would leave versioned_notifications silent, so both are asked for.
NOTIFICATIONS = {
    "oslo_messaging_notifications": {"driver": "messagingv2"},
    "notifications": {"notification_format": "both"},
}


def notifying(settings):
    return settings == "notifications"


def configure(url, settings, service, lock_path):
    """Nova's own configuration and RPC set-up, as each nova-* service does it at start."""
    # oslo.messaging names the connection (and, with use_queue_manager, the queues) after it.
    sys.argv[0] = service
    from nova import config, objects, rpc
    import nova.conf

    objects.register_all()
    conf = nova.conf.CONF
    # A nova.conf as an operator writes it, read the way every nova-* service reads its own.
    lines = ["[DEFAULT]", "transport_url = " + url,
             # Every nova-compute runs 2026.2 (Hibiscus, compute RPC 6.5): the cap an operator
             # pins once all computes are upgraded ("auto", the default, asks a database).
             "[upgrade_levels]", "compute = hibiscus",
             "[oslo_concurrency]", "lock_path = " + lock_path]
    if settings == "2026":
        lines.append("[oslo_messaging_rabbit]")
        lines += ["%s = %s" % item for item in SETTINGS_2026.items()]
    if notifying(settings):
        # The host names the notifications' publisher (scheduler.controller-1, ...).
        lines.insert(1, "host = " + (HOST if service == "nova-compute" else CONTROLLER))
        for group, options in NOTIFICATIONS.items():
            lines.append("[%s]" % group)
            lines += ["%s = %s" % item for item in options.items()]
    path = os.path.join(lock_path, service + ".conf")
    with open(path, "w") as conf_file:
        conf_file.write("\n".join(lines) + "\n")
    config.parse_args([service, "--config-file", path], configure_db=False, init_rpc=False)
    rpc.init(conf)
    return conf


def context():
    from nova import context as nova_context

    return nova_context.RequestContext(
        user_id=USER, project_id=PROJECT, request_id="req-" + str(uuid.uuid4())
    )


def serve(topic, endpoints, server=HOST):
    from oslo_messaging import Target
    from nova import rpc
    from nova.objects import base as objects_base

    server = rpc.get_server(
        Target(topic=topic, server=server), endpoints, objects_base.NovaObjectSerializer()
    )
    server.start()
    return server


# --- stand-in managers: Nova's RPC method names, versions, namespaces; no cloud behind ---


class ComputeTaskManager:
    """nova-conductor's compute_task endpoint (nova/conductor/manager.py)."""

    def __init__(self, notify=False):
        from oslo_messaging import Target

        self.target = Target(namespace="compute_task", version="1.25")
        self.notify = notify

    def schedule_and_build_instances(self, context, build_requests, request_specs, image,
                                     admin_password, injected_files, requested_networks,
                                     block_device_mapping, tags=None):
        from nova import objects
        from nova.compute import rpcapi as compute_rpcapi
        from nova.scheduler import rpcapi as scheduler_rpcapi

        uuids = [spec.instance_uuid for spec in request_specs]
        # Placement's allocation candidates are HTTP; the scheduler's answer is RPC.
        host_lists = scheduler_rpcapi.SchedulerAPI().select_destinations(
            context, request_specs[0], uuids, return_objects=True, return_alternates=True
        )
        for build_request, spec, host_list in zip(build_requests, request_specs, host_lists):
            chosen = host_list[0]
            instance = build_request.get_new_instance(context)
            if self.notify:
                created(instance)
                # As Nova's conductor does, so the instance.create notification in
                # nova-compute does not lazy-load tags.
                instance.tags = objects.TagList(objects=[])
            instance.host = chosen.service_host
            instance.node = chosen.nodename
            compute_rpcapi.ComputeAPI().build_and_run_instance(
                context, instance=instance, host=chosen.service_host, image=image,
                request_spec=spec, filter_properties=spec.to_legacy_filter_properties_dict(),
                admin_password=admin_password, injected_files=injected_files,
                requested_networks=requested_networks, security_groups=None,
                block_device_mapping=objects.BlockDeviceMappingList(objects=[]),
                node=chosen.nodename, limits=chosen.limits, host_list=host_list,
                accel_uuids=[],
            )


class ConductorManager:
    """nova-conductor's object endpoint: compute has no database, so its saves come here."""

    def __init__(self):
        from oslo_messaging import Target

        self.target = Target(version="3.0")

    def object_action(self, context, objinst, objmethod, args, kwargs):
        # A database would write objinst's changes here; the caller gets back what changed.
        updates = {field: getattr(objinst, field) for field in objinst.obj_what_changed()}
        return updates, None


class SchedulerManager:
    """nova-scheduler's endpoint (nova/scheduler/manager.py)."""

    def __init__(self, notify=False):
        from oslo_messaging import Target
        from nova import rpc

        self.target = Target(version="4.5")
        self.notify = notify
        if notify:
            self.notifier = rpc.get_notifier("scheduler")

    def select_destinations(self, context, request_spec=None, filter_properties=None,
                            spec_obj=None, instance_uuids=None, return_objects=False,
                            return_alternates=False):
        if not self.notify:
            return self._schedule(context, spec_obj, instance_uuids)
        from nova.scheduler import manager

        # Nova's own code around the filters and weighers: it sends the
        # scheduler.select_destinations.start and .end notifications, legacy and versioned.
        return manager.SchedulerManager._select_destinations(
            self, context, spec_obj, instance_uuids, None, None,
            allocation_request_version="1.36", return_alternates=return_alternates,
        )

    def _schedule(self, context, spec_obj, instance_uuids, *_):
        from nova import objects

        selection = objects.Selection(
            service_host=HOST, nodename=NODE, compute_node_uuid=uuid.uuid5(uuid.NAMESPACE_DNS, NODE),
            cell_uuid=CELL, limits=None, allocation_request="{}",
            allocation_request_version="1.36",
        )
        return [[selection] for _ in instance_uuids]

    def update_instance_info(self, context, host_name, instance_info):
        pass


class ComputeManager:
    """nova-compute's endpoint (nova/compute/manager.py), on both of its RPC servers."""

    def __init__(self, vif_plugged, active, notify=False):
        from oslo_messaging import Target
        from nova import rpc

        self.target = Target(version="6.5")
        self.vif_plugged = vif_plugged
        self.active = active
        self.notify = notify
        if notify:
            self.notifier = rpc.get_notifier("compute", HOST)
        # The build waiting for its network-vif-plugged event: (instance, image, bdms).
        self.building = {}

    def notify_create(self, context, instance, phase, bdms, **usage):
        """What nova-compute's _build_and_run_instance sends, legacy then versioned."""
        from nova.compute import utils as compute_utils

        compute_utils.notify_about_instance_usage(
            self.notifier, context, instance, "create." + phase, **usage
        )
        compute_utils.notify_about_instance_create(
            context, instance, HOST, phase=phase, bdms=bdms
        )

    def build_and_run_instance(self, context, instance, image, request_spec, filter_properties,
                               accel_uuids, **_):
        from nova import objects
        from nova.compute import task_states
        from nova.scheduler.client import query

        bdms = objects.BlockDeviceMappingList(objects=[])
        if self.notify:
            self.building[instance.uuid] = (instance, bdms)
            self.notify_create(context, instance, "start", bdms,
                               extra_usage_info={"image_name": image.get("name")})
        # Every save is an object_action call to the conductor (the indirection API).
        instance.task_state = task_states.SPAWNING
        instance.save()
        query.SchedulerQueryClient().update_instance_info(
            context, HOST, objects.InstanceList(objects=[instance])
        )
        # The hypervisor now waits for Neutron's network-vif-plugged event.
        self.vif_plugged.set()

    def external_instance_event(self, context, instances, events):
        from nova.compute import power_state, vm_states
        from oslo_utils import timeutils

        for instance in instances:
            # The build, woken by the event, goes on with the instance it holds.
            instance, bdms = self.building.pop(instance.uuid, (instance, None))
            instance.vm_state = vm_states.ACTIVE
            instance.task_state = None
            instance.power_state = power_state.RUNNING
            if self.notify:
                instance.launched_at = timeutils.utcnow()
            instance.save()
            if self.notify:
                self.notify_create(context, instance, "end", bdms,
                                   extra_usage_info={"message": "Success"},
                                   network_info=instance.info_cache.network_info)
        self.active.set()


# --- the services ---


def conductor(url, settings, lock_path, ready, done):
    configure(url, settings, "nova-conductor", lock_path)
    server = serve("conductor", [ComputeTaskManager(notifying(settings)), ConductorManager()],
                   CONTROLLER)
    ready.set()
    done.wait()
    server.stop()
    server.wait()


def scheduler(url, settings, lock_path, ready, done):
    configure(url, settings, "nova-scheduler", lock_path)
    server = serve("scheduler", [SchedulerManager(notifying(settings))], CONTROLLER)
    ready.set()
    done.wait()
    server.stop()
    server.wait()


def compute(url, settings, lock_path, ready, done, vif_plugged, active):
    configure(url, settings, "nova-compute", lock_path)
    from nova.objects import base as objects_base
    from nova.conductor import rpcapi as conductor_rpcapi

    objects_base.NovaObject.indirection_api = conductor_rpcapi.ConductorAPI()
    manager = ComputeManager(vif_plugged, active, notifying(settings))
    servers = [serve("compute", [manager]), serve("compute-alt", [manager])]
    ready.set()
    done.wait()
    for server in servers:
        server.stop()
        server.wait()


def requested(instance):
    """The rest of what nova-api's _provision_instances sets on a new instance (base options,
    the image's, _populate_instance_for_create): the notifications' payloads read them all."""
    from nova import objects
    from nova.network import model as network_model

    flavor = instance.flavor
    instance.update(dict(
        reservation_id="r-" + INSTANCE[:8], instance_type_id=flavor.id,
        memory_mb=flavor.memory_mb, vcpus=flavor.vcpus, root_gb=flavor.root_gb,
        ephemeral_gb=flavor.ephemeral_gb, kernel_id="", ramdisk_id="", config_drive="",
        display_description="vm1", user_data=None, key_name=None, key_data=None, locked=False,
        metadata={}, system_metadata={}, access_ip_v4=None, access_ip_v6=None, progress=0,
        numa_topology=None, os_type=None, architecture=None, vm_mode=None,
        auto_disk_config=False, old_flavor=None, new_flavor=None, ephemeral_key_uuid=None,
        shutdown_terminate=False, trusted_certs=None,
        pci_requests=objects.InstancePCIRequests(instance_uuid=INSTANCE, requests=[]),
        info_cache=objects.InstanceInfoCache(instance_uuid=INSTANCE,
                                             network_info=network_model.NetworkInfo()),
        security_groups=objects.SecurityGroupList(objects=[]),
        keypairs=objects.KeyPairList(objects=[]), tags=objects.TagList(objects=[]),
    ))


def created(instance):
    """What the conductor's instance.create() reads back from the cell database."""
    from oslo_utils import timeutils

    instance.update(dict(
        id=1, created_at=timeutils.utcnow(), updated_at=None, deleted_at=None, deleted=False,
        launched_at=None, terminated_at=None, launched_on=None, locked_by=None, cell_name=None,
    ))
    instance.obj_reset_changes()


def boot_request(settings):
    """What nova-api builds for `openstack server create` before it casts to the conductor."""
    from nova import objects
    from nova.compute import power_state, task_states, vm_states

    flavor = objects.Flavor(
        id=1, flavorid="1", name="m1.tiny", memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0,
        swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False, is_public=True, extra_specs={},
        description=None,
    )
    image = {"id": IMAGE, "name": "cirros", "status": "active", "disk_format": "qcow2",
             "container_format": "bare", "min_disk": 0, "min_ram": 0, "size": 21430272,
             "properties": {}}
    instance = objects.Instance(
        uuid=INSTANCE, project_id=PROJECT, user_id=USER, display_name="vm1",
        hostname="vm1", image_ref=IMAGE, flavor=flavor, vm_state=vm_states.BUILDING,
        task_state=task_states.SCHEDULING, power_state=power_state.NOSTATE,
        availability_zone=None, launch_index=0, root_device_name=None,
    )
    build_request = objects.BuildRequest(
        instance_uuid=INSTANCE, project_id=PROJECT, instance=instance,
        block_device_mappings=objects.BlockDeviceMappingList(objects=[]),
        tags=objects.TagList(objects=[]),
    )
    spec = objects.RequestSpec(
        instance_uuid=INSTANCE, project_id=PROJECT, user_id=USER, num_instances=1,
        flavor=flavor, image=objects.ImageMeta.from_dict(image), availability_zone=None,
        ignore_hosts=None, force_hosts=None, force_nodes=None,
        scheduler_hints={}, is_bfv=False,
    )
    if notifying(settings):
        requested(instance)
        # The rest of RequestSpec.from_components, which the scheduler's payloads read.
        for field, value in dict(
            numa_topology=None, instance_group=None, retry=None, requested_destination=None,
            pci_requests=objects.InstancePCIRequests(instance_uuid=INSTANCE, requests=[]),
            limits=objects.SchedulerLimits.from_dict({}),
            security_groups=objects.SecurityGroupList(objects=[]),
        ).items():
            setattr(spec, field, value)
    return build_request, spec, image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="broker URL, e.g. rabbit://guest:guest@127.0.0.1:5672/nova-boot")
    parser.add_argument("--settings", choices=["classic", "2026", "notifications"], default="classic")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    lock_path = tempfile.mkdtemp(prefix="nova-locks-")

    # Nova takes seconds to import: import it once, before the services fork from here.
    import nova.conf  # noqa: F401
    from nova import config, objects, rpc  # noqa: F401
    from nova.compute import rpcapi as _compute  # noqa: F401
    from nova.conductor import rpcapi as _conductor  # noqa: F401
    from nova.scheduler.client import query as _query  # noqa: F401

    # fork: each service process starts from this one, then sets itself up as Nova does.
    mp = multiprocessing.get_context("fork")
    done, vif_plugged, active = mp.Event(), mp.Event(), mp.Event()
    readies = [mp.Event() for _ in range(3)]
    common = (args.url, args.settings, lock_path)
    services = [
        mp.Process(target=scheduler, args=common + (readies[0], done)),
        mp.Process(target=conductor, args=common + (readies[1], done)),
        mp.Process(target=compute, args=common + (readies[2], done, vif_plugged, active)),
    ]
    for service in services:
        service.start()
    try:
        for ready in readies:
            if not ready.wait(args.timeout):
                sys.exit("a service did not start")
        configure(args.url, args.settings, "nova-api", lock_path)
        from nova import objects
        from nova.compute import rpcapi as compute_rpcapi
        from nova.conductor import rpcapi as conductor_rpcapi

        ctxt = context()
        build_request, spec, image = boot_request(args.settings)
        conductor_rpcapi.ComputeTaskAPI().schedule_and_build_instances(
            ctxt, build_requests=[build_request], request_specs=[spec], image=image,
            admin_password=None, injected_files=[], requested_networks=None,
            block_device_mapping=objects.BlockDeviceMappingList(objects=[]), tags=[],
        )
        if not vif_plugged.wait(args.timeout):
            sys.exit("the instance never reached the compute host")
        # Neutron tells nova-api (HTTP) that the port is up; nova-api casts to the host.
        instance = build_request.get_new_instance(ctxt)
        instance.host = HOST
        instance.obj_reset_changes()
        event = objects.InstanceExternalEvent(
            instance_uuid=INSTANCE, name="network-vif-plugged", status="completed",
            tag=str(uuid.uuid5(uuid.NAMESPACE_DNS, "port-vm1")),
        )
        compute_rpcapi.ComputeAPI().external_instance_event(
            ctxt, [instance], [event], host=HOST
        )
        if not active.wait(args.timeout):
            sys.exit("the instance never became ACTIVE")
    finally:
        done.set()
        for service in services:
            service.join(args.timeout)
    print("instance %s booted on %s" % (INSTANCE, HOST))


if __name__ == "__main__":
    main()
