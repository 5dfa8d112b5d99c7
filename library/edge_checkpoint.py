#!/usr/bin/python
"""Ansible module: checkpoint a running container into a private directory."""

DOCUMENTATION = r"""
module: edge_checkpoint
short_description: Checkpoint a running container with CRIU through the Docker Engine
description:
  - Dumps the memory state of a running container into I(checkpoint_dir)/I(checkpoint_name)
    through the engine's checkpoint endpoint. With I(leave_running) the container goes on
    running (a warm-up checkpoint); without it the container stops (the final checkpoint),
    its restart policy first set to C(no) so that dockerd does not restart it here.
  - The directory is created C(0700), as memory images hold the process's secrets.
  - A checkpoint of the same name left by an earlier run is replaced.
options:
  name:
    description: Container name (or id).
    type: str
    required: true
  checkpoint_dir:
    description: Parent directory of the checkpoint on this host.
    type: path
    required: true
  checkpoint_name:
    description: Name of the checkpoint (its subdirectory).
    type: str
    required: true
  leave_running:
    description: Keep the container running after the dump.
    type: bool
    default: true
  pages_checksums:
    description:
      - Also return the sha256 of the memory pages files (C(pages_sha256)), for the
        destination to check its copy before the freeze (M(edge_restore) I(base_sha256)).
    type: bool
    default: false
  push:
    description:
      - Start the copy of the checkpoint to another edge as soon as it is taken, in a process of
        its own that this module leaves running (no background job of Ansible's to start, a
        module call less), and return. Its keys are M(edge_sync)'s options except I(src)
        (I(dest_host) and I(dest_dir) required; I(ssh_key), I(known_hosts), I(ssh_control_path),
        I(compress_auto), I(progress_file)...), I(status_file), the file (written C(0600)) where
        the copy writes its end as a background job's status file, with M(edge_sync)'s result,
        for M(edge_sync_progress) I(results_file), and
        I(time_limit), the seconds after which the copy is ended and fails (0, the default, none).
      - I(status_file) and I(progress_file) must be in a directory only root writes to (created
        C(0700) when missing, refused when open to others), never the migration's directory, which
        other edges' keys may write to. The status file names the process that
        M(edge_sync_progress) I(stop) ends.
      - Not in check mode.
    type: dict
extends_documentation_fragment:
  - edge
  - edge.checkpoint
requirements: [docker (Python SDK), CRIU on the host]
attributes:
  check_mode:
    support: full
    description: Checks that the container runs; takes no checkpoint and returns only I(path).
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - With I(leave_running=false) the container's restart policy is set to C(no) before the dump;
    M(edge_container) with I(state=present) and I(restart_policy) gives it back.
seealso:
  - module: edge_sync
    description: Pushes the checkpoint to the destination.
  - module: edge_delta
    description: Delta of a later checkpoint against this one.
  - module: edge_restore
    description: Starts the container from the checkpoint on the destination.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Warm-up checkpoint, container keeps running
  edge_checkpoint:
    name: openface
    checkpoint_dir: /var/lib/edge-migrate/openface-1
    checkpoint_name: base
    leave_running: true
"""

