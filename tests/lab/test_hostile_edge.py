"""edge1 acts as a compromised edge, with its own migration key, from its own network
namespace, against edge2's real sshd: the key runs the migration's transfers and nothing else
(no shell, no reading, no writing outside edge2's workdir and engine roots), and a delta
carrying a traversal name and a symlink is refused by edge2 before its restore, the service
rolling back to edge1 with its state."""

import glob
import json
import os
import shlex
import shutil
import subprocess
import time

import pytest
from labtools import (
    ROOT,
    engine,
    hook,
    lab_status,
    latest_report,
    memory_images_left,
    playbook,
    read_file,
    remove_everywhere,
    running_on,
)

pytestmark = pytest.mark.lab

TAG = "edge-hostile-%d" % os.getpid()


def ssh_argv(src, dest, *extra):
    """ssh as src's migration key, inside src's network namespace, to dest's migration address."""
    return ["nsenter", "--net=/run/netns/%s" % src["netns"], "ssh", "-i", src["ssh_key"], "-o", "IdentitiesOnly=yes",
            "-o", "UserKnownHostsFile=%s" % src["known_hosts"], "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *extra, "root@%s" % dest["address"]]


def rsh(src):
    return " ".join(shlex.quote(a) for a in ssh_argv(src, {"address": "x"})[2:-1])


def rsync_argv(src, dest, local, remote, *extra):
    return ["nsenter", "--net=/run/netns/%s" % src["netns"], "rsync", "-a", "--timeout=20", "-e", rsh(src), *extra,
            local.rstrip("/") + "/", "root@%s:%s/" % (dest["address"], remote.rstrip("/"))]


def run(argv):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture
def payload(tmp_path):
    (tmp_path / "payload").mkdir()
    (tmp_path / "payload" / "x").write_text("* * * * * root touch /tmp/%s-pwned\n" % TAG)
    return str(tmp_path / "payload")


@pytest.mark.parametrize("command", ["id", "cat /etc/shadow", "sh -c id", "true; id", "edge-migrate-remove /etc",
                                     "rsync --server --sender -logDtpre.iLsfxC . /etc/shadow",
                                     "edge-migrate-cpuinfo-check /"])
def test_the_edge_key_runs_no_command_of_its_choice(lab, command):
    proc = run(ssh_argv(lab["edge1"], lab["edge2"]) + [command])
    assert proc.returncode != 0, proc.stdout
    assert "uid=" not in proc.stdout and "root:" not in proc.stdout and proc.stdout == ""
    assert "edge-migrate-ssh: refused" in proc.stderr, proc.stderr
    assert os.path.isdir("/etc")


def test_the_edge_key_gets_no_shell_and_no_forwarding(lab):
    proc = subprocess.run(ssh_argv(lab["edge1"], lab["edge2"], "-tt"), input="id\nexit\n", capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0 and "uid=" not in proc.stdout
    forward = run(ssh_argv(lab["edge1"], lab["edge2"], "-o", "ExitOnForwardFailure=yes", "-N",
                           "-R", "127.0.0.1:39223:127.0.0.1:22"))
    assert forward.returncode != 0


def test_the_edge_key_is_accepted_from_its_own_address_only(lab):
    if "edge3" not in lab:
        pytest.skip("needs a third edge")
    stolen = dict(lab["edge3"], ssh_key=lab["edge1"]["ssh_key"])  # edge1's key used from edge3
    proc = run(ssh_argv(stolen, lab["edge2"]) + ["edge-migrate-remove %s/%s" % (lab["edge2"]["checkpoint_dir"], TAG)])
    assert proc.returncode == 255 and "Permission denied" in proc.stderr, proc.stderr


def test_the_controller_key_is_unaffected(lab):
    status = lab_status(require_up=True)
    proc = run(["ssh", "-i", status["controller_key"], "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=%s" % status["known_hosts"], "-o", "StrictHostKeyChecking=yes",
                "root@%s" % lab["edge2"]["address"], "id -u"])
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


@pytest.mark.parametrize("target, extra", [
    ("/etc/%s" % TAG, []),
    ("/tmp/%s" % TAG, []),
    ("{work}/../%s" % TAG, []),
    ("{work}/%s" % TAG, ["--rsync-path=sh -c 'id > /tmp/%s-rsync-path' ; rsync" % TAG]),
    ("{work}/%s" % TAG, ["--remote-option=--log-file=/tmp/%s-log" % TAG]),
    ("{work}/%s" % TAG, ["--backup", "--backup-dir=/tmp/%s-backup" % TAG]),
    ("{work}/%s" % TAG, ["--temp-dir=/tmp"]),
])
def test_rsync_outside_the_allowed_roots_is_refused(lab, payload, target, extra):
    target = target.format(work=lab["edge2"]["checkpoint_dir"])
    proc = run(rsync_argv(lab["edge1"], lab["edge2"], payload, target, *extra))
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "refused" in proc.stderr, proc.stderr
    assert not glob.glob("/etc/%s*" % TAG) and not glob.glob("/tmp/%s*" % TAG)
    assert not os.path.exists(os.path.join(lab["edge2"]["checkpoint_dir"], TAG))


def test_a_symlink_received_earlier_does_not_lead_a_push_outside(lab, payload, tmp_path):
    work = lab["edge2"]["checkpoint_dir"]
    planted = tmp_path / "planted"
    planted.mkdir()
    os.symlink("/etc", planted / "link")
    try:
        proc = run(rsync_argv(lab["edge1"], lab["edge2"], str(planted), "%s/%s" % (work, TAG)))
        assert proc.returncode == 0, proc.stderr  # a symlink may arrive (container layers hold them)
        assert os.path.islink(os.path.join(work, TAG, "link"))
        proc = run(rsync_argv(lab["edge1"], lab["edge2"], payload, "%s/%s/link/cron.d" % (work, TAG)))
        assert proc.returncode != 0 and "symlink" in proc.stderr, proc.stderr
        assert not os.path.exists("/etc/cron.d/x")
    finally:
        shutil.rmtree(os.path.join(work, TAG), ignore_errors=True)


def test_rsync_into_the_workdir_and_the_fixed_verbs_work(lab, payload):
    work = lab["edge2"]["checkpoint_dir"]
    dest, marker = "%s/%s/delta" % (work, TAG), "%s/%s/sent" % (work, TAG)
    try:
        proc = run(rsync_argv(lab["edge1"], lab["edge2"], payload, dest,
                              "--rsync-path=edge-migrate-receive --mkdir %s --done %s" % (dest, marker)))
        assert proc.returncode == 0, proc.stderr
        assert open(os.path.join(dest, "x")).read().startswith("* * * * *")
        assert os.path.exists(marker) and os.stat(os.path.dirname(dest)).st_mode & 0o077 == 0
        proc = run(ssh_argv(lab["edge1"], lab["edge2"]) + ["edge-migrate-remove %s/%s" % (work, TAG)])
        assert proc.returncode == 0, proc.stderr
        assert not os.path.exists(os.path.join(work, TAG)) and os.path.isdir(work)
    finally:
        shutil.rmtree(os.path.join(work, TAG), ignore_errors=True)


SIMPLE = "10.77.0.1:5000/simple:latest"
COUNTER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.1; done"


def counter(api, name):
    return read_file(api, name, "/tmp/n")


@pytest.fixture
def service(lab):
    """A busybox counter started by hand on edge1 (as people start containers), counting."""
    name = "hostile-%d" % os.getpid()
    remove_everywhere(lab, name)
    api = engine(lab["edge1"])
    api.pull(SIMPLE)
    api.start(api.create_container(SIMPLE, name=name, entrypoint=["sh", "-c"], command=[COUNTER]))
    time.sleep(3)
    yield name
    remove_everywhere(lab, name)
    for host in lab.values():
        for kept in glob.glob(os.path.join(host["checkpoint_dir"], "%s-*" % name)):
            shutil.rmtree(kept, ignore_errors=True)


def hostile_delta(lab, name, kind, canary):
    """A before_freeze hook: edge1, as a hostile source, pushes its own delta into the migration's
    delta directory on edge2 (through edge2's forced command, as a real delta travels) and
    signals it complete, so edge2's waiting restore takes it up."""
    return hook(
        "import glob, hashlib, json, os, subprocess, tempfile\n"
        "work = sorted(glob.glob(%(work)r + '/%(name)s-*/base'), key=os.path.getmtime)[-1][:-len('/base')]\n"
        "src = tempfile.mkdtemp()\n"
        "data = b'* * * * * root touch %(canary)s\\n'\n"
        "entry = {'encoding': 'whole', 'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}\n"
        "if %(kind)r == 'symlink':\n"
        "    os.symlink(%(outside)r, os.path.join(src, 's'))\n"
        "    name = 's/../../../../../../../..' + %(canary)r\n"
        "else:\n"
        "    name = '../../../../../../../..' + %(canary)r\n"
        "open(os.path.join(src, 'core-1.img'), 'wb').write(data)\n"
        "json.dump({'files': {name: entry, 'core-1.img': entry}}, open(os.path.join(src, 'MANIFEST.json'), 'w'))\n"
        "rsync = %(rsync)r + ['--rsync-path=edge-migrate-receive --mkdir %%s/delta --done %%s/sent' %% (work, work),\n"
        "                     src + '/', 'root@%(address)s:%%s/delta/' %% work]\n"
        "subprocess.run(rsync, check=True)\n"
        % {"work": lab["edge2"]["checkpoint_dir"], "name": name, "canary": canary, "kind": kind,
           "outside": os.path.dirname(canary), "address": lab["edge2"]["address"],
           "rsync": ["nsenter", "--net=/run/netns/%s" % lab["edge1"]["netns"], "rsync", "-a", "-e", rsh(lab["edge1"])]})


@pytest.mark.parametrize("kind", ["traversal", "symlink"])
def test_a_hostile_delta_is_refused_before_the_restore_and_the_service_rolls_back(lab, service, kind):
    canary = "/tmp/%s-%s-canary" % (TAG, kind)
    api = engine(lab["edge1"])
    before = counter(api, service)
    proc = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e",
                    json.dumps({"migration_hooks": {"before_freeze": hostile_delta(lab, service, kind, canary)}}),
                    check=False)
    assert proc.returncode != 0
    report = latest_report(service)
    assert report["outcome"] == "rolled_back", report
    if kind == "symlink":
        assert "which is not a regular file" in report["cause"], report["cause"]
    else:
        assert "only plain file names of the checkpoint are accepted" in report["cause"], report["cause"]
    assert not os.path.exists(canary)
    assert running_on(lab, service) == ["edge1"]
    # restored from its final checkpoint, not started again: the counter goes on
    time.sleep(1)
    assert counter(api, service) > before
    # nothing of this migration is left on either host (other tests' migrations may be under way)
    assert [left for left in memory_images_left(lab) if service in left] == []


def plant_symlinks(lab, name, src, dest, directory, names, canary):
    """Python for a hook: `src`, as a hostile edge, pushes into `dest`'s directory of the
    migration a `directory/` holding symlinks with the given names, all pointing at canary
    (directory ".": the migration's directory itself)."""
    return (
        "work = sorted(glob.glob(%(work)r + '/%(name)s-*'), key=os.path.getmtime)[-1]\n"
        "src = tempfile.mkdtemp()\n"
        "for planted in %(names)r:\n"
        "    os.symlink(%(canary)r, os.path.join(src, planted))\n"
        "target = os.path.normpath(os.path.join(work, %(directory)r))\n"
        "rsync = %(rsync)r + ['--rsync-path=edge-migrate-receive --mkdir %%s' %% target,\n"
        "                     src + '/', 'root@%(address)s:%%s/' %% target]\n"
        "subprocess.run(rsync, check=True)\n"
        % {"work": lab[dest]["checkpoint_dir"], "name": name, "canary": canary, "address": lab[dest]["address"],
           "names": names, "directory": directory,
           "rsync": ["nsenter", "--net=/run/netns/%s" % lab[src]["netns"], "rsync", "-a", "-e", rsh(lab[src])]})


def test_symlinks_planted_where_criu_works_are_not_written_through(lab, service, tmp_path):
    """Before the freeze, edge2 plants in edge1's directory of the migration, and edge1 in
    edge2's, a `final.work/` of symlinks named as CRIU's files (its logs, statistics, the dump's
    configuration, the lazy-pages daemon's exit code), pointing at a file of the host: where
    the final dump and the restore had CRIU's work directory, a root CRIU wrote through them."""
    canaries = {host: str(tmp_path / ("canary-" + host)) for host in ("edge1", "edge2")}
    for canary in canaries.values():
        with open(canary, "w") as handle:
            handle.write("intact\n")
    plant = hook("import glob, os, subprocess, tempfile\n"
                 + plant_symlinks(lab, service, "edge2", "edge1", "final.work",
                                  ["dump.log", "stats-dump", "criu-dump.conf"], canaries["edge1"])
                 + plant_symlinks(lab, service, "edge1", "edge2", "final.work",
                                  ["restore.log", "stats-restore", "lazy-pages.rc"], canaries["edge2"]))
    api = engine(lab["edge1"])
    before = counter(api, service)
    playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e",
             json.dumps({"migration_hooks": {"before_freeze": plant}}))
    for canary in canaries.values():
        with open(canary, "rb") as handle:
            assert handle.read() == b"intact\n", canary
    assert running_on(lab, service) == ["edge2"]
    assert counter(engine(lab["edge2"]), service) > before


