import pytest
from ansible.module_utils.edge_docker import (
    APIError,
    DockerError,
    NotFound,
    _split_image,
    exec_processes,
    health_probe_command,
    portable_config,
    summary,
    uncarried_settings,
)
from edge_catalog import service_config

INSPECT = {
    "Id": "abc123" * 10,
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 42},
    "Config": {"Image": "10.77.0.1:5000/app:1", "Cmd": ["python3", "app.py"], "Entrypoint": None,
               "Env": ["A=1", "PATH=/usr/bin"], "Labels": {"team": "edge"}, "ExposedPorts": {"9999/tcp": {}},
               "WorkingDir": "", "Hostname": "abc123abc123", "Tty": False},
    "HostConfig": {"PortBindings": {"9999/tcp": [{"HostIp": "", "HostPort": "9999"}]}, "Binds": None,
                   "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}, "NetworkMode": "default",
                   "Memory": 0, "Mounts": [{"Type": "volume", "Source": "data", "Target": "/data"}]},
}


def test_portable_config_keeps_what_makes_the_container():
    config = portable_config(INSPECT)
    assert config["Image"] == "10.77.0.1:5000/app:1"
    assert config["Cmd"] == ["python3", "app.py"]
    assert config["Env"] == ["A=1", "PATH=/usr/bin"]
    assert config["Labels"] == {"team": "edge"}
    assert config["HostConfig"]["PortBindings"]["9999/tcp"][0]["HostPort"] == "9999"
    assert config["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    assert config["HostConfig"]["NetworkMode"] == "default"
    assert config["HostConfig"]["Mounts"][0]["Source"] == "data"


def test_portable_config_drops_host_specific_and_empty_values():
    config = portable_config(INSPECT)
    assert "Entrypoint" not in config and "WorkingDir" not in config
    assert "Memory" not in config["HostConfig"] and "Binds" not in config["HostConfig"]


def test_summary():
    assert summary(INSPECT) == {"id": INSPECT["Id"], "name": "web", "image": "10.77.0.1:5000/app:1",
                                "status": "running", "running": True, "pid": 42, "restart_policy": "on-failure"}


def test_split_image():
    assert _split_image("10.77.0.1:5000/app") == ("10.77.0.1:5000/app", "latest")
    assert _split_image("10.77.0.1:5000/app:2") == ("10.77.0.1:5000/app", "2")
    assert _split_image("busybox") == ("busybox", "latest")
    assert _split_image("app@sha256:ab") == ("app@sha256:ab", None)


def test_catalog_entry_becomes_a_create_body():
    config = service_config({"name": "openface", "image": "r/openface:latest", "ports": {"9999/tcp": 9999},
                             "env": {"STATE_MB": "190"}})
    assert config["Image"] == "r/openface:latest"
    assert config["Env"] == ["STATE_MB=190"]
    assert config["ExposedPorts"] == {"9999/tcp": {}}
    assert config["HostConfig"]["PortBindings"] == {"9999/tcp": [{"HostIp": "", "HostPort": "9999"}]}
    assert config["Labels"]["edge-migrate.service"] == "openface"


def test_a_hostname_given_with_run_is_kept():
    inspect = dict(INSPECT, Config=dict(INSPECT["Config"], Hostname="camera-7"))
    assert portable_config(inspect)["Hostname"] == "camera-7"


def test_the_hostname_the_engine_chose_is_kept_for_the_restored_processes():
    # CRIU restores the source's hostname in the UTS namespace; /etc/hosts on the destination
    # must name it, or the service cannot resolve its own hostname after the move.
    assert portable_config(INSPECT)["Hostname"] == "abc123abc123"


def test_everyday_settings_beyond_the_first_set_are_carried():
    inspect = dict(INSPECT, HostConfig=dict(
        INSPECT["HostConfig"], OomScoreAdj=-200, PublishAllPorts=True, DnsOptions=["ndots:2"],
        MemorySwappiness=10, BlkioWeight=300, CpuRealtimeRuntime=950, UsernsMode="host"))
    host = portable_config(inspect)["HostConfig"]
    assert (host["OomScoreAdj"], host["PublishAllPorts"], host["DnsOptions"]) == (-200, True, ["ndots:2"])
    assert (host["MemorySwappiness"], host["BlkioWeight"], host["CpuRealtimeRuntime"]) == (10, 300, 950)
    assert host["UsernsMode"] == "host"
    assert uncarried_settings(inspect) == []


def test_settings_that_cannot_move_are_named_with_their_flag_and_reason():
    inspect = dict(INSPECT, HostConfig=dict(
        INSPECT["HostConfig"], VolumesFrom=["data-holder"], Links=["/db:/web/db"], CgroupParent="",
        DeviceRequests=None, VolumeDriver="local", ContainerIDFile="/tmp/id", ConsoleSize=[24, 80],
        MaskedPaths=["/proc/kcore"], KernelMemory=0, SomethingNew={"a": 1}, AutoRemove=True))
    found = uncarried_settings(inspect)
    assert [item["setting"] for item in found] == ["AutoRemove", "Links", "SomethingNew", "VolumesFrom"]
    assert found[0]["flag"] == "--rm" and "no way back" in found[0]["why"]
    assert found[1]["flag"] == "--link" and "another container" in found[1]["why"]
    assert found[2]["flag"] == "" and "does not know" in found[2]["why"]
    assert all(key not in portable_config(inspect)["HostConfig"]
               for key in ("AutoRemove", "Links", "VolumesFrom", "SomethingNew"))
    assert uncarried_settings(dict(INSPECT, HostConfig=dict(INSPECT["HostConfig"], AutoRemove=False))) == []


def test_a_shareable_or_borrowed_ipc_namespace_and_a_borrowed_pid_namespace_are_refused():
    def refused(**settings):
        return [(item["setting"], item["flag"])
                for item in uncarried_settings(dict(INSPECT, HostConfig=dict(INSPECT["HostConfig"], **settings)))]
    # The engine's shareable /dev/shm is a host mount CRIU leaves out: its files would be lost.
    assert refused(IpcMode="shareable") == [("IpcMode", "--ipc shareable")]
    assert "/dev/shm" in uncarried_settings(dict(INSPECT, HostConfig=dict(INSPECT["HostConfig"], IpcMode="shareable")))[
        0]["why"]
    assert refused(IpcMode="container:holder") == [("IpcMode", "--ipc container:NAME")]
    assert refused(PidMode="container:0123abcd") == [("PidMode", "--pid container:NAME")]
    for carried in (dict(IpcMode="private"), dict(IpcMode="none"), dict(IpcMode=""), dict(IpcMode="host"),
                    dict(PidMode=""), dict(PidMode="host"), dict(IpcMode=None)):
        assert refused(**carried) == [], carried


class ExecsOfOneContainer:
    """The engine's answers to GET /exec/ID/json for a container's exec ids (the SDK call's shape)."""

    def __init__(self, **answers):
        self.answers = answers

    def exec_inspect(self, exec_id):
        answer = self.answers[exec_id]
        if isinstance(answer, Exception):
            raise answer
        return answer


def an_exec(running, pid, entrypoint, *arguments):
    return {"Running": running, "Pid": pid, "ProcessConfig": {"entrypoint": entrypoint, "arguments": list(arguments)}}


def test_the_health_probe_is_the_command_the_engine_runs_for_it():
    assert health_probe_command({}) is None
    assert health_probe_command({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert health_probe_command({"Healthcheck": {"Test": ["CMD", "curl", "-f", "http://localhost/"]}}) == [
        "curl", "-f", "http://localhost/"]
    assert health_probe_command({"Healthcheck": {"Test": ["CMD-SHELL", "sleep 3"]}}) == ["/bin/sh", "-c", "sleep 3"]
    assert health_probe_command({"Healthcheck": {"Test": ["CMD-SHELL", "true"]}, "Shell": ["/bin/bash", "-ec"]}) == [
        "/bin/bash", "-ec", "true"]


def test_running_exec_processes_but_the_health_probes_are_named():
    inspect = {"Name": "/svc", "Config": {"Healthcheck": {"Test": ["CMD-SHELL", "sleep 3"]}},
               "ExecIDs": ["probe", "shell", "ended", "gone", "same-words-as-probe-by-hand"]}
    api = ExecsOfOneContainer(probe=an_exec(True, 40, "/bin/sh", "-c", "sleep 3"),
                              shell=an_exec(True, 41, "sh", "-c", "while true; do date; sleep 1; done"),
                              ended=an_exec(False, 0, "sh"),
                              gone=NotFound("no such exec"),
                              **{"same-words-as-probe-by-hand": an_exec(True, 42, "sh", "-c", "sleep 3")})
    assert exec_processes(api, inspect) == ["41 (sh -c while true; do date; sleep 1; done)", "42 (sh -c sleep 3)"]
    assert exec_processes(api, dict(inspect, ExecIDs=None)) == []
    inspect["Config"] = {}
    assert exec_processes(api, dict(inspect, ExecIDs=["probe"])) == ["40 (/bin/sh -c sleep 3)"]


def test_an_engine_that_cannot_answer_about_an_exec_is_an_error():
    api = ExecsOfOneContainer(broken=APIError("500 Server Error"))
    with pytest.raises(DockerError, match="cannot inspect exec broken of container /svc"):
        exec_processes(api, {"Name": "/svc", "ExecIDs": ["broken"]})
