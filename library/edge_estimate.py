#!/usr/bin/python
"""Ansible module: measure what a migration's time depends on, the service still running."""

DOCUMENTATION = r"""
module: edge_estimate
short_description: Measure a running service's checkpoint, dirty rate, delta and the link to a destination
description:
  - Runs on the source. Takes two checkpoints of the running container
    I(interval) seconds apart (it keeps running; C(runc --leave-running) by default), measures
    their size and duration, encodes the delta between them with the migration's own delta
    code and rebuilds the second from it (timing both), times an rsync of the second over a
    local copy of the first (what the C(rsync) strategy's freeze does), then probes the link
    to the destination over the migration's SSH path (a push of a few bytes, a push of
    I(probe_mb) MB of random bytes, TCP connect times to its SSH port).
  - Memory images go into a C(0700) directory under I(workdir) and are deleted before the
    module returns, whatever the outcome; the probe directory on the destination too.
  - Nothing is left behind and the container is not changed, so C(changed) is false.
  - M(edge_estimate_mark) measures the destination's side.
options:
  name:
    description: Container to measure.
    type: str
    required: true
  workdir:
    required: true
    description:
      - Directory on this host (the migrations' checkpoint directory) in which a private
        C(estimate-*) directory holds the two checkpoints; that one is removed afterwards.
    type: path
  interval:
    description: Seconds between the starts of the two checkpoints (0.5 to 300).
    type: float
    default: 5.0
  probe_mb:
    description: Megabytes of random bytes pushed to the destination to measure the link rate (1 to 1024).
    type: int
    default: 32
  rtt_samples:
    description: TCP connects to the destination's SSH port whose median is the round-trip time (1 to 100).
    type: int
    default: 5
extends_documentation_fragment:
  - edge
  - edge.checkpoint
  - edge.sync
requirements: [docker (Python SDK), CRIU, xdelta3, rsync, ssh]
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Checks the tools and that the container runs, then stops; takes no checkpoint and probes
      nothing, so I(measurements) is not returned.
  diff_mode:
    support: none
    description: Returns no diff.
notes:
  - Each of the two checkpoints pauses the running service for as long as CRIU's dump takes.
seealso:
  - module: edge_estimate_mark
    description: Measures the destination's side.
  - module: edge_estimate_report
    description: Turns the measurements into predictions per strategy.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Measure openface on edge1 and the link to edge2
  edge_estimate:
    name: openface
    workdir: /var/lib/edge-migrate
    interval: 5
    dest_host: 10.77.0.12
    dest_dir: /var/lib/edge-migrate
"""

RETURN = r"""
measurements:
  description:
    - What was measured, checkpoint_bytes, checkpoint_s (the mean of the
      two dumps), checkpoint_files, interval_s, delta_bytes, delta_fixed_bytes (files sent whole),
      dirty_Bps, encode_s, decode_s, rsync_s, rsync_literal_bytes, probe_bytes, probe_s,
      push_fixed_s (a push over a new SSH connection), push_reuse_s (over a shared one), each
      the median of three,
      link_bps, rtt_s, criu_frozen_s, layer_push_s (a push of the files the container wrote in
      its layer, as a migration that copies the layer does).
  type: dict
  returned: success, not in check mode
  sample: {checkpoint_bytes: 268435456, checkpoint_s: 1.21, delta_bytes: 8388608, dirty_Bps: 1677721.6, link_bps:
    94371840, rtt_s: 0.0021}
started_at:
  description: Epoch time at which the module started.
  type: float
  returned: always
  sample: 1764129600.123
finished_at:
  description: Epoch time at which the module finished its work.
  type: float
  returned: always
  sample: 1764129631.456
duration_s:
  description: Seconds the module worked.
  type: float
  returned: always
  sample: 31.3331
"""

import inspect as pyinspect
import os
import re
import shlex
import shutil
import socket
import statistics
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import inspect_container
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_estimate import out_of_bounds
from ansible.module_utils.edge_images import decode, encode, make_private_dir, remove_tree, tree_size
from ansible.module_utils.edge_module import CHECKPOINT_ARGS, DOCKER_ARGS, docker_api, fail, runner, take_checkpoint
from ansible.module_utils.edge_transfer import (
    OVER_AN_OLDER_COPY,
    REMOVE,
    SYNC_ARGS,
    push,
    push_options,
    rsync_command,
    run_remote,
    ssh_command,
)

