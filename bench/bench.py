#!/usr/bin/env python3
"""Migration benchmark: every strategy on every service and link, in the lab.

    .venv/bin/python bench/bench.py                 # quick: the cells the summary's checks need (QUICK)
    .venv/bin/python bench/bench.py --full          # every service x link x strategy
    .venv/bin/python bench/bench.py --services openface-1024 --links 100mbit --strategies delta,rsync

Each run starts a fresh container of the service on edge1 (Docker SDK), waits until it
answers, shapes both edges' links (lab/lab link), starts a prober, migrates the service to
edge2 with migrate.yml, stops the prober, clears the links, reads the migration's report and
removes the container everywhere. The prober, on the controller, asks every edge's address
for the service every 10 ms; the downtime a client sees is the longest gap between two
successful answers. The floor of each run is CRIU's own frozen time + CRIU's own restore time
+ freeze bytes / link rate. Writes reports/bench/<UTC id>/{results.csv, summary.md, *.png,
logs/}. Run as root with the lab up (`make lab`); only containers named bench-* are touched.
"""

import argparse
import csv
import datetime
import hashlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "lab" / "lab"
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
REPORTS = REPO / "reports"
SERVICE_PORT = 9999
HOST_PORT = 19999  # the catalog's services publish 9999; the bench keeps out of their way
SOURCE, DESTINATION = "edge1", "edge2"
NO_NETEM = "not emulated (no netem in this kernel)"

# name -> how to start it and how to ask it
SERVICES = {
    "openface-64": {"image": "openface-standin:latest", "env": {"STATE_MB": "64"}, "state_mb": 64, "protocol": "json"},
    "openface-256": {"image": "openface-standin:latest", "env": {"STATE_MB": "256"}, "state_mb": 256,
                     "protocol": "json"},
    "openface-1024": {"image": "openface-standin:latest", "env": {"STATE_MB": "1024"}, "state_mb": 1024,
                      "protocol": "json"},
    # busybox counter: replies with its counter (a number ten times a second) and closes
    "simple": {"image": "simple:latest", "env": {}, "state_mb": 0, "protocol": "line"},
}
# name -> (tc rate or None, delay or None)
LINKS = {
    "unshaped": (None, None),
    "1gbit": ("1gbit", None),
    "100mbit+20ms": ("100mbit", "20ms"),
    "20mbit+50ms": ("20mbit", "50ms"),
}
LINK_ALIASES = {"100mbit": "100mbit+20ms", "20mbit": "20mbit+50ms"}
STRATEGIES = ("cold", "rsync", "delta", "iterative", "seed-delta")
# (service, link, strategies): openface 256 MB with every strategy on both links, and the
# 1024 MB cell of the acceptance with the two strategies it compares.
QUICK = [("openface-256", "unshaped", list(STRATEGIES)), ("openface-256", "100mbit+20ms", list(STRATEGIES)),
         ("openface-1024", "100mbit+20ms", ["rsync", "delta"])]
FULL = {"services": ["openface-64", "openface-256", "openface-1024", "simple"], "links": list(LINKS),
        "strategies": list(STRATEGIES)}
PHASE_ORDER = ("pre_checkpoint", "pre_rsync", "pre_rounds", "prepare", "checkpoint", "xdelta_source", "final_rsync",
               "xdelta_dest", "restore")
CSV_FIELDS = ("service", "state_mb", "link", "link_rate_bps", "delay", "strategy", "repeat", "outcome",
              "state_kept", "counter", "client_downtime_s", "gap_in_freeze", "report_downtime_s", "total_s",
              "bytes_warmup", "bytes_freeze", "checkpoint_size", "criu_frozen_s", "criu_restore_s", "floor_s",
              "floor_from", "freeze_ratio", "concurrent_playbooks", "code", "attempts", "failed_attempts",
              "report") + tuple("phase_" + p for p in PHASE_ORDER)


