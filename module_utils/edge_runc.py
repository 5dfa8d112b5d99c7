"""Checkpoint a container that dockerd runs by calling its runc directly.

`docker checkpoint create` has runc/CRIU dump the images, then containerd packs them into
its content store and dockerd unpacks them into the checkpoint directory: for 200 MB of
memory that is 3.5-9 s where CRIU's own dump takes 0.5 s (measured on a 205 MB container). runc
pointed at dockerd's state directory dumps straight into the migration's directory;
dockerd still owns the container and sees it exit (137) as after any kill."""

import os
import tempfile

from ansible.module_utils.edge_criu_options import criu_errors, write_dump_conf
from ansible.module_utils.edge_criu_stats import read as criu_stats
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_freezer import cgroup_paths, freeze
from ansible.module_utils.edge_tmpfs_tar import dump_path as tmpfs_tar_path

DEFAULT_EXEC_ROOT = "/run/docker"
RUNC_NAMESPACE = "moby"


def runc_root(exec_root, runtime, container_id):
    """The runc state directory dockerd uses for this container: <exec-root>/runtime-<name>/moby,
    where dockerd 20.10 uses runtime-runc for every runc-compatible runtime; None if not found."""
    names = [runtime or "runc", "runc"]
    if os.path.isdir(exec_root):
        names += sorted(d[len("runtime-"):] for d in os.listdir(exec_root) if d.startswith("runtime-"))
    for name in names:
        root = os.path.join(exec_root, "runtime-%s" % name, RUNC_NAMESPACE)
        if os.path.isdir(os.path.join(root, container_id)):
            return root
    return None


def checkpoint(run, exec_root, inspect, image_dir, leave_running, file_locks=False, ghost_limit=None):
    """Dump the container into image_dir (created 0700) and return CRIU's dump statistics;
    raise EdgeError with CRIU's first errors. file_locks: the processes hold file locks;
    ghost_limit: CRIU's --ghost-limit for this dump (runc has no flag for it: a configuration
    file that CRIU_CONFIG_FILE names, read besides runc's own). `run(argv, env=None)`."""
    root = runc_root(exec_root, (inspect.get("HostConfig") or {}).get("Runtime"), inspect["Id"])
    if root is None:
        raise EdgeError("runc has no state for container %s under %s/runtime-*/%s: is docker_exec_root dockerd's "
                        "--exec-root?" % (inspect["Id"][:12], exec_root, RUNC_NAMESPACE),
                        cmd="ls %s/runtime-*/%s/%s" % (exec_root, RUNC_NAMESPACE, inspect["Id"]))
    os.makedirs(image_dir, mode=0o700)
    # CRIU's work directory (its log, its statistics, the dump's own configuration and tar) is a
    # fresh private one of the system's temporary directory: other edges may write under the
    # migration's directory, and CRIU, running as root, follows a symlink planted there.
    with tempfile.TemporaryDirectory(prefix="edge-migrate-dump-") as work_dir:
        argv = ["runc", "--root", root, "checkpoint", "--image-path", image_dir, "--work-path", work_dir]
        if leave_running:
            argv.append("--leave-running")
        if file_locks:
            argv.append("--file-locks")
        argv.append(inspect["Id"])
        env = {"CRIU_CONFIG_FILE": write_dump_conf(work_dir, ghost_limit)} if ghost_limit else {}
        path = tmpfs_tar_path(os.path.join(work_dir, "bin"))
        if path:
            env["PATH"] = path
        return _dump(run, argv, env, work_dir, inspect["Id"], ghost_limit,
                     None if leave_running else _freeze_quietly(os.path.join(root, inspect["Id"])))


def _dump(run, argv, env, work_dir, container_id, ghost_limit, frozen):
    try:
        rc, _out, err = run(argv, env or None)
        if rc != 0:
            log = _log_tail(os.path.join(work_dir, "dump.log"))
            raise EdgeError("runc checkpoint of %s failed: %s%s" % (container_id[:12], _last_line(err), log),
                            cmd=" ".join(argv), rc=rc, stderr=err)
        # CRIU writes its statistics to the work directory, not among the images.
        stats = criu_stats(work_dir, "stats-dump").get("dump", {})
        if ghost_limit:
            stats["ghost_limit"] = ghost_limit
        if frozen:
            stats["prefrozen_s"] = frozen.waited_s
        return stats
    except BaseException:
        # A failed dump leaves the cgroup as CRIU found it: frozen by us. Thawed, the service
        # goes on where it stopped (the final dump kills only once it has succeeded).
        if frozen:
            frozen.thaw()
        raise


def _freeze_quietly(runc_state_dir):
    """Freeze the container's cgroup before a final dump (see edge_freezer), or None: without
    runc's cgroup paths or a freezer this host lets CRIU freeze it, as it always did."""
    try:
        return freeze(cgroup_paths(runc_state_dir))
    except (OSError, ValueError):
        return None


def _last_line(text):
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def _log_tail(path):
    errors = criu_errors(path)
    return "; CRIU: " + errors if errors else ""
