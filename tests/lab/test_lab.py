"""The edge lab itself: real network namespaces, dockerd, CRIU, sshd and registry.
These tests fail (they do not skip) when the lab is down: run them with `make test`."""

import os
import re
import time

import pytest
from labtools import lab_status, run

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "lab", "lab")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
IMAGE = "10.77.0.1:5000/simple:latest"


def lab(*args, check=True, timeout=300):
    return run([LAB, *args], check=check, timeout=timeout)


def on(host, *cmd, check=True, timeout=120):
    return lab("exec", host["name"], "--", *cmd, check=check, timeout=timeout)


def ssh_opts(src, status):
    return ["-i", src["ssh_key"], "-o", "UserKnownHostsFile=" + status["known_hosts"],
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "Compression=no"]


@pytest.fixture(scope="module")
def status():
    st = lab_status(require_up=True)
    assert len(st["hosts"]) >= 2, "the lab needs at least 2 hosts"
    return st


@pytest.fixture(scope="module")
def hosts(status):
    return status["hosts"]


def test_status_lists_hosts(status):
    for h in status["hosts"]:
        for key in ("name", "address", "netns", "docker_host", "docker_socket", "checkpoint_dir"):
            assert h[key], key
        assert h["dockerd"] and h["sshd"]
        assert os.path.isdir(h["checkpoint_dir"])
        assert os.stat(h["checkpoint_dir"]).st_mode & 0o777 == 0o700
    assert status["registry"]["up"]
    for name in ("openface-standin", "yolo-standin", "simple"):
        assert "latest" in status["registry"]["images"][name]


def test_ansible_ping_every_host(hosts):
    proc = run([os.path.join(VENV_BIN, "ansible"), "edges", "-i", "inventory/lab", "-m", "ping"],
               cwd=ROOT, timeout=120)
    for h in hosts:
        assert re.search(r"^%s \| SUCCESS =>" % h["name"], proc.stdout, re.M), proc.stdout
    assert proc.stdout.count("pong") == len(hosts), proc.stdout


def test_criu_check_on_every_host(hosts):
    for h in hosts:
        proc = on(h, "criu", "check")
        assert "Looks good" in proc.stdout + proc.stderr, (h["name"], proc.stdout, proc.stderr)


