"""Who acts on a migration once its final checkpoint may be on the destination: the
destination's waiting restore (edge_restore wait_for_file) or the controller calling it off
(a rollback, a recovery). Whichever creates the claim file first decides (O_EXCL); the
restore then writes in it how it ended, which the caller that lost waits for."""

import os
import time

from ansible.module_utils.edge_private_dir import replace_own_file

RESTORING = "restoring"
RESTORED = "restored"
FAILED = "failed"
CALLED_OFF = "called-off"


def claim(path, who):
    """Create `path` holding `who` (with this process's pid) unless it exists. Returns
    (True, who) when this call created it, else (False, what it holds)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        deadline = time.monotonic() + 2.0
        state = read(path)[0]
        while not state and time.monotonic() < deadline:  # created, not yet written
            time.sleep(0.01)
            state = read(path)[0]
        return False, state
    with os.fdopen(fd, "w") as handle:
        handle.write("%s %d\n" % (who, os.getpid()))
    return True, who


def read(path):
    """(state, pid) held by the claim file; ("", None) when there is none yet."""
    try:
        with open(path) as handle:
            words = handle.read().split(None, 2)
    except FileNotFoundError:
        return "", None
    if not words:
        return "", None
    pid = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    return words[0], pid


def record(path, state, detail=""):
    """The claim's holder writes how it ended (atomically: the reader never sees half a line)."""
    replace_own_file(path, "%s %d %s\n" % (state, os.getpid(), detail.replace("\n", " ")))


def alive(pid):
    """Whether a process of this host has that pid (edge_lock uses it for its holder too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def outcome(path, timeout, poll=0.1):
    """Wait while the restore holding the claim works; its end state (RESTORED, FAILED,
    CALLED_OFF). A restore that died without writing its end counts as FAILED; one still at
    work after `timeout` seconds is returned as RESTORING."""
    deadline = time.monotonic() + timeout
    while True:
        state, pid = read(path)
        if state != RESTORING:
            return state
        if pid is not None and not alive(pid):
            return FAILED
        if time.monotonic() > deadline:
            return RESTORING
        time.sleep(poll)
