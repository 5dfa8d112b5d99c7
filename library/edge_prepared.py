#!/usr/bin/python
"""Ansible module: record, find or drop a prepared migration on its source edge."""

DOCUMENTATION = r"""
module: edge_prepared
short_description: Record, find or drop a prepared migration on its source edge
description:
  - A prepared migration has done everything before the freeze (warm-up checkpoint on the
    destination, container created there, trial restore) and waits for its finish. Its
    record lives in the migration's directory on the source edge (C(prepared.json), C(0600)),
    so that any controller finds it.
  - With I(state=present) writes (or refreshes) the record of I(record), valid for I(ttl) seconds.
  - With I(state=query) returns the records under I(workdir) (of I(service) when given),
    checked (names, paths under I(workdir)); an expired one says so (C(expired)).
  - With I(state=absent) removes the record of I(migration_id) (its directory is the
    migration's clean-up's business).
  - With I(state=claimed) takes the record of I(migration_id) for its finish, atomically (a
    second finish fails), and returns it; an expired record is refused. From then on the
    migration is an ordinary one; if its finish is killed, the next run recovers it.
options:
  workdir:
    description: The migrations' directory on this edge.
    type: path
    required: true
  state:
    description: C(present), C(query), C(claimed) or C(absent).
    type: str
    choices: [present, query, claimed, absent]
    default: query
  service:
    description: With I(state=query), only this service's records.
    type: str
  record:
    description:
      - With I(state=present), what the finish needs (migration_id, service, source,
        destination, strategy, the two hosts' paths, the warm-up checkpoint and its pages'
        sha256...); unknown keys are dropped.
    type: dict
  ttl:
    description: With I(state=present), seconds the prepared migration stays valid.
    type: float
    default: 600
  migration_id:
    description: With I(state=absent) or I(state=claimed), the migration whose record it is.
    type: str
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: I(state=query) runs as usual. I(state=present) returns I(record) as given (unknown keys kept)
      and writes nothing; I(state=claimed) takes nothing and does not check that the record exists or has not
      expired; I(state=absent) reports whether the record is there.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Runs on the source edge, where the migration's directory is.
seealso:
  - module: edge_freeze
    description: I(claim_prepared) claims the record when it freezes.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record the prepared migration on the source
  edge_prepared:
    workdir: /var/lib/edge-migrate
    state: present
    record: {migration_id: openface-20261201T120000, service: openface, source: edge1, destination: edge2}

- name: Is openface's migration prepared here
  edge_prepared:
    workdir: /var/lib/edge-migrate
    service: openface
  register: prepared
"""

RETURN = r"""
prepared:
  description: The records found (I(state=query)), written (I(state=present)) or claimed, oldest first.
  type: list
  elements: dict
  returned: always
  sample: [{migration_id: openface-20261201T120000, service: openface, source: edge1, destination: edge2, strategy:
    delta, expires_at: 1764590400.0, expired: false}]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_prepared import MIGRATION_ID, RECORD, RecordError, claim, find, write


def main():
    module = AnsibleModule(argument_spec=dict(
        workdir=dict(type="path", required=True),
        state=dict(type="str", choices=["present", "query", "claimed", "absent"], default="query"),
        service=dict(type="str"),
        record=dict(type="dict"),
        ttl=dict(type="float", default=600),
        migration_id=dict(type="str"),
    ), required_if=[("state", "present", ("record",)), ("state", "absent", ("migration_id",)),
                    ("state", "claimed", ("migration_id",))],
        supports_check_mode=True)
    params = module.params
    try:
        if params["state"] == "query":
            module.exit_json(changed=False, prepared=find(params["workdir"], params["service"]))
        if params["state"] == "present":
            if not 0 < params["ttl"] <= 86400:
                module.fail_json(msg="ttl must be between 0 and 86400 seconds, not %s" % params["ttl"])
            if module.check_mode:
                module.exit_json(changed=True, prepared=[params["record"]])
            module.exit_json(changed=True, prepared=[write(params["workdir"], params["record"], params["ttl"])])
        if params["state"] == "claimed":
            if module.check_mode:
                module.exit_json(changed=True, prepared=[])
            module.exit_json(changed=True, prepared=[claim(params["workdir"], params["migration_id"])])
        if not MIGRATION_ID.match(params["migration_id"]):
            module.fail_json(msg="%r is not a migration id" % params["migration_id"])
        path = os.path.join(params["workdir"], params["migration_id"], RECORD)
        existed = os.path.exists(path)
        if existed and not module.check_mode:
            os.unlink(path)
        module.exit_json(changed=existed, prepared=[])
    except (RecordError, OSError) as exc:
        module.fail_json(msg="prepared migration record: %s" % exc, cmd=None, rc=None, stderr=str(exc))


if __name__ == "__main__":
    main()
