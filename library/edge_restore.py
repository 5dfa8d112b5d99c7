#!/usr/bin/python
"""Ansible module: create a container from a portable configuration and start it, from a checkpoint when given."""

DOCUMENTATION = r"""
module: edge_restore
short_description: Create a container like the source's and start it from a checkpoint
description:
  - With I(state=created) pulls the image and creates the container from I(config)
    (the source's image, command, entrypoint, env, labels, published ports, mounts,
    restart policy, network mode...) without starting it (the warm-up step). It is idempotent, an
    existing container of that name from the same image is left alone.
  - With I(state=started) optionally rebuilds the final checkpoint first (I(patch_base_dir)
    + I(patch_delta_dir), verified file by file as M(edge_patch) does), creates the
    container if needed, places the checkpoint where dockerd looks for it (a custom
    checkpoint directory is not supported on start, moby#37344), starts the container from
    it and checks that it runs. Without I(checkpoint_path) the container starts from its
    image (a cold start). The placed memory images are deleted once the container runs.
  - Also restores a container on the host it was checkpointed on (a rollback); the
    existing stopped container is started from the checkpoint.
  - With I(state=trial) (the warm-up, before anything is frozen) proves that this host can
    restore the container. It restores I(checkpoint_path) (the warm-up checkpoint) into a
    throwaway container of the same configuration (no published ports, restart policy C(no),
    the layer of the container I(name) copied in when it exists), with CRIU's
    C(leave-stopped) so that no process of it ever runs, then removes it. A failure carries
    CRIU's own error lines. Needs the C(edge-migrate) runtime; without it the trial is skipped
    and C(trial) says so.
  - CRIU's restore-only options are chosen from the container and its images
    (C(mntns-compat-mode) for C(--init) containers, C(file-locks) when the dump holds file
    locks) and returned as C(criu_options).
  - With I(lazy_pages) and the C(edge-migrate) runtime the restore is lazy. CRIU's
    C(lazy-pages) daemon serves the memory images through userfaultfd, so the service runs
    before all of its memory is in place (the daemon hands each page over on first touch and
    the rest in the background). The module returns only once the daemon has handed every
    page over; when the daemon failed, the service (whose missing pages would read as zeros)
    is stopped and restored again from the same images without it. The images are removed
    only after that. A checkpoint whose inaccessible reservations the lazy restore would have
    to map writable beyond what this host's kernel allows (MariaDB reserves 8 TiB) is restored
    in one go from the start.
  - With I(wait_for_file) (run in the background before the freeze) it first waits until
    the source says everything has arrived (M(edge_freeze) I(done_marker)), then restores
    at once, so the frozen window does not wait for the controller to start this step.
options:
  name:
    description: Container name.
    type: str
    required: true
  config:
    description: Portable configuration from M(edge_container_info) (C(config)); needed to create the container.
    type: dict
  state:
    description: C(created) (pull and create), C(started), or C(trial) (a throwaway restore, see above).
    type: str
    choices: [created, started, trial]
    default: started
  checkpoint_path:
    description: Directory with the memory images to start from (moved into Docker's data root).
    type: path
  checkpoint_name:
    description: Checkpoint name under the container.
    type: str
    default: migrate
  patch_base_dir:
    description: Warm-up checkpoint to rebuild I(checkpoint_path) from.
    type: path
  patch_delta_dir:
    description: Delta received from the source to rebuild I(checkpoint_path) with.
    type: path
  lazy_pages:
    description:
      - Restore lazily (see above). Needs the C(edge-migrate) runtime and userfaultfd; ignored
        with I(method=docker) or a container on another runtime.
    type: bool
    default: false
  pull:
    description: Pull the image from its registry before creating the container.
    type: bool
    default: true
  restart_policy:
    description: Restart policy to set once running (defaults to the one in I(config)).
    type: dict
  method:
    description:
      - How the checkpoint reaches CRIU. C(runtime) creates the container with the
        C(edge-migrate) OCI runtime (roles/edge_runtime) and has CRIU read the images where
        they are; C(docker) moves them into Docker's checkpoint directory, and the engine
        copies them through containerd's content store (slower). C(auto) uses C(runtime)
        when the engine has that runtime. A container that already exists keeps its runtime.
    type: str
    choices: [auto, runtime, docker]
    default: auto
  wait_timeout:
    description: Seconds to wait for the container to be running.
    type: float
    default: 30
  settle:
    description:
      - Seconds after which the container must still be running (a program that dies at
        once fails the task). Not counted in the downtime.
    type: float
    default: 0.5
  wait_for_file:
    description: Before the restore, wait until this file exists (I(state=started)).
    type: path
  claim_file:
    description:
      - With I(wait_for_file), the file that settles who acts once the final checkpoint may
        be here. When the signal arrives this restore creates it (exclusively) and writes in it
        how the restore ended (C(restored) or C(failed)); if M(edge_call_off) created it first
        (a rollback or a recovery), this restore gives up without touching anything.
    type: path
  wait_for_timeout:
    description: Seconds to wait for I(wait_for_file) before failing.
    type: float
    default: 600
  base_sha256:
    description:
      - sha256 of the memory pages files of the warm-up checkpoint as the source has it
        (M(edge_checkpoint) C(pages_sha256)). The copy in I(patch_base_dir) is checked
        against them first (while waiting for the source, outside the frozen window); the
        pages files rebuilt from it are then not checked again.
    type: dict
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK), CRIU and xdelta3 on the host]
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Reports C(changed) when the container is absent or not running, without waiting for
      I(wait_for_file), checking the checkpoint, pulling or creating anything; I(state=trial) is skipped
      (I(trial) says so).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_freeze
    description: Takes and pushes the final checkpoint on the source.
  - module: edge_call_off
    description: Calls off a waiting restore, or waits for its outcome.
  - module: edge_patch
    description: Rebuilds a checkpoint from a delta as a module of its own.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Warm-up, pull and create on the destination
  edge_restore:
    name: openface
    config: "{{ source_info.config }}"
    state: created

- name: Prove before the freeze that this host can restore the container
  edge_restore:
    name: openface
    config: "{{ source_info.config }}"
    state: trial
    checkpoint_path: /var/lib/edge-migrate/openface-1/base

- name: Rebuild the final checkpoint and start from it
  edge_restore:
    name: openface
    checkpoint_path: /var/lib/edge-migrate/openface-1/final
    patch_base_dir: /var/lib/edge-migrate/openface-1/base
    patch_delta_dir: /var/lib/edge-migrate/openface-1/delta
"""