def test_a_control_socket_planted_in_the_migration_directory_is_not_followed(lab, service):
    """Before the freeze, edge2 replaces the shared SSH connection's socket in edge1's directory
    of the migration with a symlink to a connection edge1 holds to edge3: where the socket was
    there, ssh followed it and the final checkpoint, meant for edge2, went to edge3 (here
    edge3 refuses a path outside its own workdir; hosts with the same workdir would take it)."""
    if "edge3" not in lab:
        pytest.skip("needs three edges")
    master = "/tmp/%s-master" % TAG
    subprocess.run(ssh_argv(lab["edge1"], lab["edge3"], "-M", "-S", master, "-o", "ControlPersist=300", "-f", "-N"),
                   check=True, timeout=60)
    try:
        plant = hook("import glob, os, subprocess, tempfile\n"
                     + plant_symlinks(lab, service, "edge2", "edge1", ".", ["ssh"], master))
        before = counter(engine(lab["edge1"]), service)
        playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e",
                 json.dumps({"migration_hooks": {"before_freeze": plant}}))
        assert latest_report(service)["outcome"] == "migrated"
        assert running_on(lab, service) == ["edge2"]
        assert counter(engine(lab["edge2"]), service) > before
        assert glob.glob(os.path.join(lab["edge3"]["checkpoint_dir"], "%s-*" % service)) == []
    finally:
        subprocess.run(["ssh", "-S", master, "-O", "exit", "x"], capture_output=True, timeout=30)


