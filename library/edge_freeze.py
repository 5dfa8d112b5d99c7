#!/usr/bin/python
"""Ansible module: the source's side of the frozen window, in one call."""

DOCUMENTATION = r"""
module: edge_freeze
short_description: Final checkpoint, delta and push to the destination, in one call on the source
description:
  - The part of a migration that runs on the source while the service is frozen, in one
    module call so the frozen window holds a single Ansible round trip on this side
    (each task costs about 0.2 s).
  - Takes the final checkpoint (the container stops), then with I(mode=delta) writes the
    delta of its images against I(base_dir) (as M(edge_delta) does) and pushes only
    the delta to the destination; with I(mode=whole) pushes the whole final checkpoint
    with rsync onto the copy of the warm-up checkpoint the destination already holds.
  - On failure after the checkpoint the result has C(frozen=true) and C(final_dir); the
    container is stopped and its final checkpoint is on this host for a rollback.
  - A container whose restart policy would restart it after the checkpoint is set to
    C(no) first; the destination (or a rollback) gets the original policy back.
  - A container running a process started with C(docker exec) (not a health probe) is refused
    before anything is frozen, since the checkpoint holds the tree of its first process only and
    the move would end that process.
options:
  name:
    description: Container name.
    type: str
    required: true
  checkpoint_dir:
    description: Parent directory of the checkpoints of this migration on this host.
    type: path
    required: true
  checkpoint_name:
    description: Name of the final checkpoint.
    type: str
    default: final
  base_dir:
    description: Warm-up checkpoint on this host (required for I(mode=delta)).
    type: path
  delta_dir:
    description: Where the delta is written (I(mode=delta)).
    type: path
  mode:
    description: C(delta) sends the delta against I(base_dir), C(whole) sends the final checkpoint with rsync.
    type: str
    choices: [delta, whole]
    default: delta
  also_push:
    description:
      - More directories pushed to the destination right after the memory images, all at
        once, in the phase C(final_fs_sync), as M(edge_fs_sync) pushes them (the service's
        writable layer and volumes, whose final state exists once it is stopped).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Directory on this host.
        type: path
        required: true
      dest:
        description: Directory on the destination.
        type: path
        required: true
      since:
        description: When the warm-up push of this directory began; unchanged since then, it is not sent again.
        type: float
      listing:
        description: The directories that push found stable (M(edge_fs_sync) I(listing)).
        type: path
  base_sha256:
    description:
      - sha256 of the memory pages files of I(base_dir) (M(edge_checkpoint) C(pages_sha256)),
        written into the manifest for a destination that checks its copy before the freeze.
    type: dict
  done_marker:
    description:
      - File created on the destination once everything has been pushed. It is the signal for a
        M(edge_restore) waiting there with I(wait_for_file), which saves the frozen window a
        round trip through the controller.
    type: path
  claim_prepared:
    description:
      - The migration was prepared (M(edge_prepared)); its record in I(checkpoint_dir) is
        claimed first, atomically, and nothing is frozen if that fails (finished, cancelled,
        expired, or taken by another finish).
    type: bool
    default: false
extends_documentation_fragment:
  - edge
  - edge.delta
  - edge.checkpoint
  - edge.sync
requirements: [docker (Python SDK), CRIU, xdelta3, rsync, ssh]
attributes:
  check_mode:
    support: full
    description: Checks that the container runs and the warm-up checkpoint is there; freezes and pushes
      nothing (C(changed=true), C(frozen=false)).
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Runs on the source and pushes straight to the destination over SSH, where the destination's forced command
    (role edge_ssh_trust) lets this host's key write only below the migration directories.
seealso:
  - module: edge_restore
    description: Restores the pushed checkpoint on the destination (I(wait_for_file) waits for
      I(done_marker)).
  - module: edge_precopy
    description: Warm-up rounds that make the final delta smaller.
  - module: edge_delta
    description: The same delta, as a module of its own.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Freeze openface and send the delta to edge2
  edge_freeze:
    name: openface
    checkpoint_dir: /var/lib/edge-migrate/openface-1
    base_dir: /var/lib/edge-migrate/openface-1/base
    delta_dir: /var/lib/edge-migrate/openface-1/delta
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/delta
"""

