"""Freeze a container's cgroup before its final dump.

CRIU freezes the cgroup itself when it finds it thawed, but under the cgroup v1 freezer it
waits in steps of 100 ms for FREEZING to turn FROZEN (criu/seize.c), so every dump of a
running container pays at least 0.1 s of frozen time for a freeze that takes well under a
millisecond. A cgroup already FROZEN when CRIU starts is dumped at once. CRIU then leaves
the cgroup as it found it: after a failed dump the caller must thaw it (`thaw`); after a
final dump CRIU's kill ends the processes and runc removes the cgroup.

Only for final dumps: after a `--leave-running` dump CRIU would leave the service frozen."""

import json
import os
import time

POLL_S = 0.0005


class Frozen:
    """A cgroup this module froze: `thaw()` gives it back to the scheduler (a no-op once the
    cgroup is gone, as after a final dump)."""

    def __init__(self, control, thawed_value, waited_s):
        self.control = control
        self.thawed_value = thawed_value
        self.waited_s = waited_s

    def thaw(self):
        try:
            _write(self.control, self.thawed_value)
        except FileNotFoundError:
            pass


def cgroup_paths(runc_state_dir):
    """runc's cgroup paths of a container ({controller: path}, "" for the unified hierarchy)."""
    with open(os.path.join(runc_state_dir, "state.json")) as handle:
        paths = (json.load(handle) or {}).get("cgroup_paths") or {}
    return {key: value for key, value in paths.items() if isinstance(key, str) and isinstance(value, str)}


def freeze(paths, timeout=2.0):
    """Freeze the cgroup (v1 freezer, else the v2 cgroup.freeze of the unified path) and wait
    until the kernel says it is frozen. Returns a Frozen, or None when there is no freezer to
    use, the cgroup is not thawed to begin with (a paused container stays as it is, whatever
    happens to the dump), or it did not freeze in time (then it is thawed again: CRIU freezes
    it as usual)."""
    v1 = paths.get("freezer")
    if v1 and os.path.exists(os.path.join(v1, "freezer.state")):
        state = os.path.join(v1, "freezer.state")
        if _read(state) != "THAWED":
            return None  # paused (docker pause) or being frozen by someone else: not ours to thaw
        return _freeze(state, "FROZEN", "THAWED", lambda: _read(state) == "FROZEN", timeout)
    v2 = paths.get("")
    if v2 and os.path.exists(os.path.join(v2, "cgroup.freeze")):
        control, events = os.path.join(v2, "cgroup.freeze"), os.path.join(v2, "cgroup.events")
        if _read(control) != "0":
            return None
        return _freeze(control, "1", "0", lambda: "frozen 1" in _read(events).splitlines(), timeout)
    return None


def _freeze(control, frozen_value, thawed_value, is_frozen, timeout):
    started = time.monotonic()
    _write(control, frozen_value)
    frozen = Frozen(control, thawed_value, 0.0)
    while not is_frozen():
        if time.monotonic() - started > timeout:
            frozen.thaw()
            return None
        time.sleep(POLL_S)
    frozen.waited_s = round(time.monotonic() - started, 6)
    return frozen


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _write(path, value):
    with open(path, "w") as handle:
        handle.write(value)