def code_state():
    """The code a run measured: HEAD, plus a hash of uncommitted changes (the working tree is shared)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip()
    diff = subprocess.run(["git", "diff", "HEAD", "--", "library", "module_utils", "roles", "playbooks",
                           "migrate.yml"], cwd=REPO, capture_output=True, check=False).stdout
    untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "library", "module_utils",
                                "roles", "playbooks"], cwd=REPO, capture_output=True, check=False).stdout
    if not diff and not untracked:
        return head
    digest = hashlib.sha1(diff + untracked)
    for name in untracked.decode().split():
        try:
            digest.update((REPO / name).read_bytes())
        except OSError:
            pass
    return "%s+dirty.%s" % (head, digest.hexdigest()[:8])


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------- pure functions (unit tested)

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


def parse_count(line):
    """The counter in a reply line: {"count": N} (openface stand-in) or a bare number (simple)."""
    line = line.strip()
    if not line:
        raise ValueError("empty reply")
    if line.startswith("{"):
        return int(json.loads(line)["count"])
    return int(line)


def floor_s(criu_frozen, criu_restore, bytes_freeze, rate_bps):
    """CRIU's frozen time + CRIU's restore time + freeze bytes / link rate; None when a part is unknown."""
    if None in (criu_frozen, criu_restore, bytes_freeze, rate_bps) or not rate_bps:
        return None
    return criu_frozen + criu_restore + bytes_freeze * 8.0 / rate_bps


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fill_floors(rows):
    """Runs without CRIU statistics (seed-delta goes through Docker, which hides them) take the
    floor of the delta run of the same cell and repeat; the others keep their own."""
    delta = {(r["service"], r["link"], r["repeat"]): r for r in rows if r["strategy"] == "delta"}
    for row in rows:
        if row.get("floor_s") is None and row["strategy"] not in ("delta", "cold"):
            other = delta.get((row["service"], row["link"], row["repeat"]))
            if other and other.get("floor_s") is not None:
                row["floor_s"] = other["floor_s"]
                row["floor_from"] = "delta run"
    return rows


def aggregate(rows, downtime="client_downtime_s"):
    """Per (service, link, strategy): medians over repeats. Per (service, link): the ratios of
    the summary, each computed within one repeat (same bench run) and then its median taken, on the
    `downtime` column (client-seen; the report's when the bench ran without its prober)."""
    cells = {}
    for row in rows:
        cells.setdefault((row["service"], row["link"], row["strategy"]), []).append(row)
    table = []
    for (service, link, strategy), group in cells.items():
        ok = [r for r in group if r["outcome"] == "migrated"]
        table.append({
            "service": service, "link": link, "strategy": strategy, "runs": len(group), "migrated": len(ok),
            "client_downtime_s": median(r["client_downtime_s"] for r in ok),
            "report_downtime_s": median(r["report_downtime_s"] for r in ok),
            "floor_s": median(r["floor_s"] for r in ok),
            "total_s": median(r["total_s"] for r in ok),
            "bytes_warmup": median(r["bytes_warmup"] for r in ok),
            "bytes_freeze": median(r["bytes_freeze"] for r in ok),
            "checkpoint_size": median(r["checkpoint_size"] for r in ok),
            "freeze_ratio": median(r["freeze_ratio"] for r in ok),
            "state": ",".join(sorted({str(r["counter"]) for r in ok})) or "-",
        })
    order = {s: i for i, s in enumerate(STRATEGIES)}
    table.sort(key=lambda t: (t["service"], t["link"], order.get(t["strategy"], 99)))
    by_run = {(r["service"], r["link"], r["repeat"], r["strategy"]): r for r in rows if r["outcome"] == "migrated"}
    ratios = {}
    for service, link in sorted({(r["service"], r["link"]) for r in rows}):
        per_repeat = {"delta_over_floor": [], "seed_over_delta": [], "delta_total_over_rsync_total": [],
                      "delta_freeze_over_checkpoint": []}
        for repeat in sorted({r["repeat"] for r in rows}):
            def get(strategy, key, repeat=repeat, service=service, link=link):
                return (by_run.get((service, link, repeat, strategy)) or {}).get(key)
            per_repeat["delta_over_floor"].append(ratio(get("delta", downtime), get("delta", "floor_s")))
            per_repeat["seed_over_delta"].append(ratio(get("seed-delta", downtime), get("delta", downtime)))
            per_repeat["delta_total_over_rsync_total"].append(ratio(get("delta", "total_s"), get("rsync", "total_s")))
            per_repeat["delta_freeze_over_checkpoint"].append(ratio(get("delta", "bytes_freeze"),
                                                                    get("delta", "checkpoint_size")))
        ratios[(service, link)] = {name: median(values) for name, values in per_repeat.items()}
    return table, ratios


def acceptance(ratios, delay_note, basis="client-seen"):
    """Issue 5's acceptance checks: (check, value, verdict) with verdict PASS, FAIL or NOT RUN."""
    def verdict(value, ok):
        return ("NOT RUN", "-") if value is None else ("PASS" if ok(value) else "FAIL", "%.3g" % value)
    cell = ratios.get(("openface-256", "100mbit+20ms"), {})
    big = ratios.get(("openface-1024", "100mbit+20ms"), {})
    checks = []
    for name, value, ok in (
        ("openface 256 MB, 100 Mbit/s + 20 ms (%s): %s delta <= 2 x floor" % (delay_note, basis),
         cell.get("delta_over_floor"), lambda v: v <= 2),
        ("openface 256 MB, 100 Mbit/s + 20 ms (%s): seed-delta >= 3 x delta (%s)" % (delay_note, basis),
         cell.get("seed_over_delta"), lambda v: v >= 3),
        ("openface 1024 MB, 100 Mbit/s: delta total <= rsync total", big.get("delta_total_over_rsync_total"),
         lambda v: v <= 1),
        ("openface 1024 MB, 100 Mbit/s: delta freeze bytes < 2 % of the checkpoint",
         big.get("delta_freeze_over_checkpoint"), lambda v: v < 0.02),
    ):
        result, shown = verdict(value, ok)
        checks.append((name, shown, result))
    return checks


# ---------------------------------------------------------------- the prober

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
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        return parse_count(data.decode(errors="replace"))

    def _loop(self, address):
        while not self.stopping.is_set():
            began = time.monotonic()
            try:
                count = self.ask(address)
            except (OSError, ValueError):
                with self.lock:
                    self.errors += 1
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


def ask_once(address, port, command=b"GET\n", timeout=2.0):
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(command)
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode(errors="replace").strip()


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self):
        status = json.loads(subprocess.run([str(LAB), "status", "--json"], capture_output=True, text=True,
                                           check=False).stdout or "{}")
        if not status.get("up"):
            raise SystemExit("the lab is not up: run `make lab`")
        self.status = status
        self.hosts = {h["name"]: h for h in status["hosts"]}
        self.registry = status["registry"]["address"]
        self.known_hosts = status["known_hosts"]
        for name in (SOURCE, DESTINATION):
            if name not in self.hosts:
                raise SystemExit("the lab has no host %s" % name)

    def api(self, host):
        import docker
        return docker.APIClient(base_url=self.hosts[host]["docker_host"], version="auto", timeout=300)

    def address(self, host):
        return self.hosts[host]["address"]

    def link(self, host, rate=None, delay=None, clear=False):
        argv = [str(LAB), "link", host] + (["--clear"] if clear else ["--rate", rate] + (
            ["--delay", delay] if delay else []))
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def shaped(self):
        """Current shaping per host (lab status), to notice someone else's."""
        status = json.loads(subprocess.run([str(LAB), "status", "--json"], capture_output=True, text=True,
                                           check=False).stdout or "{}")
        return {h["name"]: h.get("link") for h in status.get("hosts", [])}

    def remove_everywhere(self, name):
        import docker
        for host in self.hosts:
            try:
                self.api(host).remove_container(name, force=True)
            except docker.errors.NotFound:
                pass

    def start_service(self, name, service):
        import docker
        api = self.api(SOURCE)
        image = "%s/%s" % (self.registry, service["image"])
        repository, tag = image.rsplit(":", 1)
        try:
            api.inspect_image(image)
        except docker.errors.ImageNotFound:
            api.pull(repository, tag=tag)
        host_config = api.create_host_config(port_bindings={SERVICE_PORT: HOST_PORT})
        container = api.create_container(image, name=name, environment=service["env"], ports=[SERVICE_PORT],
                                         host_config=host_config, labels={"edge-migrate.bench": "1"})
        api.start(container["Id"])

    def wait_answer(self, host, timeout=180):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                return parse_count(ask_once(self.address(host), HOST_PORT))
            except (OSError, ValueError) as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError("the service on %s did not answer within %d s: %s" % (host, timeout, last))

    def measure_rate(self, workdir, size_mb=50):
        """Host-to-host throughput in bit/s: rsync of size_mb MB of random bytes from edge1 to edge2
        over SSH inside their namespaces (as the migration sends), unshaped."""
        src = self.hosts[SOURCE]
        dst = self.hosts[DESTINATION]
        tag = "bench-linkrate-%d" % os.getpid()
        src_dir = Path(src["checkpoint_dir"]) / tag
        dst_dir = Path(dst["checkpoint_dir"]) / tag
        try:
            src_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(src_dir / "blob", "wb") as handle:
                for _ in range(size_mb):
                    handle.write(os.urandom(1 << 20))
            ssh = "ssh -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes" % (
                src["ssh_key"], self.known_hosts)
            argv = [str(LAB), "exec", SOURCE, "--", "rsync", "-a", "--whole-file", "--stats", "-e", ssh,
                    str(src_dir) + "/", "root@%s:%s/" % (dst["address"], dst_dir)]
            began = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
            elapsed = time.monotonic() - began
            if proc.returncode != 0:
                raise RuntimeError("link rate measurement failed: %s" % proc.stderr.strip())
            bits = size_mb * (1 << 20) * 8
            return bits / elapsed, elapsed
        finally:
            subprocess.run(["rm", "-rf", str(src_dir), str(dst_dir)], check=False)


