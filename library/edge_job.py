#!/usr/bin/python
"""Ansible module: wait for a background job on this host, take its result and remove its file."""

DOCUMENTATION = r"""
module: edge_job
short_description: Wait for a module run in the background and take its result, in one call
description:
  - Like M(ansible.builtin.async_status), for a job started with C(async) and C(poll) 0, but
    it watches the job's status file for up to I(wait) seconds and returns the moment the job
    ends, instead of answering at once and leaving the waiting to C(until) and C(delay); the
    loop ends within a few hundredths of a second of the job, not a round trip later.
  - Once the job has ended, returns the job's own result (as M(ansible.builtin.async_status)
    does, with C(finished)) and, with I(erase), removes its status file in the same call, so no
    C(mode=cleanup) call is needed. Such a file can hold what the job was given (a container's
    configuration with its secrets).
  - A job that failed fails this task with the job's own result (C(msg), C(cmd), C(rc),
    C(stderr)).
options:
  jid:
    description: The C(ansible_job_id) of the background task's registered result.
    type: str
    required: true
  async_dir:
    description: Where the job's status file is (the C(ansible_async_dir) the job was started with).
      Without it, C(.ansible_async) in the home directory of the user the module runs as, Ansible's default.
    type: path
  wait:
    description: Seconds to watch the job before returning with C(finished=false), when it has not ended (at most 60).
    type: float
    default: 2
  erase:
    description: Remove the job's status file once the job has ended and its result is read.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads the job's result; removes no file in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Fails with C(finished=true) when the job's status file is not there after I(wait) (a job
    already erased, or started elsewhere), as M(ansible.builtin.async_status) does.
seealso:
  - module: ansible.builtin.async_status
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Wait until the service runs on the destination
  edge_job:
    jid: "{{ restore_job.ansible_job_id }}"
    wait: 2
  register: restore
  until: restore.finished
  retries: 300
  delay: 0
  no_log: true
"""

RETURN = r"""
finished:
  description: The job has ended, successfully or not.
  type: bool
  returned: always
  sample: true
ansible_job_id:
  description: The job's id.
  type: str
  returned: always
  sample: "123456789.4242"
erased:
  description: The job's status file was removed by this call.
  type: bool
  returned: always
  sample: true
results_file:
  description: The job's status file.
  type: str
  returned: always
  sample: /root/.ansible_async/123456789.4242
"""

import os
import pwd

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_async_job import status_file, wait_for_result

CHECK_EVERY = 0.02


def main():
    module = AnsibleModule(argument_spec=dict(
        jid=dict(type="str", required=True),
        async_dir=dict(type="path"),
        wait=dict(type="float", default=2),
        erase=dict(type="bool", default=True)), supports_check_mode=True)
    params = module.params
    try:
        path = status_file(params["async_dir"] or os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".ansible_async"),
                           params["jid"])
    except ValueError as exc:
        # finished: nothing to wait for, an `until` loop on it ends here.
        module.fail_json(msg=str(exc), ansible_job_id=params["jid"], finished=True, erased=False)
    status = dict(ansible_job_id=params["jid"], results_file=path, erased=False)
    job = wait_for_result(path, params["wait"], CHECK_EVERY)
    if job is None and not os.path.exists(path):
        # Erased already, or never started here: waiting longer would not change that.
        module.fail_json(msg="could not find job %s in %s" % (params["jid"], os.path.dirname(path)),
                         started=True, finished=True, **status)
    if job is None:
        module.exit_json(changed=False, started=True, finished=False, **status)
    if params["erase"] and not module.check_mode:
        try:
            os.unlink(path)
            status["erased"] = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            module.fail_json(msg="cannot remove the status file of job %s: %s" % (params["jid"], exc),
                             finished=True, **status)
    result = dict(job, finished=True, **status)
    if result.get("failed"):
        result.pop("failed")
        module.fail_json(msg=result.pop("msg", None) or "the background job failed", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
