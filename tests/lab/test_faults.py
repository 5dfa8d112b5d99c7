"""Fault injection in the lab: every case runs a real migration of the openface stand-in
(real dockerd, CRIU, SSH), injects a fault, and checks that exactly one copy of the service
runs afterwards with its counter and state checksum intact, that no memory image is left on
any host, and that the playbook's message names the cause. Bad inputs must be rejected
before anything is frozen. The suite writes its table to reports/fault-suite.md."""

import glob
import json
import os
import shutil
import signal
import subprocess
import time

import docker
import pytest
from labtools import (
    REPORTS,
    ROOT,
    VENV_BIN,
    engine,
    hook,
    latest_report,
    memory_images_left,
    playbook,
    remove_everywhere,
    request,
    running_on,
    scratch_path,
    spoil_in_layer,
    undo_spoil,
)

pytestmark = pytest.mark.lab

SERVICE = "openface"
TABLE = []
# -w: the xtables lock is one file for every network namespace of the machine, and the edges'
# dockerds take it while they create containers; without -w a cut that meets them fails.
IPTABLES = ["iptables", "-w", "10"]
CUT = ["-I", "OUTPUT", "-d", "10.77.0.12", "-p", "tcp", "--dport", "22", "-j", "DROP"]


def in_netns(host, *argv):
    return ["nsenter", "--net=/run/netns/%s" % host["netns"], *argv]


def migrate(*extra, hooks=None):
    args = ["migrate.yml", "-e", "service=%s" % SERVICE, "-e", "destination=edge2", "-e",
            "migration_transfer_timeout=5"]
    if hooks:
        args += ["-e", json.dumps({"migration_hooks": hooks})]
    return playbook(*args, *extra, check=False)


def failure_message(proc):
    """The last failure message the playbook printed (a `msg:` entry and its wrapped lines)."""
    lines = proc.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("msg:")]
    if not starts:
        return "(no failure message)"
    message = [lines[starts[-1]].strip()[4:].strip()]
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("        "):
            break
        message.append(line.strip())
    return " ".join(message).strip("'\"")


def record(case, proc, outcome):
    TABLE.append((case, "failed" if proc.returncode else "succeeded", outcome, failure_message(proc)[:220]))


@pytest.fixture(scope="module", autouse=True)
def fault_table():
    yield
    os.makedirs(REPORTS, exist_ok=True)
    with open(os.path.join(REPORTS, "fault-suite.md"), "w") as handle:
        handle.write("| case | playbook | service afterwards | message |\n|---|---|---|---|\n")
        for case, result, outcome, message in TABLE:
            handle.write("| %s | %s | %s | %s |\n" % (case, result, outcome, message.replace("|", "/")))


@pytest.fixture
def openface(lab):
    """The stand-in freshly on edge1, asked twice; yields its counter and state checksum."""
    remove_everywhere(lab, SERVICE)
    playbook("playbooks/deploy.yml", "-e", "service=%s" % SERVICE, "-e", "host=edge1")
    request(lab["edge1"], 9999, "GET")
    answer = request(lab["edge1"], 9999, "SUM")
    yield answer
    subprocess.run(in_netns(lab["edge1"], *IPTABLES, "-D", *CUT[1:]), capture_output=True)
    remove_everywhere(lab, SERVICE)
    # A failed case may leave a kept final checkpoint (outcome stopped): it goes with the service.
    for host in lab.values():
        for kept in glob.glob(os.path.join(host["checkpoint_dir"], "%s-*" % SERVICE)):
            shutil.rmtree(kept, ignore_errors=True)


def assert_intact(lab, host, before):
    assert running_on(lab, SERVICE) == [host], "the service must run on %s only" % host
    answer = request(lab[host], 9999, "SUM")
    assert answer["sha256"] == before["sha256"], "state checksum changed"
    assert answer["count"] == before["count"], "request counter did not go on from where it was"
    assert memory_images_left(lab) == []


@pytest.fixture
def slow_link(lab):
    """edge1's link at 100 Mbit/s: the warm-up copy (about 200 MB) takes some 16 s instead of
    the second or two of the unshaped link, so that a cut after its first 20 MB comes mid-copy."""
    lab_cmd = os.path.join(ROOT, "lab", "lab")
    subprocess.run([lab_cmd, "link", "edge1", "--rate", "100mbit"], check=True, capture_output=True)
    yield
    subprocess.run([lab_cmd, "link", "edge1", "--clear"], check=True, capture_output=True)


