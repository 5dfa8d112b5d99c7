#!/usr/bin/python
"""Ansible module: push a container's layer or volume from this host straight to another host."""

DOCUMENTATION = r"""
module: edge_fs_sync
short_description: Push a container's writable layer or a volume to another host (rsync over SSH)
description:
  - Makes I(dest_dir) on I(dest_host) an exact copy of the directory I(src) of this host,
    a container's writable layer (overlay2's upper directory) or a volume's content.
    Everything overlayfs and programs rely on is kept (whiteouts, which are 0/0 character
    devices, C(trusted.overlay.*) and other extended attributes, ACLs, hard links, owners
    by number), files the destination has and the source does not are deleted, and files
    the destination already has travel as rsync deltas.
  - With I(since) (the C(started_at) of an earlier push of the same tree) nothing is sent
    when nothing in the tree changed since then (judged by the inode change times, which
    every write, rename, deletion or attribute change sets).
  - Only reads I(src). Pushes straight to the destination (the controller relays nothing).
options:
  src:
    description: Directory on this host.
    type: path
    required: true
  since:
    description: Epoch time at which an earlier push of this tree began.
    type: float
  listing:
    description:
      - A private file of this host. Without I(since) the push writes to it the directories
        that did not change while it ran; with I(since) it is read, and a directory whose
        change time moved but whose names, mode, owner and xattrs are as then counts as
        unchanged (a checkpoint touches the container's /tmp).
    type: path
extends_documentation_fragment:
  - edge.sync
  - edge.push_only
seealso:
  - module: edge_sync
    description: Pushes a checkpoint directory.
  - module: edge_volume
    description: Makes the volumes on the destination before their content is pushed.
requirements: [rsync (with ACL and xattr support) and ssh on both hosts, root on both]
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Copy the container's writable layer into the destination container's
  edge_fs_sync:
    src: /var/lib/docker/overlay2/3f1c.../diff
    dest_host: 10.0.0.12
    dest_dir: /var/lib/docker/overlay2/9a2b.../diff
    ssh_key: /root/.ssh/edge_migrate
    known_hosts: /etc/edge-migrate/known_hosts
  register: layer_copy
"""

RETURN = r"""
unchanged:
  description: Whether nothing was sent because nothing changed since I(since).
  type: bool
  returned: success
  sample: false
bytes_sent:
  description: Bytes rsync sent over the wire.
  type: int
  returned: success
  sample: 20480
files_transferred:
  description: Regular files sent.
  type: int
  returned: success
  sample: 3
started_at:
  description: Epoch time at which this push began (the I(since) of the next push).
  type: float
  returned: success
  sample: 1764129600.123
duration_s:
  description: Seconds spent.
  type: float
  returned: success
  sample: 0.4012
listing:
  description: The file the stable directories were written to.
  type: str
  returned: when I(listing) was written
  sample: /var/lib/edge-migrate/openface-20261126T040000/layer.listing
cmd:
  description: The rsync command run.
  type: str
  returned: when something was sent
  sample: rsync -aHAX --numeric-ids --delete ... /var/lib/docker/overlay2/3f1c.../diff/
    root@10.0.0.12:/var/lib/docker/overlay2/9a2b.../diff/
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_fs import push_tree
from ansible.module_utils.edge_module import fail, runner
from ansible.module_utils.edge_transfer import SYNC_ARGS, push_options


def main():
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True),
                                              since=dict(type="float"), listing=dict(type="path"), **SYNC_ARGS),
                           supports_check_mode=False)
    params = module.params
    if not os.path.isdir(params["src"]):
        module.fail_json(msg="src %s is not a directory on this host" % params["src"], cmd=None, rc=None, stderr="")
    try:
        stats = push_tree(runner(module), params["src"], params["dest_host"], params["dest_dir"], params["since"],
                          params["listing"], **push_options(params))
    except EdgeError as exc:
        fail(module, exc)
    except OSError as exc:
        fail(module, EdgeError("push of %s failed: %s" % (params["src"], exc)))
    module.exit_json(changed=not stats["unchanged"], **stats)


if __name__ == "__main__":
    main()
