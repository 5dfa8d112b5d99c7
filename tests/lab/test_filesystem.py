"""A service's disk state and its reachability, in the lab: the files a container wrote in
its own layer and its named volume arrive byte-identical, with the changes made after the
warm-up (sent in the freeze), while its memory state goes on; bind mounts and volumes that
would stay behind are refused before anything is frozen; clients that follow the
post_migrate hook reach the service on its new host."""

import hashlib
import json
import os
import shlex
import stat
import subprocess
import time

import docker
import pytest
from labtools import (
    ROOT,
    engine,
    latest_report,
    memory_images_left,
    playbook,
    read_file,
    request,
    running_on,
)

pytestmark = pytest.mark.lab

IMAGE_PY = "10.77.0.1:5000/openface-standin:latest"
IMAGE_SIMPLE = "10.77.0.1:5000/simple:latest"
PROXY = os.path.join(ROOT, "lab", "service-proxy")

# Writes 20 MiB into its own layer (with a hard link, a symlink, an owner and mode, a deleted
# file of the image (a whiteout) and a directory of the image made again (opaque)), files
# into its volume, keeps a log open, and counts requests in memory.
NOTES = r"""
import os, shutil, socketserver
root = "/srv/notes"
if not os.path.exists(root + "/ready"):
    os.makedirs(root + "/deep/er")
    for i in range(5):
        with open("%s/blob-%d.bin" % (root, i), "wb") as f:
            f.write(os.urandom(4 << 20))
    os.link(root + "/blob-0.bin", root + "/deep/blob-0.hardlink")
    os.symlink("../blob-1.bin", root + "/deep/blob-1.link")
    with open(root + "/deep/er/owned.txt", "w") as f:
        f.write("owned\n")
    os.chown(root + "/deep/er/owned.txt", 1234, 4321)
    os.chmod(root + "/deep/er/owned.txt", 0o640)
    os.remove("/etc/debian_version")
    shutil.rmtree("/etc/apt/apt.conf.d")
    os.mkdir("/etc/apt/apt.conf.d")
    with open("/etc/apt/apt.conf.d/only-this", "w") as f:
        f.write("new\n")
    os.makedirs("/data/sub")
    with open("/data/sub/random.bin", "wb") as f:
        f.write(os.urandom(2 << 20))
    for name in ("keep.txt", "gone.txt"):
        with open("/data/" + name, "w") as f:
            f.write(name + "\n")
    open(root + "/ready", "w").close()
log = open(root + "/open.log", "a")
log.write("started\n")
log.flush()
count = 0
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global count
        for line in self.rfile:
            count += 1
            self.wfile.write(b"%d\n" % count)
socketserver.ThreadingTCPServer.allow_reuse_address = True
print("ready", flush=True)
socketserver.ThreadingTCPServer(("0.0.0.0", 9999), Handler).serve_forever()
"""

COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done"

# Changes made after the warm-up copy, just before the freeze: only the freeze can carry them.
LATE = ("echo late >> /srv/notes/open.log; head -c 3000000 /dev/urandom > /srv/notes/late.bin; "
        "rm /srv/notes/blob-4.bin; echo late > /data/late.txt; rm /data/gone.txt")


def migrate(service, destination, *extra, check=True):
    return playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=%s" % destination, *extra,
                    check=check)


def ask(address, port):
    """One request, as a client would send it; the services here answer a number."""
    return request({"address": address}, port, "GET")


