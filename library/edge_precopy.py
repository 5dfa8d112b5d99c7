#!/usr/bin/python
"""Ansible module: more warm-up rounds (iterative pre-copy) while the service keeps running."""

DOCUMENTATION = r"""
module: edge_precopy
short_description: Repeated warm-up rounds that bring the destination's copy of the checkpoint up to date
description:
  - Runs on the source after the first warm-up checkpoint (I(base_dir)) has been pushed to
    the destination (I(dest_dir)). Each round checkpoints the running service again
    (it keeps running), sends only what changed onto the destination's copy (rsync's
    delta transfer, 4 KiB blocks) and makes that checkpoint the new I(base_dir), so the
    final delta in the frozen window only holds what changed since the last round.
  - Stops when the changed bytes of a round are below I(dirty_threshold), when they did
    not shrink by more than I(min_shrink) against the round before, or after
    I(max_rounds) rounds, as P.Haul and LXD do. Each round's checkpoint pauses the
    service as long as CRIU's dump (without the kernel's soft-dirty tracking there is no
    cheaper pre-dump).
options:
  name:
    description: Container name.
    type: str
    required: true
  base_dir:
    description: The last warm-up checkpoint on this host, replaced by each round's.
    type: path
    required: true
  max_rounds:
    description: Rounds at most (beyond the first warm-up).
    type: int
    default: 4
  dirty_threshold:
    description: Stop once a round sends fewer changed bytes than this.
    type: int
    default: 1048576
  min_shrink:
    description: Stop once a round's changed bytes are not at least this fraction smaller than the round before's.
    type: float
    default: 0.1
extends_documentation_fragment:
  - edge
  - edge.checkpoint
  - edge.sync
requirements: [docker (Python SDK), CRIU, rsync, ssh]
attributes:
  check_mode:
    support: full
    description: Checks that the warm-up checkpoint is there; takes and pushes no round and returns no rounds,
      a null I(stop_reason) and an empty I(pages_sha256).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_checkpoint
    description: Takes the first warm-up checkpoint (I(base_dir)).
  - module: edge_sync
    description: Pushes it to the destination before the rounds.
  - module: edge_freeze
    description: The final checkpoint and delta, against the last round's I(base_dir).
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Bring edge2's copy of openface's warm-up checkpoint up to date
  edge_precopy:
    name: openface
    base_dir: /var/lib/edge-migrate/openface-1/base
    dest_host: 10.77.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/base
"""

RETURN = r"""
rounds:
  description: One entry per round, with C(checkpoint_s), C(sync_s), C(bytes_sent), C(dirty_bytes) (rsync's literal
    data).
  type: list
  elements: dict
  returned: success
  contains:
    checkpoint_s:
      description: Seconds the round's checkpoint took.
      type: float
    sync_s:
      description: Seconds its push took.
      type: float
    bytes_sent:
      description: Bytes sent over the wire.
      type: int
    dirty_bytes:
      description: rsync's literal data, what changed since the round before.
      type: int
  sample: [{checkpoint_s: 1.2, sync_s: 0.8, bytes_sent: 12582912, dirty_bytes: 12451840}]
stop_reason:
  description: Why the rounds stopped (C(threshold), C(not_shrinking), C(max_rounds)).
  type: str
  returned: success
  sample: threshold
bytes_sent:
  description: Bytes sent over all rounds.
  type: int
  returned: success
  sample: 16777216
pages_sha256:
  description: sha256 of each memory pages file of the last round's checkpoint (the new I(base_dir)).
  type: dict
  returned: success
  sample: {pages-1.img: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import inspect_container
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_images import pages_checksums, remove_tree
from ansible.module_utils.edge_module import CHECKPOINT_ARGS, DOCKER_ARGS, docker_api, fail, runner, take_checkpoint
from ansible.module_utils.edge_transfer import OVER_AN_OLDER_COPY, SYNC_ARGS, push, push_options

ROUND_BLOCK_SIZE = 4096  # a page: the unit a process dirties


def stop_reason(rounds, params):
    """Why no further round is worth it, or None."""
    dirty = rounds[-1]["dirty_bytes"]
    if dirty < params["dirty_threshold"]:
        return "threshold"
    if len(rounds) > 1 and dirty > (1 - params["min_shrink"]) * rounds[-2]["dirty_bytes"]:
        return "not_shrinking"
    if len(rounds) >= params["max_rounds"]:
        return "max_rounds"
    return None


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        base_dir=dict(type="path", required=True),
        max_rounds=dict(type="int", default=4),
        dirty_threshold=dict(type="int", default=1 << 20),
        min_shrink=dict(type="float", default=0.1),
        **SYNC_ARGS, **CHECKPOINT_ARGS, **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    if not os.path.isdir(params["base_dir"]):
        module.fail_json(msg="the warm-up checkpoint %s is missing on this host" % params["base_dir"],
                         cmd=None, rc=None, stderr="")
    if params["max_rounds"] < 1:
        module.exit_json(changed=False, rounds=[], stop_reason="max_rounds", bytes_sent=0,
                         pages_sha256=pages_checksums(params["base_dir"]))
    if module.check_mode:
        module.exit_json(changed=True, rounds=[], stop_reason=None, bytes_sent=0, pages_sha256={})
    checkpoint_dir = os.path.dirname(params["base_dir"].rstrip("/"))
    round_dir = os.path.join(checkpoint_dir, "round")
    rounds, reason = [], None
    try:
        api = docker_api(module)
        while reason is None:
            inspect = inspect_container(api, params["name"])
            if inspect is None or not inspect["State"].get("Running"):
                raise EdgeError("container %s stopped running during the warm-up rounds" % params["name"])
            remove_tree(round_dir)
            begin = time.monotonic()
            take_checkpoint(module, api, inspect, checkpoint_dir, "round", leave_running=True)
            os.chmod(round_dir, 0o700)
            checkpointed = time.monotonic()
            stats = push(runner(module), round_dir, params["dest_host"], params["dest_dir"], whole_file=False,
                         inplace=False, extra_args=["--block-size=%d" % ROUND_BLOCK_SIZE] + list(OVER_AN_OLDER_COPY),
                         **push_options(params))
            remove_tree(params["base_dir"])
            os.rename(round_dir, params["base_dir"])
            rounds.append(dict(checkpoint_s=round(checkpointed - begin, 4),
                               sync_s=round(time.monotonic() - checkpointed, 4),
                               bytes_sent=stats["bytes_sent"], dirty_bytes=stats["literal_data"]))
            reason = stop_reason(rounds, params)
    except EdgeError as exc:
        remove_tree(round_dir)
        fail(module, exc, rounds=rounds)
    module.exit_json(changed=True, rounds=rounds, stop_reason=reason, bytes_sent=sum(r["bytes_sent"] for r in rounds),
                     pages_sha256=pages_checksums(params["base_dir"]))


if __name__ == "__main__":
    main()
