#!/usr/bin/python
"""Ansible module: xdelta3 delta of a checkpoint against an earlier one."""

DOCUMENTATION = r"""
module: edge_delta
short_description: Binary delta of a checkpoint's memory images against an earlier checkpoint
description:
  - For every memory pages file of I(target_dir), writes a page delta against the pages at
    the same addresses in I(base_dir) (I(page_delta)); for every other file that also exists
    in I(base_dir) and is at least I(min_delta_size) bytes, an xdelta3 patch (source window
    sized to the file); other files are copied whole. Files are processed in parallel.
  - Writes C(MANIFEST.json) with every target file's size and sha256, which M(edge_patch)
    checks after rebuilding.
options:
  base_dir:
    description: The earlier checkpoint (the one the destination already has).
    type: path
    required: true
  target_dir:
    description: The checkpoint to describe.
    type: path
    required: true
  delta_dir:
    description: Where to write patches, small files and the manifest (created C(0700), emptied first).
    type: path
    required: true
  level:
    description: xdelta3 compression level (0-9); C(-1) keeps xdelta3's default.
    type: int
    default: 1
  sized_window:
    description:
      - Size xdelta3's source window (C(-B)) to the file. Without it xdelta3 uses its
        64 MiB default and misses matches further apart (kept for reproducing the
        reference prototype).
    type: bool
    default: true
extends_documentation_fragment:
  - edge.delta
requirements: [xdelta3 on the host]
attributes:
  check_mode:
    support: full
    description: Checks that both checkpoints are there and xdelta3 is installed; writes no delta and returns
      none of the sizes.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_checkpoint
    description: Takes the checkpoints compared.
  - module: edge_patch
    description: Rebuilds the target checkpoint from the delta on the destination.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Delta of the final checkpoint against the warm-up one
  edge_delta:
    base_dir: /var/lib/edge-migrate/openface-1/base
    target_dir: /var/lib/edge-migrate/openface-1/final
    delta_dir: /var/lib/edge-migrate/openface-1/delta
"""

RETURN = r"""
bytes:
  description: Size of what the delta directory holds (what has to be sent).
  type: int
  returned: success, not in check mode
  sample: 4194304
target_bytes:
  description: Size of the target checkpoint.
  type: int
  returned: success, not in check mode
  sample: 268435456
files:
  description: Target file count.
  type: int
  returned: success, not in check mode
  sample: 42
duration_s:
  description: Seconds spent.
  type: float
  returned: success, not in check mode
  sample: 0.9312
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_images import DELTA_ARGS, ImageSetError, encode, remove_tree, tree_size
from ansible.module_utils.edge_module import fail, runner


def main():
    module = AnsibleModule(argument_spec=dict(
        base_dir=dict(type="path", required=True),
        target_dir=dict(type="path", required=True),
        delta_dir=dict(type="path", required=True),
        level=dict(type="int", default=1),
        sized_window=dict(type="bool", default=True),
        **DELTA_ARGS), supports_check_mode=True)
    params = module.params
    for key in ("base_dir", "target_dir"):
        if not os.path.isdir(params[key]):
            module.fail_json(msg="%s %s is not a directory" % (key, params[key]), cmd=None, rc=None, stderr="")
    if module.get_bin_path("xdelta3") is None:
        module.fail_json(msg="xdelta3 is not installed on this host (apt install xdelta3)", cmd="xdelta3",
                         rc=None, stderr="")
    if module.check_mode:
        module.exit_json(changed=True)
    begin = time.monotonic()
    try:
        remove_tree(params["delta_dir"])
        manifest = encode(runner(module), params["base_dir"], params["target_dir"], params["delta_dir"],
                          params["min_delta_size"], params["workers"],
                          level=None if params["level"] < 0 else params["level"], sized_window=params["sized_window"],
                          page_delta=params["page_delta"])
    except (ImageSetError, OSError) as exc:
        fail(module, exc)
    module.exit_json(changed=True, bytes=tree_size(params["delta_dir"]), target_bytes=tree_size(params["target_dir"]),
                     files=len(manifest["files"]), duration_s=round(time.monotonic() - begin, 4))


if __name__ == "__main__":
    main()
