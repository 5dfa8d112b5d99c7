#!/usr/bin/env python3
"""Migration experiment: services x strategies x links x repeats, in the lab, each
run an estimate (playbooks/estimate.yml) and then a real migration (migrate.yml), the
predictions compared with the migration's report.

    .venv/bin/python -m experiment.run                      # small default (CI): simple + openface-32, delta + rsync
    .venv/bin/python -m experiment.run --services openface-190,yolo-160 --strategies delta,rsync,seed-delta \\
        --links unshaped,100mbit --repeats 3

Each run starts a fresh container exp-<service> on the source (edge1), waits until it
answers, shapes the two hosts' links when the link setting has a rate (lab/lab link, cleared
after the run), runs estimate.yml, then migrate.yml to the destination (edge2), checks the
service's state on the destination, and removes the container everywhere. Writes
reports/experiments/<id>/{results.csv, summary.md, *.png, meta.json, logs/}. Only containers
named exp-* (--prefix) are touched. Run as root with the lab up (`make lab`).
"""

import argparse
import datetime
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench.labclient import Lab, Watch, other_playbooks, tc_rate_bits
from bench.prober import ask_once, parse_count
from experiment import analysis

REPO = Path(__file__).resolve().parent.parent
PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
SOURCE, DESTINATION = "edge1", "edge2"
HOST_PORT = 19990  # out of the catalog's (9998, 9999) and the bench's (19999) way

# name -> image, environment and the protocol its state is checked with
SERVICES = {
    "simple": {"image": "simple:latest", "env": {}, "state_mb": 0, "protocol": "line"},
    "yolo-160": {"image": "yolo-standin:latest", "env": {"STATE_MB": "160"}, "state_mb": 160, "protocol": "json"},
}
for _mb in (32, 64, 128, 190, 256, 512, 1024):
    SERVICES["openface-%d" % _mb] = {"image": "openface-standin:latest", "env": {"STATE_MB": str(_mb)},
                                     "state_mb": _mb, "protocol": "json"}
STRATEGIES = ("delta", "rsync", "cold", "seed-delta")
DEFAULT = {"services": ["simple", "openface-32"], "strategies": ["delta", "rsync"], "links": ["unshaped"]}