def _parent(pid):
    with open("/proc/%d/stat" % pid) as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def other_playbooks():
    """Pids of ansible-playbook processes that are neither the bench's children nor the one that
    started it (playbooks/experiment.yml): someone else's tests."""
    mine = os.getpid()
    ancestors, pid = set(), mine
    while pid > 1 and len(ancestors) < 50:
        try:
            pid = _parent(pid)
        except (OSError, ValueError, IndexError):
            break
        ancestors.add(pid)
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in ancestors:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                cmd = handle.read().split(b"\0")
            if not any(part.endswith(b"ansible-playbook") for part in cmd[:2]):
                continue
            # skip our own children (and their forks)
            ppid, own = int(pid), False
            for _ in range(20):
                ppid = _parent(ppid)
                if ppid == mine:
                    own = True
                    break
                if ppid <= 1:
                    break
            if not own:
                found.append(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return found


class Watch(threading.Thread):
    """Notes whether someone else's playbook ran while a run was measured (shared lab)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.seen = set()
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.wait(0.5):
            self.seen.update(other_playbooks())


# ---------------------------------------------------------------- one run

def run_once(lab, args, out, service_name, link_name, link_setting, strategy, repeat, rate_bps, attempt=1):
    service = SERVICES[service_name]
    name = "bench-%s" % service_name
    rate, delay = link_setting
    row = {"service": service_name, "state_mb": service["state_mb"], "link": link_name, "link_rate_bps": rate_bps,
           "delay": (delay + " " + NO_NETEM) if delay and not args.netem else (delay or ""), "strategy": strategy,
           "repeat": repeat, "outcome": "failed", "code": code_state()}
    tag = "%s_%s_%s_r%d_a%d" % (service_name, link_name.replace("+", "_"), strategy, repeat, attempt)
    log("run %s: %s, link %s, strategy %s, repeat %d" % (tag, service_name, link_name, strategy, repeat))
    waited = time.monotonic()
    while other_playbooks() and time.monotonic() - waited < args.quiet_wait:
        time.sleep(1)
    if other_playbooks():
        log("  another migration is running in the lab (shared); measuring anyway")
    lab.remove_everywhere(name)
    watch = Watch()
    shaped = []
    prober = None
    try:
        lab.start_service(name, service)
        lab.wait_answer(SOURCE)
        time.sleep(args.settle)
        before_sum = None
        if service["protocol"] == "json":
            before_sum = json.loads(ask_once(lab.address(SOURCE), HOST_PORT, b"SUM\n", timeout=30))["sha256"]
        if rate:
            for host in (SOURCE, DESTINATION):
                shaped.append(host)
                proc = lab.link(host, rate, delay if args.netem else None)
                if proc.returncode != 0:
                    raise RuntimeError("lab/lab link %s failed: %s" % (host, proc.stderr.strip()))
        watch.start()
        prober = Prober([lab.address(h) for h in (SOURCE, DESTINATION)], HOST_PORT)
        if args.prober == "on":
            prober.start()
            time.sleep(1.0)
        else:
            prober.started = time.time()
        migration_start = time.time()
        argv = [str(PLAYBOOK), "migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % DESTINATION,
                "-e", "strategy=%s" % strategy]
        with open(out / "logs" / (tag + ".log"), "w") as handle:
            proc = subprocess.run(argv, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, text=True,
                                  timeout=args.run_timeout, check=False)
        ended = time.time()
        if args.prober == "on":
            back = prober.wait_answer_from(lab.address(DESTINATION), migration_start, args.answer_timeout)
            time.sleep(0.2)
        else:
            try:
                lab.wait_answer(DESTINATION, timeout=args.answer_timeout)
                back = True
            except RuntimeError:
                back = False
        answers = prober.stop()
        prober_stopped, prober_errors = prober.stopped, prober.errors
        prober = None
        watch.stopping.set()
        row["concurrent_playbooks"] = len(watch.seen)
        report_path = find_report(out / "logs" / (tag + ".log"))
        report = json.loads(Path(report_path).read_text()) if report_path else {}
        row["report"] = os.path.relpath(report_path, REPO) if report_path else ""
        row["outcome"] = report.get("outcome") or ("playbook rc %d" % proc.returncode)
        row["cause"] = (report.get("cause") or "")[:300]
        if proc.returncode != 0 and row["outcome"] == "migrated":
            row["outcome"] = "playbook rc %d" % proc.returncode
        times = [t for t, _a, _c in answers]
        gap = longest_gap(times, migration_start, prober_stopped)
        row["client_downtime_s"] = round(gap[0], 3) if gap and back and args.prober == "on" else None
        row["counter"] = counter_check([(t, c) for t, _a, c in answers if t >= migration_start - 1.0])
        if args.prober == "off":
            row["counter"] = "not probed"
        after_sum = None
        if before_sum and back:
            after_sum = json.loads(ask_once(lab.address(DESTINATION), HOST_PORT, b"SUM\n", timeout=30))["sha256"]
        row["state_kept"] = (after_sum == before_sum) if before_sum and after_sum else None
        fill_from_report(row, report, rate_bps)
        if gap and report.get("downtime_s") is not None and report.get("phases", {}).get("migrate") is not None:
            # was the longest gap the freeze (it overlaps the report's frozen window), or warm-up congestion?
            started = datetime.datetime.strptime(report["started_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            running_at = started + report["phases"]["migrate"]
            frozen_at = running_at - report["downtime_s"]
            row["gap_in_freeze"] = gap[2] >= frozen_at and gap[1] <= running_at + 1.0
        (out / "logs" / (tag + ".probe.json")).write_text(json.dumps({
            "migration_start": migration_start, "playbook_end": ended, "prober_stop": prober_stopped,
            "answers": answers, "failed_requests": prober_errors, "longest_gap": gap}, indent=0))
    except Exception as exc:  # one failed run must not stop the matrix; it is recorded
        log("  run failed: %s" % exc)
        row["outcome"] = "error: %s" % exc
    finally:
        if prober is not None:
            prober.stop()
        watch.stopping.set()
        for host in shaped:
            proc = lab.link(host, clear=True)
            if proc.returncode != 0:
                log("  could not clear %s's link: %s" % (host, proc.stderr.strip()))
        try:
            lab.remove_everywhere(name)
        except Exception as exc:  # noqa: BLE001 - reported, then the next run tries again
            log("  could not remove %s: %s" % (name, exc))
    log("  %s: client-seen %s s, report %s s, floor %s s, total %s s, counter %s, state kept %s" % (
        row["outcome"], row.get("client_downtime_s"), row.get("report_downtime_s"), fmt(row.get("floor_s")),
        row.get("total_s"), row.get("counter"), row.get("state_kept")))
    return row


def find_report(log_path):
    for line in reversed(Path(log_path).read_text(errors="replace").splitlines()):
        line = line.strip().strip("'\"- ")
        if line.startswith("report: "):
            path = line[len("report: "):].strip().strip("'\"")
            if os.path.exists(path):
                return path
    return None


def fill_from_report(row, report, rate_bps):
    phases = report.get("phases") or {}
    criu = report.get("criu") or {}
    row.update({
        "report_downtime_s": report.get("downtime_s"),
        "total_s": report.get("total_s"),
        "bytes_warmup": report.get("bytes_warmup"),
        "bytes_freeze": report.get("bytes_freeze"),
        "checkpoint_size": report.get("checkpoint_size"),
        "criu_frozen_s": (criu.get("dump") or {}).get("frozen_time"),
        "criu_restore_s": (criu.get("restore") or {}).get("restore_time"),
    })
    for phase in PHASE_ORDER:
        row["phase_" + phase] = phases.get(phase)
    row["freeze_ratio"] = ratio(row["bytes_freeze"], row["checkpoint_size"])
    row["floor_s"] = floor_s(row["criu_frozen_s"], row["criu_restore_s"], row["bytes_freeze"], rate_bps)
    row["floor_from"] = "own run" if row["floor_s"] is not None else ""
    if row["floor_s"] is None and row["criu_frozen_s"] is not None and row["bytes_freeze"] is not None:
        row["floor_from"] = "incomplete: no CRIU restore statistics in the report"


# ---------------------------------------------------------------- output

def fmt(value, scale=1.0, digits=2):
    if value is None:
        return "-"
    return "%.*f" % (digits, value / scale)


def table_lines(table):
    head = ("service", "link", "strategy", "ok/runs", "client s", "report s", "floor s", "total s", "warm-up MB",
            "freeze MB", "ckpt MB", "freeze %", "counter")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in table:
        lines.append("| " + " | ".join((
            t["service"], t["link"], t["strategy"], "%d/%d" % (t["migrated"], t["runs"]),
            fmt(t["client_downtime_s"]), fmt(t["report_downtime_s"]), fmt(t["floor_s"]), fmt(t["total_s"], digits=1),
            fmt(t["bytes_warmup"], 1e6, 1), fmt(t["bytes_freeze"], 1e6, 2), fmt(t["checkpoint_size"], 1e6, 1),
            fmt(t["freeze_ratio"], 0.01, 2), t["state"])) + " |")
    return lines


def ratio_lines(ratios):
    lines = ["| service | link | delta / floor | seed-delta / delta | delta total / rsync total | "
             "delta freeze / checkpoint |", "|---|---|---|---|---|---|"]
    for (service, link), r in sorted(ratios.items()):
        lines.append("| %s | %s | %s | %s | %s | %s |" % (
            service, link, fmt(r["delta_over_floor"]), fmt(r["seed_over_delta"]),
            fmt(r["delta_total_over_rsync_total"]), fmt(r["delta_freeze_over_checkpoint"], 0.01, 2) + " %"
            if r["delta_freeze_over_checkpoint"] is not None else "-"))
    return lines


def stacked_phases(ax, groups, phases, labels, title, colors, width):
    """One bar per group of runs (a strategy): the medians of its phases stacked in `phases`
    order (bench and experiment plots)."""
    bottoms = [0.0] * len(groups)
    for j, phase in enumerate(phases):
        heights = [median(r.get("phase_" + phase) for r in g) or 0 for g in groups]
        ax.bar(range(len(groups)), heights, width, bottom=bottoms, label=phase, color=colors[j % 10])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=False)]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("seconds (median)")
    ax.set_title(title, fontsize=9)


def plot(rows, table, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({t["service"] for t in table})
    links = [link for link in LINKS if any(t["link"] == link for t in table)]
    strategies = [s for s in STRATEGIES if any(t["strategy"] == s for t in table)]
    fig, axes = plt.subplots(1, len(services), figsize=(5.5 * len(services), 4.2), squeeze=False)
    width = 0.8 / max(1, len(strategies))
    for ax, service in zip(axes[0], services, strict=False):
        for i, strategy in enumerate(strategies):
            values, floors = [], []
            for link in links:
                cell = next((t for t in table if (t["service"], t["link"], t["strategy"]) == (service, link, strategy)),
                            None)
                values.append((cell or {}).get("client_downtime_s") or 0)
                floors.append((cell or {}).get("floor_s"))
            xs = [x + (i - (len(strategies) - 1) / 2) * width for x in range(len(links))]
            ax.bar(xs, values, width, label=strategy)
            for x, value in zip(xs, values, strict=False):
                ax.annotate("%.1f" % value, (x, value), ha="center", va="bottom", fontsize=7)
        for x, link in enumerate(links):
            cell = next((t for t in table if (t["service"], t["link"], t["strategy"]) == (service, link, "delta")),
                        None)
            if cell and cell.get("floor_s"):
                ax.hlines(cell["floor_s"], x - 0.4, x + 0.4, colors="black", linestyles="dashed",
                          label="floor (CRIU + freeze bytes / rate)" if x == 0 else None)
        ax.set_xticks(range(len(links)))
        ax.set_xticklabels([link.replace("+", "\n+") + ("\n(delay not emulated)" if "+" in link else "")
                            for link in links], fontsize=8)
        ax.set_ylabel("client-seen downtime, s (median)")
        ax.set_title(service)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "downtime.png", dpi=110)
    plt.close(fig)

    cells = sorted({(r["service"], r["link"]) for r in rows}, key=lambda c: (c[0], list(LINKS).index(c[1])))
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4.5), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, (service, link) in zip(axes[0], cells, strict=False):
        groups = [[r for r in rows if (r["service"], r["link"], r["strategy"]) == (service, link, s)
                   and r["outcome"] == "migrated"] for s in strategies]
        stacked_phases(ax, groups, PHASE_ORDER, strategies, "%s, %s" % (service, link), colors, width=0.6)
        ax.scatter(range(len(strategies)), [median(r.get("total_s") for r in g) or 0 for g in groups], marker="_",
                   s=400, color="black", label="total (incl. Ansible)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=110)
    plt.close(fig)


def write_csv(rows, out):
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("%.4f" % v if isinstance(v, float) else v) for k, v in row.items()})


def write_outputs(rows, out, args, meta):
    fill_floors(rows)
    write_csv(rows, out)
    basis = "client-seen" if args.prober == "on" else "report downtime, run without prober"
    table, ratios = aggregate(rows, "client_downtime_s" if args.prober == "on" else "report_downtime_s")
    checks = acceptance(ratios, NO_NETEM if not args.netem else "delay emulated", basis)
    lines = table_lines(table)
    print("\n".join(lines))
    print()
    print("\n".join(ratio_lines(ratios)))
    print()
    for name, value, verdict in checks:
        print("%-7s %s (%s)" % (verdict, name, value))
    md = ["# Migration benchmark %s" % meta["id"], "",
          "- date: %s" % meta["date"],
          "- command: `%s`" % meta["command"],
          "- repeats: %d; medians over repeats; ratios computed within one repeat of this bench run, "
          "then their median" % args.repeats,
          "- link rate used for the floor: unshaped = %.0f Mbit/s, measured in this run (%d MB rsync over SSH edge1 -> "
          "edge2 in %.2f s); shaped links = their tbf rate" % (meta["rate_bps"] / 1e6, meta["rate_mb"],
                                                               meta["rate_s"]),
          "- link delay: %s; the rate part of each link setting is applied (lab/lab link on edge1 and edge2)" % (
              NO_NETEM if not args.netem else "emulated with netem"),
          "- client s: longest gap between successful answers of a prober asking every 10 ms (median); report s: "
          "frozen -> running from the migration report; floor: CRIU frozen time + CRIU restore time + freeze bytes / "
          "link rate (seed-delta goes through Docker, which hides CRIU's statistics: its floor is the delta run's)",
          "- prober: %s%s" % (args.prober, "" if args.prober == "on" else
                               " (no client during the migration: ratios and checks use the report's downtime)"),
          "- counter: whether the service's request counter went on (continued) or began again (reset, cold)",
          "- code measured (HEAD, +dirty.<hash> of uncommitted role/module changes): %s" % ", ".join(
              sorted({r.get("code", "?") for r in rows})),
          "- runs during which another ansible-playbook ran in the shared lab: %d of %d" % (
              sum(1 for r in rows if r.get("concurrent_playbooks")), len(rows)),
          "", "## Results", ""] + lines + ["", "## Ratios (within one run)", ""] + ratio_lines(ratios) + [
          "", "## Acceptance checks", "", "| check | value | verdict |", "|---|---|---|"] + [
          "| %s | %s | %s |" % c for c in checks] + [
          "| README shows the table and the downtime plot | - | not part of the benchmark |", "",
          "![downtime per strategy and link](downtime.png)", "", "![phases per strategy](phases.png)", ""]
    retried = [r for r in rows if r.get("failed_attempts")]
    if retried:
        md += ["## Attempts that did not complete (the run was tried again)", ""] + ["- %s %s %s r%d: %s" % (
            r["service"], r["link"], r["strategy"], r["repeat"], r["failed_attempts"]) for r in retried] + [""]
    failed = [r for r in rows if r["outcome"] != "migrated"]
    if failed:
        md += ["## Runs that did not migrate", ""] + ["- %s %s %s r%d: %s" % (
            r["service"], r["link"], r["strategy"], r["repeat"], r["outcome"]) for r in failed] + [""]
    (out / "summary.md").write_text("\n".join(md))
    try:
        plot(rows, table, out)
    except ImportError as exc:
        log("no plots: %s" % exc)
    return table, ratios, checks


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="the full matrix")
    p.add_argument("--services", help="comma-separated: " + ", ".join(SERVICES))
    p.add_argument("--links", help="comma-separated: " + ", ".join(LINKS) + " (100mbit, 20mbit also accepted)")
    p.add_argument("--strategies", help="comma-separated: " + ", ".join(STRATEGIES))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--rate-mb", type=int, default=50, help="MB sent to measure the unshaped link rate")
    p.add_argument("--settle", type=float, default=2.0, help="seconds the fresh service runs before the migration")
    p.add_argument("--quiet-wait", type=float, default=60.0,
                   help="seconds to wait for someone else's migration in the shared lab to end before a run")
    p.add_argument("--run-timeout", type=float, default=1800)
    p.add_argument("--prober", choices=["on", "off"], default="on",
                   help="off: no client during the migration (the service's state is still checked with SUM); "
                        "downtime is then the report's")
    p.add_argument("--attempts", type=int, default=1,
                   help="tries per run when a migration does not complete (each failure is recorded)")
    p.add_argument("--answer-timeout", type=float, default=30.0,
                   help="seconds after the playbook to wait for the service to answer on the destination")
    p.add_argument("--out", help="output directory (default reports/bench/<UTC id>)")
    args = p.parse_args(argv)
    chosen = args.full or args.services or args.links or args.strategies
    base = FULL if args.full else {"services": ["openface-256"], "links": ["unshaped", "100mbit+20ms"],
                                   "strategies": list(STRATEGIES)}

    def pick(value, default, known, aliases=None):
        items = [LINK_ALIASES.get(v.strip(), v.strip()) if aliases else v.strip()
                 for v in value.split(",")] if value else list(default)
        bad = [v for v in items if v not in known]
        if bad:
            p.error("unknown %s (known: %s)" % (", ".join(bad), ", ".join(known)))
        return items
    args.services = pick(args.services, base["services"], SERVICES)
    args.links = pick(args.links, base["links"], LINKS, aliases=True)
    args.strategies = pick(args.strategies, base["strategies"], STRATEGIES)
    args.cells = ([(service, link, args.strategies) for service in args.services for link in args.links]
                  if chosen else QUICK)
    return args


def netem_available(lab):
    """Whether lab/lab link can add delay here (it says so clearly when the kernel has no netem)."""
    proc = lab.link(SOURCE, "1gbit", "1ms")
    lab.link(SOURCE, clear=True)
    return proc.returncode == 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab's links and daemons are root's)")
    lab = Lab()
    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPORTS / "bench" / run_id
    (out / "logs").mkdir(parents=True, exist_ok=True)
    args.netem = netem_available(lab)
    log("delay: %s" % ("emulated with netem" if args.netem else NO_NETEM))
    rate_bps, rate_s = lab.measure_rate(out, args.rate_mb)
    log("unshaped link rate edge1 -> edge2: %.0f Mbit/s (%d MB in %.2f s)" % (rate_bps / 1e6, args.rate_mb, rate_s))
    meta = {"id": run_id, "date": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(shlex.quote(a) for a in [sys.executable.replace(str(REPO) + "/", ""),
                                                          os.path.relpath(__file__, REPO)] + list(
                sys.argv[1:] if argv is None else argv)),
            "rate_bps": rate_bps, "rate_mb": args.rate_mb, "rate_s": rate_s}
    (out / "meta.json").write_text(json.dumps(dict(meta, cells=args.cells, repeats=args.repeats), indent=1))
    rows = []
    try:
        for service, link, strategies in args.cells:
            rate, _delay = LINKS[link]
            link_bps = rate_bps if rate is None else tc_rate_bits(rate)
            for repeat in range(1, args.repeats + 1):
                for strategy in strategies:
                    failures = []
                    for attempt in range(1, args.attempts + 1):
                        row = run_once(lab, args, out, service, link, LINKS[link], strategy, repeat, link_bps,
                                       attempt)
                        if row["outcome"] == "migrated":
                            break
                        failures.append("attempt %d: %s %s" % (attempt, row["outcome"], row.get("cause", "")))
                    row["attempts"] = attempt
                    row["failed_attempts"] = " | ".join(failures)
                    rows.append(row)
                    write_csv(rows, out)  # kept current, so an interrupted bench leaves its runs
    finally:
        if rows:
            write_outputs(rows, out, args, meta)
            log("results: %s" % os.path.relpath(out, REPO))
    return 0 if rows and all(r["outcome"] == "migrated" for r in rows) else 1


def tc_rate_bits(rate):
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, factor in units.items():
        if rate.endswith(unit):
            return float(rate[:-len(unit)]) * factor
    raise ValueError("unknown rate %s" % rate)


if __name__ == "__main__":
    sys.exit(main())
