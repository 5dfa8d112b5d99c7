"""containerd's checkpoint copies (`ctrd-checkpoint*` in its TMPDIR): where they are, which
are stale. Each holds a checkpoint's memory images, or the edge-migrate runtime's marker."""

import os
import time

from ansible.module_utils.edge_engine_names import IMAGES_MARKER

PREFIX = "ctrd-checkpoint"


def containerd_tmp_dirs(proc="/proc"):
    """The TMPDIR of every running containerd (the ones that set one)."""
    found = set()
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "comm")) as handle:
                if handle.read().strip() != "containerd":
                    continue
            with open(os.path.join(proc, entry, "environ"), "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        for variable in environ:
            if variable.startswith(b"TMPDIR="):
                found.add(os.fsdecode(variable[len(b"TMPDIR="):]))
    return {path for path in found if path and os.path.isabs(path)}


def _marker_target(path):
    try:
        with open(os.path.join(path, IMAGES_MARKER)) as handle:
            return handle.read(4096).strip()
    except OSError:
        return None


def _under(path, directory):
    directory = os.path.abspath(directory)
    return os.path.abspath(path) == directory or os.path.abspath(path).startswith(directory.rstrip("/") + "/")


def paths_in_use(proc="/proc"):
    """Every path a process has open or works in (a dump or restore in progress holds its copy)."""
    used = set()
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        base = os.path.join(proc, entry)
        try:
            links = [os.path.join(base, "cwd")] + [os.path.join(base, "fd", fd) for fd in os.listdir(base + "/fd")]
        except OSError:
            continue
        for link in links:
            try:
                used.add(os.readlink(link))
            except OSError:
                pass
    return used


def stale_checkpoint_copies(tmp_dirs, images_under=None, older_than=60.0, now=None, in_use=()):
    """The ctrd-checkpoint* directories to remove: those whose marker names a path under
    images_under, and those no process uses (in_use) that have not changed for older_than seconds."""
    now = time.time() if now is None else now
    found = []
    for tmp_dir in tmp_dirs:
        try:
            entries = os.listdir(tmp_dir)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(tmp_dir, entry)
            if not entry.startswith(PREFIX) or os.path.islink(path) or not os.path.isdir(path):
                continue
            target = _marker_target(path)
            ours = bool(images_under and target and _under(target, images_under))
            used = any(_under(used_path, path) for used_path in in_use)
            try:
                unchanged_for = now - os.lstat(path).st_mtime
            except FileNotFoundError:  # removed meanwhile by another migration's cleanup
                continue
            if ours or (not used and unchanged_for >= older_than):
                found.append(path)
    return sorted(found)
