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
  compress_auto:
    description:
      - Decide I(compress) from the data, overriding it. A sample of the largest file is
        deflated; rsync compresses when that sample shrinks below I(compress_threshold) of its
        size. Memory images of real services (zeroed heaps, code) usually do; random data does
        not, and compressing it would only cost CPU.
    type: bool
    default: false
  compress_threshold:
    description: Compressed-to-original size ratio of the sample below which I(compress_auto) compresses.
    type: float
    default: 0.8
  progress_file:
    description:
      - While rsync runs, keep its progress (bytes so far, percent, rate, time left) in this
        file (JSON, C(0600)), for M(edge_sync_progress) to report while the module runs in the
        background (C(async), C(poll) 0). Its directory must exist.
    type: path
extends_documentation_fragment:
  - edge.sync
  - edge.push_only
notes:
  - C(changed) comes from rsync's own itemized list of what it created, sent or deleted.
seealso:
  - module: edge_sync_progress
    description: Reports the progress of a push started in the background.
  - module: edge_fs_sync
    description: Pushes a container's writable layer or a volume.
requirements: [rsync and ssh on both hosts]
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Copy the warm-up checkpoint to the destination
  edge_sync:
    src: /var/lib/edge-migrate/openface-1/base
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/base
    ssh_key: /root/.ssh/edge_migrate
    known_hosts: /etc/edge-migrate/known_hosts

- name: Copy it in the background, keeping its progress in a file
  edge_sync:
    src: /var/lib/edge-migrate/openface-1/base
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/base
    progress_file: /var/lib/edge-migrate/openface-1/warmup.progress
  async: 3600
  poll: 0
  register: copy_job
"""

RETURN = r"""
bytes_sent:
  description: Bytes rsync sent over the wire.
  type: int
  returned: success
  sample: 12345678
items_changed:
  description: Files and directories rsync created, sent, deleted or changed the attributes of.
  type: int
  returned: success
  sample: 4
total_file_size:
  description: Size of the directory's files.
  type: int
  returned: success
  sample: 268435456
compressed:
  description: Whether rsync compressed on the wire.
  type: bool
  returned: success
  sample: false
sample_ratio:
  description: Compressed-to-original size of the sample (I(compress_auto)).
  type: float
  returned: when I(compress_auto) is true
  sample: 0.31
duration_s:
  description: Seconds spent.
  type: float
  returned: success
  sample: 2.3012
cmd:
  description: The rsync command run.
  type: str
  returned: success
  sample: rsync -a --whole-file ... /var/lib/edge-migrate/openface-1/base/
    root@10.0.0.12:/var/lib/edge-migrate/openface-1/base/
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_module import fail, runner
from ansible.module_utils.edge_push_job import PUSH_ARGS, push_directory
from ansible.module_utils.edge_transfer import SYNC_ARGS, TransferError


def main():
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True), **PUSH_ARGS, **SYNC_ARGS),
                           supports_check_mode=False)
    params = module.params
    if not os.path.isdir(params["src"]):
        module.fail_json(msg="src %s is not a directory on this host" % params["src"], cmd=None, rc=None, stderr="")
    try:
        result = push_directory(runner(module), params["src"], params)
    except TransferError as exc:
        fail(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
