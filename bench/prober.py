"""The client that measures a service's downtime: it asks the service at every edge's address
every 10 ms, and the downtime a client sees is the longest gap between two successful answers;
whether the service's counter went on or began again tells a live migration from a cold start."""

import json
import socket
import threading
import time


def read_reply(sock, chunk_size=4096):
    """The bytes a service sends up to its first newline, or until it closes."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(chunk_size)
        if not chunk:
            break
        data += chunk
    return data


def parse_count(line):
    """The counter in a reply line: {"count": N} (openface stand-in) or a bare number (simple)."""
    line = line.strip()
    if not line:
        raise ValueError("empty reply")
    if line.startswith("{"):
        return int(json.loads(line)["count"])
    return int(line)


def ask_once(address, port, command=b"GET\n", timeout=2.0):
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(command)
        data = read_reply(sock, 65536)
    return data.decode(errors="replace").strip()


FAILURES_KEPT = 2000  # per prober: the requests that failed around the freeze, in the probe log


class Prober:
    """Asks the service at every address every `interval` s, one thread per address (the
    host that answered last is the current one; the others are asked at the same time, so
    the moment the service answers on its new host is seen within `interval`)."""

    def __init__(self, addresses, port, interval=0.01, connect_timeout=0.1, read_timeout=0.25):
        self.addresses = list(addresses)
        self.port = port
        self.interval = interval
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.answers = []  # (epoch, address, count)
        self.errors = 0
        self.failures = []  # (epoch, address, seconds the request took, error): the last ones
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = []

    def ask(self, address):
        """One request; the counter, or raises OSError/ValueError."""
        with socket.create_connection((address, self.port), timeout=self.connect_timeout) as sock:
            sock.settimeout(self.read_timeout)
            sock.sendall(b"GET\n")
            # Half-close at once: the service closes its end right after replying, so a
            # checkpoint seldom finds a connection open (CRIU refuses to dump one without
            # --tcp-established, and the migration does not pass it).
            sock.shutdown(socket.SHUT_WR)
            data = read_reply(sock)
        return parse_count(data.decode(errors="replace"))

    def _loop(self, address):
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                count = self.ask(address)
            except (OSError, ValueError) as exc:
                with self.lock:
                    self.errors += 1
                    self.failures.append((time.time(), address, round(time.monotonic() - began, 4),
                                          type(exc).__name__))
                    del self.failures[:-FAILURES_KEPT]
            else:
                with self.lock:
                    self.answers.append((time.time(), address, count))
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self):
        self.started = time.time()
        for address in self.addresses:
            thread = threading.Thread(target=self._loop, args=(address,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def wait_answer_from(self, address, since, timeout):
        """True once `address` answered after `since` (epoch)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if any(a == address and t >= since for t, a, _c in self.answers):
                    return True
            time.sleep(0.02)
        return False

    def stop(self):
        self.stopped = time.time()
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=2)
        return sorted(self.answers)


def longest_gap(times, start=None, end=None):
    """Longest interval without a successful answer: (gap_s, gap_start, gap_end) from the
    sorted epoch times of the successes, counting from `start` and up to `end` when given
    (a service that never answered again has its gap run to `end`). None without answers."""
    points = sorted(times)
    if start is not None:
        points = [t for t in points if t >= start]
    if end is not None:
        points = [t for t in points if t <= end]
    if not points:
        return None
    bounds = ([start] if start is not None else []) + points + ([end] if end is not None else [])
    best = (0.0, bounds[0], bounds[0])
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b - a > best[0]:
            best = (b - a, a, b)
    return best


def counter_check(answers):
    """'continued' when the service's counter never went back, else 'reset' (answers are
    (time, count) pairs; a cold start begins again at 1). None without answers."""
    counts = [count for _t, count in sorted(answers) if count is not None]
    if not counts:
        return None
    return "reset" if any(b < a for a, b in zip(counts, counts[1:], strict=False)) else "continued"