RETURN = r"""
container_id:
  description: Full id of the container.
  type: str
  returned: success
  sample: 9a2b7c1d3e4f...
storage:
  description:
    - Where the created container's files go, for a push into it (I(state=created)) its image id,
      its overlay2 layer directory (upper_dir) and its mounts (a volume's name, driver and
      directory on this host, whether it is anonymous and whether its content is a plain directory
      here). Volume options and labels are left out.
  type: dict
  returned: when state is created
  sample: {image_id: "sha256:5d0da3dc9764...", layer_driver: overlay2, upper_dir: /var/lib/docker/overlay2/4f1c.../diff,
           mounts: [{type: volume, name: 3c9e..., source: /var/lib/docker/volumes/3c9e.../_data, destination: /data,
                     rw: true, driver: local, anonymous: true, copyable: true}]}
phases:
  description: Seconds per phase (pull, create, xdelta_dest, restore, neighbors; not the wait for I(wait_for_file)).
  type: dict
  returned: always
  sample: {pull: 0.0021, create: 0.3123, xdelta_dest: 0.5012, restore: 1.4031}
phase_spans:
  description: When each phase of I(phases) began and ended, epoch seconds (the frozen window's timeline in the report).
  type: dict
  returned: always
  sample: {xdelta_dest: [1764129701.4602, 1764129701.5013], restore: [1764129701.5015, 1764129701.8420]}
signalled_at:
  description: Epoch seconds at which I(wait_for_file) appeared.
  type: float
  returned: when I(wait_for_file) was given
  sample: 1764129702.345
claimed:
  description: Whether this restore took the migration over through I(claim_file) (a call-off now waits for it).
  type: bool
  returned: when I(claim_file) was given and the source's signal came
  sample: true
running_at:
  description: Epoch time at which the container was seen running.
  type: float
  returned: when started
  sample: 1764129703.9
from_checkpoint:
  description: Whether the container was started from a checkpoint (state kept) or from its image.
  type: bool
  returned: when started
  sample: true
method:
  description: How the checkpoint reached CRIU (C(runtime) or C(docker)).
  type: str
  returned: when started
  sample: runtime
created:
  description: Whether this call created the container.
  type: bool
  returned: when it did
  sample: true
replaced:
  description:
    - When the restore of an existing container that does not use the C(edge-migrate)
      runtime failed (a rollback or a recovery on the host it was checkpointed on), it is
      restored into a copy of it on that runtime (same configuration and layer, same name),
      and the old one is removed; this says which container was replaced and why.
  type: str
  returned: when a container was replaced
  sample: 'container 4f2a... (runtime runc): restored into a copy on edge-migrate'
criu_options:
  description: The restore-only CRIU options this restore used.
  type: list
  elements: str
  returned: when restored from a checkpoint, and with I(state=trial)
  sample: [file-locks]
trial:
  description: With I(state=trial), C(restored) (the trial restore succeeded), C(skipped) with the
    reason, or C(inconclusive) with CRIU's reason when a file the service keeps writing in its layer
    changed size since the checkpoint.
  type: str
  returned: with I(state=trial)
  sample: restored
neighbors:
  description:
    - The host's neighbor entries set to the started container's addresses on a bridge (its MAC
      from the engine), so that packets clients sent while it started go to it at once instead
      of waiting for the kernel's next ARP request; C(error) when setting one failed.
  type: list
  elements: dict
  returned: when started
  sample: [{network: bridge, address: 172.17.0.2, mac: '02:42:ac:11:00:02', device: docker0}]
lazy_pages:
  description:
    - How the lazy restore went. C(handed_over_s) is the time from the service running (and its
      neighbor entries set) to the daemon's end (every page in place); C(retried) says why the
      service was restored again without the daemon; C(skipped) why CRIU restored every page
      itself (this host's runtime starts no daemon, or the checkpoint reserves more memory than
      this host's kernel lets a lazy restore map).
  type: dict
  returned: when I(lazy_pages) was asked for and the restore came from a checkpoint
  sample: {handed_over_s: 0.61, rc: 0}
criu_restore:
  description: CRIU's own restore statistics (times in seconds, page counts); empty with the C(docker) method.
  type: dict
  returned: when started from a checkpoint
  sample: {forking_time: 0.0102, restore_time: 0.9123, pages_restored: 65536}
"""

