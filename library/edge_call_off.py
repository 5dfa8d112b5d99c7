#!/usr/bin/python
"""Ansible module: call off a destination's waiting restore, or learn how it ended."""

DOCUMENTATION = r"""
module: edge_call_off
short_description: Call off the destination's waiting restore of a migration, or wait for its outcome
description:
  - A live migration starts the destination's restore before the freeze (M(edge_restore)
    I(wait_for_file)); it restores as soon as the source's final push arrives, without the
    controller. A rollback or a recovery must not act while that restore may still start
    the service, or the service could end up running twice.
  - Creates I(claim_file) exclusively, which makes a restore that has not taken up the
    source's signal give up. If the restore created it first, waits until the restore has
    ended and returns how (C(restored) - the service runs on this host with its state - or
    C(failed)); a restore process that died without saying counts as C(failed).
  - Nothing to do (C(changed=false)) when the migration's directory is not on this host or
    the migration was already called off.
options:
  claim_file:
    description: The claim file the restore was given (M(edge_restore) I(claim_file)).
    type: path
    required: true
  wait_timeout:
    description: Seconds to wait for a restore that holds the claim to end.
    type: float
    default: 180
attributes:
  check_mode:
    support: full
    description: Reads the claim file and reports whether this call would call the restore off; creates
      nothing and does not wait for a restore at work.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Runs on the destination edge, where the restore waits (C(delegate_to) the destination).
seealso:
  - module: edge_restore
    description: The restore that I(wait_for_file) and I(claim_file) make wait for the source.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Rollback | call off the destination's restore, or wait for it
  edge_call_off:
    claim_file: /var/lib/edge-migrate/work/openface-20261126T040000/claim
  delegate_to: edge2
  register: migration_call_off
"""

RETURN = r"""
restore:
  description:
    - What the destination's restore did - C(none) (called off now, it had not started, or there
      is no migration directory), C(called-off) (by an earlier call), C(restored), C(failed),
      or C(restoring) (still at work after I(wait_timeout)).
  type: str
  returned: always
  sample: called-off
called_off:
  description: Whether this call made the waiting restore give up.
  type: bool
  returned: always
  sample: true
"""

import os

from ansible.module_utils import edge_claim as claim
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(
        claim_file=dict(type="path", required=True),
        wait_timeout=dict(type="float", default=180),
    ), supports_check_mode=True)
    path = module.params["claim_file"]
    if not os.path.isdir(os.path.dirname(path)):
        module.exit_json(changed=False, restore="none", called_off=False)
    state, _pid = claim.read(path)
    if module.check_mode:
        module.exit_json(changed=not state, restore=state or "none", called_off=not state)
    try:
        won, state = claim.claim(path, claim.CALLED_OFF)
    except OSError as exc:
        module.fail_json(msg="could not call off the restore through %s: %s" % (path, exc), cmd=None, rc=None,
                         stderr=str(exc))
    if won:
        module.exit_json(changed=True, restore="none", called_off=True)
    if state == claim.RESTORING:
        state = claim.outcome(path, module.params["wait_timeout"])
    module.exit_json(changed=False, restore=state or "none", called_off=False)


if __name__ == "__main__":
    main()
