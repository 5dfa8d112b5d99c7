"""Progress of a long transfer, for the person watching: rsync's `--info=progress2` figures
(bytes so far, percent of the whole, rate, time left) kept in a small JSON file while it runs,
read by another task (edge_sync_progress) that Ansible repeats until the transfer has ended."""

import json
import os
import re
import subprocess
import threading
import time

from ansible.module_utils.edge_private_dir import replace_own_file

RSYNC_PROGRESS_ARGS = ("--info=progress2",)
# "    33,554,432  12%    2.34MB/s    0:01:20" (and a trailing "(xfr#1, to-chk=3/5)" at times)
_PROGRESS = re.compile(r"([\d,]+)\s+(\d{1,3})%\s+([\d.]+\s*[kMGT]?B/s)\s+(\d+:\d{2}:\d{2})")
WRITE_EVERY = 0.5


def parse_progress(text):
    """The last progress2 figures in text, or None."""
    found = None
    for match in _PROGRESS.finditer(text or ""):
        found = match
    if not found:
        return None
    return {"bytes": int(found.group(1).replace(",", "")), "percent": int(found.group(2)),
            "rate": found.group(3).replace(" ", ""), "time_left": found.group(4)}


def write_progress(path, progress):
    """Replace path with progress (JSON), readable by root alone."""
    replace_own_file(path, json.dumps(progress))


def show_progress(path, progress):
    """write_progress for display only: a file that cannot be written (a full disk, the directory
    gone) never stops the transfer it describes."""
    try:
        write_progress(path, progress)
    except OSError:
        pass


def read_progress(path):
    """What write_progress last wrote, or None (not there yet, or not JSON: an edge's file is
    only ever shown, never trusted)."""
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def progress_runner(progress_file, total_bytes=None, clock=time.monotonic):
    """`run(argv) -> (rc, stdout, stderr)` like edge_module.runner, that also writes the progress
    rsync prints into progress_file as it goes ({pid, bytes, percent, rate, time_left,
    total_bytes, done}). The stdout returned has rsync's carriage returns as newlines."""
    def run(argv):
        started = {"pid": os.getpid(), "total_bytes": total_bytes, "done": False, "bytes": 0}
        show_progress(progress_file, started)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        errors = []
        reader = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        reader.start()
        chunks, last_write, pending = [], 0.0, ""
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            text = chunk.decode("utf-8", "replace")
            chunks.append(text)
            pending = (pending + text)[-4096:]
            figures = parse_progress(pending)
            if figures and clock() - last_write >= WRITE_EVERY:
                show_progress(progress_file, dict(started, **figures))
                last_write = clock()
        rc = proc.wait()
        reader.join()
        out = "".join(chunks)
        final = dict(started, **(parse_progress(out) or {}))
        final["done"] = True
        final["rc"] = rc
        show_progress(progress_file, final)
        return rc, out.replace("\r", "\n"), (errors[0] if errors else b"").decode("utf-8", "replace")
    return run
