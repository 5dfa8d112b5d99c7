#!/usr/bin/python
"""Ansible module: the destination's side of an estimate (task hand-over time, image pull)."""

DOCUMENTATION = r"""
module: edge_estimate_mark
short_description: Tell when a task started on the destination and time the image pull there
description:
  - Returns the epoch time at which it started and finished, so that the play can measure
    what an Ansible task costs on this host and the hand-over from a task on another host
    (M(edge_estimate) runs on the source just before).
  - With I(image), pulls the image as a migration's warm-up will, and times the pull.
  - C(changed) only when the image was not on this host.
options:
  image:
    description: Image to pull on this host.
    type: str
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK)]
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Pulls nothing and returns only the times; C(changed) is false even when a pull would bring
      the image.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_estimate
    description: Measures the source's side.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Hand-over time and image pull on the destination
  edge_estimate_mark:
    image: 10.77.0.1:5000/openface-standin:latest
"""

RETURN = r"""
started_at:
  description: Epoch time at which the module started.
  type: float
  returned: always
  sample: 1764129631.789
finished_at:
  description: Epoch time at which the module finished its work.
  type: float
  returned: always
  sample: 1764129634.012
duration_s:
  description: Seconds the module worked.
  type: float
  returned: always
  sample: 2.2231
image_present:
  description: Whether the image was on this host before the pull.
  type: bool
  returned: when I(image) is given, not in check mode
  sample: true
pull_s:
  description: Seconds the pull took.
  type: float
  returned: when I(image) is given, not in check mode
  sample: 2.1874
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import image_present, pull
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail


def main():
    module = AnsibleModule(argument_spec=dict(image=dict(type="str"), **DOCKER_ARGS), supports_check_mode=True)
    result = dict(changed=False, started_at=time.time())
    begin = time.monotonic()
    image = module.params["image"]
    if image and not module.check_mode:
        try:
            api = docker_api(module)
            result["image_present"] = image_present(api, image)
            pull(api, image)
        except EdgeError as exc:
            fail(module, exc, **result)
        result["pull_s"] = round(time.monotonic() - begin, 4)
        result["changed"] = not result["image_present"]
    result["finished_at"] = time.time()
    result["duration_s"] = round(time.monotonic() - begin, 4)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