import os
import re
import shutil
import signal
import time

from ansible.module_utils import edge_claim as claim
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_criu_mm import lazy_restore_obstacle
from ansible.module_utils.edge_criu_options import criu_errors, restore_options
from ansible.module_utils.edge_criu_stats import read as criu_stats
from ansible.module_utils.edge_docker import (
    DockerError,
    create,
    data_root,
    engine_info,
    image_present,
    inspect_container,
    inspect_image_id,
    place_checkpoint,
    place_images_marker,
    portable_config,
    pull,
    remove,
    rename,
    restore_work_dir,
    set_restart_policy,
    start_from_checkpoint,
    still_running,
    stop,
    wait_running,
)
from ansible.module_utils.edge_engine_names import MIGRATION_RUNTIME
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_fs import describe, placement
from ansible.module_utils.edge_images import check_received, decode, pages_checksums
from ansible.module_utils.edge_module import DOCKER_ARGS, Phases, docker_api, fail, keep_out_of_results, runner
from ansible.module_utils.edge_neighbors import announce


def ensure_created(module, api, phases, result):
    """The container's inspect document, creating it (and pulling its image) if absent."""
    params = module.params
    inspect = inspect_container(api, params["name"])
    if inspect is not None:
        wanted = (params["config"] or {}).get("Image")
        if wanted and inspect["Config"].get("Image") != wanted:
            raise EdgeError("a container named %s from another image (%s) already exists on this host; remove it "
                            "or choose another destination" % (params["name"], inspect["Config"].get("Image")))
        return inspect
    if not params["config"]:
        raise EdgeError("container %s does not exist here and no config was given to create it" % params["name"])
    image = params["config"]["Image"]
    config = params["config"]
    if use_runtime(module, api):
        config = dict(config, HostConfig=dict(config.get("HostConfig") or {}, Runtime=MIGRATION_RUNTIME))
    result["changed"] = True
    with phases("pull"):
        if params["pull"]:
            pull(api, image)
        elif not image_present(api, image):
            raise EdgeError("image %s is not on this host and pull is off" % image,
                            cmd="docker image inspect %s" % image)
    with phases("create"):
        create(api, params["name"], config)
    result["created"] = True
    return inspect_container(api, params["name"])


