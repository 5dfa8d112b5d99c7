#!/usr/bin/python
"""Ansible module: how far a background edge_sync has come, and whether it has ended."""

DOCUMENTATION = r"""
module: edge_sync_progress
short_description: Report the progress of an edge_sync running in the background
description:
  - Reads the progress file of an M(edge_sync) started with C(async) and C(poll) 0 (its
    I(progress_file)), and that job's status file, and returns both. Repeated with C(until)
    on I(finished), each retry shows how far the transfer has come (the C(edge_story)
    callback prints it), instead of a silent wait.
  - Changes nothing; the transfer's own result comes from M(ansible.builtin.async_status)
    once I(finished) is true.
options:
  jid:
    description: The C(ansible_job_id) of the background M(edge_sync).
    type: str
    required: true
  progress_file:
    description: The I(progress_file) given to that M(edge_sync).
    type: path
    required: true
  async_dir:
    description: Where Ansible keeps the job's status file on this host (its C(async_dir)).
    type: path
    default: ~/.ansible_async
attributes:
  check_mode:
    support: full
    description: Reads only.
seealso:
  - module: ansible.builtin.async_status
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The checkpoint on its way to the destination
  edge_sync_progress:
    jid: "{{ copy_job.ansible_job_id }}"
    progress_file: /var/lib/edge-migrate/openface-1/warmup.progress
  register: copy_progress
  until: copy_progress.finished
  retries: 1800
  delay: 2
"""

RETURN = r"""
finished:
  description: The background job has ended (successfully or not), or its status file is gone.
  type: bool
  returned: always
progress:
  description: What the transfer last reported, empty before it has reported anything.
  type: dict
  returned: always
  contains:
    bytes:
      description: Bytes of the files sent so far.
      type: int
    total_bytes:
      description: Bytes of all the files to send.
      type: int
    percent:
      description: Percent of the whole, as rsync counts it.
      type: int
    rate:
      description: Current rate, as rsync prints it (e.g. C(2.34MB/s)).
      type: str
    time_left:
      description: Time left at that rate, H:MM:SS.
      type: str
    done:
      description: rsync has exited.
      type: bool
  sample: {bytes: 33554432, total_bytes: 268435456, percent: 12, rate: 2.34MB/s, time_left: "0:01:20", done: false}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_progress import read_progress

SHOWN = ("bytes", "total_bytes", "percent", "rate", "time_left", "done")


def job_finished(async_dir, jid):
    """As async_status decides: a status file without `started` holds the module's result."""
    path = os.path.join(async_dir, jid)  # a path option: Ansible expanded ~ already
    try:
        with open(path) as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return True
    except (OSError, ValueError):  # being written
        return False
    return not isinstance(data, dict) or "started" not in data or bool(data.get("finished"))


def main():
    module = AnsibleModule(argument_spec=dict(
        jid=dict(type="str", required=True),
        progress_file=dict(type="path", required=True),
        async_dir=dict(type="path", default="~/.ansible_async")), supports_check_mode=True)
    jid = module.params["jid"]
    if not jid or "/" in jid or jid in (".", ".."):
        module.fail_json(msg="jid %r is not a job id" % jid)
    progress = read_progress(module.params["progress_file"]) or {}
    module.exit_json(changed=False, finished=job_finished(module.params["async_dir"], jid),
                     progress={key: progress[key] for key in SHOWN if key in progress})


if __name__ == "__main__":
    main()