# Transfers of a migration share one SSH connection where module_utils/edge_transfer offers it.
SHARED_SSH = "control_path" in pyinspect.signature(rsync_command).parameters
LITERAL = re.compile(r"^Literal data:\s*([\d,.]+)", re.MULTILINE)
CHUNK = 1 << 20


def literal_bytes(stdout):
    """Bytes rsync could not match in the basis (`Literal data` of --stats)."""
    match = LITERAL.search(stdout or "")
    return int(match.group(1).replace(",", "").replace(".", "")) if match else 0


def timed(func, *args, **kwargs):
    begin = time.monotonic()
    value = func(*args, **kwargs)
    return value, time.monotonic() - begin


class Measure:
    def __init__(self, module, api, inspect):
        self.module = module
        self.params = module.params
        self.api = api
        self.inspect = inspect
        self.run = runner(module)
        tag = "%d-%d" % (os.getpid(), int(time.time() * 1000))
        self.work = os.path.join(self.params["workdir"], "estimate-" + tag)
        self.dest_dir = os.path.join(self.params["dest_dir"], "estimate-probe-" + tag)
        self.push_options = dict(push_options(self.params), compress=False, control_path=None)
        if not SHARED_SSH:
            del self.push_options["control_path"]

    def path(self, name):
        return os.path.join(self.work, name)

    def checkpoint(self, name):
        stats, seconds = timed(take_checkpoint, self.module, self.api, self.inspect, self.work, name, True)
        os.chmod(self.path(name), 0o700)
        return stats, seconds

    def images(self):
        """Two dumps `interval` apart, the delta between them, its decode and a local rsync."""
        out = {}
        first_at = time.monotonic()
        stats1, t1 = self.checkpoint("cp1")
        time.sleep(max(0.0, self.params["interval"] - (time.monotonic() - first_at)))
        second_at = time.monotonic()
        stats2, t2 = self.checkpoint("cp2")
        out["interval_s"] = second_at - first_at
        out["checkpoint_s"] = (t1 + t2) / 2
        out["checkpoint_bytes"] = tree_size(self.path("cp2"))
        out["checkpoint_files"] = len(os.listdir(self.path("cp2")))
        frozen = [s.get("frozen_time") for s in (stats1, stats2) if s.get("frozen_time") is not None]
        out["criu_frozen_s"] = statistics.fmean(frozen) if frozen else None
        manifest, out["encode_s"] = timed(encode, self.run, self.path("cp1"), self.path("cp2"), self.path("delta"))
        out["delta_bytes"] = tree_size(self.path("delta"))
        out["delta_fixed_bytes"] = sum(e.get("payload", 0) for e in manifest["files"].values()
                                       if e.get("encoding") == "whole") + os.path.getsize(
            os.path.join(self.path("delta"), "MANIFEST.json"))
        out["dirty_Bps"] = max(0, out["delta_bytes"] - out["delta_fixed_bytes"]) / out["interval_s"]
        _done, out["decode_s"] = timed(decode, self.run, self.path("cp1"), self.path("delta"), self.path("rebuilt"))
        remove_tree(self.path("rebuilt"))
        remove_tree(self.path("delta"))
        # The rsync strategy's freeze: the final dump rsynced over the copy the destination
        # holds, with rsync's delta algorithm (its scan of both files is most of its time).
        shutil.copytree(self.path("cp1"), self.path("basis"))
        argv = ["rsync", "-a", "--stats", "--no-whole-file", "--inplace", *OVER_AN_OLDER_COPY, self.path("cp2") + "/",
                self.path("basis") + "/"]
        (rc, stdout, stderr), out["rsync_s"] = timed(self.run, argv)
        if rc != 0:
            raise EdgeError("local rsync of the second checkpoint failed: %s" % stderr.strip(),
                            cmd=" ".join(argv), rc=rc, stderr=stderr)
        out["rsync_literal_bytes"] = literal_bytes(stdout)
        for name in ("basis", "cp1", "cp2"):
            remove_tree(self.path(name))
        return out

    def link(self):
        """Cost of one push over a new SSH connection and over a shared one (the migration's
        freeze reuses the warm-up's connection when it can), the link rate from a push of
        probe_mb MB, then the RTT."""
        out = {}
        tiny, probe = self.path("probe-tiny"), self.path("probe")
        make_private_dir(tiny)
        make_private_dir(probe)
        with open(os.path.join(tiny, "x"), "wb") as handle:
            handle.write(b"x")
        with open(os.path.join(probe, "blob"), "wb") as handle:
            for _mb in range(self.params["probe_mb"]):
                handle.write(os.urandom(CHUNK))
        dest_dir = self.dest_dir
        shared = dict(self.push_options, control_path=self.path("ssh")) if SHARED_SSH else None

        def tiny_push(name, options):
            return timed(push, self.run, tiny, self.params["dest_host"], os.path.join(dest_dir, name),
                         whole_file=True, **options)[1]
        try:
            fixed = [tiny_push("tiny%d" % n, self.push_options) for n in range(3)]
            reused = []
            if shared:
                tiny_push("open", shared)
                reused = [tiny_push("reuse%d" % n, shared) for n in range(3)]
            stats, seconds = timed(push, self.run, probe, self.params["dest_host"], os.path.join(dest_dir, "probe"),
                                   whole_file=True, **(shared or self.push_options))
            out["layer_push_s"] = self.layer(dest_dir, shared)
        finally:
            self.remove_remote(dest_dir, shared)
        out["push_fixed_s"] = statistics.median(fixed)
        out["push_reuse_s"] = statistics.median(reused) if reused else out["push_fixed_s"]
        out["probe_bytes"] = stats.get("bytes_sent") or self.params["probe_mb"] * CHUNK
        out["probe_s"] = seconds
        out["link_bps"] = out["probe_bytes"] * 8.0 / max(seconds - out["push_reuse_s"], 1e-3)
        out["rtt_s"] = self.rtt()
        return out

    def layer(self, dest_dir, shared):
        """Time a push of the files the container wrote in its own layer (what a migration that
        copies the layer sends again once frozen, over the warm-up's connection); None
        without a readable layer."""
        upper = ((self.inspect.get("GraphDriver") or {}).get("Data") or {}).get("UpperDir")
        if not upper or not os.path.isdir(upper):
            return None
        return timed(push, self.run, upper, self.params["dest_host"], os.path.join(dest_dir, "layer"),
                     whole_file=True, **(shared or self.push_options))[1]

    def rtt(self):
        samples = []
        for _sample in range(self.params["rtt_samples"]):
            begin = time.monotonic()
            try:
                with socket.create_connection((self.params["dest_host"], self.params["ssh_port"] or 22), timeout=5):
                    samples.append(time.monotonic() - begin)
            except OSError:
                pass
        return statistics.median(samples) if samples else None

    def remove_remote(self, dest_dir, shared=None):
        """Remove the probe on the destination, then close the shared connection."""
        run_remote(self.run, self.params["dest_host"], REMOVE, dest_dir, **(shared or self.push_options))
        if shared:
            ssh = ssh_command(self.params["ssh_key"], self.params["known_hosts"], self.params["ssh_port"],
                              control_path=shared["control_path"])
            target = "%s@%s" % (self.params["dest_user"], self.params["dest_host"])
            self.run(shlex.split(ssh) + ["-O", "exit", target])