def test_a_push_status_planted_in_the_migration_directory_ends_no_process_of_the_source(lab, service):
    """After the warm-up, edge2 writes into edge1's directory of the migration a status file of
    the warm-up's copy that names a session of edge1 as the copy's (a sleeper here; dockerd or
    sshd would do), then the migration fails: where the copy's status file was there, the
    rollback, which ends a copy still under way, ended that session as root."""
    sleeper = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        status = json.dumps({"started": 1, "finished": 0, "pid": sleeper.pid, "session": sleeper.pid})
        plant = hook(
            "import glob, os, subprocess, sys, tempfile\n"
            "work = sorted(glob.glob(%(work)r + '/%(name)s-*'), key=os.path.getmtime)[-1]\n"
            "src = tempfile.mkdtemp()\n"
            "open(os.path.join(src, 'warmup.status'), 'w').write(%(status)r)\n"
            "rsync = %(rsync)r + ['--rsync-path=edge-migrate-receive --mkdir %%s' %% work,\n"
            "                     src + '/', 'root@%(address)s:%%s/' %% work]\n"
            "subprocess.run(rsync, check=True)\n"
            "sys.exit('the hostile destination fails the migration')\n"
            % {"work": lab["edge1"]["checkpoint_dir"], "name": service, "status": status,
               "address": lab["edge1"]["address"],
               "rsync": ["nsenter", "--net=/run/netns/%s" % lab["edge2"]["netns"], "rsync", "-a", "-e",
                         rsh(lab["edge2"])]})
        before = counter(engine(lab["edge1"]), service)
        proc = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e",
                        json.dumps({"migration_hooks": {"before_freeze": plant}}), check=False)
        assert proc.returncode != 0
        assert latest_report(service)["outcome"] == "failed"  # before the freeze
        assert sleeper.poll() is None, "the rollback ended a session the hostile edge named"
        assert running_on(lab, service) == ["edge1"]
        time.sleep(1)
        assert counter(engine(lab["edge1"]), service) > before
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_forged_prepared_record_does_not_have_a_cancel_remove_the_running_service(lab, service, tmp_path):
    """edge2 writes into edge1's workdir a record of a prepared migration of the service whose
    destination is edge1, where the service runs; the operator cancels the service's prepared
    migrations: the cancel removed the container it names on the destination, the running
    service, with its state."""
    migration_id = "%s-20260101T000000" % service
    now = time.time()
    record = {"migration_id": migration_id, "service": service, "source": "edge1", "destination": "edge1",
              "strategy": "delta", "prepared_at": now, "refreshed_at": now, "expires_at": now + 3600}
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "prepared.json").write_text(json.dumps(record))
    target = os.path.join(lab["edge1"]["checkpoint_dir"], migration_id)
    proc = run(rsync_argv(lab["edge2"], lab["edge1"], str(forged), target,
                          "--rsync-path=edge-migrate-receive --mkdir %s" % target))
    assert proc.returncode == 0, proc.stderr
    before = counter(engine(lab["edge1"]), service)
    playbook("migrate.yml", "-e", "service=%s" % service, "-e", "step=cancel", check=False)
    assert running_on(lab, service) == ["edge1"], "the cancel removed the running service"
    time.sleep(1)
    assert counter(engine(lab["edge1"]), service) > before


