#!/usr/bin/python
"""Ansible module: stop or remove a container, or give it back its restart policy."""

DOCUMENTATION = r"""
module: edge_container
short_description: Stop or remove a container on this host, or set its restart policy
description:
  - Used at the end of a migration (remove or keep stopped the source container) and by
    the C(cold) strategy (stop the source).
  - With I(state=present) and I(restart_policy), gives a container the restart policy it
    had before a migration set it to C(no) (a recovery after a killed controller).
options:
  name:
    description: Container name.
    type: str
    required: true
  state:
    description: C(absent) removes the container, C(stopped) stops it, C(present) leaves it as it is.
    type: str
    choices: [absent, stopped, present]
    default: absent
  restart_policy:
    description: With I(state=present), the restart policy to set when the container has another one.
    type: dict
  stop_timeout:
    description: Seconds to wait for a graceful stop before the kill.
    type: int
    default: 10
  only_created:
    description:
      - With I(state=absent), remove the container only while it has never been started (a
        container a migration created on its destination and did not restore); one that runs
        or has run is left as it is, with I(kept). A cancel acts on a record that another edge
        could have written, naming the host where the service runs.
    type: bool
    default: false
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK)]
attributes:
  check_mode:
    support: full
    description: Reports what it would stop, remove or change (C(changed), I(existed)) and does none of it.
  diff_mode:
    support: partial
    description: With I(state=present), the restart policy before and after (returned in every mode).
seealso:
  - module: edge_freeze
    description: Sets the restart policy to C(no) before the final checkpoint.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Remove the source container after the migration
  edge_container:
    name: openface
    state: absent

- name: Give the container back its restart policy
  edge_container:
    name: openface
    state: present
    restart_policy: {Name: unless-stopped}
"""

RETURN = r"""
existed:
  description: Whether a container of that name was there.
  type: bool
  returned: always
  sample: true
stopped_at:
  description:
    - Epoch time at which the container was gone (stopped or removed), the service's last
      moment on this host. A program that ignores SIGTERM keeps serving through the grace
      period (I(stop_timeout)), so this is taken after the stop, not before it.
  type: float
  returned: when changed
  sample: 1764129612.456
kept:
  description: With I(only_created), the state of a container left alone because it has been started
    (C(running), C(exited)...).
  type: str
  returned: when a started container was left alone
  sample: running
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError, inspect_container, remove, set_restart_policy, stop
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["absent", "stopped", "present"], default="absent"),
        restart_policy=dict(type="dict"),
        stop_timeout=dict(type="int", default=10),
        only_created=dict(type="bool", default=False),
        **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    try:
        api = docker_api(module)
        inspect = inspect_container(api, params["name"])
        if inspect is None:
            module.exit_json(changed=False, existed=False)
        if params["state"] == "present":
            current = (inspect["HostConfig"].get("RestartPolicy") or {}).get("Name") or "no"
            wanted = params["restart_policy"]
            changed = bool(wanted) and wanted.get("Name", "no") != current
            if changed and not module.check_mode:
                set_restart_policy(api, inspect["Id"], wanted)
            after = (wanted or {}).get("Name", current)
            diff = {"before": {"restart_policy": current}, "after": {"restart_policy": after}}
            module.exit_json(changed=changed, existed=True, diff=diff)
        if params["state"] == "absent" and params["only_created"] and inspect["State"].get("Status") != "created":
            module.exit_json(changed=False, existed=True, kept=inspect["State"].get("Status"))
        running = bool(inspect["State"].get("Running"))
        stopped_at = None
        changed = params["state"] == "absent" or running
        if changed and not module.check_mode:
            if params["state"] == "absent":
                remove(api, inspect["Id"])
            else:
                stop(api, inspect["Id"], params["stop_timeout"])
            stopped_at = time.time()
    except DockerError as exc:
        fail(module, exc)
    module.exit_json(changed=changed, existed=True, **({"stopped_at": stopped_at} if stopped_at else {}))


if __name__ == "__main__":
    main()
