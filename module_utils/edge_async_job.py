"""The result of a module Ansible runs in the background (`async`, `poll: 0`): its job's
status file, as async_wrapper writes it and ansible.builtin.async_status reads it."""

import json
import os
import re
import time

# async_wrapper names a job `j<random>.<pid>`; anything else is not a job id (it would be a path).
JOB_ID = re.compile(r"j?[0-9]+\.[0-9]+")


def job_result(results_file):
    """The job's result once it has ended, else None. As async_status decides: a status file
    without `started` holds the module's result. One not written yet (async_wrapper may return
    before its job has written it) has not ended."""
    try:
        with open(results_file) as handle:
            data = json.load(handle)
    except (OSError, ValueError):  # not there yet, or being written
        return None
    if not isinstance(data, dict):
        return {"failed": True, "msg": "the job's status file holds no result: %r" % (data,)}
    if "started" not in data or data.get("finished"):
        return data
    return None


def wait_for_result(results_file, wait, every=0.1, clock=time.monotonic):
    """job_result, watched for up to `wait` seconds (at most a minute) until the job ends."""
    deadline = clock() + max(0.0, min(wait, 60.0))
    job = job_result(results_file)
    while job is None and clock() < deadline:
        time.sleep(every)
        job = job_result(results_file)
    return job


def status_file(async_dir, jid):
    """The status file of job `jid` in `async_dir`; ValueError for what is not a job id."""
    if not isinstance(jid, str) or not JOB_ID.fullmatch(jid):
        raise ValueError("%r is not a background job's id (j<digits>.<digits>)" % (jid,))
    return os.path.join(async_dir, jid)