def use_runtime(module, api):
    """Whether a container created here should get the edge-migrate runtime."""
    method = module.params["method"]
    if method == "docker":
        return False
    available = MIGRATION_RUNTIME in engine_info(api)["runtimes"]
    if method == "runtime" and not available:
        raise EdgeError("the Docker Engine here has no %s runtime; register it (roles/edge_runtime) or use "
                        "method=docker" % MIGRATION_RUNTIME, cmd="GET /info")
    return available


def check_base(params):
    """The destination's copy of the warm-up checkpoint is the source's (its pages files)."""
    actual = pages_checksums(params["patch_base_dir"])
    for name, expected in sorted(params["base_sha256"].items()):
        if actual.get(name) != expected:
            raise EdgeError("checksum mismatch for %s in this host's copy of the warm-up checkpoint: %s, the source "
                            "has %s" % (name, actual.get(name, "no such file"), expected))
    return actual


def called_off(params):
    return EdgeError("the migration was called off before the source's signal was taken up (%s)"
                     % params["claim_file"])


def wait_for_source(params, result):
    """Wait for the source's signal (or the controller's call-off) with a 10 ms poll, then
    claim the migration (with claim_file) so that a call-off from now on waits for us."""
    deadline = time.monotonic() + params["wait_for_timeout"]
    directory = os.path.dirname(params["wait_for_file"])
    had_directory = os.path.isdir(directory)
    while not os.path.exists(params["wait_for_file"]):
        if params["claim_file"] and os.path.exists(params["claim_file"]):
            raise called_off(params)
        if had_directory and not os.path.isdir(directory):
            raise EdgeError("the migration's directory %s was removed (a cleanup or a recovery) while "
                            "waiting for the source" % directory)
        if time.monotonic() > deadline:
            raise EdgeError("the source did not finish sending within %s s (no %s)"
                            % (params["wait_for_timeout"], params["wait_for_file"]))
        time.sleep(0.01)
    result["signalled_at"] = time.time()
    if params["claim_file"]:
        won, _holder = claim.claim(params["claim_file"], claim.RESTORING)
        if not won:
            raise called_off(params)
        result["claimed"] = True


