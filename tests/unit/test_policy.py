"""The destination's policy for a migrated container's configuration, names by Docker's rule,
and the bind mounts the disk plan refuses read from the same configuration."""

import pytest
from ansible.module_utils import edge_docker
from edge_disk import disk_plan
from edge_policy import (
    HOST_CONFIG_KEYS,
    config_bind_mounts,
    container_policy,
    edge_leftovers,
    name_problem,
    valid_name,
)


def config(**host):
    return {"Image": "busybox", "Env": ["DB_PASSWORD=x"], "HostConfig": dict({"RestartPolicy": {"Name": "no"}}, **host)}


def test_an_ordinary_container_passes():
    assert container_policy(config(CapDrop=["NET_RAW"], CapAdd=["CHOWN", "cap_net_bind_service"],
                                   SecurityOpt=["no-new-privileges"], NetworkMode="bridge", IpcMode="private")) == []


def test_the_policy_knows_every_setting_the_migration_carries():
    assert HOST_CONFIG_KEYS == set(edge_docker.HOST_CONFIG_KEYS)


@pytest.mark.parametrize("host, setting", [
    ({"Privileged": True}, "migration_allow_privileged: true"),
    ({"CapAdd": ["SYS_ADMIN", "CAP_NET_ADMIN"]}, "migration_allow_capabilities: [NET_ADMIN, SYS_ADMIN]"),
    ({"CapAdd": ["ALL"]}, "migration_allow_capabilities: [ALL]"),
    ({"PidMode": "host"}, "migration_allow_host_namespaces: [pid]"),
    ({"NetworkMode": "host", "IpcMode": "host"}, "migration_allow_host_namespaces: [ipc, network]"),
    ({"UTSMode": "host"}, "migration_allow_host_namespaces: [uts]"),
    ({"SecurityOpt": ["seccomp=unconfined"]}, "migration_allow_unconfined: true"),
    ({"SecurityOpt": ["apparmor:unconfined"]}, "migration_allow_unconfined: true"),
    ({"SecurityOpt": ["label=disable"]}, "migration_allow_unconfined: true"),
    ({"SecurityOpt": ['seccomp={"defaultAction": "SCMP_ACT_ALLOW"}']}, "migration_allow_unconfined: true"),
    ({"Devices": [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda"}]},
     "migration_allow_devices: [/dev/sda]"),
    ({"CgroupParent": "/", "VolumesFrom": ["x"]}, "does not carry ('CgroupParent', 'VolumesFrom')"),
    ({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/v",
                  "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"device": "/"}}}}]},
     "migration_allow_volume_options: true"),
])
def test_what_gives_power_over_the_destination_is_refused_with_the_setting_that_allows_it(host, setting):
    refusals = container_policy(config(**host), destination="edge2")
    assert len(refusals) == 1 and setting in refusals[0] and "on edge2" in refusals[0]


def test_a_user_namespace_shared_with_the_host_is_refused_unless_allowed():
    refusals = container_policy(config(UsernsMode="host"))
    assert len(refusals) == 1 and "migration_allow_host_namespaces: [userns]" in refusals[0]
    assert container_policy(config(UsernsMode="host"), {"host_namespaces": ["userns"]}) == []


def test_the_destination_allows_what_its_inventory_says():
    assert container_policy(config(Privileged=True), {"privileged": True}) == []
    allowed = {"capabilities": ["cap_net_admin", "SYS_PTRACE"]}
    assert container_policy(config(CapAdd=["NET_ADMIN", "SYS_PTRACE"]), allowed) == []
    assert container_policy(config(CapAdd=["SYS_ADMIN"]), {"capabilities": True}) == []
    assert container_policy(config(PidMode="host", NetworkMode="host"), {"host_namespaces": "pid,network"}) == []
    assert container_policy(config(PidMode="host"), {"host_namespaces": ["network"]}) != []
    assert container_policy(config(SecurityOpt=["seccomp=unconfined"]), {"unconfined": "yes"}) == []
    assert container_policy(config(Devices=[{"PathOnHost": "/dev/snd/pcm0"}]), {"devices": ["/dev/snd"]}) == []
    assert container_policy(config(Devices=[{"PathOnHost": "/dev/snd/../sda"}]), {"devices": ["/dev/snd"]}) != []
    # SYS_PTRACE (commonly added for debugging) is allowed by default, other additions are not.
    assert container_policy(config(CapAdd=["SYS_PTRACE"])) == []
    assert container_policy(config(CapAdd=["SYS_PTRACE"]), {"capabilities": []}) != []


def test_volumes_with_drivers_or_options_are_refused():
    volumes = [{"name": "data", "driver": "local", "options": {"type": "none", "o": "bind", "device": "/"}},
               {"name": "plain", "driver": "local", "options": {}}]
    refusals = container_policy(config(), volumes=volumes)
    assert len(refusals) == 1 and "data (driver local" in refusals[0] and "plain" not in refusals[0]
    assert container_policy(config(), {"volume_options": True}, volumes) == []


def test_a_report_that_is_not_a_configuration_is_refused():
    assert "no container configuration" in container_policy("x")[0]
    assert "not a mapping" in container_policy({"HostConfig": ["x"]})[0]
    long = container_policy(config(**{"X" * 5000: 1}))[0]
    assert len(long) < 400


def test_bind_mounts_come_from_the_configuration_the_destination_creates():
    host = {"Binds": ["/:/host", "named:/data", "/srv/x:/x:ro"],
            "Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/e", "ReadOnly": True},
                       {"Type": "volume", "Source": "v", "Target": "/v"}]}
    binds = config_bind_mounts(config(**host))
    assert [(b["source"], b["destination"], b["rw"]) for b in binds] == [
        ("/", "/host", True), ("/srv/x", "/x", False), ("/etc", "/e", False)]
    # The storage report says nothing of them; the plan refuses them all the same.
    storage = {"image_id": "sha256:1", "upper_dir": "/u", "layer": {}, "mounts": []}
    plan = disk_plan(storage, "svc", "edge1", binds=binds)
    assert len(plan["refusals"]) == 1 and "/ -> /host" in plan["refusals"][0]
    assert disk_plan(storage, "svc", "edge1", shared_bind_mounts=["/srv"], binds=binds[1:2])["refusals"] == []
    assert disk_plan(storage, "svc", "edge1", shared_bind_mounts=["/srv"],
                     binds=[{"type": "bind", "source": "/srv/../etc", "destination": "/e"}])["refusals"]


@pytest.mark.parametrize("name", ["openface", "web-1", "a.b_c", "x1"])
def test_container_names(name):
    assert valid_name(name) and name_problem(name) == ""


@pytest.mark.parametrize("name", ["../../x", "x{{ lookup('pipe', 'id') }}", "a", "-x", ".x", "a/b", "x" * 129, "",
                                  None, 12, "é1"])
def test_what_is_not_a_container_name(name):
    assert not valid_name(name) and "is not a container name" in name_problem(name)
    assert len(name_problem(name)) < 400


def test_leftovers_are_taken_only_where_they_belong():
    workdirs = {"edge1": "/w1", "edge2": "/w2/"}
    good = {"host": "edge1", "migration_id": "web-20261201T101010", "path": "/w1/web-20261201T101010"}
    assert edge_leftovers([good], workdirs, "web") == [good]
    for bad in (dict(good, path="/"), dict(good, host="edge2"), dict(good, migration_id="web-x", path="/w1/web-x"),
                dict(good, migration_id="other-20261201T101010", path="/w1/other-20261201T101010"),
                dict(good, migration_id="web-20261201T101010/../..", path="/w1/web-20261201T101010/../.."), "x"):
        assert edge_leftovers([bad], workdirs, "web") == []
    assert edge_leftovers([dict(good, host="edge2", path="/w2/web-20261201T101010")], workdirs, "web")
