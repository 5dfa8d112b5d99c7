"""Helpers every migration module uses: Docker options, error reporting, phase timing.

The Docker SDK is imported only by the helpers that talk to the engine: the modules that
work on files alone (delta, patch, sync) do not pay its import."""

import os
import time

from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.edge_criu_options import ghost_limit, holds_file_locks, largest_ghost_file, process_tree
from ansible.module_utils.edge_engine_names import DEFAULT_DOCKER_HOST
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_runc import DEFAULT_EXEC_ROOT
from ansible.module_utils.edge_runc import checkpoint as runc_checkpoint

DOCKER_ARGS = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
    docker_timeout=dict(type="int", default=120),
)


# How a checkpoint is taken: `runc` dumps straight into the directory (fast), `docker`
# goes through the engine's checkpoint endpoint (and containerd's content store).
CHECKPOINT_ARGS = dict(
    method=dict(type="str", choices=["runc", "docker"], default="runc"),
    docker_exec_root=dict(type="path", default=DEFAULT_EXEC_ROOT),
)


def take_checkpoint(module, api, inspect, checkpoint_dir, checkpoint_name, leave_running):
    """Checkpoint the container into checkpoint_dir/checkpoint_name by the module's method;
    returns CRIU's dump statistics when the method gives access to them (runc). File locks
    held by its processes are dumped (the restore finds them in the images), and so are the
    files they hold open without a name, however large."""
    pid = (inspect.get("State") or {}).get("Pid")
    members = process_tree(pid) if pid else set()
    file_locks = holds_file_locks(pid, members=members)
    largest_ghost = largest_ghost_file(pid, members=members)
    dump_ghost_limit = ghost_limit(largest_ghost)
    if module.params["method"] == "docker":
        if file_locks:
            raise EdgeError("the processes of %s hold file locks, which the engine's checkpoint endpoint cannot "
                            "dump (CRIU needs --file-locks): use method=runc" % inspect["Name"].lstrip("/"),
                            cmd="grep /proc/locks")
        if dump_ghost_limit:
            raise EdgeError("the processes of %s hold a deleted file of %d bytes open, which the engine's checkpoint "
                            "endpoint cannot dump (CRIU needs a larger --ghost-limit): use method=runc"
                            % (inspect["Name"].lstrip("/"), largest_ghost), cmd="ls -l /proc/%s/fd" % pid)
        from ansible.module_utils.edge_docker import checkpoint as docker_checkpoint
        docker_checkpoint(api, inspect["Id"], checkpoint_dir, checkpoint_name, leave_running)
        return {}
    return runc_checkpoint(runner(module), module.params["docker_exec_root"], inspect,
                           os.path.join(checkpoint_dir, checkpoint_name), leave_running, file_locks=file_locks,
                           ghost_limit=dump_ghost_limit)


def docker_api(module):
    """A low-level Docker API client for the module's docker_host, or fail_json."""
    from ansible.module_utils.edge_docker import DOCKER_IMPORT_ERROR, HAS_DOCKER, connect
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib("docker"), exception=str(DOCKER_IMPORT_ERROR))
    return connect(module.params["docker_host"], module.params["docker_timeout"])


def runner(module):
    """`run(argv, env=None) -> (rc, stdout, stderr)` through the module's run_command; env: variables
    added to the command's environment."""
    def run(argv, env=None):
        return module.run_command(argv, environ_update=env or {})
    return run


def keep_out_of_results(module, *secret_params):
    """Leave `secret_params` out of the `invocation` every result of `module` carries (exit and
    fail alike). A background job's status file is its result: left behind (a controller killed
    before it read it), it must not hold a container's environment."""
    invocation = {"module_args": {
        key: ("(left out of results)" if key in secret_params and value is not None else value)
        for key, value in module.params.items()}}

    def with_invocation(report):
        def report_with_invocation(*args, **kwargs):
            kwargs.setdefault("invocation", invocation)
            report(*args, **kwargs)
        return report_with_invocation

    module.exit_json = with_invocation(module.exit_json)
    module.fail_json = with_invocation(module.fail_json)


def fail(module, exc, **result):
    """fail_json from one of the module_utils errors, keeping its cmd, rc and stderr."""
    module.fail_json(msg=getattr(exc, "msg", None) or str(exc), cmd=getattr(exc, "cmd", None),
                     rc=getattr(exc, "rc", None), stderr=getattr(exc, "stderr", None) or str(exc), **result)


class Phases:
    """Wall-clock durations of named phases, in seconds, and when each began and ended
    (epoch seconds: `spans`, for a timeline across hosts)."""

    def __init__(self):
        self.durations = {}
        self.spans = {}

    def __call__(self, name):
        return _Phase(self, name)


class _Phase:
    def __init__(self, phases, name):
        self.phases = phases
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()
        self.started_at = time.time()
        return self

    def __exit__(self, *exc):
        duration = time.monotonic() - self.start
        self.phases.durations[self.name] = round(duration, 4)
        self.phases.spans[self.name] = [round(self.started_at, 4), round(self.started_at + duration, 4)]
        return False