def start(module, api, phases, result):
    params = module.params
    verified = check_base(params) if params["base_sha256"] and params["patch_base_dir"] else None
    if params["wait_for_file"]:
        wait_for_source(params, result)
    if params["checkpoint_path"] and not params["patch_delta_dir"] and not os.path.isdir(params["checkpoint_path"]):
        raise EdgeError("checkpoint_path %s is not a directory on this host" % params["checkpoint_path"])
    inspect = ensure_created(module, api, phases, result)
    checkpoint_path = params["checkpoint_path"]
    if inspect["State"].get("Running"):
        if checkpoint_path:
            raise EdgeError("container %s is already running on this host; it cannot also be started from a checkpoint"
                            % params["name"])
        result["container_id"] = inspect["Id"]
        return
    result["changed"] = True
    if params["patch_delta_dir"]:
        with phases("xdelta_dest"):
            decode(runner(module), params["patch_base_dir"], params["patch_delta_dir"], checkpoint_path,
                   verified_base=verified)
    if checkpoint_path:
        # What CRIU reads came from another host (or was rebuilt from what did).
        check_received(checkpoint_path)
    lazy = params["lazy_pages"]
    obstacle = lazy_restore_obstacle(checkpoint_path) if lazy and checkpoint_path else None
    if obstacle:
        result["lazy_pages"] = dict(skipped=obstacle)
        lazy = False
    try:
        restore_into(api, runner(module), inspect, checkpoint_path, params, phases, result, lazy=lazy)
    except DockerError as exc:
        if "lazy-pages" in result.get("criu_options", []):
            # A host without userfaultfd (or a CRIU without lazy pages): restore in one go.
            stop_lazy_pages(checkpoint_path)
            result["lazy_pages"] = dict(retried="the lazy restore failed: %s" % exc.msg)
            restore_into(api, runner(module), inspect, checkpoint_path, params, phases, result, lazy=False)
        elif replaceable(module, api, inspect, checkpoint_path, created=result.get("created", False)):
            # The container's runtime restores without the options CRIU needs here (an --init
            # container, file locks): restore into a copy of it on the edge-migrate runtime.
            result["replaced"] = "%s (restore in place failed: %s)" % (inspect["Id"][:12], exc.msg)
            inspect = restore_in_replacement(module, api, inspect, checkpoint_path, phases, result, lazy)
        else:
            raise
    if "lazy-pages" in result.get("criu_options", []):
        settle_lazy_pages(api, runner(module), inspect, checkpoint_path, params, phases, result)
    if checkpoint_path:
        result["criu_restore"] = criu_stats(restore_work_dir(checkpoint_path), "stats-restore").get("restore", {})
        # Memory images are not kept once restored.
        shutil.rmtree(checkpoint_path, ignore_errors=True)
        shutil.rmtree(restore_work_dir(checkpoint_path), ignore_errors=True)
    result["method"] = "runtime" if inspect["HostConfig"].get("Runtime") == MIGRATION_RUNTIME else "docker"
    still_running(api, inspect["Id"], params["settle"])
    result["from_checkpoint"] = bool(checkpoint_path)
    result["container_id"] = inspect["Id"]
    policy = params["restart_policy"] or (params["config"] or {}).get("HostConfig", {}).get("RestartPolicy")
    current = inspect["HostConfig"].get("RestartPolicy") or {}
    if policy and policy.get("Name", "") != current.get("Name", ""):
        set_restart_policy(api, inspect["Id"], policy)


TRIAL_SUFFIX = "-edge-migrate-trial"
# CRIU's check of an open file against its size at the checkpoint (criu/files-reg.c).
CHANGED_SINCE_CHECKPOINT = re.compile(r"File \S+ has bad size .*Unable to open fd=", re.S)
REPLACED_SUFFIX = "-edge-migrate-replaced"