def tree(path):
    """Everything rsync must keep, per relative path: type, mode, owner, size, link target,
    device number, extended attributes, content hash, and which paths are hard links of each other."""
    entries, inodes = {}, {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files + ([""] if root == path else []):  # "": the top directory itself
            full = os.path.join(root, name) if name else root
            rel = os.path.relpath(full, path)
            st = os.lstat(full)
            entry = {"type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                     "gid": st.st_gid,
                     "xattrs": {key: os.getxattr(full, key, follow_symlinks=False)
                                for key in sorted(os.listxattr(full, follow_symlinks=False))}}
            if stat.S_ISREG(st.st_mode):
                entry["size"] = st.st_size
                with open(full, "rb") as handle:
                    entry["sha256"] = hashlib.sha256(handle.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                entry["target"] = os.readlink(full)
            elif stat.S_ISCHR(st.st_mode):
                entry["rdev"] = st.st_rdev
            entries[rel] = entry
    links = sorted(sorted(group) for group in inodes.values())
    return entries, links


def storage(api, name):
    inspect = api.inspect_container(name)
    volumes = {m["Destination"]: m["Source"] for m in inspect["Mounts"] if m["Type"] == "volume"}
    return inspect["GraphDriver"]["Data"]["UpperDir"], volumes


def remove_all(lab, name, volumes=()):
    for host in lab.values():
        api = engine(host)
        try:
            api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        for volume in volumes:
            try:
                api.remove_volume(volume)
            except docker.errors.NotFound:
                pass


def start(lab, host, name, image, command=None, volumes=None, ports=None):
    api = engine(lab[host])
    api.pull(image)
    container = api.create_container(
        image, name=name, command=command, ports=list(ports or {}),
        host_config=api.create_host_config(binds=volumes or {}, port_bindings=ports or {}))
    api.start(container)
    return api


def test_layer_and_volume_arrive_identical_and_memory_goes_on(lab):
    name, volume = "fs-notes", "fs-notes-data"
    remove_all(lab, name, [volume])
    source = engine(lab["edge1"])
    source.create_volume(volume, labels={"owner": "fs-test"})
    start(lab, "edge1", name, IMAGE_PY, ["python3", "-c", NOTES], {volume: {"bind": "/data", "mode": "rw"}},
          {9999: 18951})
    try:
        deadline = time.time() + 120
        while b"ready" not in source.logs(name) and time.time() < deadline:
            time.sleep(0.5)
        for _ in range(3):
            counted = ask(lab["edge1"]["address"], 18951)
        upper, _ = storage(source, name)
        assert os.getxattr(upper + "/etc/apt/apt.conf.d", "trusted.overlay.opaque") == b"y"
        assert stat.S_ISCHR(os.lstat(upper + "/etc/debian_version").st_mode), "no whiteout to copy"
        hook = "docker -H %s exec %s sh -c %s" % (lab["edge1"]["docker_host"], name, shlex.quote(LATE))

        proc = migrate(name, "edge2", "-e", "migrate_volumes=true", "-e", "keep_source=true",
                       "-e", json.dumps({"migration_hooks": {"before_freeze": hook}}))
        assert running_on(lab, name) == ["edge2"]
        assert "copying its layer" in proc.stdout and "volume %s" % volume in proc.stdout

        # The memory state went on: the counter continues.
        assert ask(lab["edge2"]["address"], 18951) == counted + 1
        destination = engine(lab["edge2"])
        assert destination.inspect_volume(volume)["Labels"] == {"owner": "fs-test"}
        src_upper, src_volumes = storage(source, name)
        dst_upper, dst_volumes = storage(destination, name)
        assert src_upper != dst_upper
        src_layer, dst_layer = tree(src_upper), tree(dst_upper)
        assert dst_layer == src_layer, "layers differ"
        assert tree(src_volumes["/data"]) == tree(dst_volumes["/data"]), "volumes differ"
        files = src_layer[0]
        layer_bytes = sum(e.get("size", 0) for e in files.values())
        assert layer_bytes > 20e6 and "srv/notes/late.bin" in files and "srv/notes/blob-4.bin" not in files
        assert [["srv/notes/blob-0.bin", "srv/notes/deep/blob-0.hardlink"]] == src_layer[1]
        assert files["srv/notes/deep/er/owned.txt"]["uid"] == 1234
        assert os.path.exists(dst_volumes["/data"] + "/late.txt")
        assert not os.path.exists(dst_volumes["/data"] + "/gone.txt")

        # What the service sees on its new host.
        def run_in(command):
            exec_id = destination.exec_create(name, command)
            out = destination.exec_start(exec_id)
            return destination.exec_inspect(exec_id)["ExitCode"], out.decode()
        assert run_in(["cat", "/etc/debian_version"])[0] != 0, "a deleted file came back"
        assert run_in(["ls", "/etc/apt/apt.conf.d"]) == (0, "only-this\n")
        assert run_in(["tail", "-n", "1", "/srv/notes/open.log"]) == (0, "late\n")

        report = latest_report(name)
        assert report["outcome"] == "migrated" and report["state_preserved"] is True
        assert report["disk"]["directories"] == 2
        assert report["disk"]["bytes_warmup"] > 20e6
        assert 3e6 < report["disk"]["bytes_freeze"] < 10e6, report["disk"]
        assert "final_fs_sync" in report["phases"] and "pre_fs_sync" in report["phases"]
        ids = (source.inspect_container(name)["Id"], destination.inspect_container(name)["Id"])
        assert [p for p in memory_images_left(lab) if "/%s-" % name in p or any(i in p for i in ids)] == []
    finally:
        remove_all(lab, name, [volume])


@pytest.mark.parametrize("case", ["bind mount", "volume without migrate_volumes"])
def test_mounts_that_would_stay_behind_are_refused_before_anything_is_frozen(lab, case, tmp_path):
    name = "fs-refused"
    remove_all(lab, name, ["fs-refused-data"])
    binds = {str(tmp_path): {"bind": "/b", "mode": "rw"}} if case == "bind mount" else \
        {"fs-refused-data": {"bind": "/data", "mode": "rw"}}
    api = start(lab, "edge1", name, IMAGE_SIMPLE, volumes=binds)
    try:
        before = api.inspect_container(name)["State"]
        proc = migrate(name, "edge2", check=False)
        assert proc.returncode != 0
        if case == "bind mount":
            assert "has bind mounts (%s -> /b)" % tmp_path in proc.stdout
            assert "shared_bind_mounts" in proc.stdout and "named volume" in proc.stdout
        else:
            assert "keeps data in volumes (volume fs-refused-data at /data" in proc.stdout
            assert "-e migrate_volumes=true" in proc.stdout
        assert "Nothing was frozen" in proc.stdout
        after = api.inspect_container(name)["State"]
        assert after["Running"] and after["Pid"] == before["Pid"] and after["StartedAt"] == before["StartedAt"]
        assert running_on(lab, name) == ["edge1"]
        with pytest.raises(docker.errors.NotFound):
            engine(lab["edge2"]).inspect_container(name)
        assert not os.path.exists(os.path.join(ROOT, ".locks", name + ".lock"))
    finally:
        remove_all(lab, name, ["fs-refused-data"])


def test_clients_follow_the_post_migrate_hook_to_the_new_host(lab, tmp_path):
    """A client that only knows the proxy's address (the lab's stand-in for a load balancer or
    an access point's redirect) reaches the service before and after the move; the service's
    catalog entry points the proxy (its post_migrate hook), deploy.yml and migrate.yml run it."""
    name, port, proxy_port = "fs-reach", 18961, 18962
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("on shared storage\n")
    state = str(tmp_path / "proxy")
    catalog = {"service_catalog": {name: {
        "image": IMAGE_SIMPLE, "ports": {"9999/tcp": port}, "default_host": "edge1",
        "volumes": {str(shared): "/shared"}, "shared_bind_mounts": [str(shared)],
        "post_migrate": "lab/service-proxy point %s --state-dir %s \"$EDGE_MIGRATE_NEW_ADDRESS:%d\""
                        % (name, state, port)}}}
    remove_all(lab, name)
    subprocess.run([PROXY, "start", name, "--listen", "10.77.0.1:%d" % proxy_port, "--state-dir", state], check=True)
    try:
        playbook("playbooks/deploy.yml", "-e", "service=%s" % name, "-e", json.dumps(catalog))
        assert running_on(lab, name) == ["edge1"]
        before = ask("10.77.0.1", proxy_port)
        assert before > 0

        migrate(name, "edge2", "-e", json.dumps(catalog))
        assert running_on(lab, name) == ["edge2"]
        with open(os.path.join(state, name + ".backend")) as handle:
            assert handle.read().strip() == "%s:%d" % (lab["edge2"]["address"], port)
        # The same client address, nobody reconfigured it: served from edge2, the counter went on.
        assert ask("10.77.0.1", proxy_port) > before
        # The published port is published again on the new host.
        moved = engine(lab["edge2"]).inspect_container(name)
        assert moved["HostConfig"]["PortBindings"]["9999/tcp"][0]["HostPort"] == str(port)
        assert ask(lab["edge2"]["address"], port) > before
        exec_id = engine(lab["edge2"]).exec_create(name, ["cat", "/shared/hello.txt"])
        assert engine(lab["edge2"]).exec_start(exec_id) == b"on shared storage\n"
    finally:
        subprocess.run([PROXY, "stop", name, "--state-dir", state])
        remove_all(lab, name)


def test_a_failed_freeze_time_copy_rolls_back_to_the_source_untouched(lab, tmp_path):
    """The destination refuses the final copy of the layer (its files made immutable just
    before the freeze): the service comes back on the source from its final checkpoint, its
    counter going on, its own layer as it was."""
    name = "fs-rollback"
    remove_all(lab, name)
    api = start(lab, "edge1", name, IMAGE_SIMPLE, ["sh", "-c", "echo kept > /kept; " + COUNTER])
    hook = tmp_path / "refuse.sh"
    hook.write_text("upper=$(docker -H %s inspect -f '{{.GraphDriver.Data.UpperDir}}' %s)\nchattr -R +i \"$upper\"\n"
                    % (lab["edge2"]["docker_host"], name))
    try:
        time.sleep(1)
        upper = api.inspect_container(name)["GraphDriver"]["Data"]["UpperDir"]
        before = read_file(api, name, "/tmp/count")
        proc = migrate(name, "edge2", "-e", json.dumps({"migration_hooks": {"before_freeze": "sh %s" % hook}}),
                       check=False)
        assert proc.returncode != 0 and "rolled back" in proc.stdout
        assert running_on(lab, name) == ["edge1"]
        assert read_file(api, name, "/tmp/count") > before, "the counter did not go on"
        assert sorted(os.listdir(upper)) == ["kept", "tmp"]
        with open(os.path.join(upper, "kept")) as handle:
            assert handle.read() == "kept\n"
        report = latest_report(name)
        assert report["outcome"] == "rolled_back" and "rsync" in report["cause"]
    finally:
        for line in subprocess.run(["docker", "-H", lab["edge2"]["docker_host"], "ps", "-aq", "--no-trunc", "-f",
                                    "name=^%s$" % name], capture_output=True, text=True).stdout.split():
            upper = engine(lab["edge2"]).inspect_container(line)["GraphDriver"]["Data"]["UpperDir"]
            subprocess.run(["chattr", "-R", "-i", upper])
        remove_all(lab, name)


def test_cold_strategy_loses_the_memory_but_moves_the_files(lab):
    name, volume = "fs-cold", "fs-cold-data"
    remove_all(lab, name, [volume])
    first_start = ("[ -e /token ] || head -c 64 /dev/urandom | md5sum > /token; "
                   "[ -e /data/token ] || head -c 64 /dev/urandom | md5sum > /data/token; ")
    api = start(lab, "edge1", name, IMAGE_SIMPLE, ["sh", "-c", first_start + COUNTER],
                {volume: {"bind": "/data", "mode": "rw"}})

    def cat(api, path):
        return api.exec_start(api.exec_create(name, ["cat", path])).decode()
    try:
        time.sleep(1)
        tokens = cat(api, "/token"), cat(api, "/data/token")
        migrate(name, "edge2", "-e", "strategy=cold", "-e", "migrate_volumes=true")
        assert running_on(lab, name) == ["edge2"]
        destination = engine(lab["edge2"])
        assert (cat(destination, "/token"), cat(destination, "/data/token")) == tokens
        with pytest.raises(docker.errors.NotFound):  # the copied volume left the source with its container
            api.inspect_volume(volume)
        report = latest_report(name)
        assert report["state_preserved"] is False and report["disk"]["directories"] == 2
    finally:
        remove_all(lab, name, [volume])
