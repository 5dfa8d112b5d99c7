"""The edge_docker role's file changes, run for real on local files: daemon.json merged by
content (other settings kept, formatting alone is no change) with dockerd reloaded only when
it changed, and the shared root mount kept in rc.local. A stand-in `dockerd` process (a copy
of sleep) shows whether the reload signal was sent."""

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys

import pytest
import yaml
from module_runner import ROOT

PLAYBOOK = ROOT + "/.venv/bin/ansible-playbook"
RUNTIME = {"edge-migrate": {"path": "/usr/local/libexec/edge-migrate-runtime"}}


def stand_in_dockerd(tmp_path, name):
    binary = tmp_path / "dockerd"
    if not binary.exists():
        shutil.copy(shutil.which("sleep"), binary)
    # SIGHUP back to its default: a test run started under nohup would hand its children
    # SIGHUP ignored, and the stand-in would survive the reload it is there to show
    proc = subprocess.Popen([str(binary), "300"], preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    pidfile = tmp_path / ("%s.pid" % name)
    pidfile.write_text("%d\n" % proc.pid)
    return proc, pidfile


def daemon_json(tmp_path, name):
    # the fresh engine has no configuration directory yet
    return tmp_path / ("etc-docker/daemon.json" if name == "fresh" else "%s.json" % name)


def play(name, tmp_path, pidfile, tasks_from, **extra):
    return {"name": name, "hosts": "localhost", "connection": "local", "gather_facts": False,
            "vars": dict(edge_docker_daemon_json=str(daemon_json(tmp_path, name)),
                         edge_docker_pidfile=str(pidfile), **extra),
            "tasks": [{"name": "Run " + tasks_from, "ansible.builtin.include_role": {
                "name": "edge_docker", "tasks_from": tasks_from}}]}


def run_playbook(path):
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-e", "ansible_python_interpreter=" + sys.executable,
                           str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return int(re.search(r"^localhost\s*:.*changed=(\d+)", proc.stdout, re.M).group(1))


def reloaded(proc):
    try:
        return proc.wait(timeout=5) == -signal.SIGHUP
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def roles_run(tmp_path_factory):
    """One playbook over every case, run twice: {changed: [first, second], files, processes}."""
    tmp = tmp_path_factory.mktemp("edge_roles")
    engines = {name: stand_in_dockerd(tmp, name) for name in ("fresh", "other", "same")}
    (tmp / "other.json").write_text('{"log-driver": "local", "runtimes": {"crun": {"path": "/usr/bin/crun"}}}')
    # the same settings as the role's, another layout and key order: not a change
    same_text = json.dumps({"runtimes": RUNTIME, "deprecated-key-path": "/k.json"}, indent=1)
    (tmp / "same.json").write_text(same_text)
    (tmp / "existing.rc.local").write_text("#!/bin/sh -e\necho booted\nexit 0\n")
    os.chmod(tmp / "existing.rc.local", 0o755)
    plays = [play(name, tmp, pidfile, "daemon_json.yml", edge_docker_merge={"runtimes": RUNTIME})
             for name, (_proc, pidfile) in engines.items()]
    rshared = "shared" in subprocess.run(["findmnt", "-n", "-o", "PROPAGATION", "/"], capture_output=True,
                                         text=True).stdout
    if rshared:  # else the role would run mount --make-rshared /, which needs root
        plays += [play(name, tmp, tmp / "none.pid", "rshared.yml", edge_docker_rshared_persistence="rc.local",
                       edge_docker_rc_local=str(tmp / ("%s.rc.local" % name))) for name in ("fresh", "existing")]
    book = tmp / "play.yml"
    book.write_text(yaml.safe_dump(plays))
    try:
        first = run_playbook(book)
        signalled = {name: reloaded(proc) for name, (proc, _pidfile) in engines.items()}
        second = run_playbook(book)
        yield {"changed": [first, second], "tmp": tmp, "same_text": same_text, "signalled": signalled,
               "rshared": rshared, "engines": engines}
    finally:
        for proc, _pidfile in engines.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_daemon_json_merged_by_content_and_reloaded_only_on_change(roles_run):
    tmp = roles_run["tmp"]
    assert json.loads(daemon_json(tmp, "fresh").read_text()) == {"runtimes": RUNTIME}
    assert json.loads((tmp / "other.json").read_text()) == {
        "log-driver": "local", "runtimes": dict(RUNTIME, crun={"path": "/usr/bin/crun"})}
    assert (tmp / "same.json").read_text() == roles_run["same_text"]
    assert roles_run["signalled"] == {"fresh": True, "other": True, "same": False}
    # a directory made, two files written, two engines reloaded (and three rc.local changes when
    # / is shared)
    assert roles_run["changed"][0] == 5 + (3 if roles_run["rshared"] else 0)
    # the second run changes nothing and signals nobody
    assert roles_run["changed"][1] == 0
    assert roles_run["engines"]["same"][0].poll() is None


def test_shared_root_mount_kept_in_rc_local(roles_run):
    if not roles_run["rshared"]:
        pytest.skip("/ is not shared here: the role would run mount --make-rshared /, which needs root")
    fresh, existing = roles_run["tmp"] / "fresh.rc.local", roles_run["tmp"] / "existing.rc.local"
    assert fresh.read_text().startswith("#!/bin/sh\n")
    assert os.stat(fresh).st_mode & 0o777 == 0o755
    lines = existing.read_text().splitlines()
    assert lines[0] == "#!/bin/sh -e" and lines[-1] == "exit 0"
    for path in (fresh, existing):
        assert "\nmount --make-rshared /\n" in path.read_text()
    assert existing.read_text().index("mount --make-rshared") < existing.read_text().index("exit 0")


@pytest.fixture(scope="module")
def trust_run(tmp_path_factory):
    """edge_ssh_trust on two local 'edges' a and b, each with its own sshd configuration,
    key and files: --limit to one edge (refused), then twice on both."""
    tmp = tmp_path_factory.mktemp("edge_ssh_trust")
    user = pwd.getpwuid(os.getuid()).pw_name
    hosts = {}
    for n, name in enumerate(("a", "b"), start=1):
        home = tmp / name
        home.mkdir()
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
        # a: sshd's default, relative to the home; b: the %h and %u tokens
        keys_file = ".ssh/authorized_keys" if name == "a" else "%h/keys/%u"
        (home / "sshd_config").write_text("HostKey %s\nAuthorizedKeysFile %s\n" % (home / "host_key", keys_file))
        hosts["edge-" + name] = dict(
            migration_address="10.0.0.%d" % n, migration_ssh_key=str(home / "key" / "id_ed25519"),
            migration_known_hosts=str(home / "known_hosts"), edge_ssh_trust_sshd_config=str(home / "sshd_config"),
            edge_ssh_trust_user=user, edge_ssh_trust_home=str(home),
            edge_ssh_trust_command=str(tmp / "libexec" / "edge-migrate-ssh"),
            edge_ssh_trust_data_root=str(home / "docker"), migration_workdir=str(home / "work"))
    (tmp / "a" / ".ssh").mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "someone@elsewhere", "-f",
                    str(tmp / "someone")], check=True)
    someone = (tmp / "someone.pub").read_text()
    (tmp / "a" / ".ssh" / "authorized_keys").write_text(someone)
    inventory = tmp / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {"edges": {"hosts": hosts}}}}))
    book = tmp / "play.yml"
    book.write_text(yaml.safe_dump([{"name": "Trust", "hosts": "edges", "gather_facts": False,
                                     "roles": ["edge_ssh_trust"]}]))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_NOCOLOR="1")

    def playbook(*args):
        return subprocess.run([PLAYBOOK, "-i", str(inventory), *args, str(book)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)

    limited = playbook("--limit", "edge-a")
    first = playbook()
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    second = playbook()
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    changed = [sum(map(int, re.findall(r"^edge-\w\s*:.*changed=(\d+)", proc.stdout, re.M))) for proc in (first, second)]
    return {"tmp": tmp, "user": user, "someone": someone, "limited": limited, "changed": changed}


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public(path):
    return " ".join(open(path).read().split()[:2])


def test_trust_is_set_up_for_the_whole_group_only(trust_run):
    limited = trust_run["limited"]
    assert limited.returncode != 0
    assert "leaves out edge-b: run it without --limit" in limited.stdout, limited.stdout[-3000:]


def test_each_edge_has_its_own_key_and_accepts_every_edge(trust_run):
    tmp, user = trust_run["tmp"], trust_run["user"]
    keys = {name: tmp / name / "key" / "id_ed25519" for name in ("a", "b")}
    for key in keys.values():
        assert os.stat(key).st_mode & 0o777 == 0o600
        assert os.stat(key.parent).st_mode & 0o777 == 0o700  # made by the role
    home_mode = os.stat(tmp / "a").st_mode & 0o777
    assert home_mode == 0o777 & ~current_umask() & 0o777, "an existing directory's mode was changed"
    command = tmp / "libexec" / "edge-migrate-ssh"
    for here, authorized, other, n in (("a", tmp / "a" / ".ssh" / "authorized_keys", "b", 2),
                                       ("b", tmp / "b" / "keys" / user, "a", 1)):
        text = authorized.read_text()
        # only the other edge's key, from its address, and only for the forced command
        assert ('restrict,from="10.0.0.%d",command="%s %s" %s edge-migrate@edge-%s'
                % (n, command, tmp / here / "edge-migrate-ssh.json", public(str(keys[other]) + ".pub"), other)
                ) in text.splitlines(), text
        assert public(str(keys[here]) + ".pub") not in text
        assert json.loads((tmp / here / "edge-migrate-ssh.json").read_text()) == {
            "workdir_roots": [str(tmp / here / "work")],
            "receive_roots": [str(tmp / here / "docker" / "overlay2"), str(tmp / here / "docker" / "volumes")]}
        listed = subprocess.run(["ssh-keygen", "-l", "-f", str(authorized)], capture_output=True, text=True)
        assert listed.returncode == 0 and "edge-migrate@edge-%s" % other in listed.stdout, listed.stdout + listed.stderr
    # a line that was there before is kept
    assert (tmp / "a" / ".ssh" / "authorized_keys").read_text().startswith(trust_run["someone"])
    assert os.access(command, os.X_OK) and "SSH_ORIGINAL_COMMAND" in command.read_text()


def test_each_edge_pins_every_edge_host_key(trust_run):
    tmp = trust_run["tmp"]
    for name in ("a", "b"):
        for n, other in enumerate(("a", "b"), start=1):
            found = subprocess.run(["ssh-keygen", "-F", "10.0.0.%d" % n, "-f", str(tmp / name / "known_hosts")],
                                   capture_output=True, text=True)
            assert public(tmp / other / "host_key.pub") in found.stdout, (name, other, found.stdout)


def test_private_keys_stay_where_they_were_made(trust_run):
    tmp = trust_run["tmp"]
    private = {str(p) for p in tmp.rglob("*") if p.is_file() and "PRIVATE KEY" in p.read_text(errors="replace")}
    assert private == {str(tmp / n / f) for n in ("a", "b") for f in ("host_key", "key/id_ed25519")} | {
        str(tmp / "someone")}


def test_trust_second_run_changes_nothing(trust_run):
    first, second = trust_run["changed"]
    # per edge: its missing directories made (one task), its key, the forced command's directory,
    # the command (copied by both edges to one path here) and its configuration, its two blocks
    assert 12 <= first <= 14
    assert second == 0