def restore_into(api, run, inspect, checkpoint_path, params, phases, result, lazy=False):
    """Start the container from checkpoint_path (from its image without one), wait until it
    runs and point the host's neighbor entries at it; lazy: through CRIU's lazy-pages daemon
    (the edge-migrate runtime starts it)."""
    placed = None
    try:
        with phases("restore"):
            if checkpoint_path:
                result["criu_options"] = restore_options(inspect["HostConfig"], checkpoint_path)
            if checkpoint_path and inspect["HostConfig"].get("Runtime") == MIGRATION_RUNTIME:
                if lazy:
                    result["criu_options"].append("lazy-pages")
                    clear_lazy_pages(checkpoint_path)
                placed = place_images_marker(checkpoint_path, data_root(api), inspect["Id"],
                                             params["checkpoint_name"], result["criu_options"])
            elif checkpoint_path:
                placed = place_checkpoint(checkpoint_path, data_root(api), inspect["Id"],
                                          params["checkpoint_name"], result["criu_options"])
            start_from_checkpoint(api, inspect["Id"], params["checkpoint_name"] if checkpoint_path else None)
            wait_running(api, inspect["Id"], params["wait_timeout"])
        result["running_at"] = time.time()
    except DockerError as exc:
        raise with_criu_reason(exc, checkpoint_path) from exc
    finally:
        # Only Docker's copy goes: checkpoint_path keeps the images until the service runs.
        if placed:
            shutil.rmtree(placed, ignore_errors=True)
    # Clients' packets that reached this host while it started wait for the container's address.
    with phases("neighbors"):
        result["neighbors"] = announce(run, inspect_container(api, inspect["Id"]))


LAZY_PAGES_RC = "lazy-pages.rc"
LAZY_PAGES_LOG = "lazy-pages.log"
LAZY_PAGES_PID = "lazy-pages.pid"


def clear_lazy_pages(checkpoint_path):
    for name in (LAZY_PAGES_RC, LAZY_PAGES_LOG, LAZY_PAGES_PID):
        try:
            os.unlink(os.path.join(restore_work_dir(checkpoint_path), name))
        except FileNotFoundError:
            pass


def stop_lazy_pages(checkpoint_path):
    """Stop a lazy-pages daemon that no restore will connect to (it would keep the images open)."""
    try:
        with open(os.path.join(restore_work_dir(checkpoint_path), LAZY_PAGES_PID)) as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            if b"lazy-pages" not in handle.read():
                return
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        pass


def lazy_pages_rc(work_dir, timeout):
    """The exit code of the lazy-pages daemon (written by the edge-migrate runtime when it
    ends), or None if it has not ended within timeout seconds."""
    path = os.path.join(work_dir, LAZY_PAGES_RC)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    with open(path) as handle:
        text = handle.read().strip()
    return int(text) if text.isdigit() else -1


def settle_lazy_pages(api, run, inspect, checkpoint_path, params, phases, result):
    """Wait until the lazy-pages daemon has handed every page over. If it failed (or is
    still at it after wait_timeout), pages the service has not touched yet would read as
    zeros: stop it and restore it again from the same images, this time in one go."""
    work_dir = restore_work_dir(checkpoint_path)
    if not os.path.exists(os.path.join(work_dir, LAZY_PAGES_PID)):
        # The runtime started no daemon (a wrapper from before lazy restores): runc was not
        # asked for lazy pages and CRIU restored every page itself.
        result["lazy_pages"] = dict(skipped="the edge-migrate runtime on this host starts no lazy-pages daemon "
                                            "(older than this version: run prepare_edges.yml); restored in one go")
        return
    began = time.monotonic()
    rc = lazy_pages_rc(work_dir, params["wait_timeout"])
    result["lazy_pages"] = dict(rc=rc, handed_over_s=round(time.monotonic() - began, 4))
    if rc == 0:
        return
    reason = criu_errors(os.path.join(work_dir, LAZY_PAGES_LOG)) or "no log"
    result["lazy_pages"]["retried"] = ("the lazy-pages daemon %s: %s" % (
        "did not finish within %s s" % params["wait_timeout"] if rc is None else "exited with %s" % rc, reason))
    # Stopped, not killed: a kill would have the engine start it again by its restart policy.
    stop(api, inspect["Id"], timeout=0)
    stop_lazy_pages(checkpoint_path)
    restore_into(api, run, inspect, checkpoint_path, params, phases, result, lazy=False)


