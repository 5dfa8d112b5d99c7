#!/usr/bin/python
"""Ansible module (controller side): who takes a migration lock, for edge_lock."""

DOCUMENTATION = r"""
module: edge_lock_owner
short_description: Name the controller run that takes a migration lock
description:
  - Returns this controller's name and boot id, the pid and start time of the
    ansible-playbook process that runs the module (a fleet's child run is its own), the time,
    and the ansible processes alive on this controller now, which edge_lock needs to tell
    whether an earlier lock of this controller is stale.
  - "Runs on the controller (C(delegate_to: localhost)); changes nothing."
options:
  controller:
    description: Name of this controller in lock records. Default its host name.
    type: str
seealso:
  - module: edge_lock
    description: Takes the lock on an edge for the run named here.
extends_documentation_fragment:
  - edge.read_only
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Who this run is
  edge_lock_owner:
  delegate_to: localhost
  register: lock_owner
"""

RETURN = r"""
owner:
  description: controller, boot_id, pid, pid_start, checked_at and running (C(pid:start) of ansible processes).
  type: dict
  returned: always
  contains:
    controller:
      description: Name of this controller (I(controller), else its host name).
      type: str
    boot_id:
      description: This controller's boot id.
      type: str
    pid:
      description: Pid of the ansible-playbook process that runs the module.
      type: int
    pid_start:
      description: Start time of that process (in clock ticks since boot, as C(/proc/PID/stat) says).
      type: int
    checked_at:
      description: Epoch time at which this was looked at.
      type: float
    running:
      description: The ansible processes alive on this controller, each C(pid:start).
      type: list
      elements: str
  sample: {controller: ctl1, boot_id: 0b5e2f3a-..., pid: 4242, pid_start: 123456, checked_at: 1764065700.1,
           running: ['4242:123456']}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_lock import controller_identity


def main():
    module = AnsibleModule(argument_spec=dict(controller=dict(type="str")), supports_check_mode=True)
    module.exit_json(changed=False, owner=controller_identity(module.params["controller"] or None))


if __name__ == "__main__":
    main()
