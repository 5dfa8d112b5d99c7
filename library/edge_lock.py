#!/usr/bin/python
"""Ansible module (runs on an edge): one migration of a service at a time, across controllers."""

DOCUMENTATION = r"""
module: edge_lock
short_description: Take or release, on an edge, the lock that lets one migration of a service run at a time
description:
  - With I(state=present) creates I(workdir)/locks/<service>.lock with O_EXCL, holding the
    migration id, the controller's name and boot id, the pid and start time of its
    ansible-playbook process (I(owner), from edge_lock_owner), this edge's host name and boot id.
    If a live run holds it the module fails at once, naming that run and its controller.
  - A lock is stale when its controller rebooted since it was taken, when it is the same
    controller's and its ansible-playbook process is gone, or when it is older than
    I(timeout) seconds. A stale lock is taken over (renamed aside, the new one created, all
    under flock(2) on the lock directory, so of many runs exactly one wins) and returned as
    C(stale), so the play can clean up what the interrupted migration left.
  - With I(state=absent) removes the lock if this run (migration id, controller, process) holds it.
  - Every controller that migrates through this edge sees the same lock.
options:
  service:
    description: Service (container) name, by Docker's rule for names.
    type: str
    required: true
  migration_id:
    description: Id of the migration taking the lock.
    type: str
    required: true
  owner:
    description:
      - Who takes the lock, as edge_lock_owner returns it (controller, boot_id, pid,
        pid_start, checked_at, running).
    type: dict
    required: true
  workdir:
    description: The migration directory of this edge; the lock is in its C(locks) directory.
    type: path
    required: true
  timeout:
    description: Seconds after which any lock is stale (0 for never).
    type: int
    default: 14400
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    description: Decides as a real run would (a lock held by a live run fails, a stale one is returned in
      I(stale)) but creates, renames and removes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Runs on an edge; I(owner) comes from M(edge_lock_owner) run on the controller.
seealso:
  - module: edge_lock_owner
    description: Names the controller run that takes the lock.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Who this run is
  edge_lock_owner:
  delegate_to: localhost
  register: lock_owner

- name: One migration of openface at a time
  edge_lock:
    service: openface
    migration_id: openface-20261125T101500
    owner: "{{ lock_owner.owner }}"
    workdir: /var/lib/edge-migrate
  delegate_to: edge1
"""

RETURN = r"""
path:
  description: The lock file.
  type: str
  returned: always
  sample: /var/lib/edge-migrate/locks/openface.lock
holder:
  description: The lock's record (this run's when taken; the holder's when the lock is held by another run).
  type: dict
  returned: always
  sample: {service: openface, migration_id: openface-20261125T101500, controller: ctl1, boot_id: 0b5e..., pid: 4242,
    pid_start: 123456, checked_at: 1764065700.1, host: edge1, edge_boot_id: 7c1d..., since: 1764065700.2}
stale:
  description: The record of a stale lock that was taken over, with stale_because.
  type: dict
  returned: when a stale lock was taken over
  sample: {migration_id: openface-20261124T090000, controller: ctl1, stale_because: its controller rebooted}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_lock import LockError, lock_path, release, take


def main():
    module = AnsibleModule(argument_spec=dict(
        service=dict(type="str", required=True),
        migration_id=dict(type="str", required=True),
        owner=dict(type="dict", required=True),
        workdir=dict(type="path", required=True),
        timeout=dict(type="int", default=14400),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    ), supports_check_mode=True)
    params = module.params
    try:
        path = lock_path(params["workdir"], params["service"])
        if params["state"] == "absent":
            released = release(params["workdir"], params["service"], params["migration_id"], params["owner"],
                               check=module.check_mode)
            module.exit_json(changed=released, path=path, holder={})
        record, stale = take(params["workdir"], params["service"], params["migration_id"], params["owner"],
                             params["timeout"], check=module.check_mode)
    except LockError as exc:
        module.fail_json(msg=str(exc), holder=exc.holder, cmd=None, rc=None, stderr="")
    except OSError as exc:
        module.fail_json(msg="cannot use the lock directory %s: %s" % (os.path.join(params["workdir"], "locks"),
                                                                       exc.strerror),
                         cmd=None, rc=None, stderr=str(exc))
    result = dict(changed=True, path=path, holder=record)
    if stale:
        result["stale"] = stale
    module.exit_json(**result)


if __name__ == "__main__":
    main()