def replaceable(module, api, inspect, checkpoint_path, created):
    """Whether a failed restore of an existing container (a rollback or a recovery on the
    host it was checkpointed on) can be tried again in a copy on the edge-migrate runtime."""
    return bool(checkpoint_path and not created and module.params["method"] != "docker"
                and inspect["HostConfig"].get("Runtime") != MIGRATION_RUNTIME
                and MIGRATION_RUNTIME in engine_info(api)["runtimes"])


def restore_in_replacement(module, api, old, checkpoint_path, phases, result, lazy):
    """Set the container aside under another name, create its copy (same configuration and
    layer, the edge-migrate runtime) under its name, restore into it and remove the old one;
    on failure the old container gets its name back."""
    name = module.params["name"]
    aside = name + REPLACED_SUFFIX
    if inspect_container(api, aside) is not None:
        raise EdgeError("a container named %s exists already (an earlier replacement that did not finish): "
                        "look at it, it may hold %s's files, and remove it" % (aside, name))
    config = portable_config(old)
    config["HostConfig"]["Runtime"] = MIGRATION_RUNTIME
    if (inspect_image_id(api, config["Image"]) or old["Image"]) != old["Image"]:
        config["Image"] = old["Image"]  # the tag moved on this host since: keep the very image
    rename(api, old["Id"], aside)
    try:
        create(api, name, config)
        new = inspect_container(api, name)
        copy_layer(runner(module), old, new)
        restore_into(api, runner(module), new, checkpoint_path, module.params, phases, result, lazy=lazy)
    except (EdgeError, OSError):
        remove(api, name)
        rename(api, old["Id"], name)
        raise
    remove(api, old["Id"])
    return new


def with_criu_reason(exc, checkpoint_path):
    """The engine's error with CRIU's own first error lines (the runtime keeps its restore log
    in the restore's work directory; the engine's copy is gone with its task directory)."""
    reason = criu_errors(os.path.join(restore_work_dir(checkpoint_path), "restore.log")) if checkpoint_path else ""
    if not reason:
        return exc
    return DockerError("%s; CRIU: %s" % (exc.msg, reason), cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr)


def trial_config(config):
    """The container's configuration for a throwaway restore: nothing published, never restarted."""
    host_config = dict(config.get("HostConfig") or {}, RestartPolicy={"Name": "no"}, AutoRemove=False,
                       Runtime=MIGRATION_RUNTIME)
    host_config.pop("PortBindings", None)
    return dict(config, HostConfig=host_config)


def copy_layer(run, source_inspect, target_inspect):
    """Copy the container's writable layer into the throwaway one (its open files are there)."""
    source = ((source_inspect or {}).get("GraphDriver") or {}).get("Data") or {}
    target = (target_inspect.get("GraphDriver") or {}).get("Data") or {}
    if not source.get("UpperDir") or not target.get("UpperDir") or not os.path.isdir(source["UpperDir"]):
        return
    argv = ["cp", "-a", "--reflink=auto", source["UpperDir"] + "/.", target["UpperDir"] + "/"]
    rc, _out, err = run(argv)
    if rc != 0:
        raise EdgeError("cannot copy the layer of %s for the trial restore" % source_inspect["Name"],
                        cmd=" ".join(argv), rc=rc, stderr=err)


