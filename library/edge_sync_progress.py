#!/usr/bin/python
"""Ansible module: how far a background edge_sync has come, and whether it has ended."""

DOCUMENTATION = r"""
module: edge_sync_progress
short_description: Report the progress of an edge_sync running in the background
description:
  - Watches an M(edge_sync) started with C(async) and C(poll) 0, that is its job's status file
    (I(results_file)) and its I(progress_file). Returns as soon as the job has ended, or after
    I(wait) seconds with the transfer's progress. Repeated with C(until) on I(finished), each
    retry shows how far the transfer has come (the C(edge_story) callback prints it) instead of
    a silent wait, and the loop ends at most a tenth of a second after the transfer.
  - Changes nothing, unless asked to I(stop) the push, or the job has ended and I(erase) is set.
    Once the job has ended, its result is returned as I(job) (no
    M(ansible.builtin.async_status) call is needed), and the module fails with the job's
    C(msg), C(cmd), C(rc) and C(stderr) when the job failed.
options:
  results_file:
    description: The C(results_file) of the background M(edge_sync)'s registered result.
    type: path
    required: true
  progress_file:
    description: The I(progress_file) given to that M(edge_sync).
    type: path
    required: true
  wait:
    description: Seconds to watch the job before returning with its progress, when it has not ended.
    type: float
    default: 2
  stop:
    description:
      - End the push now when it has not ended (a migration that stops before its warm-up copy is
        done, so that nothing more arrives on the destination after its cleanup), instead of
        watching it. Only a push started by M(edge_checkpoint) I(push), whose status file names
        its process; the status file then says it failed, and this module does not fail.
    type: bool
    default: false
  erase:
    description:
      - Once the job has ended and its result is read (or it was ended by I(stop)), remove
        I(results_file) and I(progress_file), so that no call after this one acts on them.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reads only; with I(stop), says whether it would end the push. Removes no file.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - A status file that is not there (yet) is a job that has not ended; bound the wait with C(retries).
seealso:
  - module: edge_sync
    description: The push it watches.
  - module: ansible.builtin.async_status
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The checkpoint on its way to the destination
  edge_sync_progress:
    results_file: "{{ copy_job.results_file }}"
    progress_file: /run/edge-migrate-jobs/openface-1.warmup.progress
    wait: 2
  register: copy_progress
  until: copy_progress.finished
  retries: 1800
  delay: 0
"""

RETURN = r"""
finished:
  description: The background job has ended, successfully or not.
  type: bool
  returned: always
  sample: false
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
      description: Time left at that rate, H:MM:SS (at 100 %, the time the copy took).
      type: str
    done:
      description: rsync has exited.
      type: bool
  sample: {bytes: 33554432, total_bytes: 268435456, percent: 12, rate: 2.34MB/s, time_left: "0:01:20", done: false}
erased:
  description: I(results_file) and I(progress_file) were removed (I(erase)).
  type: bool
  returned: always
  sample: true
stopped:
  description: With I(stop), the push had not ended and was ended (would be, in check mode).
  type: bool
  returned: when I(stop)
  sample: true
job:
  description: The background M(edge_sync)'s own result, once it has ended.
  type: dict
  returned: when finished
  sample: {changed: true, bytes_sent: 33554432, duration_s: 3.1, compressed: false}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_async_job import wait_for_result
from ansible.module_utils.edge_progress import read_progress
from ansible.module_utils.edge_push_job import stop_push_job

SHOWN = ("bytes", "total_bytes", "percent", "rate", "time_left", "done")
CHECK_EVERY = 0.1


def erase(module):
    """Remove the job's files once it has ended: True when there were any."""
    if not module.params["erase"] or module.check_mode:
        return False
    removed = False
    for path in (module.params["results_file"], module.params["progress_file"]):
        try:
            os.unlink(path)
            removed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            module.fail_json(msg="cannot remove %s of the ended push: %s" % (path, exc), finished=True)
    return removed


def stop(module):
    results_file = module.params["results_file"]
    if module.check_mode:
        module.exit_json(changed=False, stopped=wait_for_result(results_file, 0, CHECK_EVERY) is None,
                         finished=False, progress={}, erased=False)
    stopped = stop_push_job(results_file)
    job = wait_for_result(results_file, 0, CHECK_EVERY)
    erased = erase(module)
    module.exit_json(changed=stopped or erased, stopped=stopped, finished=job is not None, progress={},
                     erased=erased, **({"job": job} if job is not None else {}))


def main():
    module = AnsibleModule(argument_spec=dict(
        results_file=dict(type="path", required=True),
        progress_file=dict(type="path", required=True),
        wait=dict(type="float", default=2),
        stop=dict(type="bool", default=False),
        erase=dict(type="bool", default=True)), supports_check_mode=True)
    if module.params["stop"]:
        stop(module)
    job = wait_for_result(module.params["results_file"], module.params["wait"], CHECK_EVERY)
    progress = read_progress(module.params["progress_file"]) or {}
    result = dict(changed=False, finished=job is not None, erased=False,
                  progress={key: progress[key] for key in SHOWN if key in progress})
    if job is not None:
        result["job"] = job
        result["erased"] = result["changed"] = erase(module)
        if job.get("failed"):
            module.fail_json(msg=job.get("msg") or "the background transfer failed", cmd=job.get("cmd"),
                             rc=job.get("rc"), stderr=job.get("stderr"), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
