#!/usr/bin/env python3
"""Stand-in service with openface's memory profile (not openface itself).

The reference openface container checkpointed to about 186 MB. This stand-in holds
STATE_MB MiB (default 190) of resident state filled with random bytes at start, so a
cold start has a different checksum than the migrated one, and a smaller scratch
buffer (SCRATCH_MB, default 16) that a background thread dirties at DIRTY_KBPS KiB/s
(default 256; 0 turns it off) with random 4 KiB writes, to give checkpoints a small,
steady dirty rate.

Line protocol on TCP PORT (default 9999), one reply line per request line, several
requests per connection allowed:
  GET   -> increments the request counter, replies {"count": N}
  SUM   -> {"sha256": "<hex digest of the state buffer>", "count": N} (no increment)
  INFO  -> {"count", "state_mb", "scratch_mb", "dirty_kbps", "pid", "started", "hostname"}
Standard library only.
"""

import hashlib
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time

MIB = 1 << 20
PAGE = 4096


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


STATE_MB = env_int("STATE_MB", 190)
SCRATCH_MB = env_int("SCRATCH_MB", 16)
DIRTY_KBPS = env_int("DIRTY_KBPS", 256)
PORT = env_int("PORT", 9999)
STARTED = time.time()


def fill_random(size):
    buf = bytearray(size)
    view = memoryview(buf)
    chunk = 4 * MIB
    for off in range(0, size, chunk):
        n = min(chunk, size - off)
        view[off:off + n] = os.urandom(n)
    return buf


STATE = fill_random(STATE_MB * MIB)
SCRATCH = bytearray(SCRATCH_MB * MIB)
LOCK = threading.Lock()
COUNT = 0


def dirtier():
    """Writes DIRTY_KBPS KiB per second as random 4 KiB pages of SCRATCH."""
    if DIRTY_KBPS <= 0 or len(SCRATCH) < PAGE:
        return
    pages = len(SCRATCH) // PAGE
    tick = 0.1
    rng = random.Random()
    view = memoryview(SCRATCH)
    carry = 0.0
    while True:
        carry += DIRTY_KBPS / 4 * tick  # 4 KiB pages per tick
        n = int(carry)
        carry -= n
        for _ in range(n):
            off = rng.randrange(pages) * PAGE
            view[off:off + PAGE] = rng.randbytes(PAGE)
        time.sleep(tick)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        global COUNT
        for raw in self.rfile:
            cmd = raw.strip().upper()
            if not cmd:
                continue
            if cmd == b"GET":
                with LOCK:
                    COUNT += 1
                    reply = {"count": COUNT}
            elif cmd == b"SUM":
                digest = hashlib.sha256(memoryview(STATE)).hexdigest()
                reply = {"sha256": digest, "count": COUNT}
            elif cmd == b"INFO":
                reply = {"count": COUNT, "state_mb": STATE_MB, "scratch_mb": SCRATCH_MB,
                         "dirty_kbps": DIRTY_KBPS, "pid": os.getpid(), "started": STARTED,
                         "hostname": socket.gethostname()}
            else:
                reply = {"error": "unknown request %r; use GET, SUM or INFO" % cmd.decode(errors="replace")}
            self.wfile.write(json.dumps(reply).encode() + b"\n")
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    threading.Thread(target=dirtier, daemon=True).start()
    with Server(("0.0.0.0", PORT), Handler) as server:
        print("statesvc: %d MiB state, %d MiB scratch dirtied at %d KiB/s, port %d, pid %d"
              % (STATE_MB, SCRATCH_MB, DIRTY_KBPS, PORT, os.getpid()), flush=True)
        server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