def log(msg):
    print("[experiment %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def link_rate(name):
    """tc rate of a link setting (None = unshaped): unshaped, or a rate such as 100mbit."""
    if name == "unshaped":
        return None
    tc_rate_bits(name)  # raises ValueError on a bad rate
    return name


def path_after(label, text):
    """The path printed after `label` in a playbook's output (e.g. 'report: /x.json')."""
    found = re.findall(r"%s:? (\S+\.json)" % re.escape(label), text or "")
    return found[-1].strip("'\",") if found else None


def playbook(args, log_path, timeout):
    begin = time.monotonic()
    proc = subprocess.run([str(PLAYBOOK)] + args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)
    Path(log_path).write_text(proc.stdout + proc.stderr)
    return proc, time.monotonic() - begin


class Runner:
    def __init__(self, args, out):
        self.args = args
        self.out = out
        self.lab = Lab(needed=(SOURCE, DESTINATION))

    def ask(self, host, service, command=b"GET\n", timeout=120):
        """The service's answer on host: its sha256 for SUM (stand-ins), else its counter."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                reply = ask_once(self.lab.address(host), self.args.port, command, timeout=30)
                if command == b"SUM\n":
                    return json.loads(reply)["sha256"]
                return parse_count(reply)
            except (OSError, ValueError, KeyError) as exc:
                last = exc
                time.sleep(0.2)
        raise RuntimeError("exp service on %s did not answer within %d s: %s" % (host, timeout, last))

    def state(self, host, service):
        return self.ask(host, service, b"SUM\n") if service["protocol"] == "json" else self.ask(host, service)

    def once(self, service_name, link, strategy, repeat):
        service = SERVICES[service_name]
        name = self.args.prefix + service_name
        rate = link_rate(link)
        tag = "%s_%s_%s_r%d" % (service_name, link, strategy, repeat)
        meta = {"experiment": self.out.name, "service": service_name, "state_mb": service["state_mb"], "link": link,
                "link_rate_bps": tc_rate_bits(rate) if rate else None, "strategy": strategy, "repeat": repeat}
        log("run %s" % tag)
        estimate, report = {}, {}
        shaped = []
        watch = Watch()
        try:
            self.lab.remove_everywhere(name)
            self.lab.start_service(SOURCE, name, service, self.args.port, {"edge-migrate.experiment": "1"})
            before = self.state(SOURCE, service)
            time.sleep(self.args.settle)
            if rate:
                for host in (SOURCE, DESTINATION):
                    shaped.append(host)
                    proc = self.lab.link(host, rate)
                    if proc.returncode != 0:
                        raise RuntimeError("lab/lab link %s --rate %s failed: %s" % (host, rate, proc.stderr.strip()))
            watch.start()
            meta["load_estimate"] = os.getloadavg()[0]
            common = ["-e", "service=%s" % name, "-e", "destination=%s" % DESTINATION]
            proc, meta["estimate_s"] = playbook(
                ["playbooks/estimate.yml"] + common + ["-e", "estimate_interval=%s" % self.args.interval,
                                                       "-e", "estimate_probe_mb=%d" % self.args.probe_mb],
                self.out / "logs" / (tag + "-estimate.log"), self.args.run_timeout)
            path = path_after("estimate", proc.stdout)
            if proc.returncode != 0 or not path:
                raise RuntimeError("estimate.yml failed (rc=%d), see logs/%s-estimate.log" % (proc.returncode, tag))
            estimate = json.loads(Path(path).read_text())
            meta["estimate"] = os.path.relpath(path, REPO)
            meta["load_migrate"] = os.getloadavg()[0]
            proc, meta["migrate_s"] = playbook(["migrate.yml"] + common + ["-e", "strategy=%s" % strategy],
                                               self.out / "logs" / (tag + "-migrate.log"), self.args.run_timeout)
            path = path_after("report", proc.stdout)
            if path:
                report = json.loads(Path(path).read_text())
                meta["report"] = os.path.relpath(path, REPO)
            if proc.returncode != 0:
                meta["outcome"] = report.get("outcome") or "playbook rc %d" % proc.returncode
                meta["cause"] = report.get("cause") or "see logs/%s-migrate.log" % tag
            elif strategy != "cold":
                meta["state_kept"] = self.state(DESTINATION, service) == before if service["protocol"] == "json" \
                    else self.state(DESTINATION, service) >= before
        except (RuntimeError, OSError, ValueError, subprocess.TimeoutExpired) as exc:
            meta["outcome"] = "error"
            meta["cause"] = str(exc)
            log("  %s" % exc)
        finally:
            watch.stopping.set()
            meta["concurrent_playbooks"] = len(watch.seen)
            for host in shaped:
                self.lab.link(host, clear=True)
            self.lab.remove_everywhere(name)
        row = analysis.row_from(meta, estimate, report if meta.get("outcome") != "error" else {})
        if meta.get("outcome") == "error":
            row["outcome"] = "error"
        log("  %s: total %s s (predicted %s), downtime %s s (predicted %s)" % (
            row["outcome"], row.get("total_s"), row.get("pred_total_s"), row.get("downtime_s"),
            row.get("pred_downtime_s")))
        return row


def summary(rows, args, meta):
    errs = analysis.errors(rows)
    accept = analysis.acceptance_lines(errs)
    md = ["# Migration experiment %s" % meta["id"], "",
          "- date: %s" % meta["date"],
          "- command: `%s`" % meta["command"],
          "- services %s; strategies %s; links %s; repeats %d; source %s, destination %s" % (
              ", ".join(args.services), ", ".join(args.strategies), ", ".join(args.links), args.repeats, SOURCE,
              DESTINATION),
          "- each run: fresh container, `playbooks/estimate.yml` (two checkpoints %s s apart, %d MB link probe), "
          "then `migrate.yml`; predictions are the estimate's for the run's strategy, measured values the "
          "migration report's (`total_s`: plan to report, `downtime_s`: frozen to running)" % (
              args.interval, args.probe_mb),
          "- error: |predicted - measured| / measured; the reference prototype's model (t_pre + t_mig, t_mig) "
          "on the same measurements is shown for the delta runs",
          "- runs during which another ansible-playbook ran in the shared lab: %d of %d; the controller's "
          "1-min load average when the estimates started: %s, when the migrations started: %s (2 cores)" % (
              sum(1 for r in rows if r.get("concurrent_playbooks")), len(rows),
              analysis.stat_text([r.get("load_estimate") for r in rows], digits=1),
              analysis.stat_text([r.get("load_migrate") for r in rows], digits=1)),
          "", "## Prediction error (acceptance: median absolute error <= 25 %)", ""] + [
          "- " + line for line in accept] + [
          "", "## Measured and predicted (medians)", ""] + analysis.prediction_table(rows) + [
          "", "## Phases, seconds: median (min-max)", ""] + analysis.phase_table(rows) + [
          "", "![phases per strategy](phases.png)", "", "![predicted vs measured](predicted_vs_measured.png)", "",
          "![downtime vs bandwidth](downtime_vs_bandwidth.png)", "", "![bytes sent](bytes.png)", ""]
    failed = [r for r in rows if r.get("outcome") != "migrated"]
    if failed:
        md += ["## Runs that did not migrate", ""] + ["- %s %s %s r%d: %s %s" % (
            r["service"], r["link"], r["strategy"], r["repeat"], r["outcome"], r.get("cause") or "")
            for r in failed] + [""]
    return md, accept


# Docker's rule for container names; the experiment id is held to it too (it names a directory).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--services", help="comma-separated: " + ", ".join(SERVICES))
    p.add_argument("--strategies", help="comma-separated: " + ", ".join(STRATEGIES))
    p.add_argument("--links", help="comma-separated: unshaped or a tc rate (100mbit, 20mbit, 1gbit)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--interval", type=float, default=3.0, help="seconds between the estimate's two checkpoints")
    p.add_argument("--probe-mb", type=int, default=16, help="MB the estimate pushes to measure the link")
    p.add_argument("--settle", type=float, default=2.0, help="seconds the fresh service runs before the estimate")
    p.add_argument("--run-timeout", type=float, default=900)
    p.add_argument("--quiet-wait", type=float, default=0.0,
                   help="seconds to wait before each run for other playbooks in a shared lab to end")
    p.add_argument("--id", help="experiment id (default: UTC timestamp)")
    p.add_argument("--prefix", default="exp-", help="containers are named PREFIX<service>")
    p.add_argument("--port", type=int, default=HOST_PORT, help="host port the service is published on")
    p.add_argument("--out", help="output directory (default reports/experiments/<id>)")
    args = p.parse_args(argv)

    def pick(value, default, known=None):
        items = [v.strip() for v in value.split(",") if v.strip()] if value else list(default)
        bad = [v for v in items if known is not None and v not in known]
        if bad or not items:
            p.error("unknown %s (known: %s)" % (", ".join(bad) or "empty list", ", ".join(known or [])))
        return items
    args.services = pick(args.services, DEFAULT["services"], SERVICES)
    args.strategies = pick(args.strategies, DEFAULT["strategies"], STRATEGIES)
    args.links = pick(args.links, DEFAULT["links"])
    for link in args.links:
        try:
            link_rate(link)
        except ValueError:
            p.error("unknown link %s: unshaped or a tc rate such as 100mbit" % link)
    for option, value, low, high in (("--repeats", args.repeats, 1, 100), ("--interval", args.interval, 0.5, 300),
                                     ("--probe-mb", args.probe_mb, 1, 1024), ("--settle", args.settle, 0, 600),
                                     ("--run-timeout", args.run_timeout, 1, 86400),
                                     ("--quiet-wait", args.quiet_wait, 0, 86400), ("--port", args.port, 1, 65535)):
        if not low <= value <= high:  # also refuses nan, which compares false with everything
            p.error("%s must be between %s and %s, got %s" % (option, low, high, value))
    if args.id is not None and not NAME_PATTERN.match(args.id):
        p.error("--id names a directory under reports/experiments: letters, digits, '_', '.' or '-', got %r"
                % args.id[:80])
    if not NAME_PATTERN.match(args.prefix + "x"):
        p.error("--prefix starts container names: letters, digits, '_', '.' or '-', got %r" % args.prefix[:80])
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab's links and daemons are root's)")
    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = args.id or now.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPO / "reports" / "experiments" / run_id
    (out / "logs").mkdir(parents=True, exist_ok=True)
    meta = {"id": run_id, "date": now.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "command": " ".join(shlex.quote(a) for a in [".venv/bin/python", "-m", "experiment.run"] + list(argv)),
            "services": args.services, "strategies": args.strategies, "links": args.links, "repeats": args.repeats}
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    runner = Runner(args, out)
    rows = []
    try:
        for service in args.services:
            for link in args.links:
                for repeat in range(1, args.repeats + 1):
                    for strategy in args.strategies:
                        waited = time.monotonic()
                        while other_playbooks() and time.monotonic() - waited < args.quiet_wait:
                            time.sleep(2)
                        if other_playbooks():
                            log("  another playbook runs in the shared lab; measuring anyway")
                        rows.append(runner.once(service, link, strategy, repeat))
                        analysis.write_csv(rows, out / "results.csv")
    finally:
        if rows:
            analysis.write_csv(rows, out / "results.csv")
            # The summary and plots describe the CSV as written (its numbers are rounded).
            rows = analysis.read_csv(out / "results.csv")
            md, accept = summary(rows, args, meta)
            (out / "summary.md").write_text("\n".join(md))
            analysis.plot(rows, out)
            print("\n".join(analysis.prediction_table(rows)))
            print("\n".join(accept))
            log("results: %s" % os.path.relpath(out, REPO))
    return 0 if rows and all(r["outcome"] == "migrated" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