def measure(module, result):
    params = module.params
    for tool in ("xdelta3", "rsync", "ssh"):
        if module.get_bin_path(tool) is None:
            module.fail_json(msg="%s is not installed on this host" % tool, cmd=tool, rc=None, stderr="", **result)
    api = docker_api(module)
    inspect = inspect_container(api, params["name"])
    if inspect is None or not inspect["State"].get("Running"):
        module.fail_json(msg="container %s is not running on this host; only a running container can be measured"
                         % params["name"], cmd="GET /containers/%s/json" % params["name"], rc=None, stderr="",
                         **result)
    if module.check_mode:
        return
    task = Measure(module, api, inspect)
    make_private_dir(task.work)
    try:
        measurements = task.images()
        measurements.update(task.link())
    finally:
        remove_tree(task.work)
    result["measurements"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in measurements.items()}


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        workdir=dict(type="path", required=True),
        interval=dict(type="float", default=5.0),
        probe_mb=dict(type="int", default=32),
        rtt_samples=dict(type="int", default=5),
        **SYNC_ARGS, **CHECKPOINT_ARGS, **DOCKER_ARGS), supports_check_mode=True)
    problems = out_of_bounds(module.params)
    if problems:
        module.fail_json(msg="the estimate is not started: %s" % "; ".join(problems), cmd=None, rc=None, stderr="")
    result = dict(changed=False, started_at=time.time())
    begin = time.monotonic()
    try:
        measure(module, result)
    except (EdgeError, OSError) as exc:
        fail(module, exc if isinstance(exc, EdgeError) else EdgeError("estimate failed: %s" % exc), **result)
    result["finished_at"] = time.time()
    result["duration_s"] = round(time.monotonic() - begin, 4)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
