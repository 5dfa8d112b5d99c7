"""The fleet report: the request, the plan and what became of each migration, as JSON and Markdown,
and the table printed at the end of the play."""

import datetime
import json
import os

OUTCOMES = ("migrated", "rolled_back", "failed", "timed_out", "planned")
COLUMNS = ("service", "source", "destination", "strategy", "outcome", "start +s", "took s", "downtime s", "cause")


def build(fleet_id, request, migrations, results, placements=None, max_parallel=None):
    """The report dict; `request` has mode, evacuate or plan_file, limits."""
    starts = [r["started_at"] for r in results if r.get("started_at")]
    ends = [r["finished_at"] for r in results if r.get("finished_at")]
    started, finished = (min(starts), max(ends)) if starts and ends else (None, None)
    wall = round(finished - started, 3) if started and finished else None
    summed = round(sum(r.get("duration_s") or 0 for r in results), 3)
    counts = {outcome: sum(1 for r in results if r["outcome"] == outcome) for outcome in OUTCOMES}
    return {
        "fleet_id": fleet_id,
        "request": request,
        "planned": migrations,
        "placements": placements or [],
        "results": results,
        "counts": {k: v for k, v in counts.items() if v},
        "wall_s": wall,
        "sum_of_migrations_s": summed,
        "overlap": round(summed / wall, 2) if wall else None,
        "max_parallel": max_parallel,
        "started_at": _iso(started),
        "finished_at": _iso(finished),
    }


def _iso(epoch):
    if not epoch:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows(report):
    started = min([r["started_at"] for r in report["results"] if r.get("started_at")] or [0])
    table = []
    for r in report["results"]:
        table.append((r["service"], r["source"], r["destination"], r.get("strategy") or "", r["outcome"],
                      "%.1f" % (r["started_at"] - started) if r.get("started_at") else "-",
                      "%.1f" % r["duration_s"] if r.get("duration_s") is not None else "-",
                      "%.2f" % r["downtime_s"] if r.get("downtime_s") is not None else "-",
                      (r.get("cause") or "")[:160]))
    return table


def headline(report):
    counts = ", ".join("%d %s" % (n, outcome.replace("_", " ")) for outcome, n in report["counts"].items())
    request = report["request"]
    what = "evacuation of %s" % request["evacuate"] if request.get("evacuate") else "plan %s" % request.get("plan_file")
    count = len(report["results"])
    line = "fleet %s, %s: %d migration%s, %s" % (report["fleet_id"], what, count, "" if count == 1 else "s",
                                                 counts or "nothing to do")
    if report["wall_s"] is not None:
        line += "; %.1f s in all, %.1f s of migrations (x%.2f at once, at most %s together)" % (
            report["wall_s"], report["sum_of_migrations_s"], report["overlap"] or 0, report["max_parallel"])
    return line


def summary(report):
    """Fixed-width lines for the end of the play."""
    table = [COLUMNS] + rows(report)
    widths = [max(len(str(row[i])) for row in table) for i in range(len(COLUMNS) - 1)]
    lines = [headline(report)]
    for row in table:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join(cells + [str(row[-1])]))
    return lines


def markdown(report):
    request = report["request"]
    out = ["# Fleet %s" % report["fleet_id"], "", headline(report), "",
           "Limits: %s per source, %s per destination, %s in all." % (
               request.get("per_source"), request.get("per_destination"), request.get("parallel") or "no limit"), ""]
    if report["placements"]:
        out += ["| destination | free MB before | load before | assigned | pressure after |", "|---|---|---|---|---|"]
        for p in report["placements"]:
            out.append("| %s | %.1f | %.3f | %s | %.4f |" % (p["host"], p["free_memory_bytes"] / 1e6, p["load"],
                                                             ", ".join(p["assigned"]) or "-", p["pressure_after"]))
        out.append("")
    out += ["| " + " | ".join(COLUMNS) + " | report |", "|" + "---|" * (len(COLUMNS) + 1)]
    for row, r in zip(rows(report), report["results"], strict=True):
        cells = [str(cell).replace("|", "/") for cell in row]
        out.append("| " + " | ".join(cells) + " | %s |" % (os.path.basename(r["report"]) if r.get("report") else "-"))
    return "\n".join(out) + "\n"


def write(report, directory):
    """directory/<fleet id>.json and .md; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, report["fleet_id"])
    with open(base + ".json", "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    with open(base + ".md", "w") as handle:
        handle.write(markdown(report))
    return base + ".json", base + ".md"
