#!/usr/bin/python
"""Ansible module: push a directory from this host straight to another host with rsync over SSH."""

DOCUMENTATION = r"""
module: edge_sync
short_description: Push a directory from this host to another host (rsync over SSH)
description:
  - Runs on the host that has the files and pushes them to I(dest_host) with rsync over
    SSH (key-based, non-interactive, host key checked against I(known_hosts)), with a
    connection and I/O timeout so a missing key or a dead link fails instead of hanging.
  - The destination directory is created C(0700).
options:
  src:
    description: Directory on this host.
    type: path
    required: true
  whole_file:
    description: Send whole files (first copy) instead of rsync's delta against what the destination has.
    type: bool
    default: true
extends_documentation_fragment:
  - edge.sync
requirements: [rsync and ssh on both hosts]
author: edge-migrate developers
"""

EXAMPLES = r"""
- name: Copy the warm-up checkpoint to the destination
  edge_sync:
    src: /var/lib/edge-migrate/openface-1/base
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/base
    ssh_key: /root/.ssh/edge_migrate
    known_hosts: /etc/edge-migrate/known_hosts
"""

RETURN = r"""
bytes_sent:
  description: Bytes rsync sent over the wire.
  type: int
  returned: success
total_file_size:
  description: Size of the directory's files.
  type: int
  returned: success
duration_s:
  description: Seconds spent.
  type: float
  returned: success
cmd:
  description: The rsync command run.
  type: str
  returned: success
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_module import fail, runner
from ansible.module_utils.edge_transfer import SYNC_ARGS, TransferError, push, push_options


def main():
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True),
                                              whole_file=dict(type="bool", default=True), **SYNC_ARGS),
                           supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["src"]):
        module.fail_json(msg="src %s is not a directory on this host" % params["src"], cmd=None, rc=None, stderr="")
    if module.check_mode:
        module.exit_json(changed=True)
    begin = time.monotonic()
    try:
        stats = push(runner(module), params["src"], params["dest_host"], params["dest_dir"],
                     whole_file=params["whole_file"], **push_options(params))
    except TransferError as exc:
        fail(module, exc)
    module.exit_json(changed=True, duration_s=round(time.monotonic() - begin, 4), **stats)


if __name__ == "__main__":
    main()