def test_link_cut_during_warmup_transfer(lab, openface, slow_link):
    workdir = lab["edge2"]["checkpoint_dir"]
    cut = " ".join(in_netns(lab["edge1"], *IPTABLES, *CUT))
    # A watcher, detached from the hook (whose output Ansible waits for), cuts the link once
    # 20 MB of the warm-up checkpoint have arrived, counting rsync's hidden temporary files (one
    # renamed between the listing and its size counts 0: the watcher must not die of it).
    watcher = hook(
        "import os, subprocess, time\n"
        "def size(path):\n"
        "    try:\n"
        "        return os.path.getsize(path)\n"
        "    except OSError:  # a temporary file rsync has just renamed\n"
        "        return 0\n"
        "def arrived():\n"
        "    return sum(size(os.path.join(root, f)) for root, _d, files in os.walk(%r)\n"
        "               if os.sep + 'base' in root for f in files)\n"
        "deadline = time.time() + 60\n"
        "while time.time() < deadline:\n"
        "    if arrived() >= 20e6:\n"
        "        subprocess.run(%r, shell=True)\n"
        "        break\n"
        "    time.sleep(0.01)\n" % (workdir, cut))
    launch = hook("import subprocess\nsubprocess.Popen(%r.split(), start_new_session=True, stdin=subprocess.DEVNULL, "
                  "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n" % watcher)
    proc = migrate(hooks={"after_warmup_checkpoint": launch})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "failed", report  # nothing was frozen
    # The copy's progress task reports its end, failure included, unless the layer's copy,
    # which runs beside it over the same link, met the cut first.
    transfers = ("Warm-up | the checkpoint on its way", "Disk | copy the service's layer")
    assert report["cause"].startswith(transfers), report
    assert "rsync from" in report["cause"], report
    subprocess.run(in_netns(lab["edge1"], *IPTABLES, "-D", *CUT[1:]), check=True)
    assert_intact(lab, "edge1", openface)
    record("link cut during warm-up transfer", proc, "on the source, untouched")


def pushes_from(directory):
    """The pids of the rsync processes whose command line names `directory` (the machine's
    processes: the lab's edges share its pid namespace)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"rsync") and any(directory.encode() in arg for arg in argv):
            found.append(int(pid))
    return found


def test_a_step_failing_beside_the_warmup_copy_ends_that_copy(lab, openface, slow_link):
    """The warm-up copy (some 16 s at 100 Mbit/s) runs beside the next steps: one of them fails
    (the after_warmup_checkpoint hook, at once) and the rollback ends the copy before the cleanup,
    so that no push of the migration's memory images goes on once the playbook has ended."""
    source_dir = lab["edge1"]["checkpoint_dir"]
    fail = hook("import sys\nsys.exit('the after_warmup_checkpoint hook fails on purpose')\n")
    proc = migrate(hooks={"after_warmup_checkpoint": fail})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "failed" and report["cause"].startswith("Hook | after the warm-up checkpoint"), report
    assert "end the warm-up checkpoint's copy" in proc.stdout
    assert pushes_from(source_dir) == [], "the warm-up copy went on after the migration ended"
    assert_intact(lab, "edge1", openface)
    time.sleep(2)  # what a push left running would have written meanwhile
    assert memory_images_left(lab) == []
    record("a step fails while the warm-up copy is on its way", proc, "on the source, untouched; the copy ended")


def test_link_cut_during_freeze_transfer(lab, openface):
    proc = migrate(hooks={"before_freeze": " ".join(in_netns(lab["edge1"], *IPTABLES, *CUT))})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "rolled_back" and "rsync from" in report["cause"]
    assert "rolled back" in proc.stdout
    assert_intact(lab, "edge1", openface)
    record("link cut during freeze transfer", proc, "rolled back to the source with its state")


