#!/usr/bin/python
"""Ansible module: remove the memory images containerd leaves in its temporary directory, and the
migration's own."""

DOCUMENTATION = r"""
module: edge_engine_temporaries
short_description: Remove the checkpoint copies containerd leaves in its temporary directory, and a migration's images
description:
  - containerd unpacks every checkpoint it restores, and writes every checkpoint the engine
    takes, into a C(ctrd-checkpoint*) directory of its temporary directory (C(TMPDIR), else
    C(/tmp)) and does not remove it. Those copies hold the process's memory, so they are removed.
  - A directory is removed when it names (edge-migrate runtime marker) a path under
    I(images_under), or when it has not changed for I(older_than) seconds (a checkpoint or
    restore in progress is younger).
  - The temporary directories searched are I(tmp_dirs) and the C(TMPDIR) of every running
    containerd.
options:
  images_under:
    description: The migration's directory; a copy whose marker names a path under it is removed at once.
    type: path
  older_than:
    description: Seconds after which any other copy that no process uses is removed.
    type: float
    default: 60
  remove_images_under:
    description:
      - Remove the I(images_under) directory itself too (the migration's own memory images), after
        containerd's copies of them, so that one call deletes all of a migration's memory on the host.
    type: bool
    default: false
  tmp_dirs:
    description: Temporary directories to search besides those of the running containerd processes.
    type: list
    elements: path
    default: [/tmp]
requirements: []
attributes:
  check_mode:
    support: full
    description: Lists in I(removed) the directories it would remove, with their I(bytes); removes none.
  diff_mode:
    support: none
    description: Returns no diff.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Remove containerd's copies of this migration's checkpoints
  edge_engine_temporaries:
    images_under: /var/lib/edge-migrate/openface-20261201T120000

- name: Remove them and the migration's directory with its memory images
  edge_engine_temporaries:
    images_under: /var/lib/edge-migrate/openface-20261201T120000
    remove_images_under: true
    older_than: 2
"""

RETURN = r"""
removed:
  description: The directories removed (would be removed, in check mode), containerd's copies then I(images_under).
  type: list
  elements: str
  returned: always
  sample: [/tmp/ctrd-checkpoint1234567890]
bytes:
  description: Bytes in them.
  type: int
  returned: always
  sample: 268435456
images_under_absent:
  description: I(images_under) does not exist any more (would not, in check mode); false unless I(remove_images_under).
  type: bool
  returned: always
  sample: true
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_engine_tmp import containerd_tmp_dirs, paths_in_use, stale_checkpoint_copies
from ansible.module_utils.edge_images import remove_tree, tree_size


def main():
    module = AnsibleModule(argument_spec=dict(
        images_under=dict(type="path"),
        remove_images_under=dict(type="bool", default=False),
        older_than=dict(type="float", default=60),
        tmp_dirs=dict(type="list", elements="path", default=["/tmp"]),
    ), required_if=[("remove_images_under", True, ["images_under"])], supports_check_mode=True)
    params = module.params
    images_under = params["images_under"]
    try:
        directories = sorted(set(params["tmp_dirs"]) | containerd_tmp_dirs())
        found = stale_checkpoint_copies(directories, images_under, params["older_than"], in_use=paths_in_use())
        if params["remove_images_under"] and os.path.lexists(images_under):
            found.append(images_under)
        size = sum(tree_size(path) for path in found)
    except OSError as exc:
        module.fail_json(msg="cannot list the memory images: %s" % exc, cmd=None, rc=None, stderr=str(exc))
    # One path that cannot be removed does not keep the others, the migration's own last, in place.
    errors = []
    for path in [] if module.check_mode else found:
        try:
            remove_tree(path)
        except OSError as exc:
            errors.append("%s: %s" % (path, exc))
    if errors:
        module.fail_json(msg="cannot remove the memory images: %s" % "; ".join(errors), cmd=None, rc=None,
                         stderr="\n".join(errors), removed=found, bytes=size)
    absent = bool(params["remove_images_under"])
    module.exit_json(changed=bool(found), removed=found, bytes=size, images_under_absent=absent)


if __name__ == "__main__":
    main()
