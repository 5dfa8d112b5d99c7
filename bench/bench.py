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
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script (make bench): the bench package is found from the repository
from bench.labclient import Lab, Watch, find_report, other_playbooks, run_playbook, tc_rate_bits  # noqa: E402
from bench.matrix import FULL, LINK_ALIASES, LINKS, QUICK, SERVICES, STRATEGIES  # noqa: E402
from bench.plots import plot  # noqa: E402
from bench.prober import Prober, ask_once, counter_check, longest_gap  # noqa: E402
from bench.report import NO_NETEM, code_state, fill_from_report, fmt, write_csv, write_outputs  # noqa: E402

REPORTS = REPO / "reports"
HOST_PORT = 19999  # the catalog's services publish 9999; the bench keeps out of their way
SOURCE, DESTINATION = "edge1", "edge2"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


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
        lab.start_service(SOURCE, name, service, HOST_PORT, {"edge-migrate.bench": "1"})
        lab.wait_answer(SOURCE, HOST_PORT)
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
        chosen = [] if strategy == "default" else ["-e", "strategy=%s" % strategy]
        proc = run_playbook(["migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % DESTINATION,
                             *chosen], out / "logs" / (tag + ".log"), args.run_timeout)
        ended = time.time()
        if args.prober == "on":
            back = prober.wait_answer_from(lab.address(DESTINATION), migration_start, args.answer_timeout)
            time.sleep(0.2)
        else:
            try:
                lab.wait_answer(DESTINATION, HOST_PORT, timeout=args.answer_timeout)
                back = True
            except RuntimeError:
                back = False
        answers = prober.stop()
        prober_stopped, prober_errors, prober_failures = prober.stopped, prober.errors, prober.failures
        prober = None
        watch.stopping.set()
        row["concurrent_playbooks"] = len(watch.seen)
        report_path = find_report(out / "logs" / (tag + ".log"))
        report = json.loads(Path(report_path).read_text()) if report_path else {}
        row["report"] = os.path.relpath(report_path, REPO) if report_path else ""
        row["outcome"] = report.get("outcome") or ("playbook rc %d" % proc.returncode)
        row["cause"] = (report.get("cause") or "")[:300]
        row["chosen_strategy"] = report.get("strategy") or ""
        row["strategy_reason"] = report.get("strategy_reason") or ""
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
            "answers": answers, "failed_requests": prober_errors, "last_failures": prober_failures,
            "longest_gap": gap}, indent=0))
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


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root (the lab's links and daemons are root's)")
    lab = Lab(needed=(SOURCE, DESTINATION))
    now = datetime.datetime.now(datetime.timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else REPORTS / "bench" / run_id
    (out / "logs").mkdir(parents=True, exist_ok=True)
    args.netem = netem_available(lab)
    log("delay: %s" % ("emulated with netem" if args.netem else NO_NETEM))
    rate_bps, rate_s = lab.measure_rate(SOURCE, DESTINATION, args.rate_mb)
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
            table, _ratios, _checks = write_outputs(rows, out, args, meta)
            try:
                plot(rows, table, out)
            except ImportError as exc:
                log("no plots: %s" % exc)
            log("results: %s" % os.path.relpath(out, REPO))
    return 0 if rows and all(r["outcome"] == "migrated" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