def test_destination_dockerd_stopped_before_restore(lab, openface):
    pidfile = "/run/edgelab/edge2/docker.pid"
    stop = hook("import os, time\npid = int(open(%r).read())\nos.kill(pid, 15)\n"
                "while os.path.exists('/proc/%%d' %% pid): time.sleep(0.1)\n" % pidfile)
    try:
        proc = migrate(hooks={"before_freeze": stop})
        assert proc.returncode != 0
        report = latest_report(SERVICE)
        assert report["outcome"] == "rolled_back" and "cannot reach the Docker Engine" in report["cause"]
    finally:
        subprocess.run([os.path.join(ROOT, "lab", "lab"), "up"], check=True, capture_output=True)
    try:  # the container created in the warm-up, which the dead daemon could not remove
        engine(lab["edge2"]).remove_container(SERVICE, force=True)
    except docker.errors.NotFound:
        pass
    assert_intact(lab, "edge1", openface)
    record("destination dockerd stopped before restore", proc, "rolled back to the source with its state")


def test_corrupted_delta_is_caught_by_checksum(lab, openface):
    corrupt = hook("import glob\nfor p in glob.glob(%r):\n    with open(p, 'r+b') as f:\n"
                   "        f.seek(4096 * 100)\n        f.write(b'\\xff' * 4096)\n"
                   % os.path.join(lab["edge2"]["checkpoint_dir"], "*", "base", "pages-*.img"))
    proc = migrate(hooks={"before_freeze": corrupt})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    # Caught by xdelta3's own window checksum or by the sha256 of the rebuilt file.
    assert report["outcome"] == "rolled_back" and "pages-" in report["cause"]
    assert "checksum mismatch" in report["cause"] or "could not rebuild" in report["cause"]
    assert_intact(lab, "edge1", openface)
    record("corrupted images on the destination (bytes flipped in the warm-up copy)", proc,
           "rolled back to the source with its state")


def test_criu_restore_failure_on_destination(lab, openface):
    # A file the process maps (its python binary) changes size in the destination
    # container's filesystem: CRIU's restore refuses it (a real CRIU failure).
    spoil = spoil_in_layer(lab["edge2"]["docker_host"], SERVICE, PYTHON_BINARY, scratch_path("spoiled-restore"))
    proc = migrate(hooks={"before_freeze": spoil})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "rolled_back" and "from checkpoint" in report["cause"]
    assert_intact(lab, "edge1", openface)
    record("CRIU restore failure on the destination", proc, "rolled back to the source with its state")


PYTHON_BINARY = "/usr/bin/python3.[0-9]*"
# A process that has its child trace it (PTRACE_TRACEME): CRIU cannot seize a traced task.
# The exec'd starter exits at once: the pair, reparented to the service's first process, is
# part of the tree the final dump takes (a process left running by `docker exec` is refused
# before the freeze).
TRACED_PAIR = """
import ctypes, os, time
if os.fork() == 0:
    if os.fork() == 0:
        ctypes.CDLL(None).ptrace(0, 0, None, None)
    while True:
        time.sleep(1)
"""


def test_final_dump_failure_thaws_the_service_on_the_source(lab, openface):
    # Started in the service's container after the warm-up: the final dump fails in CRIU after
    # the service's cgroup was frozen for it. The service must go on on the source, not frozen.
    exec_traced = ["/usr/bin/docker", "-H", lab["edge1"]["docker_host"], "exec", "-d", SERVICE, "python3", "-c",
                   TRACED_PAIR]
    traced = hook("import subprocess, time\nsubprocess.run(%r, check=True)\ntime.sleep(1)\n" % (exec_traced,))
    proc = migrate(hooks={"before_freeze": traced})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "rolled_back" and "runc checkpoint" in report["cause"], report["cause"]
    assert_intact(lab, "edge1", openface)
    record("final dump fails in CRIU (a traced process in the service)", proc,
           "on the source, thawed, with its state")



def test_trial_restore_failure_is_refused_before_the_freeze(lab, openface):
    # The destination's container (made in the warm-up) cannot be restored into: the trial
    # restore finds it while the service runs, and nothing is frozen.
    spoil = spoil_in_layer(lab["edge2"]["docker_host"], SERVICE, PYTHON_BINARY, scratch_path("spoiled-trial"))
    proc = migrate(hooks={"before_trial_restore": spoil})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "failed" and report["downtime_s"] is None, report
    assert "trial restore" in report["cause"] and "CRIU: " in report["cause"] and "Error (" in report["cause"]
    source = engine(lab["edge1"]).inspect_container(SERVICE)
    assert source["State"]["Running"] and source["RestartCount"] == 0
    assert_intact(lab, "edge1", openface)
    record("trial restore fails on the destination (a mapped file differs there)", proc,
           "on the source, never frozen (refused in the warm-up with CRIU's reason)")


