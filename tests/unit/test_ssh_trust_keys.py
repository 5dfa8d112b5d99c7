"""edge_ssh_trust copies an edge's public keys to the other edges only when each is one plain
key line: an edge whose ssh-keygen answers with more (an `@cert-authority *` line that would
make every key it signs a key of the others' root) is refused, and nothing is written."""

import os
import pwd
import re
import subprocess
import sys

import pytest
import yaml
from module_runner import ROOT

PLAYBOOK = ROOT + "/.venv/bin/ansible-playbook"
KEY_LINE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+$")


def role_vars():
    return yaml.safe_load(open(os.path.join(ROOT, "roles", "edge_ssh_trust", "vars", "main.yml")))


@pytest.mark.parametrize("line,ok", [
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB2", True), ("ssh-rsa AAAAB3NzaC1yc2E=", True),
    ("ecdsa-sha2-nistp384 AAAAE2VjZHNh", True), ("@cert-authority * ssh-ed25519 AAAA", False),
    ("command=\"id\" ssh-ed25519 AAAA", False), ("ssh-ed25519 AAAA x", False), ("ssh-dss AAAA", False),
    ("ssh-ed25519 AAAA\n@cert-authority * ssh-ed25519 AAAA", False), ("", False)])
def test_the_key_pattern(line, ok):
    pattern = re.compile(role_vars()["edge_ssh_trust_key_pattern"])
    assert bool(pattern.match(line) and "\n" not in line) is ok
    assert pattern.pattern == KEY_LINE.pattern


def test_an_edge_answering_more_than_one_key_line_changes_nothing(tmp_path):
    user = pwd.getpwuid(os.getuid()).pw_name
    fake = tmp_path / "bin"
    fake.mkdir()
    # ssh-keygen as a compromised edge runs it: its public keys come with a CA line
    (fake / "ssh-keygen").write_text(
        '#!/bin/sh\n/usr/bin/ssh-keygen "$@" || exit $?\n'
        'case "$*" in *-y*/bad/*) echo "@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostile";; esac\n')
    (fake / "ssh-keygen").chmod(0o755)
    hosts = {}
    for n, name in enumerate(("good", "bad"), start=1):
        home = tmp_path / name
        (home / ".ssh").mkdir(parents=True)
        subprocess.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")],
                       check=True)
        (home / "sshd_config").write_text("HostKey %s\nAuthorizedKeysFile .ssh/authorized_keys\n" % (home / "host_key"))
        hosts["edge-" + name] = dict(
            migration_address="10.0.0.%d" % n, migration_ssh_key=str(home / "key" / "id_ed25519"),
            migration_known_hosts=str(home / "known_hosts"), edge_ssh_trust_sshd_config=str(home / "sshd_config"),
            edge_ssh_trust_user=user, edge_ssh_trust_home=str(home),
            edge_ssh_trust_command=str(tmp_path / "libexec" / "edge-migrate-ssh"),
            edge_ssh_trust_data_root=str(home / "docker"), migration_workdir=str(home / "work"))
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "children": {"edges": {"hosts": hosts}}}}))
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump([{"name": "Trust", "hosts": "edges", "gather_facts": False,
                                     "roles": ["edge_ssh_trust"]}]))
    env = dict(os.environ, ANSIBLE_ROLES_PATH=os.path.join(ROOT, "roles"), ANSIBLE_NOCOLOR="1",
               PATH="%s:%s" % (fake, os.environ["PATH"]))
    proc = subprocess.run([PLAYBOOK, "-i", str(inventory), str(book)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "edge-bad answered `ssh-keygen -y -f" in proc.stdout and "other than one public key line" in proc.stdout, \
        proc.stdout[-3000:]
    assert "could not be read" in proc.stdout  # the good edge stops too
    for name in ("good", "bad"):
        for path in (tmp_path / name / ".ssh" / "authorized_keys", tmp_path / name / "known_hosts"):
            assert not path.exists() or "Hostile" not in path.read_text()