def test_each_host_is_its_own_network_namespace(hosts):
    for h in hosts:
        out = on(h, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
        assert h["address"] + "/24" in out
        assert on(h, "docker", "info", "--format", "{{.ExperimentalBuild}}").stdout.strip() == "true"


def test_hosts_reach_each_other_over_ssh_with_pinned_keys(status, hosts):
    for src in hosts:
        for dst in hosts:
            if src is dst:
                continue
            # an edge's key runs only the destination's forced command, and is accepted only from
            # that edge's own address (from=): a fixed verb that succeeds shows the connection
            # came from the source host's address, straight to the destination
            proc = on(src, "ssh", *ssh_opts(src, status), "root@" + dst["address"],
                      "edge-migrate-remove %s/labtest-nothing-%d" % (dst["checkpoint_dir"], os.getpid()))
            assert proc.returncode == 0, proc.stderr
            proc = on(src, "ssh", *ssh_opts(src, status), "root@" + dst["address"], "echo $SSH_CONNECTION", check=False)
            assert proc.returncode != 0 and "edge-migrate-ssh: refused" in proc.stderr, proc.stdout + proc.stderr
    # the pinning is real: without the lab's known_hosts the same connection is refused
    src, dst = hosts[0], hosts[1]
    opts = ssh_opts(src, status)
    opts[opts.index("UserKnownHostsFile=" + status["known_hosts"])] = "UserKnownHostsFile=/dev/null"
    proc = on(src, "ssh", *opts, "-o", "GlobalKnownHostsFile=/dev/null", "root@" + dst["address"], "true",
              check=False)
    assert proc.returncode != 0
    assert "Host key verification failed" in proc.stderr


def test_busybox_counter_checkpointed_on_one_host_goes_on_on_another(status, hosts):
    src, dst = hosts[0], hosts[1]
    name = "labtest-counter-%d" % os.getpid()
    ckpt = "c1"
    src_dir = os.path.join(src["checkpoint_dir"], name)
    dst_dir = os.path.join(dst["checkpoint_dir"], name)
    try:
        on(src, "docker", "pull", IMAGE)
        on(src, "docker", "run", "-d", "--name", name, IMAGE)
        time.sleep(2)
        assert on(src, "docker", "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        os.makedirs(src_dir, mode=0o700)
        on(src, "docker", "checkpoint", "create", "--checkpoint-dir", src_dir, name, ckpt)
        assert on(src, "docker", "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "false"
        last = int(on(src, "docker", "logs", name).stdout.split()[-1])
        assert last > 5

        # real SSH, host to host: rsync runs in the source's namespace and pushes to the destination
        rsh = " ".join(["ssh"] + ssh_opts(src, status))
        on(dst, "mkdir", "-p", "-m", "700", dst_dir)
        on(src, "rsync", "-a", "-e", rsh, src_dir + "/", "root@%s:%s/" % (dst["address"], dst_dir))
        assert os.path.isdir(os.path.join(dst_dir, ckpt))

        # the destination pulls the image from the registry
        on(dst, "docker", "rmi", "-f", IMAGE, check=False)
        pull = on(dst, "docker", "pull", IMAGE)
        assert "Downloaded newer image" in pull.stdout, pull.stdout
        cid = on(dst, "docker", "create", "--name", name, IMAGE).stdout.strip()
        assert len(cid) == 64
        target = os.path.join(dst["data_root"], "containers", cid, "checkpoints", ckpt)
        on(dst, "mkdir", "-p", os.path.dirname(target))
        on(dst, "cp", "-a", os.path.join(dst_dir, ckpt), target)
        on(dst, "docker", "start", "--checkpoint", ckpt, name)
        time.sleep(1)
        assert on(dst, "docker", "inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
        first = int(on(dst, "docker", "logs", name).stdout.split()[0])
        assert first == last + 1, "restored counter starts at %d, checkpointed at %d" % (first, last)
        now = int(on(dst, "docker", "exec", name, "cat", "/tmp/count").stdout)
        assert now > last
    finally:
        for h in (src, dst):
            on(h, "docker", "rm", "-f", name, check=False)
        for d in (src_dir, dst_dir):
            run(["rm", "-rf", d], check=False)


def timed_rsync(src, dst, status, path):
    rsh = " ".join(["ssh"] + ssh_opts(src, status))
    dst_path = os.path.join(dst["checkpoint_dir"], os.path.basename(path))
    run(["rm", "-f", dst_path])
    t0 = time.monotonic()
    on(src, "rsync", "-a", "--whole-file", "-e", rsh, path, "root@%s:%s" % (dst["address"], dst_path))
    dt = time.monotonic() - t0
    assert os.path.getsize(dst_path) == os.path.getsize(path)
    run(["rm", "-f", dst_path])
    return dt


def test_link_shaping_100mbit(status, hosts):
    src, dst = hosts[0], hosts[1]
    path = os.path.join(src["checkpoint_dir"], "labtest-50MB-%d" % os.getpid())
    with open(path, "wb") as f:  # 50 MB of random data: nothing to compress
        for _ in range(50):
            f.write(os.urandom(1000 * 1000))
    try:
        lab("link", src["name"], "--rate", "100mbit")
        st = lab_status(require_up=True)
        link = next(h for h in st["hosts"] if h["name"] == src["name"])["link"]
        assert "100Mbit" in link["egress"] and "100Mbit" in link["ingress"], link
        shaped = timed_rsync(src, dst, status, path)
        print("50 MB over 100mbit: %.2f s" % shaped)
        assert 4.2 * 0.75 <= shaped <= 4.2 * 1.25, "50 MB at 100mbit took %.2f s" % shaped
        lab("link", src["name"], "--clear")
        clear = timed_rsync(src, dst, status, path)
        print("50 MB unshaped: %.2f s" % clear)
        assert clear < shaped * 0.6, (clear, shaped)
    finally:
        lab("link", src["name"], "--clear", check=False)
        os.unlink(path)
    st = lab_status(require_up=True)
    link = next(h for h in st["hosts"] if h["name"] == src["name"])["link"]
    assert link == {"egress": "", "ingress": ""}


def daemon_pids():
    st = lab_status(require_up=True)
    return {h["name"]: (h["dockerd_pid"], h["sshd_pid"]) for h in st["hosts"]}, st["registry"]["pid"]


def test_up_twice_changes_nothing(status):
    before = daemon_pids()
    for _ in range(2):
        proc = lab("up")
        assert "nothing to change" in proc.stdout, proc.stdout
        assert "+ " not in proc.stdout, proc.stdout
    assert daemon_pids() == before
