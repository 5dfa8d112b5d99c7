"""Containers started by hand the way people start them (`docker run` with its everyday
options), moved by migrate.yml on real daemons, CRIU and SSH: their state goes on and their
settings are the same on the destination. The README's option table points at these tests."""

import json
import os
import signal
import subprocess
import time

import docker
import pytest
from labtools import (
    engine,
    hook,
    latest_report,
    memory_images_left,
    playbook,
    read_file,
    remove_everywhere,
    running_on,
    scratch_path,
)

pytestmark = pytest.mark.lab

SIMPLE = "10.77.0.1:5000/simple:latest"
PYTHON = "10.77.0.1:5000/openface-standin:latest"
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"
COUNTER_ON_TERMINAL = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; echo count $i; sleep 0.1; done"


def migrate(name, destination="edge2", *extra, check=True):
    return playbook("migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % destination, *extra,
                    check=check)


def start_counter(lab, name, user=None, image=SIMPLE, entrypoint=("sh", "-c"), script=COUNTER, healthcheck=None,
                  **host_config):
    """A busybox counter started by hand on edge1 as `docker run [options] sh -c COUNTER`
    would (no earlier container of that name anywhere), or another image's counter script;
    the source engine."""
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(image)
    source.start(source.create_container(image, name=name, user=user, entrypoint=list(entrypoint), command=[script],
                                         healthcheck=healthcheck, host_config=source.create_host_config(**host_config)))
    return source


