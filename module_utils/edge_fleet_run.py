"""Running a fleet's migrations at once: each one a process of its own (an ansible-playbook run
of migrate.yml), started as soon as its source and destination have a free slot, its output
in a log file; then what each run's own report says."""

import json
import os
import re
import signal
import subprocess
import time

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
VAR_PATTERN = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class RunError(Exception):
    """A migration that must not be started (a name that is no container name, a path outside its directory)."""


def unsafe_yaml(value):
    """`value` as YAML in which every string is tagged !unsafe: Ansible takes such strings as data,
    never as templates. Values given with `-e` on a command line are templates; a container
    name an edge reported (`x{{ lookup('pipe', 'id') }}`) would run a command on the controller."""
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str) or not VAR_PATTERN.match(key):
                raise RunError("%r is not a variable name" % (str(key)[:80],))
            items.append("%s: %s" % (json.dumps(key), unsafe_yaml(item)))
        return "{" + ", ".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(unsafe_yaml(item) for item in value) + "]"
    if isinstance(value, str):
        return "!unsafe " + json.dumps(value, ensure_ascii=True)
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    raise RunError("cannot pass a %s to a child run" % type(value).__name__)


def write_vars(path, extra):
    """A vars file for `-e @path` (0600, written whole before any run reads it)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("---\n" + unsafe_yaml(extra) + "\n")
    os.replace(tmp, path)
    return path


def inside(directory, name, suffix):
    """directory/<name><suffix> for a container name, refused when it would be anywhere else."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or len(name) > 128:
        raise RunError("%r is not a container name: no file is made for it" % (str(name)[:80],))
    base = os.path.realpath(directory)
    path = os.path.realpath(os.path.join(base, name + suffix))
    if os.path.dirname(path) != base:
        raise RunError("%s would be outside %s" % (path, base))
    return path


class Job:
    """One migration's process."""

    def __init__(self, migration, argv, log_path):
        self.migration = migration
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.started_at = None
        self.finished_at = None
        self.rc = None
        self.timed_out = False

    def start(self, cwd=None, env=None):
        with open(self.log_path, "w") as log:
            log.write("$ %s\n" % " ".join(self.argv))
            log.flush()
            self.started_at = time.time()
            # A session of its own: a timeout stops the playbook and everything it started.
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=cwd, env=env, start_new_session=True)

    def poll(self):
        rc = self.proc.poll()
        if rc is not None:
            self.rc = rc
            self.finished_at = time.time()
        return rc

    def stop(self, grace=30.0):
        """Stop a run that took too long: SIGTERM to its session, SIGKILL after `grace` seconds."""
        self.timed_out = True
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.poll()


def run_jobs(jobs, per_source, per_destination, parallel=0, timeout=0, cwd=None, env=None, interval=0.2,
             on_event=None):
    """Run the jobs, in their order, each as soon as its source runs fewer than `per_source`
    migrations out, its destination fewer than `per_destination` in, and fewer than `parallel`
    run in all (0: no overall limit). A job running longer than `timeout` seconds (0: none)
    is stopped. One job's failure does not stop the others. Returns the jobs, finished."""
    pending = list(jobs)
    running = []
    out, into = {}, {}

    def event(kind, job):
        if on_event:
            on_event(kind, job)

    while pending or running:
        for job in list(pending):
            source, destination = job.migration["source"], job.migration["destination"]
            if parallel and len(running) >= parallel:
                break
            if out.get(source, 0) >= per_source or into.get(destination, 0) >= per_destination:
                continue
            job.start(cwd, env)
            pending.remove(job)
            running.append(job)
            out[source] = out.get(source, 0) + 1
            into[destination] = into.get(destination, 0) + 1
            event("start", job)
        time.sleep(interval)
        for job in list(running):
            if job.poll() is None and timeout and time.time() - job.started_at > timeout:
                job.stop()
            if job.rc is not None:
                running.remove(job)
                out[job.migration["source"]] -= 1
                into[job.migration["destination"]] -= 1
                event("end", job)
    return jobs


def find_report(reports_dir, service, since):
    """(path, report) of the newest migration report of `service` written since `since` (epoch), or (None, None)."""
    found = []
    suffix = "-%s.json" % service
    for name in os.listdir(reports_dir) if os.path.isdir(reports_dir) else []:
        path = os.path.join(reports_dir, name)
        if not name.endswith(suffix) or os.path.getmtime(path) < since - 1:
            continue
        try:
            with open(path) as handle:
                report = json.load(handle)
        except (OSError, ValueError):
            continue
        if report.get("service") == service:
            found.append((os.path.getmtime(path), path, report))
    if not found:
        return None, None
    _mtime, path, report = max(found, key=lambda item: item[0])
    return path, report


def failure_message(text):
    """The last failure message a playbook printed: the last `msg:` entry with its wrapped lines."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith("msg:")]
    if not starts:
        failed = [line.strip() for line in lines if line.startswith(("fatal:", "ERROR!", "[ERROR]"))]
        return failed[-1][:500] if failed else ""
    first = lines[starts[-1]]
    indent = len(first) - len(first.lstrip())
    message = [first.strip()[4:].strip()]
    for line in lines[starts[-1] + 1:]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        message.append(line.strip())
    return " ".join(message).strip("'\"")


def result(job, reports_dir):
    """What became of one migration: its report's outcome and figures, or why there is no report."""
    migration = job.migration
    path, report = find_report(reports_dir, migration["service"], job.started_at)
    try:
        with open(job.log_path) as handle:
            log = handle.read()
    except OSError:
        log = ""
    entry = {key: migration.get(key) for key in ("service", "source", "destination", "strategy")}
    entry.update(rc=job.rc, log=job.log_path, report=path, started_at=job.started_at, finished_at=job.finished_at,
                 duration_s=round(job.finished_at - job.started_at, 3))
    if report:
        entry.update(outcome=report["outcome"], cause=report.get("cause") or "", downtime_s=report.get("downtime_s"),
                     strategy=report.get("strategy") or entry["strategy"],
                     total_s=report.get("total_s"), state_preserved=report.get("state_preserved"),
                     migration_id=report.get("migration_id"))
        if job.rc and report["outcome"] == "migrated":
            entry["cause"] = failure_message(log) or "ansible-playbook exited with %d" % job.rc
    else:
        entry.update(outcome="failed", downtime_s=None, total_s=None, state_preserved=False, migration_id=None,
                     cause=failure_message(log) or "ansible-playbook exited with %s" % job.rc)
    if job.timed_out:
        entry["outcome"] = "timed_out"
        entry["cause"] = ("stopped after the fleet's timeout; the next migrate.yml of %s recovers what it left. %s"
                          % (migration["service"], entry["cause"])).strip()
    return entry