def test_restore_failing_everywhere_keeps_the_final_checkpoint_and_a_rerun_restores_it(lab, openface):
    # CRIU fails on both hosts: the destination's layer is spoiled before the freeze, the
    # source's right after it. The state then exists only in the final checkpoint.
    spoiled = scratch_path("spoiled-source")
    proc = migrate(hooks={
        "before_freeze": spoil_in_layer(lab["edge2"]["docker_host"], SERVICE, PYTHON_BINARY, spoiled + "-d"),
        "after_freeze": spoil_in_layer(lab["edge1"]["docker_host"], SERVICE, PYTHON_BINARY, spoiled)})
    assert proc.returncode != 0
    report = latest_report(SERVICE)
    assert report["outcome"] == "stopped", report
    assert "STOPPED and runs nowhere" in proc.stdout and "migrate.yml -e service=%s" % SERVICE in proc.stdout
    assert running_on(lab, SERVICE) == []
    kept = glob.glob(os.path.join(lab["edge1"]["checkpoint_dir"], "%s-*" % SERVICE, "final", "pages-*.img"))
    assert kept, "the final checkpoint was deleted while the service runs nowhere"
    record("CRIU restore fails on both hosts", proc, "stopped, final checkpoint kept on the source")
    # The cause goes; a re-run brings the service back with its state, then moves it.
    undo_spoil(spoiled)
    rerun = migrate()
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "Recover |" in rerun.stdout
    assert_intact(lab, "edge2", openface)
    record("re-run after the cause of a stopped migration is removed", rerun,
           "restored from the kept checkpoint, then migrated with its state")


def test_step_failing_while_the_destination_restores(lab, openface):
    # The final push is there, so the destination restores without the controller while a
    # step on the controller fails: the rollback must not start a second copy on the source.
    fail = hook("import sys\nsys.exit('the after_freeze hook fails on purpose')\n")
    proc = migrate(hooks={"after_freeze": fail})
    assert proc.returncode == 0, proc.stdout[-3000:]
    report = latest_report(SERVICE)
    assert report["outcome"] == "migrated" and report["downtime_s"] > 0, report
    assert "after the freeze" in report["cause"] and "after the final checkpoint reached edge2" in report["cause"]
    assert_intact(lab, "edge2", openface)
    assert engine(lab["edge1"]).containers(all=True, filters={"name": "^/%s$" % SERVICE}) == []
    record("a controller step fails while the destination restores", proc,
           "stays on the destination with its state (the restore had claimed the migration)")


def test_destination_disk_full(lab, openface):
    workdir = lab["edge2"]["checkpoint_dir"]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100m,mode=0700", "tmpfs", workdir], check=True)
    try:
        proc = migrate()
    finally:
        subprocess.run(["umount", workdir], check=True)
    assert proc.returncode != 0
    assert "not enough free disk on edge2" in proc.stdout
    assert_intact(lab, "edge1", openface)
    record("destination disk full (100 MB tmpfs checkpoint dir)", proc, "on the source, untouched (pre-flight)")


def test_controller_killed_during_freeze_then_rerun(lab, openface):
    engine(lab["edge1"]).update_container(SERVICE, restart_policy={"Name": "unless-stopped"})
    final = os.path.join(lab["edge1"]["checkpoint_dir"], "%s-*" % SERVICE, "final", "pages-*.img")
    proc = subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % SERVICE,
                             "-e", "destination=edge2"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while not glob.glob(final) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert glob.glob(final), "the freeze never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The source's freeze goes on without its controller until CRIU's dump ends the container
    # (then the push and the destination's restore); the re-run comes after that, as a person's
    # would: a container still dumping reads as running.
    deadline = time.time() + 60
    while engine(lab["edge1"]).inspect_container(SERVICE)["State"]["Running"] and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    rerun = migrate()
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert "Recover |" in rerun.stdout
    assert_intact(lab, "edge2", openface)
    # The freeze had set it to `no`; the recovery found the original on the edge.
    assert engine(lab["edge2"]).inspect_container(SERVICE)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    record("controller killed during freeze, then re-run", rerun, "recovered, then migrated with its state")