def test_a_forged_prepared_record_does_not_have_a_finish_push_the_sources_files(lab, service, tmp_path):
    """edge2 writes into edge1's workdir a record of a prepared migration of the service to
    edge2 whose final copy of the service's files takes a directory of edge1's of its choice to
    edge2's workdir; the operator finishes the service's prepared migration: the source's root
    pushed that directory to edge2 (and a record could as well name another engine, address or
    volume to delete). Now a record whose destination holds no container prepared for it is not
    finished but dropped, and the finish moves the service as a whole migration would, with
    what its own edges answered."""
    migration_id = "%s-20260101T000000" % service
    src_work = os.path.join(lab["edge1"]["checkpoint_dir"], migration_id)
    loot = os.path.join(lab["edge2"]["checkpoint_dir"], "loot-%d" % os.getpid())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "id_ed25519").write_text("PRIVATE KEY of edge1\n")
    now = time.time()
    record = {"migration_id": migration_id, "service": service, "source": "edge1", "destination": "edge2",
              "strategy": "rsync", "strategy_reason": "", "src_work": src_work,
              "dst_work": os.path.join(lab["edge2"]["checkpoint_dir"], migration_id),
              "dest_address": lab["edge2"]["address"], "src_docker": lab["edge1"]["docker_host"],
              "dst_docker": lab["edge2"]["docker_host"], "src_exec_root": lab["edge1"]["exec_root"],
              "warmup_path": src_work + "/warmup", "base_sha256": {}, "compressed": False,
              "fs_final_trees": [{"src": str(secrets), "dest": loot}],
              "disk": {"copy_layer": False, "volumes": [], "copied_volumes": []}, "port_bindings": {},
              "keep_source": False, "waiter_jid": "j1.1", "prepared_at": now, "refreshed_at": now,
              "expires_at": now + 3600}
    forged = tmp_path / "forged"
    (forged / "warmup").mkdir(parents=True)
    (forged / "prepared.json").write_text(json.dumps(record))
    proc = run(rsync_argv(lab["edge2"], lab["edge1"], str(forged), src_work,
                          "--rsync-path=edge-migrate-receive --mkdir %s" % src_work))
    assert proc.returncode == 0, proc.stderr
    try:
        before = counter(engine(lab["edge1"]), service)
        finish = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "step=finish", check=False)
        assert not os.path.exists(loot), "the finish pushed a directory of the source's to edge2"
        assert finish.returncode == 0, finish.stdout[-3000:]
        assert "the prepared migration %s is dropped" % migration_id in finish.stdout
        assert running_on(lab, service) == ["edge2"]
        time.sleep(1)
        assert counter(engine(lab["edge2"]), service) > before
        assert not os.path.exists(src_work)
    finally:
        shutil.rmtree(loot, ignore_errors=True)


