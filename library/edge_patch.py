#!/usr/bin/python
"""Ansible module: rebuild a checkpoint from a base and an xdelta3 delta, and verify it."""

DOCUMENTATION = r"""
module: edge_patch
short_description: Rebuild a checkpoint from the warm-up checkpoint and a delta, checking every file
description:
  - Applies the xdelta3 patches of I(delta_dir) (made by M(edge_delta)) to I(base_dir),
    copies the files sent whole, and writes the result to I(dest_dir).
  - Every rebuilt file's sha256 must equal the one the source recorded in the manifest;
    otherwise the module fails naming the file, and nothing may be restored from I(dest_dir).
options:
  base_dir:
    description: The warm-up checkpoint on this host.
    type: path
    required: true
  delta_dir:
    description: The delta received from the source.
    type: path
    required: true
  dest_dir:
    description: Where to rebuild the final checkpoint (created C(0700), emptied first).
    type: path
    required: true
  workers:
    description: Parallel decodes (default the number of CPUs).
    type: int
requirements: [xdelta3 on the host]
attributes:
  check_mode:
    support: full
    description: Checks that the base and the delta's manifest are there; rebuilds nothing and returns none of
      the counts.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_delta
    description: Writes the delta on the source.
  - module: edge_restore
    description: Can rebuild the checkpoint itself (I(patch_base_dir), I(patch_delta_dir)).
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Rebuild the final checkpoint on the destination
  edge_patch:
    base_dir: /var/lib/edge-migrate/openface-1/base
    delta_dir: /var/lib/edge-migrate/openface-1/delta
    dest_dir: /var/lib/edge-migrate/openface-1/final
"""

RETURN = r"""
files:
  description: Number of files rebuilt and verified.
  type: int
  returned: success, not in check mode
  sample: 42
bytes:
  description: Size of the rebuilt checkpoint.
  type: int
  returned: success, not in check mode
  sample: 268435456
duration_s:
  description: Seconds spent.
  type: float
  returned: success, not in check mode
  sample: 1.0412
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_images import MANIFEST, ImageSetError, decode, remove_tree
from ansible.module_utils.edge_module import fail, runner


def main():
    module = AnsibleModule(argument_spec=dict(
        base_dir=dict(type="path", required=True),
        delta_dir=dict(type="path", required=True),
        dest_dir=dict(type="path", required=True),
        workers=dict(type="int"),
    ), supports_check_mode=True)
    params = module.params
    if module.check_mode:
        # What a real run needs before it writes anything: the base and the delta's manifest.
        missing = [path for path in (params["base_dir"], os.path.join(params["delta_dir"], MANIFEST))
                   if not os.path.exists(path)]
        if missing:
            module.fail_json(msg="nothing to rebuild from: %s missing" % ", ".join(missing))
        module.exit_json(changed=True)
    begin = time.monotonic()
    try:
        remove_tree(params["dest_dir"])
        rebuilt = decode(runner(module), params["base_dir"], params["delta_dir"], params["dest_dir"], params["workers"])
    except (ImageSetError, OSError) as exc:
        remove_tree(params["dest_dir"])
        fail(module, exc)
    module.exit_json(changed=True, duration_s=round(time.monotonic() - begin, 4), **rebuilt)


if __name__ == "__main__":
    main()
