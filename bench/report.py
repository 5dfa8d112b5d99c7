"""What the migration benchmark reports: a run's CSV row from its migration report, the
floors, medians and ratios over the runs, the acceptance checks, and the tables of
results.csv, summary.md and stdout."""

import csv
import hashlib
import statistics
import subprocess

from bench.goals import goal_checks
from bench.labclient import REPO
from bench.matrix import STRATEGIES

NO_NETEM = "not emulated (no netem in this kernel)"
PHASE_ORDER = ("pre_checkpoint", "pre_rsync", "pre_rounds", "prepare", "checkpoint", "xdelta_source", "final_rsync",
               "xdelta_dest", "restore")
CSV_FIELDS = ("service", "state_mb", "link", "link_rate_bps", "delay", "strategy", "chosen_strategy", "strategy_reason",
              "repeat", "outcome",
              "state_kept", "counter", "client_downtime_s", "gap_in_freeze", "report_downtime_s", "total_s",
              "bytes_warmup", "bytes_freeze", "checkpoint_size", "criu_frozen_s", "criu_restore_s", "floor_s",
              "floor_from", "freeze_ratio", "concurrent_playbooks", "code", "attempts", "failed_attempts",
              "report", "frozen_window") + tuple("phase_" + p for p in PHASE_ORDER)


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


def fill_from_report(row, report, rate_bps):
    """A run's row gets the migration report's times, bytes, CRIU statistics and phases, and its floor."""
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
    # the report's timeline of the frozen window, s from the freeze: "dumped 0.22 pushed 0.31 ..."
    row["frozen_window"] = " ".join("%s %.3f" % (e.get("step"), e.get("at_s"))
                                    for e in (report.get("frozen_window") or [])[1:])
    row["freeze_ratio"] = ratio(row["bytes_freeze"], row["checkpoint_size"])
    row["floor_s"] = floor_s(row["criu_frozen_s"], row["criu_restore_s"], row["bytes_freeze"], rate_bps)
    row["floor_from"] = "own run" if row["floor_s"] is not None else ""
    if row["floor_s"] is None and row["criu_frozen_s"] is not None and row["bytes_freeze"] is not None:
        row["floor_from"] = "incomplete: no CRIU restore statistics in the report"


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
    """The benchmark's acceptance checks: (check, value, verdict) with verdict PASS, FAIL or NOT RUN."""
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


def write_csv(rows, out):
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("%.4f" % v if isinstance(v, float) else v) for k, v in row.items()})


def write_outputs(rows, out, args, meta):
    """results.csv and summary.md in `out`, the tables and checks on stdout; (table, ratios, checks)."""
    fill_floors(rows)
    write_csv(rows, out)
    basis = "client-seen" if args.prober == "on" else "report downtime, run without prober"
    table, ratios = aggregate(rows, "client_downtime_s" if args.prober == "on" else "report_downtime_s")
    checks = acceptance(ratios, NO_NETEM if not args.netem else "delay emulated", basis)
    checks += goal_checks(table, "client_downtime_s" if args.prober == "on" else "report_downtime_s")
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
    return table, ratios, checks