RETURN = r"""
path:
  description: Directory holding the memory images.
  type: str
  returned: success
  sample: /var/lib/edge-migrate/openface-1/base
size_bytes:
  description: Total size of the images.
  type: int
  returned: success, not in check mode
  sample: 268435456
pages_sha256:
  description: sha256 of each memory pages file.
  type: dict
  returned: when I(pages_checksums) is true, not in check mode
  sample: {pages-1.img: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
files:
  description: Number of image files.
  type: int
  returned: success, not in check mode
  sample: 42
duration_s:
  description: Time the checkpoint took, in seconds.
  type: float
  returned: success, not in check mode
  sample: 1.8342
method:
  description: How the checkpoint was taken (C(runc) or C(docker)).
  type: str
  returned: success, not in check mode
  sample: runc
restart_policy:
  description: The container's restart policy before the checkpoint (set to C(no) when it stops the container).
  type: dict
  returned: success, not in check mode
  contains:
    Name:
      description: The policy's name (C(no), C(always), C(unless-stopped), C(on-failure)).
      type: str
    MaximumRetryCount:
      description: Retries of C(on-failure).
      type: int
  sample: {Name: unless-stopped, MaximumRetryCount: 0}
criu_dump:
  description: CRIU's own dump statistics (times in seconds, page counts); empty with I(method=docker).
  type: dict
  returned: success, not in check mode
  sample: {freezing_time: 0.0012, frozen_time: 0.9871, memdump_time: 0.4123, pages_written: 65536}
push:
  description: The copy started with I(push).
  type: dict
  returned: when I(push) is given, not in check mode
  contains:
    status_file:
      description: Where the copy writes its end (M(edge_sync_progress) I(results_file)).
      type: str
    pid:
      description: The copying process.
      type: int
  sample: {status_file: /run/edge-migrate-jobs/openface-1.warmup.status, pid: 4242}
started_at:
  description: Epoch time at which the dump began (the container is frozen from then on when not left running).
  type: float
  returned: success, not in check mode
  sample: 1764129600.123
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.edge_docker import hold_restart_policy, inspect_container
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_images import list_files, make_private_dir, pages_checksums, remove_tree, tree_size
from ansible.module_utils.edge_module import CHECKPOINT_ARGS, DOCKER_ARGS, docker_api, fail, take_checkpoint
from ansible.module_utils.edge_push_job import PUSH_ARGS, start_push_job
from ansible.module_utils.edge_transfer import SYNC_ARGS


def push_parameters(module, push):
    """I(push) checked against edge_sync's options (and status_file), with their defaults; None without it."""
    if push is None:
        return None
    spec = dict(status_file=dict(type="path", required=True), time_limit=dict(type="int", default=0),
                **PUSH_ARGS, **SYNC_ARGS)
    checked = ArgumentSpecValidator(spec).validate(push)
    if checked.error_messages:
        module.fail_json(msg="push: %s" % "; ".join(checked.error_messages), cmd=None, rc=None, stderr="")
    return checked.validated_parameters


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        checkpoint_dir=dict(type="path", required=True),
        checkpoint_name=dict(type="str", required=True),
        leave_running=dict(type="bool", default=True),
        pages_checksums=dict(type="bool", default=False),
        push=dict(type="dict"),
        **CHECKPOINT_ARGS, **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    copy = push_parameters(module, params["push"])
    path = os.path.join(params["checkpoint_dir"], params["checkpoint_name"])
    try:
        api = docker_api(module)
        inspect = inspect_container(api, params["name"])
        if inspect is None or not inspect["State"].get("Running"):
            module.fail_json(msg="container %s is not running on this host; only a running container can be "
                             "checkpointed"
                             % params["name"], cmd="GET /containers/%s/json" % params["name"], rc=None, stderr="")
        if module.check_mode:
            module.exit_json(changed=True, path=path)
        policy = inspect["HostConfig"].get("RestartPolicy") or {}
        make_private_dir(params["checkpoint_dir"])
        if not params["leave_running"]:
            policy = hold_restart_policy(api, inspect, record_dir=params["checkpoint_dir"])
        remove_tree(path)
        started_at = time.time()
        begin = time.monotonic()
        criu_dump = take_checkpoint(module, api, inspect, params["checkpoint_dir"], params["checkpoint_name"],
                                    params["leave_running"])
        duration = time.monotonic() - begin
        os.chmod(path, 0o700)
    except (EdgeError, OSError) as exc:
        fail(module, exc)
    extra = {"pages_sha256": pages_checksums(path)} if params["pages_checksums"] else {}
    if copy:
        try:
            pid = start_push_job(copy["status_file"], path, copy, time_limit=copy["time_limit"])
        except (EdgeError, OSError) as exc:
            fail(module, exc, path=path)
        extra["push"] = dict(status_file=copy["status_file"], pid=pid)
    module.exit_json(changed=True, path=path, size_bytes=tree_size(path), files=len(list_files(path)), **extra,
                     duration_s=round(duration, 4), started_at=started_at, method=params["method"],
                     criu_dump=criu_dump, restart_policy=policy)


if __name__ == "__main__":
    main()
