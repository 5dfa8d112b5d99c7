"""A push of a directory to another edge (rsync over SSH): in the caller's process (edge_sync), or
by a process of its own that the caller leaves running (the warm-up checkpoint's module starts
its copy so, one module call less than a background job of Ansible's), whose end is written
where edge_sync_progress reads a background job's: a status file as async_wrapper writes it."""

import json
import os
import signal
import subprocess
import time

from ansible.module_utils.edge_images import tree_size
from ansible.module_utils.edge_private_dir import private_work_dir, replace_own_file
from ansible.module_utils.edge_progress import RSYNC_PROGRESS_ARGS, progress_runner
from ansible.module_utils.edge_transfer import ITEMIZE_ARGS, TransferError, compressed_ratio, push, push_options

# How a push goes, besides where to (edge_transfer's SYNC_ARGS): edge_sync's own options, and
# those of the copy a warm-up checkpoint starts (edge_checkpoint's push).
PUSH_ARGS = dict(
    whole_file=dict(type="bool", default=True),
    compress_auto=dict(type="bool", default=False),
    compress_threshold=dict(type="float", default=0.8),
    progress_file=dict(type="path"),
)


def push_directory(run, src, params):
    """edge_sync's result for a push of `src` with the options of `params` (SYNC_ARGS and
    PUSH_ARGS): changed, duration_s, compressed (sample_ratio when compress_auto), and push()'s
    figures. TransferError when the push fails."""
    begin = time.monotonic()
    options, extra = push_options(params), {}
    if params["compress_auto"]:
        extra["sample_ratio"] = compressed_ratio(src)
        options["compress"] = extra["sample_ratio"] < params["compress_threshold"]
    options["extra_args"] = ITEMIZE_ARGS
    if params["progress_file"]:
        run = progress_runner(params["progress_file"], total_bytes=tree_size(src))
        options["extra_args"] += RSYNC_PROGRESS_ARGS
    stats = push(run, src, params["dest_host"], params["dest_dir"], whole_file=params["whole_file"], **options)
    return dict(changed=stats["items_changed"] > 0, duration_s=round(time.monotonic() - begin, 4),
                compressed=options["compress"], **extra, **stats)


def _run(argv, env=None):
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                          env=dict(os.environ, **(env or {})))
    return proc.returncode, proc.stdout, proc.stderr


def write_status(results_file, status):
    """The status file, whole or not at all (a reader never sees half of it), 0600."""
    replace_own_file(results_file, json.dumps(status))


class TimeLimit(Exception):
    pass


def _over_time(_signum, _frame):
    raise TimeLimit()


def run_push_job(results_file, src, params, time_limit=0):
    """The job's body: the push, then its result (or its failure) in the status file. Past
    time_limit seconds (0: none) the push and what it started (rsync, ssh) are ended, as
    async_wrapper ends a background job past its time."""
    signal.signal(signal.SIGALRM, _over_time)
    signal.alarm(max(0, int(time_limit)))
    over_time = False
    try:
        status = push_directory(_run, src, params)
    except TimeLimit:
        over_time = True
        status = dict(failed=True, msg="the push of %s to %s took more than %d s"
                      % (src, params["dest_host"], time_limit))
    except TransferError as exc:
        status = dict(failed=True, msg=exc.msg, cmd=exc.cmd, rc=exc.rc, stderr=exc.stderr)
    except Exception as exc:  # the job has no caller to raise to: its status file says it
        status = dict(failed=True, msg="the push of %s failed: %s" % (src, exc))
    signal.alarm(0)
    status["finished"] = 1
    write_status(results_file, status)
    if over_time:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.killpg(os.getpgrp(), signal.SIGTERM)


def start_push_job(results_file, src, params, time_limit=0):
    """Start the push in a process of its own (detached: a new session, no descriptor of the
    caller's, so that the module's SSH session ends without it) and return its pid once its
    status file says it started, with that pid (stop_push_job ends it by it). The status file is
    `results_file`, in a directory only this user may write to (created if missing, EdgeError if
    not private), as is the progress file: stop_push_job ends the session the status file names,
    so the file must not be in a directory other edges write to, as the migration's is."""
    for path in (results_file, params.get("progress_file") or results_file):
        private_work_dir(os.path.dirname(os.path.abspath(path)))
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the intermediate process, gone at once
        try:
            os.close(ready_read)
            os.setsid()
            if os.fork() == 0:
                devnull = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(devnull, fd)
                write_status(results_file, {"started": 1, "finished": 0, "pid": os.getpid(),
                                            "session": os.getsid(0), "results_file": results_file})
                os.write(ready_write, str(os.getpid()).encode())
                os.close(ready_write)
                run_push_job(results_file, src, params, time_limit)
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(ready_write)
    os.waitpid(child, 0)
    with os.fdopen(ready_read) as ready:
        pid = ready.read()
    if not pid:
        raise TransferError("the push of %s could not be started in the background" % src)
    return int(pid)


def stop_push_job(results_file, wait=5.0):
    """End a push started by start_push_job that has not ended (its session's processes: the job
    and the rsync and ssh it started) and mark its status file failed; False when it had ended already,
    or its status file is missing or holds no pid of a session of its own (nothing is ended)."""
    try:
        with open(results_file) as handle:
            status = json.load(handle)
    except (OSError, ValueError):
        return False
    pid, session = status.get("pid"), status.get("session")
    if status.get("finished") or not all(isinstance(n, int) and n > 1 for n in (pid, session)):
        return False
    try:
        if os.getsid(pid) != session:  # the pid was reused: not the job
            return False
        os.killpg(session, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(session, signal.SIGKILL)
        except ProcessLookupError:
            pass
    write_status(results_file, dict(failed=True, finished=1, stopped=True,
                                    msg="the push was ended before it was done: the migration stopped"))
    return True
