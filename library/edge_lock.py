#!/usr/bin/python
"""Ansible module (controller side): one migration at a time per service."""

DOCUMENTATION = r"""
module: edge_lock
short_description: Take or release the lock that lets one migration of a service run at a time
description:
  - With I(state=present) creates I(lock_dir)/<service>.lock atomically, holding the
    migration id and the process id of the ansible-playbook that owns it. If another live
    playbook holds it the module fails at once, naming that migration. A lock whose owner
    is gone (the controller was killed) is taken over and reported as C(stale), so the
    play can clean up what the interrupted migration left.
  - With I(state=absent) removes the lock if this migration holds it.
  - Runs on the controller; migrations started from different controllers are not seen.
options:
  service:
    description: Service (container) name.
    type: str
    required: true
  migration_id:
    description: Id of the migration taking the lock.
    type: str
    required: true
  owner_pid:
    description:
      - Process id whose life the lock lasts (a lock whose owner is gone is stale). By
        default the ansible-playbook process that runs this module.
    type: int
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  lock_dir:
    description: Directory of the lock files.
    type: path
    required: true
author: edge-migrate developers
"""

EXAMPLES = r"""
- name: One migration of openface at a time
  edge_lock:
    service: openface
    migration_id: openface-20261125T101500
    lock_dir: /var/lib/edge-migrate/locks
  delegate_to: localhost
"""

RETURN = r"""
stale:
  description: The lock of an interrupted migration (its owner is gone) was taken over.
  type: dict
  returned: when a stale lock was found
"""

import errno
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_claim import alive


def playbook_pid():
    """The outermost ansible-playbook process among this process's ancestors (or our parent)."""
    pid, found = os.getpid(), os.getppid()
    while pid > 1:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%d/cmdline" % parent, "rb") as handle:
                if b"ansible-playbook" in handle.read():
                    found = parent
        except (OSError, ValueError, IndexError):
            break
        pid = parent
    return found


def read_lock(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def take(path, record):
    """Create the lock file atomically; False if it exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
    return True


def main():
    module = AnsibleModule(argument_spec=dict(
        service=dict(type="str", required=True),
        migration_id=dict(type="str", required=True),
        owner_pid=dict(type="int"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        lock_dir=dict(type="path", required=True),
    ), supports_check_mode=True)
    params = module.params
    path = os.path.join(params["lock_dir"], "%s.lock" % params["service"])
    record = {"migration_id": params["migration_id"], "pid": params["owner_pid"] or playbook_pid(),
              "since": time.time()}
    if params["state"] == "absent":
        held = read_lock(path)
        if held.get("migration_id") != params["migration_id"]:
            module.exit_json(changed=False)
        if not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=True)
    if module.check_mode:
        module.exit_json(changed=True)
    os.makedirs(params["lock_dir"], mode=0o700, exist_ok=True)
    result = dict(changed=True)
    for _attempt in range(3):
        if take(path, record):
            module.exit_json(**result)
        held = read_lock(path)
        if held.get("pid") and alive(held["pid"]):
            module.fail_json(msg="%s is already being migrated (migration %s, playbook pid %s, started %s); wait for "
                             "it to finish" % (params["service"], held.get("migration_id"), held["pid"],
                                               time.strftime("%H:%M:%S", time.localtime(held.get("since", 0)))),
                             cmd=None, rc=None, stderr="lock %s is held" % path)
        result["stale"] = held
        try:
            os.unlink(path)  # its owner is gone: an interrupted migration
        except FileNotFoundError:
            pass
    module.fail_json(msg="could not take the lock %s" % path, cmd=None, rc=None, stderr="")


if __name__ == "__main__":
    main()