RETURN = r"""
phases:
  description: Seconds per phase (checkpoint, xdelta_source, final_fs_sync (beside xdelta_source), final_rsync).
  type: dict
  returned: always
  sample: {checkpoint: 1.2031, xdelta_source: 0.8123, final_fs_sync: 0.4012, final_rsync: 0.6231}
phase_spans:
  description: When each phase of I(phases) began and ended, epoch seconds (the frozen window's timeline in the report).
  type: dict
  returned: always
  sample: {checkpoint: [1764129701.1021, 1764129701.3052], final_rsync: [1764129701.3060, 1764129701.4411]}
frozen:
  description: Whether the container was checkpointed (and so is stopped).
  type: bool
  returned: always
  sample: true
frozen_at:
  description: Epoch time at which the final dump began.
  type: float
  returned: when frozen
  sample: 1764129700.123
final_dir:
  description: The final checkpoint on this host.
  type: str
  returned: always
  sample: /var/lib/edge-migrate/openface-20261126T040000/final
checkpoint_size:
  description: Size of the final checkpoint.
  type: int
  returned: when frozen
  sample: 268435456
bytes_sent:
  description: Bytes sent to the destination during the freeze.
  type: int
  returned: success, not in check mode
  sample: 8421376
delta_bytes:
  description: Size of the delta (I(mode=delta)).
  type: int
  returned: success with I(mode=delta), not in check mode
  sample: 8388608
criu_dump:
  description: >-
    CRIU's own dump statistics (freezing, frozen, memdump, memwrite times in seconds, page counts);
    C(prefrozen_s) when the module froze the container's cgroup itself before CRIU (with I(method=runc)).
  type: dict
  returned: when frozen
  sample: {freezing_time: 0.0012, frozen_time: 1.1021, memdump_time: 0.4123, pages_written: 65536}
method:
  description: How the checkpoint was taken (C(runc) or C(docker)).
  type: str
  returned: always
  sample: runc
fs_sync:
  description: One entry per I(also_push) directory (src, dest, unchanged, bytes_sent, files_transferred, duration_s).
  type: list
  elements: dict
  returned: success when I(also_push) is given, not in check mode
  sample: [{src: /var/lib/docker/overlay2/3f1c.../diff, dest: /var/lib/docker/overlay2/9a2b.../diff, unchanged:
    false, bytes_sent: 20480, files_transferred: 3, duration_s: 0.4012}]
restart_policy:
  description: The container's restart policy before the freeze.
  type: dict
  returned: always
  sample: {Name: unless-stopped, MaximumRetryCount: 0}
"""

import concurrent.futures
import os
import select
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import exec_processes, hold_restart_policy, inspect_container
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_fs import push_trees
from ansible.module_utils.edge_images import DELTA_ARGS, encode, make_private_dir, remove_tree, tree_size
from ansible.module_utils.edge_module import (
    CHECKPOINT_ARGS,
    DOCKER_ARGS,
    Phases,
    docker_api,
    fail,
    runner,
    take_checkpoint,
)
from ansible.module_utils.edge_prepared import RecordError
from ansible.module_utils.edge_prepared import claim as claim_prepared
from ansible.module_utils.edge_transfer import OVER_AN_OLDER_COPY, SYNC_ARGS, push, push_options