def trial(module, api, phases, result):
    """Restore the checkpoint into a throwaway container with its processes left stopped."""
    params = module.params
    if not use_runtime(module, api):
        result["trial"] = "skipped: this engine has no %s runtime (roles/edge_runtime)" % MIGRATION_RUNTIME
        return
    name = params["name"] + TRIAL_SUFFIX
    checkpoint_path = params["checkpoint_path"]
    check_received(checkpoint_path)
    remove(api, name)
    result["changed"] = True
    try:
        with phases("trial"):
            create(api, name, trial_config(params["config"]))
            inspect = inspect_container(api, name)
            copy_layer(runner(module), inspect_container(api, params["name"]), inspect)
            result["criu_options"] = restore_options(inspect["HostConfig"], checkpoint_path, trial=True)
            place_images_marker(checkpoint_path, data_root(api), inspect["Id"], "trial", result["criu_options"])
            try:
                start_from_checkpoint(api, inspect["Id"], "trial")
            except DockerError as exc:
                failed = with_criu_reason(exc, checkpoint_path)
                if CHANGED_SINCE_CHECKPOINT.search(failed.msg):
                    # A file the service holds open and keeps writing in its layer changed size
                    # between the warm-up checkpoint and the copy of the layer: says nothing
                    # about this host (a mapped file that differs, a binary, still refuses).
                    # The real restore gets the layer as it was at the final checkpoint.
                    result["trial"] = "inconclusive: %s" % failed.msg
                    return
                raise EdgeError("%s cannot be restored on this host (a trial restore of its warm-up checkpoint "
                                "failed, nothing was frozen): %s" % (params["name"], failed.msg),
                                cmd=failed.cmd, rc=failed.rc, stderr=failed.stderr) from exc
        result["trial"] = "restored"
    finally:
        remove(api, name)
        shutil.rmtree(restore_work_dir(checkpoint_path), ignore_errors=True)


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        config=dict(type="dict"),
        state=dict(type="str", choices=["created", "started", "trial"], default="started"),
        checkpoint_path=dict(type="path"),
        checkpoint_name=dict(type="str", default="migrate"),
        patch_base_dir=dict(type="path"),
        patch_delta_dir=dict(type="path"),
        pull=dict(type="bool", default=True),
        restart_policy=dict(type="dict"),
        method=dict(type="str", choices=["auto", "runtime", "docker"], default="auto"),
        wait_timeout=dict(type="float", default=30),
        settle=dict(type="float", default=0.5),
        lazy_pages=dict(type="bool", default=False),
        wait_for_file=dict(type="path"),
        claim_file=dict(type="path"),
        wait_for_timeout=dict(type="float", default=600),
        base_sha256=dict(type="dict"),
        **DOCKER_ARGS),
        required_together=[("patch_base_dir", "patch_delta_dir")],
        required_by={"patch_delta_dir": "checkpoint_path"},
        required_if=[("state", "trial", ("checkpoint_path", "config"))],
        supports_check_mode=True)
    keep_out_of_results(module, "config")
    params = module.params
    phases = Phases()
    result = dict(changed=False, phases=phases.durations, phase_spans=phases.spans)
    if (params["checkpoint_path"] and not params["patch_delta_dir"] and not params["wait_for_file"]
            and not os.path.isdir(params["checkpoint_path"])):
        module.fail_json(msg="checkpoint_path %s is not a directory on this host" % params["checkpoint_path"],
                         cmd=None, rc=None, stderr="", **result)
    try:
        api = docker_api(module)
        if module.check_mode and params["state"] == "trial":
            module.exit_json(changed=False, phases={}, phase_spans={}, trial="skipped: check mode")
        if module.check_mode:
            inspect = inspect_container(api, params["name"])
            module.exit_json(changed=inspect is None or not inspect["State"].get("Running"), phases={}, phase_spans={})
        if params["state"] == "created":
            inspect = ensure_created(module, api, phases, result)
            result["container_id"] = inspect["Id"]
            result["storage"] = placement(describe(api, inspect, sizes=False))
        elif params["state"] == "trial":
            trial(module, api, phases, result)
        else:
            start(module, api, phases, result)
    except (EdgeError, OSError) as exc:
        if not isinstance(exc, EdgeError):
            exc = EdgeError("restore of %s failed: %s" % (params["name"], exc))
        if result.get("claimed"):
            claim.record(params["claim_file"], claim.FAILED, str(exc))
        if params["checkpoint_path"] and params["state"] == "started":
            # CRIU's log was read into the error; a later restore of these images makes its own.
            shutil.rmtree(restore_work_dir(params["checkpoint_path"]), ignore_errors=True)
        fail(module, exc, **result)
    if result.get("claimed"):
        claim.record(params["claim_file"], claim.RESTORED)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
