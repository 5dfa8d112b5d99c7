"""The lab's inventory and the edges' preparation: inventory/lab/hosts.yml, and
playbooks/prepare_edges.yml run on the lab's edges when what it depends on changed.
Standard library only."""

import hashlib
import json
import re
import subprocess
import time

from labcore import LOG, Changes, LabError, daemon_env, ensure_dir, say, write_if_changed
from labhosts import (
    CONTROLLER_KEY,
    INVENTORY,
    KNOWN_HOSTS,
    PREPARE_PLAYBOOK,
    PREPARED_STAMP,
    REGISTRY,
    REPO,
    SYSTEMS_INVENTORY,
    VENV_PLAYBOOK,
    VENV_PYTHON,
)


def yaml_str(s):
    return json.dumps(str(s))


def inventory_text(hosts):
    lines = ["# Written by `lab/lab up` for the edge lab; regenerated on every run, do not edit.",
             "all:",
             "  children:",
             "    edges:",
             "      vars:",
             "        lab_registry: %s" % yaml_str(REGISTRY),
             "        # lab/lab starts each dockerd (with --experimental) and makes / rshared on `up`",
             "        edge_docker_service: \"\"",
             "        edge_docker_rshared_persistence: none",
             "      hosts:"]
    for h in hosts:
        hv = [
            ("ansible_host", h.address),
            ("ansible_user", "root"),
            ("ansible_ssh_private_key_file", CONTROLLER_KEY),
            ("ansible_ssh_common_args", "-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes"
             % KNOWN_HOSTS),
            ("ansible_python_interpreter", VENV_PYTHON),
            ("docker_host", h.docker_host),
            ("docker_exec_root", h.exec_root),
            ("migration_workdir", h.workdir),
            ("migration_address", h.address),
            ("migration_ssh_key", h.id_key),
            ("migration_known_hosts", h.known_hosts),
            ("lab_netns", h.netns),
            ("edge_docker_daemon_json", h.daemon_json),
            ("edge_docker_pidfile", h.docker_pid),
            ("edge_ssh_trust_sshd_config", h.sshd_config),
        ]
        lines.append("        %s:" % h.name)
        lines += ["          %s: %s" % (k, yaml_str(v)) for k, v in hv]
        # The wireless access points near this edge (handover events name them): edgeN serves apN.
        lines.append("          access_points: [%s]" % yaml_str("ap" + h.name[len("edge"):]))
    return "\n".join(lines) + "\n"


def ensure_inventory(hosts):
    ensure_dir(INVENTORY.parent, 0o755)
    if write_if_changed(INVENTORY, inventory_text(hosts), 0o644):
        Changes.add("wrote inventory %s" % INVENTORY.relative_to(REPO))


def prepare_inputs():
    """Hash of what the preparation depends on: the playbook, the edge roles, the inventory."""
    digest = hashlib.sha256()
    files = [PREPARE_PLAYBOOK, INVENTORY] + ([SYSTEMS_INVENTORY] if SYSTEMS_INVENTORY.exists() else [])
    files += sorted(p for p in (REPO / "roles").glob("edge_*/**/*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def prepare_edges():
    """Runs playbooks/prepare_edges.yml on the lab's edges; its recap says what it changed.
    Skipped (a run takes a minute or more) when this `up` changed nothing but restarted
    daemons or pushed images and the playbook, roles and inventory are those of the last successful run: what
    it sets on the hosts is on disk, changed only by the playbook itself and by `down`."""
    want = prepare_inputs()
    try:
        if (len(Changes.items) == len(Changes.outside_preparation)
                and json.loads(PREPARED_STAMP.read_text()).get("inputs") == want):
            return
    except (OSError, ValueError):
        pass
    if not VENV_PLAYBOOK.exists():
        raise LabError("%s is missing: run `make venv` (`make lab` does it)" % VENV_PLAYBOOK)
    log = LOG / "prepare_edges.log"
    ensure_dir(LOG)
    say("  preparing the edges: %s (log %s)" % (PREPARE_PLAYBOOK.relative_to(REPO), log))
    t0 = time.time()
    env = daemon_env({"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    with open(log, "w") as out:
        inventories = ["-i", str(INVENTORY)] + (["-i", str(SYSTEMS_INVENTORY)] if SYSTEMS_INVENTORY.exists() else [])
        proc = subprocess.run([str(VENV_PLAYBOOK)] + inventories + [str(PREPARE_PLAYBOOK)], cwd=REPO,
                              env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              timeout=1800)
    recap = re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", log.read_text(), re.M)
    if proc.returncode != 0 or not recap:
        tail = "\n".join(log.read_text().splitlines()[-25:])
        raise LabError("%s failed (rc=%d); see %s:\n%s" % (PREPARE_PLAYBOOK.relative_to(REPO), proc.returncode,
                                                         log, tail))
    changed = {host: int(n) for host, n in recap if int(n)}
    write_if_changed(PREPARED_STAMP, json.dumps({"inputs": want}) + "\n")
    if changed:
        Changes.add("%s changed %s (%.0f s, log %s)" % (
            PREPARE_PLAYBOOK.relative_to(REPO), ", ".join("%s: %d" % kv for kv in sorted(changed.items())),
            time.time() - t0, log))