def test_everyday_run_options_are_kept_and_the_counter_goes_on(lab):
    """`docker run -dit --init --restart unless-stopped --hostname ... -w ... -u 0 --memory ...`: every
    row of the README's option table marked 'kept' is checked here on the destination."""
    name = "everyday"
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(SIMPLE)
    host_config = source.create_host_config(
        init=True, restart_policy={"Name": "unless-stopped"}, mem_limit="64m", nano_cpus=500_000_000,
        pids_limit=64, ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        cap_drop=["NET_RAW"], cap_add=["SYS_PTRACE"], shm_size="32m", tmpfs={"/scratch": "size=8m"},
        port_bindings={"7000/tcp": 17000, "7001/tcp": 17001}, sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
        log_config={"Type": "json-file", "Config": {"max-size": "1m"}})
    container = source.create_container(
        SIMPLE, name=name, entrypoint=["sh", "-c"], command=[COUNTER_ON_TERMINAL], hostname="everyday-host",
        working_dir="/tmp", user="0", environment={"MODE": "edge", "FROM_ENV_FILE": "yes"},
        labels={"team": "mobility"}, stop_signal="SIGINT", ports=[7000, 7001], tty=True, stdin_open=True,
        healthcheck={"Test": ["CMD-SHELL", "test -s /tmp/n"], "Interval": 1_000_000_000, "Retries": 3},
        host_config=host_config)
    source.start(container)
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        moved = engine(lab["edge2"]).inspect_container(name)
        config, host = moved["Config"], moved["HostConfig"]
        assert host["Init"] is True
        assert host["RestartPolicy"]["Name"] == "unless-stopped"
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 2**20, 500_000_000, 64)
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert host["CapDrop"] == ["NET_RAW"] and host["CapAdd"] == ["SYS_PTRACE"]
        assert host["ShmSize"] == 32 * 2**20 and host["Tmpfs"] == {"/scratch": "size=8m"}
        assert host["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "0"}
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
        assert {port: binding[0]["HostPort"] for port, binding in host["PortBindings"].items()} == {
            "7000/tcp": "17000", "7001/tcp": "17001"}
        assert config["Hostname"] == "everyday-host" and config["WorkingDir"] == "/tmp" and config["User"] == "0"
        assert "MODE=edge" in config["Env"] and "FROM_ENV_FILE=yes" in config["Env"]
        assert config["Labels"]["team"] == "mobility" and config["StopSignal"] == "SIGINT"
        assert config["Entrypoint"] == ["sh", "-c"] and config["Healthcheck"]["Test"][0] == "CMD-SHELL"
        assert config["Tty"] is True and config["OpenStdin"] is True
        after = read_file(engine(lab["edge2"]), name, "/tmp/n")
        assert after > before, "the counter restarted (%s before, %s after)" % (before, after)
        time.sleep(1)
        printed = engine(lab["edge2"]).logs(name, tail=1).decode().split()
        assert printed[0] == "count" and int(printed[1]) > int(after), printed
        report = latest_report(name)
        assert "mntns-compat-mode" in report["criu"]["restore_options"] and report["trial_restore"] == "restored"
        assert memory_images_left(lab) == []
    finally:
        remove_everywhere(lab, name)


LOCKER = r"""
import fcntl, os, time
flocked = open("/var/lock-flock", "w"); fcntl.flock(flocked, fcntl.LOCK_EX)
posix = open("/var/lock-fcntl", "w"); fcntl.lockf(posix, fcntl.LOCK_EX)
i = 0
while True:
    i += 1
    with open("/tmp/n", "w") as out:
        out.write(str(i))
    time.sleep(0.1)
"""

# Run inside the container after the move: both locks must still be held by the service,
# so taking them without waiting fails.
PROBE = ("import fcntl, sys\n"
         "for path, take in (('/var/lock-flock', fcntl.flock), ('/var/lock-fcntl', fcntl.lockf)):\n"
         "    try:\n"
         "        take(open(path, 'w'), fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "        sys.exit(path + ' is not locked')\n"
         "    except OSError:\n"
         "        pass\n"
         "print('held')\n")


def test_flock_and_fcntl_locks_move_with_the_service(lab):
    name = "locker"
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(PYTHON)
    container = source.create_container(PYTHON, name=name, entrypoint=["python3", "-c"], command=[LOCKER])
    source.start(container)
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        probe = destination.exec_create(name, ["python3", "-c", PROBE])
        output = destination.exec_start(probe).decode()
        assert destination.exec_inspect(probe)["ExitCode"] == 0 and "held" in output, output
        assert read_file(destination, name, "/tmp/n") > before
        assert "file-locks" in latest_report(name)["criu"]["restore_options"]
        assert memory_images_left(lab) == []
    finally:
        remove_everywhere(lab, name)



def test_init_container_rolled_back_on_its_own_runtime_keeps_its_state(lab):
    """The destination's restore fails after the freeze. The source container runs on plain
    runc, whose restore cannot have CRIU's mntns-compat-mode: the rollback restores into a
    copy of it on the edge-migrate runtime, under its name, and the counter goes on."""
    name = "initback"
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(SIMPLE)
    container = source.create_container(SIMPLE, name=name, entrypoint=["sh", "-c"], command=[COUNTER],
                                        host_config=source.create_host_config(
                                            init=True, restart_policy={"Name": "on-failure", "MaximumRetryCount": 2}))
    source.start(container)
    original = source.inspect_container(name)
    assert original["HostConfig"]["Runtime"] == "runc"
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        # The destination's copy of the warm-up checkpoint is damaged: its checksum stops the restore.
        corrupt = hook("import glob\nfor p in glob.glob(%r):\n    with open(p, 'r+b') as f:\n"
                       "        f.write(b'\\xff' * 16)\n"
                       % os.path.join(lab["edge2"]["checkpoint_dir"], name + "-*", "base", "pages-*.img"))
        proc = migrate(name, "edge2", "-e", json.dumps({"migration_hooks": {"before_freeze": corrupt}}), check=False)
        assert proc.returncode != 0
        report = latest_report(name)
        assert report["outcome"] == "rolled_back", report["cause"]
        assert running_on(lab, name) == ["edge1"]
        back = source.inspect_container(name)
        assert back["Id"] != original["Id"] and back["HostConfig"]["Runtime"] == "edge-migrate"
        assert back["HostConfig"]["Init"] is True and back["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
        assert source.containers(all=True, filters={"name": name + "-edge-migrate"}) == []
        time.sleep(0.5)
        assert read_file(source, name, "/tmp/n") > before
        assert memory_images_left(lab) == []
    finally:
        remove_everywhere(lab, name)


def has_cap_sys_resource():
    with open("/proc/self/status") as handle:
        capabilities = next(line for line in handle if line.startswith("CapEff:"))
    return bool(int(capabilities.split()[1], 16) >> 24 & 1)


def test_a_process_of_another_uid_is_refused_in_preflight_without_cap_sys_resource(lab):
    if has_cap_sys_resource():
        pytest.skip("root here has CAP_SYS_RESOURCE: CRIU can dump processes of other uids")
    name = "otheruid"
    source = start_counter(lab, name, user="1000")
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert "uid 1000" in proc.stdout and "CAP_SYS_RESOURCE" in proc.stdout
        assert "Preflight |" in proc.stdout and running_on(lab, name) == ["edge1"]
        assert source.inspect_container(name)["RestartCount"] == 0
    finally:
        remove_everywhere(lab, name)


def test_read_only_root_with_tmpfs_and_private_ipc_are_kept(lab):
    name = "readonly"
    source = start_counter(lab, name, script="echo kept > /dev/shm/kept; " + COUNTER, read_only=True,
                           tmpfs={"/tmp": "size=4m"}, ipc_mode="private")
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        moved = engine(lab["edge2"]).inspect_container(name)["HostConfig"]
        assert moved["ReadonlyRootfs"] is True and moved["IpcMode"] == "private"
        assert moved["Tmpfs"] == {"/tmp": "size=4m"}
        # The counter lives in the tmpfs: CRIU carried its content.
        assert read_file(engine(lab["edge2"]), name, "/tmp/n") > before
        # A private /dev/shm is the container's own tmpfs: CRIU carried the file written at the start.
        assert exec_output(engine(lab["edge2"]), name, ["cat", "/dev/shm/kept"]) == "kept"
    finally:
        remove_everywhere(lab, name)


def test_tens_of_megabytes_in_dev_shm_move_intact(lab):
    """`docker run --shm-size 128m` with 24 MB of random data written to /dev/shm at the start
    and a counter kept there too. CRIU keeps a tmpfs as a tar; one this large is archived
    uncompressed and its delta taken on the archive's own bytes: the files must come out the
    same on the destination, the one that changed after the warm-up included."""
    name = "bigshm"
    source = start_counter(lab, name, shm_size="128m", script=(
        "head -c 24000000 /dev/urandom > /dev/shm/blob; sha256sum /dev/shm/blob > /tmp/blob.sum; "
        "i=0; while true; do i=$((i+1)); echo $i > /dev/shm/n; sleep 0.1; done"))
    try:
        time.sleep(2)
        blob = exec_output(source, name, ["cat", "/tmp/blob.sum"])
        assert blob.endswith("/dev/shm/blob"), blob
        before = read_file(source, name, "/dev/shm/n")
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        moved = engine(lab["edge2"])
        assert exec_output(moved, name, ["sha256sum", "/dev/shm/blob"]) == blob
        assert read_file(moved, name, "/dev/shm/n") > before
    finally:
        remove_everywhere(lab, name)


def test_a_large_file_held_open_after_its_deletion_moves_with_the_service(lab):
    """A temporary file unlinked while in use (Python's TemporaryFile, nginx's request bodies):
    CRIU dumps its content as a ghost file, and refused one over 1 MiB ("Can't dump ghost
    file ... increase limit"), so such a service could not move."""
    name = "ghostfile"
    hold = "yes ghost-data | head -c 5242880 > /tmp/upload; exec 3</tmp/upload; rm /tmp/upload; "
    source = start_counter(lab, name, script=hold + COUNTER)
    try:
        time.sleep(1)
        held = exec_output(source, name, ["sha256sum", "/proc/1/fd/3"]).split()[0]
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        moved = engine(lab["edge2"])
        assert exec_output(moved, name, ["readlink", "/proc/1/fd/3"]) == "/tmp/upload (deleted)"
        assert exec_output(moved, name, ["sha256sum", "/proc/1/fd/3"]).split()[0] == held
        assert latest_report(name)["criu"]["dump"]["ghost_limit"] >= 5242880
    finally:
        remove_everywhere(lab, name)


def test_a_shareable_dev_shm_is_refused_before_the_freeze_and_keeps_its_files(lab):
    """`docker run --ipc shareable` (or an engine whose default-ipc-mode is shareable): the engine
    mounts the container's /dev/shm from the host, CRIU leaves that mount out, and a move lost the
    files in it while the report said the state was kept."""
    name = "shareableshm"
    source = start_counter(lab, name, script="echo kept > /dev/shm/kept; " + COUNTER, ipc_mode="shareable")
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert "--ipc shareable (the engine mounts its /dev/shm from the host" in proc.stdout, proc.stdout[-2000:]
        assert "--ipc private" in proc.stdout and "Nothing was frozen" in proc.stdout, proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["RestartCount"] == 0
        assert exec_output(source, name, ["cat", "/dev/shm/kept"]) == "kept"
    finally:
        remove_everywhere(lab, name)


def remove_volume_everywhere(lab, volume):
    for host in lab.values():
        try:
            engine(host).remove_volume(volume)
        except docker.errors.NotFound:
            pass


def test_a_tmpfs_volume_is_refused_before_the_freeze_and_keeps_its_files(lab):
    """`docker volume create --opt type=tmpfs --opt device=tmpfs`: the engine mounts it from the
    host's memory, CRIU leaves that mount out, and the destination's engine mounted an empty one
    over what the warm-up had copied: a move lost its files while the report said the state was
    kept."""
    name, volume = "tmpfsvolume", "tmpfsvolume-data"
    source = engine(lab["edge1"])
    remove_everywhere(lab, name)
    remove_volume_everywhere(lab, volume)
    source.create_volume(volume, driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs", "o": "size=8m"})
    start_counter(lab, name, script="echo kept > /data/kept; " + COUNTER, binds=["%s:/data" % volume])
    try:
        # The destination allows volume options: what is refused is the content staying behind.
        proc = migrate(name, "edge2", "-e", "migrate_volumes=true", "-e", "migration_allow_volume_options=true",
                       check=False)
        assert proc.returncode != 0
        assert "keeps volume %s at /data in a tmpfs, its content in the memory of edge1" % volume in proc.stdout, \
            proc.stdout[-2000:]
        assert "Nothing was frozen" in proc.stdout, proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["RestartCount"] == 0
        assert exec_output(source, name, ["cat", "/data/kept"]) == "kept"
    finally:
        remove_everywhere(lab, name)
        remove_volume_everywhere(lab, volume)


COMPOSE_FILE = """version: "2.4"
services:
  web:
    image: %s
    entrypoint: ["sh", "-c"]
    command: ["%s"]
    restart: unless-stopped
    labels:
      team: mobility
""" % (SIMPLE, COUNTER.replace("$", "$$"))  # compose interpolates $VAR


def test_a_docker_compose_service_keeps_its_labels_and_its_project_network(lab, tmp_path):
    project = "edgeproj"
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    compose = ["docker-compose", "-p", project, "-f", str(tmp_path / "docker-compose.yml")]
    env = dict(os.environ, DOCKER_HOST=lab["edge1"]["docker_host"])
    source = engine(lab["edge1"])
    for old in ("edgeproj_web_1", "edgeproj-web-1"):
        remove_everywhere(lab, old)
    subprocess.run(compose + ["up", "-d"], env=env, check=True, capture_output=True, timeout=120)
    # Compose 1 (Debian 12) names it edgeproj_web_1, Compose 2 (Debian 13) edgeproj-web-1.
    name = source.containers(filters={"label": ["com.docker.compose.project=" + project,
                                                "com.docker.compose.service=web"]})[0]["Names"][0].lstrip("/")
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        moved = destination.inspect_container(name)
        labels = moved["Config"]["Labels"]
        assert labels["com.docker.compose.project"] == project and labels["com.docker.compose.service"] == "web"
        assert labels["team"] == "mobility"
        assert list(moved["NetworkSettings"]["Networks"]) == [project + "_default"]
        network = destination.inspect_network(project + "_default")
        assert network["Labels"]["com.docker.compose.project"] == project
        assert "web" in moved["NetworkSettings"]["Networks"][project + "_default"]["Aliases"]
        assert read_file(destination, name, "/tmp/n") > before
    finally:
        remove_everywhere(lab, name)
        for host in lab.values():
            subprocess.run(["docker", "network", "rm", project + "_default"], capture_output=True,
                           env=dict(os.environ, DOCKER_HOST=host["docker_host"]))


# A Python counter in /tmp/n, after a setup of its own (a thing CRIU cannot dump).
COUNTING = """
i = 0
while True:
    i += 1
    with open("/tmp/n", "w") as out:
        out.write(str(i))
    time.sleep(0.1)
"""
WATCHER = r"""
import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
kept = open("/tmp/watched", "w")  # the inode outlives its name: the watch stays
assert libc.inotify_add_watch(fd, b"/tmp/watched", 0x2) >= 0  # IN_MODIFY
os.unlink("/tmp/watched")
""" + COUNTING
URING = r"""
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
ring = libc.syscall(425, 8, params)  # io_uring_setup(8 entries), as MariaDB's InnoDB does
assert ring >= 0, ctypes.get_errno()
""" + COUNTING


def start_python(lab, name, script):
    """`script` run by python3 as container `name` on edge1, started 1.5 s ago; the source engine."""
    source = start_counter(lab, name, image=PYTHON, entrypoint=("python3", "-c"), script=script)
    time.sleep(1.5)
    return source


def assert_still_counting_on_the_source(lab, source, name):
    assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["RestartCount"] == 0
    before = read_file(source, name, "/tmp/n")
    time.sleep(0.5)
    assert read_file(source, name, "/tmp/n") > before


def test_an_inotify_watch_on_a_deleted_file_is_refused_before_the_freeze(lab):
    # CRIU cannot dump a watch whose file has no name any more ("fsnotify: Can't dump that
    # handle"): the warm-up checkpoint fails, nothing is frozen, CRIU's reason is reported.
    name = "watcher"
    source = start_python(lab, name, WATCHER)
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        report = latest_report(name)
        assert report["outcome"] == "failed" and report["downtime_s"] is None
        assert "Warm-up |" in report["cause"] and "CRIU: " in report["cause"] and "fsnotify" in report["cause"]
        assert_still_counting_on_the_source(lab, source, name)
    finally:
        remove_everywhere(lab, name)


def test_a_process_holding_an_io_uring_is_refused_in_preflight(lab):
    # CRIU cannot dump an io_uring instance: refused before anything is made on the
    # destination or frozen, with the holder named and what to do about it.
    name = "uring"
    source = start_python(lab, name, URING)
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert "uses io_uring (" in proc.stdout and "(python3)" in proc.stdout, proc.stdout[-3000:]
        assert "--innodb-use-native-aio=0" in proc.stdout and "Warm-up |" not in proc.stdout
        assert "Preflight |" in proc.stdout
        assert_still_counting_on_the_source(lab, source, name)
    finally:
        remove_everywhere(lab, name)


def end_exec(api, exec_id):
    os.kill(api.exec_inspect(exec_id)["Pid"], signal.SIGKILL)
    deadline = time.time() + 10
    while api.exec_inspect(exec_id)["Running"] and time.time() < deadline:
        time.sleep(0.1)


def test_a_docker_exec_process_is_refused_before_the_freeze_and_a_health_probe_is_not(lab):
    # A process started with `docker exec` is a child of the engine's shim, outside the tree
    # CRIU dumps: the move would end it while the report said the state was kept. Refused
    # before anything is frozen, the process named: in pre-flight, and by the final freeze
    # when it started after pre-flight. Once it has ended the service moves, though its slow
    # health probe (an exec too, started again by the destination's engine) runs most of the time.
    name = "execd"
    probe = {"Test": ["CMD-SHELL", "sleep 2"], "Interval": 500_000_000, "Retries": 3}
    source = start_counter(lab, name, healthcheck=probe)
    writer = ["sh", "-c", "while true; do date > /tmp/e; sleep 0.2; done"]
    try:
        run = source.exec_create(name, writer)
        source.exec_start(run, detach=True)
        pid = source.exec_inspect(run["Id"])["Pid"]
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        named = "runs processes started with docker exec (%d (sh -c while true;" % pid
        assert named in proc.stdout, proc.stdout[-3000:]
        assert "Preflight |" in proc.stdout and "Warm-up |" not in proc.stdout
        assert_still_counting_on_the_source(lab, source, name)
        end_exec(source, run["Id"])

        started = scratch_path("exec-started-at-freeze")
        late_exec = hook("import docker\napi = docker.APIClient(base_url=%r)\n"
                         "run = api.exec_create(%r, %r)\napi.exec_start(run, detach=True)\n"
                         "open(%r, 'w').write(run['Id'])\n" % (lab["edge1"]["docker_host"], name, writer, started))
        proc = migrate(name, "edge2", "-e", json.dumps({"migration_hooks": {"before_freeze": late_exec}}), check=False)
        assert proc.returncode != 0
        with open(started) as handle:
            late = handle.read()
        report = latest_report(name)
        assert report["outcome"] == "failed", report  # nothing was frozen
        assert "which its checkpoint would leave out and its move end: nothing was frozen" in report["cause"]
        assert_still_counting_on_the_source(lab, source, name)
        assert source.exec_inspect(late)["Running"]  # never frozen, never ended
        end_exec(source, late)

        before = read_file(source, name, "/tmp/n")
        migrate(name, "edge2")
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        assert read_file(destination, name, "/tmp/n") > before
        assert destination.inspect_container(name)["Config"]["Healthcheck"]["Test"] == probe["Test"]
    finally:
        remove_everywhere(lab, name)


@pytest.mark.parametrize("network", ["host", "none"])
def test_host_and_no_network_are_kept(lab, network):
    name = "net" + network
    source = start_counter(lab, name, network_mode=network)
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        extra = ("-e", json.dumps({"migration_allow_host_namespaces": ["network"]})) if network == "host" else ()
        migrate(name, "edge2", *extra)
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        assert destination.inspect_container(name)["HostConfig"]["NetworkMode"] == network
        assert read_file(destination, name, "/tmp/n") > before
    finally:
        remove_everywhere(lab, name)


@pytest.mark.parametrize("case,host_config,message", [
    ("--pid host", {"pid_mode": "host"}, "migration_allow_host_namespaces"),
    ("--device", {"devices": ["/dev/null:/dev/edge-null:rwm"]}, "migration_allow_devices"),
])
def test_settings_that_would_reach_into_the_destination_are_refused_before_the_freeze(lab, case, host_config,
                                                                                      message):
    name = "refused"
    source = start_counter(lab, name, **host_config)
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0, case
        assert message in proc.stdout and "Nothing was frozen" in proc.stdout, proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["RestartCount"] == 0
    finally:
        remove_everywhere(lab, name)


def test_cpuset_and_group_add_are_kept(lab):
    name = "cpuset"
    source = start_counter(lab, name, cpuset_cpus="0", group_add=["1234"])
    try:
        time.sleep(1.5)
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        moved = engine(lab["edge2"]).inspect_container(name)["HostConfig"]
        assert moved["CpusetCpus"] == "0" and moved["GroupAdd"] == ["1234"]
        assert read_file(engine(lab["edge2"]), name, "/tmp/n") > before
    finally:
        remove_everywhere(lab, name)


def exec_output(api, container, cmd):
    run = api.exec_create(container, cmd)
    return api.exec_start(run["Id"]).decode().strip()


def test_more_run_options_are_kept_and_the_service_still_resolves_its_own_hostname(lab):
    """`docker run -P --oom-score-adj 200 --dns-opt ndots:2 --memory-swappiness 10` without --hostname:
    the restored processes keep the hostname the source's engine chose (CRIU restores it), so the
    destination's /etc/hosts must name it or getaddrinfo(gethostname()) fails after the move."""
    name = "moreopts"
    remove_everywhere(lab, name)
    source = engine(lab["edge1"])
    source.pull(PYTHON)
    host_config = source.create_host_config(publish_all_ports=True, oom_score_adj=200, dns_opt=["ndots:2"],
                                            mem_swappiness=10)
    container = source.create_container(PYTHON, name=name, entrypoint=["sh", "-c"], command=[COUNTER],
                                        ports=[7000], host_config=host_config)
    source.start(container)
    resolve = ["python3", "-c", "import socket; print(socket.gethostbyname(socket.gethostname()))"]
    try:
        time.sleep(1.5)
        hostname = source.inspect_container(name)["Config"]["Hostname"]
        assert exec_output(source, name, resolve).count(".") == 3
        before = read_file(source, name, "/tmp/n")
        migrate(name)
        destination = engine(lab["edge2"])
        moved = destination.inspect_container(name)
        host = moved["HostConfig"]
        assert (host["PublishAllPorts"], host["OomScoreAdj"], host["DnsOptions"]) == (True, 200, ["ndots:2"])
        assert host["MemorySwappiness"] == 10
        assert moved["NetworkSettings"]["Ports"]["7000/tcp"][0]["HostPort"]
        assert moved["Config"]["Hostname"] == hostname
        assert exec_output(destination, name, ["hostname"]) == hostname
        address = exec_output(destination, name, resolve)
        assert address == moved["NetworkSettings"]["IPAddress"], address
        assert read_file(destination, name, "/tmp/n") > before
    finally:
        remove_everywhere(lab, name)


@pytest.mark.parametrize("case", ["--volumes-from", "--link"])
def test_settings_that_name_another_container_are_refused_before_the_freeze(lab, case):
    name, holder = "namesother", "namesother-holder"
    remove_everywhere(lab, holder)
    source = engine(lab["edge1"])
    source.pull(SIMPLE)
    source.start(source.create_container(SIMPLE, name=holder, command=["sleep", "3600"], volumes=["/shared"],
                                         host_config=source.create_host_config(binds=None)))
    options = {"volumes_from": [holder]} if case == "--volumes-from" else {"links": {holder: "db"}}
    try:
        start_counter(lab, name, **options)
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert case in proc.stdout and "another container" in proc.stdout and "Nothing was frozen" in proc.stdout, \
            proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["RestartCount"] == 0
    finally:
        remove_everywhere(lab, name)
        remove_everywhere(lab, holder)


def test_a_container_started_with_rm_is_refused_before_the_freeze(lab):
    """`docker run --rm`: the engine deletes the container and its writable layer the moment the
    final checkpoint stops it, so the last changes of its files and the way back would be gone."""
    name = "autoremoved"
    start_counter(lab, name, auto_remove=True)
    try:
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert "--rm (the engine would delete the container" in proc.stdout and "Nothing was frozen" in proc.stdout, \
            proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"]
        assert engine(lab["edge1"]).inspect_container(name)["State"]["Paused"] is False
    finally:
        remove_everywhere(lab, name)


def test_a_paused_container_is_refused_and_stays_paused(lab):
    name = "pausedsvc"
    source = start_counter(lab, name)
    try:
        source.pause(name)
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        assert "is paused (docker pause) on edge1" in proc.stdout and "Nothing was frozen" in proc.stdout, \
            proc.stdout[-2000:]
        assert running_on(lab, name) == ["edge1"] and source.inspect_container(name)["State"]["Paused"] is True
    finally:
        remove_everywhere(lab, name)