def test_two_migrations_of_the_same_service_at_once(lab, openface):
    command = [os.path.join(VENV_BIN, "ansible-playbook"), "migrate.yml", "-e", "service=%s" % SERVICE,
               "-e", "destination=edge2"]
    first = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(0.2)
    second = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes[0] == 0 and codes[1] != 0, outputs
    loser = outputs[[first.returncode, second.returncode].index(codes[1])]
    assert "is already being migrated" in loser
    assert_intact(lab, "edge2", openface)
    TABLE.append(("two migrations of the same service at once", "one succeeded, one failed fast",
                  "migrated once with its state", "openface is already being migrated (migration ...)"))


@pytest.mark.parametrize("case,args,message", [
    ("unknown service", ["-e", "service=nosuch"], "unknown service 'nosuch'"),
    ("service not running", ["-e", "service=yolo"], "is in the catalog but no edge runs it"),
    ("destination unknown to the inventory", ["-e", "destination=edge9"], "'edge9' is not in the inventory's edges"),
    ("destination = source", ["-e", "destination=edge1"], "is the source"),
    ("strategy misspelt", ["-e", "strategy=detla"], "unknown strategy 'detla'"),
    # Checked by Ansible against roles/migration/meta/argument_specs.yml, not by our asserts.
    ("role input of the wrong type", ["-e", "keep_source=perhaps"],
     "argument 'keep_source' is of type str and we were unable to convert to bool"),
])
def test_bad_input_is_rejected_before_anything_is_frozen(lab, openface, case, args, message):
    remove_everywhere(lab, "yolo")
    proc = playbook("migrate.yml", "-e", "service=%s" % SERVICE, *args, check=False)
    failed_with_message = proc.returncode != 0 and message in proc.stdout + proc.stderr
    assert failed_with_message, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Warm-up |" not in proc.stdout and "Freeze |" not in proc.stdout
    assert_intact(lab, "edge1", openface)
    record(case, proc, "on the source, untouched")


def test_docker_without_experimental_is_rejected(lab, openface):
    """edge2's dockerd is restarted without --experimental for this case, then restored."""
    pid = int(open("/run/edgelab/edge2/docker.pid").read())
    argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[:-1]
    os.kill(pid, signal.SIGTERM)
    while os.path.exists("/proc/%d" % pid):
        time.sleep(0.1)
    plain = subprocess.Popen(in_netns(lab["edge2"], *[a.decode() for a in argv if a != b"--experimental"]),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                engine(lab["edge2"]).ping()
                break
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.2)
        proc = playbook("migrate.yml", "-e", "service=%s" % SERVICE, check=False)
    finally:
        plain.terminate()
        plain.wait(timeout=60)
        subprocess.run([os.path.join(ROOT, "lab", "lab"), "up"], check=True, capture_output=True)
    assert proc.returncode != 0 and "Docker on edge2 runs without experimental features" in proc.stdout
    assert "Freeze |" not in proc.stdout
    assert_intact(lab, "edge1", openface)
    record("Docker without experimental (edge2)", proc, "on the source, untouched")


def test_criu_missing_is_rejected(lab, openface):
    """Every criu binary is moved away for this case (the lab's hosts share one filesystem)."""
    found = []
    for directory in os.environ["PATH"].split(":") + ["/usr/local/sbin", "/usr/sbin", "/sbin"]:
        path = os.path.join(os.path.realpath(directory), "criu")  # /sbin is /usr/sbin on merged-/usr
        if os.path.lexists(path) and path not in found:
            found.append(path)
    moved = []
    try:
        for path in found:
            os.rename(path, path + ".away")
            moved.append(path)
        proc = playbook("migrate.yml", "-e", "service=%s" % SERVICE, check=False)
    finally:
        for path in moved:
            os.rename(path + ".away", path)
    assert proc.returncode != 0 and "CRIU does not work on edge1 (criu is not installed)" in proc.stdout
    assert "Warm-up |" not in proc.stdout and "Freeze |" not in proc.stdout
    assert_intact(lab, "edge1", openface)
    record("CRIU missing", proc, "on the source, untouched")