def _controller_gone():
    """Whether whoever reads this module's output (the controller, through SSH) has gone: the
    write end of a pipe whose reader closed polls as an error. Best effort only: through
    Ansible's shared SSH connection the pipe can stay open after the controller is killed (the
    fault test saw the destination complete the move; a re-run then finds the service there)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))
    except (OSError, ValueError):
        return False


def _in_background(phases, name, function, *args, **kwargs):
    """Start function in a thread; its result() re-raises its error. Its duration is the phase name."""
    def timed():
        with phases(name):
            return function(*args, **kwargs)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    job = pool.submit(timed)
    pool.shutdown(wait=False)
    return job


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        checkpoint_dir=dict(type="path", required=True),
        checkpoint_name=dict(type="str", default="final"),
        base_dir=dict(type="path"),
        delta_dir=dict(type="path"),
        mode=dict(type="str", choices=["delta", "whole"], default="delta"),
        also_push=dict(type="list", elements="dict", default=[], options=dict(
            src=dict(type="path", required=True), dest=dict(type="path", required=True), since=dict(type="float"),
            listing=dict(type="path"))),
        done_marker=dict(type="path"),
        claim_prepared=dict(type="bool", default=False),
        base_sha256=dict(type="dict"),
        **DELTA_ARGS, **SYNC_ARGS, **CHECKPOINT_ARGS, **DOCKER_ARGS),
        required_if=[("mode", "delta", ("base_dir", "delta_dir"))],
        supports_check_mode=True)
    params = module.params
    final_dir = os.path.join(params["checkpoint_dir"], params["checkpoint_name"])
    phases = Phases()
    result = dict(changed=False, frozen=False, final_dir=final_dir, phases=phases.durations, phase_spans=phases.spans,
                  restart_policy={}, method=params["method"])
    try:
        api = docker_api(module)
        inspect = inspect_container(api, params["name"])
        if inspect is None or not inspect["State"].get("Running"):
            module.fail_json(msg="container %s is not running on this host, nothing to freeze" % params["name"],
                             cmd="GET /containers/%s/json" % params["name"], rc=None, stderr="", **result)
        if params["mode"] == "delta" and not os.path.isdir(params["base_dir"]):
            module.fail_json(msg="the warm-up checkpoint %s is missing on this host" % params["base_dir"],
                             cmd=None, rc=None, stderr="", **result)
        started = exec_processes(api, inspect)
        if started:
            module.fail_json(msg="%s runs processes started with docker exec (%s), which its checkpoint would leave "
                             "out and its move end: nothing was frozen" % (params["name"], ", ".join(started)),
                             cmd="GET /containers/%s/json" % params["name"], rc=None, stderr="", **result)
        if module.check_mode:
            module.exit_json(changed=True, **{k: v for k, v in result.items() if k != "changed"})
        if params["claim_prepared"]:
            directory = params["checkpoint_dir"].rstrip("/")
            claim_prepared(os.path.dirname(directory), os.path.basename(directory))
        make_private_dir(params["checkpoint_dir"])
        result["restart_policy"] = hold_restart_policy(api, inspect, record_dir=params["checkpoint_dir"])
        remove_tree(final_dir)
        result["changed"] = True
        result["frozen_at"] = time.time()
        with phases("checkpoint"):
            result["frozen"] = True  # from here on the container is stopped or stopping
            result["criu_dump"] = take_checkpoint(module, api, inspect, params["checkpoint_dir"],
                                                  params["checkpoint_name"], leave_running=False)
        os.chmod(final_dir, 0o700)
        result["checkpoint_size"] = tree_size(final_dir)
        # The files' final state exists once the service is stopped: they travel while the
        # memory images are encoded and sent.
        files = _in_background(phases, "final_fs_sync", push_trees, runner(module), params["also_push"],
                               params["dest_host"], **push_options(params)) if params["also_push"] else None
        if params["mode"] == "delta":
            with phases("xdelta_source"):
                remove_tree(params["delta_dir"])
                encode(runner(module), params["base_dir"], final_dir, params["delta_dir"],
                       params["min_delta_size"], params["workers"], page_delta=params["page_delta"],
                       base_checksums=params["base_sha256"])
            result["delta_bytes"] = tree_size(params["delta_dir"])
            sent_dir, whole_file = params["delta_dir"], True
        else:
            sent_dir, whole_file = final_dir, False
        if files:
            result["fs_sync"] = files.result()
        # The last push also leaves the signal; not when nobody would hear how this ends.
        marker = params["done_marker"] if params["done_marker"] and not _controller_gone() else None
        with phases("final_rsync"):
            stats = push(runner(module), sent_dir, params["dest_host"], params["dest_dir"],
                         whole_file=whole_file, inplace=False, done_marker=marker, extra_args=OVER_AN_OLDER_COPY,
                         **push_options(params))
        result["bytes_sent"] = stats["bytes_sent"]
    except RecordError as exc:
        fail(module, EdgeError("nothing was frozen: %s" % exc), **result)
    except EdgeError as exc:
        fail(module, exc, **result)
    except OSError as exc:
        fail(module, EdgeError("freeze of %s failed: %s" % (params["name"], exc)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
