"""The lock that lets one migration of a service run at a time, kept on the edges the migration
touches (so that every controller sees it): <workdir>/locks/<service>.lock, created with O_EXCL.

Who holds it is a controller run: the controller's name and boot id, the pid and start time of
its ansible-playbook process, and the migration id. Only that controller can tell whether its
process still runs, so a run taking the lock brings the list of ansible processes alive on its
controller (`controller_identity`): a lock of the same controller and boot whose process is not
in that list (and was taken before the list was made) is stale, as is one of a controller that
rebooted since, or one older than the timeout. A stale lock is renamed aside and the new one
created under flock(2) on the lock directory, so of many runs taking over the same stale lock
exactly one wins."""

import fcntl
import json
import os
import re
import socket
import time

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
BOOT_ID = "/proc/sys/kernel/random/boot_id"


class LockError(Exception):
    """The lock cannot be taken or released; `holder` is the record of the run that holds it."""

    def __init__(self, message, holder=None):
        super().__init__(message)
        self.holder = holder or {}


def boot_id(path=BOOT_ID):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _stat_fields(pid, proc="/proc"):
    """(ppid, start time in clock ticks) of a process, or None."""
    try:
        with open(os.path.join(proc, str(pid), "stat")) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid, proc="/proc"):
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def playbook_pid(start=None, proc="/proc"):
    """The ansible-playbook process this process runs under: the nearest ancestor whose command
    line names ansible-playbook, then up through its workers (forks with the same command line).
    A fleet's child run is its own ansible-playbook, so it gets its own pid, not the fleet's."""
    pid = os.getppid() if start is None else start
    while pid > 1:
        if b"ansible-playbook" in _cmdline(pid, proc):
            line = _cmdline(pid, proc)
            while True:
                fields = _stat_fields(pid, proc)
                if not fields or fields[0] <= 1 or _cmdline(fields[0], proc) != line:
                    return pid
                pid = fields[0]
        fields = _stat_fields(pid, proc)
        if not fields:
            break
        pid = fields[0]
    return os.getppid()


def ansible_processes(proc="/proc"):
    """'pid:start' of every process of this host whose command line names ansible."""
    found = []
    for entry in os.listdir(proc):
        if entry.isdigit() and b"ansible" in _cmdline(entry, proc):
            fields = _stat_fields(entry, proc)
            if fields:
                found.append("%s:%d" % (entry, fields[1]))
    return sorted(found)


def controller_identity(name=None, pid=None):
    """Who takes a lock: this controller (name, boot id), its ansible-playbook process (pid, start),
    when this was looked at, and the ansible processes alive then."""
    pid = pid or playbook_pid()
    fields = _stat_fields(pid)
    return {"controller": name or socket.gethostname(), "boot_id": boot_id(), "pid": pid,
            "pid_start": fields[1] if fields else 0, "checked_at": time.time(), "running": ansible_processes()}


def lock_path(workdir, service):
    if not isinstance(service, str) or not NAME_PATTERN.match(service) or len(service) > 128:
        raise LockError("%r is not a container name: no lock file is made for it" % (service,))
    return os.path.join(workdir, "locks", service + ".lock")


def stale_reason(held, owner, timeout, now=None):
    """Why the lock `held` is stale for the run `owner` (controller_identity), or '' if it holds."""
    now = time.time() if now is None else now
    if not held:
        return "its file is unreadable or empty"
    age = now - float(held.get("since") or 0)
    if timeout and age > timeout:
        return "it is %.0f s old, more than migration_lock_timeout (%d s)" % (age, timeout)
    if held.get("controller") != owner.get("controller"):
        return ""
    if held.get("boot_id") != owner.get("boot_id"):
        return "its controller %s has rebooted since" % held.get("controller")
    process = "%s:%s" % (held.get("pid"), held.get("pid_start"))
    if float(held.get("checked_at") or 0) < float(owner.get("checked_at") or 0) \
            and process not in (owner.get("running") or []):
        return "its ansible-playbook (pid %s on %s) is gone" % (held.get("pid"), held.get("controller"))
    return ""


def read(path):
    try:
        with open(path) as handle:
            held = json.load(handle)
        return held if isinstance(held, dict) else {}
    except (OSError, ValueError):
        return {}


def _create(path, record):
    """O_EXCL: False when the file exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(record, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return True


class _Guard:
    """flock(2) on the lock directory: takes, takeovers and releases of this edge's locks one at a time."""

    def __init__(self, directory):
        self.directory = directory

    def __enter__(self):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self.fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def describe(held):
    return "migration %s from %s (ansible-playbook pid %s there, lock taken %s UTC on %s)" % (
        held.get("migration_id"), held.get("controller"), held.get("pid"),
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(held.get("since") or 0))), held.get("host"))


def take(workdir, service, migration_id, owner, timeout=0, check=False, now=None):
    """Take the lock; returns (record, stale record taken over or None). LockError naming the
    holder when a live run holds it. In check mode nothing is written."""
    path = lock_path(workdir, service)
    record = {"service": service, "migration_id": migration_id, "controller": owner.get("controller"),
              "boot_id": owner.get("boot_id"), "pid": owner.get("pid"), "pid_start": owner.get("pid_start"),
              "checked_at": owner.get("checked_at"), "host": socket.gethostname(), "edge_boot_id": boot_id(),
              "since": time.time() if now is None else now}
    if check and not os.path.lexists(path):
        return record, None
    with _Guard(os.path.dirname(path)):
        if not os.path.lexists(path):
            if not check and not _create(path, record):
                raise LockError("the lock %s appeared while this edge's lock directory was held" % path)
            return record, None
        held = read(path)
        if _same_run(held, owner, migration_id):
            return held, None
        reason = stale_reason(held, owner, timeout, now)
        if not reason:
            raise LockError("%s is already being migrated: %s holds the lock %s; wait for it to finish"
                            % (service, describe(held), path), held)
        held = dict(held, stale_because=reason)
        if not check:
            aside = "%s.stale-%d-%d" % (path, os.getpid(), int(time.time() * 1e6))
            os.rename(path, aside)
            if not _create(path, record):
                raise LockError("the lock %s appeared while this edge's lock directory was held" % path)
            os.unlink(aside)
        return record, held


def _same_run(held, owner, migration_id):
    return (held.get("migration_id") == migration_id and held.get("controller") == owner.get("controller")
            and held.get("pid") == owner.get("pid") and held.get("boot_id") == owner.get("boot_id"))


def release(workdir, service, migration_id, owner, check=False):
    """Remove the lock if this run holds it; whether it did (or would, in check mode)."""
    path = lock_path(workdir, service)
    if not os.path.isdir(os.path.dirname(path)):
        return False
    with _Guard(os.path.dirname(path)):
        if not _same_run(read(path), owner, migration_id):
            return False
        if not check:
            os.unlink(path)
        return True