def test_a_prepared_record_changed_to_send_elsewhere_is_refused_before_the_freeze(lab, service, tmp_path):
    """A migration of the service is prepared for edge2; edge2 rewrites its record in edge1's
    workdir so that the final checkpoint goes to edge3's address; a controller without the
    pointer finishes it: refused, nothing frozen, the service runs on."""
    playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e", "step=prepare")
    os.unlink(os.path.join(ROOT, "reports", "prepared", service + ".json"))
    [path] = glob.glob(os.path.join(lab["edge1"]["checkpoint_dir"], service + "-*", "prepared.json"))
    with open(path) as handle:
        record = json.load(handle)
    record.update(dest_address=lab["edge3"]["address"],
                  dst_work=os.path.join(lab["edge3"]["checkpoint_dir"], record["migration_id"]))
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "prepared.json").write_text(json.dumps(record))
    proc = run(rsync_argv(lab["edge2"], lab["edge1"], str(forged), os.path.dirname(path)))
    assert proc.returncode == 0, proc.stderr
    before = counter(engine(lab["edge1"]), service)
    finish = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "step=finish", check=False)
    assert finish.returncode != 0
    assert "is refused" in finish.stdout and "Nothing was frozen" in finish.stdout, finish.stdout[-3000:]
    assert "dest_address is '%s' where the inventory gives" % lab["edge3"]["address"] in finish.stdout
    assert running_on(lab, service) == ["edge1"]
    time.sleep(1)
    assert counter(engine(lab["edge1"]), service) > before
    assert glob.glob(os.path.join(lab["edge3"]["checkpoint_dir"], service + "-*")) == []
    cancel = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "step=cancel")
    assert "is dropped" in cancel.stdout
    assert running_on(lab, service) == ["edge1"]
