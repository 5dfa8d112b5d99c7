"""The migration report: per-phase durations, bytes, downtime, outcome, tool versions,
built from the raw results of the migration's tasks, and written as JSON and as a CSV row."""

import csv
import datetime
import json
import os

# The reference prototype's phases first, then ours.
PHASES = ("pre_checkpoint", "pre_rsync", "prepare", "checkpoint", "xdelta_source", "final_rsync",
          "xdelta_dest", "restore", "migrate", "freeze_task", "restore_task", "pull", "create", "pre_rounds",
          "trial")
CSV_FIELDS = ("started_at", "migration_id", "service", "source", "destination", "strategy", "outcome",
              "state_preserved", "downtime_s", "total_s", "bytes_warmup", "bytes_freeze", "checkpoint_size",
              "freeze_bytes_ratio") + tuple("phase_" + p for p in PHASES) + ("cause",)


ARGUMENT_SPEC = dict(
    request=dict(type="dict", required=True),
    results=dict(type="dict", required=True),
    reports_dir=dict(type="path", default="reports"),
)
REQUIRED_REQUEST_KEYS = ("migration_id", "service", "source", "destination", "strategy", "outcome",
                         "started_at", "finished_at")


def make_report(params, check_mode=False):
    """edge_report's answer to its (validated) parameters: the report built, and written with
    its CSV row unless check_mode. ValueError when the request lacks one of its keys."""
    request = dict(params["request"])
    missing = [key for key in REQUIRED_REQUEST_KEYS if request.get(key) in (None, "")]
    if missing:
        raise ValueError("the report request lacks %s" % ", ".join(missing))
    for key in ("started_at", "finished_at"):
        request[key] = float(request[key])
    report = build(request, params["results"])
    if check_mode:
        return dict(changed=False, report=report, summary=summary(report))
    path, csv_path = write(report, params["reports_dir"])
    return dict(changed=True, report=report, path=path, csv_path=csv_path, summary=summary(report))


def _get(results, key):
    value = results.get(key) or {}
    return value if isinstance(value, dict) and not value.get("skipped") else {}


def build(request, results):
    """The report dict. `request`: migration_id, service, source, destination, strategy,
    outcome, cause, started_at, finished_at (epoch). `results`: the raw results of the tasks
    (warmup_checkpoint, warmup_sync, precopy, prepare, freeze, restore, cold_stop, source_info, destination_info)."""
    checkpoint = _get(results, "warmup_checkpoint")
    sync = _get(results, "warmup_sync")
    prepare = _get(results, "prepare")
    freeze = _get(results, "freeze")
    restore = _get(results, "restore")
    trial = _get(results, "trial")
    cold_stop = _get(results, "cold_stop")
    rounds = _get(results, "precopy").get("rounds") or []
    phases = {
        "pre_checkpoint": checkpoint.get("duration_s"),
        "pre_rsync": sync.get("duration_s"),
        "pre_rounds": _sum(r["checkpoint_s"] + r["sync_s"] for r in rounds) if rounds else None,
        "prepare": _sum((prepare.get("phases") or {}).values()),
        "checkpoint": (freeze.get("phases") or {}).get("checkpoint"),
        "xdelta_source": (freeze.get("phases") or {}).get("xdelta_source"),
        "final_rsync": (freeze.get("phases") or {}).get("final_rsync"),
        "xdelta_dest": (restore.get("phases") or {}).get("xdelta_dest"),
        "restore": (restore.get("phases") or {}).get("restore"),
        "freeze_task": freeze.get("task_duration_s"),
        "restore_task": restore.get("task_duration_s"),
        "trial": (trial.get("phases") or {}).get("trial"),
        "pull": (prepare.get("phases") or restore.get("phases") or {}).get("pull"),
        "create": (prepare.get("phases") or restore.get("phases") or {}).get("create"),
    }
    frozen_at = freeze.get("frozen_at") or cold_stop.get("stopped_at")
    running_at = restore.get("running_at")
    downtime = round(running_at - frozen_at, 3) if frozen_at and running_at else None
    total = round(request["finished_at"] - request["started_at"], 3)
    phases["migrate"] = round(running_at - request["started_at"], 3) if running_at else total
    checkpoint_size = freeze.get("checkpoint_size") or checkpoint.get("size_bytes")
    bytes_freeze = freeze.get("bytes_sent")
    started = datetime.datetime.fromtimestamp(request["started_at"], datetime.timezone.utc)
    report = {
        "migration_id": request["migration_id"],
        "service": request["service"],
        "source": request["source"],
        "destination": request["destination"],
        "strategy": request["strategy"],
        "strategy_reason": request.get("strategy_reason") or "",
        "outcome": request["outcome"],
        "cause": request.get("cause") or "",
        "state_preserved": bool(restore.get("from_checkpoint")),
        "checkpoint_method": freeze.get("method") or checkpoint.get("method"),
        "restore_method": restore.get("method"),
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "downtime_s": downtime,
        "total_s": total,
        "bytes_warmup": (sync["bytes_sent"] + sum(r["bytes_sent"] for r in rounds)
                         if sync.get("bytes_sent") is not None else None),
        "bytes_freeze": bytes_freeze,
        "checkpoint_size": checkpoint_size,
        "freeze_bytes_ratio": round(bytes_freeze / checkpoint_size, 5) if bytes_freeze and checkpoint_size else None,
        "phases": {name: value for name, value in phases.items() if value is not None},
        "criu": {"dump": freeze.get("criu_dump") or {}, "restore": restore.get("criu_restore") or {},
                 "restore_options": restore.get("criu_options") or trial.get("criu_options") or [],
                 "lazy_pages": restore.get("lazy_pages") or {}},
        "neighbors": restore.get("neighbors") or [],
        "frozen_window": frozen_window(freeze, restore),
        "trial_restore": trial.get("trial") or "not run",
        "disk": _disk(_get(results, "fs_warmup"), freeze.get("fs_sync"), _get(results, "fs_final").get("results")),
        "tool_versions": {
            "source": _versions(_get(results, "source_info")),
            "destination": _versions(_get(results, "destination_info")),
        },
    }
    if request.get("kept_checkpoint"):
        report["kept_checkpoint"] = request["kept_checkpoint"]
    if rounds:
        report["warmup_rounds"] = {"rounds": rounds, "stop_reason": _get(results, "precopy").get("stop_reason")}
    if report["disk"]:
        report["phases"].update(pre_fs_sync=report["disk"]["warmup_s"],
                                final_fs_sync=(freeze.get("phases") or {}).get("final_fs_sync",
                                                                               report["disk"]["freeze_s"]))
    if request["strategy"] == "cold":
        report["note"] = ("cold strategy: the service restarted from its image on the destination; "
                          "its memory state was lost")
    return report


# Phases of the final checkpoint's call on the source and of the restore's call on the
# destination: (phase, 0 for its start or 1 for its end, step, what happened then).
_SOURCE_EVENTS = (("checkpoint", 1, "dumped", "final checkpoint taken (container stopped)"),
                  ("xdelta_source", 1, "delta", "delta of the memory images written"),
                  ("final_fs_sync", 1, "files", "file systems pushed"),
                  ("final_rsync", 1, "pushed", "memory images pushed, signal left"))
_DESTINATION_EVENTS = (("xdelta_dest", 1, "patched", "delta applied"),
                       ("restore", 0, "restore", "restore begins (engine asked to start from the checkpoint)"),
                       ("restore", 1, "running", "restore ends (container running)"),
                       ("neighbors", 1, "announced", "the host's neighbor entries point at the container"))


def frozen_window(freeze, restore):
    """The frozen window as a timeline: [{at_s, host, step, event}] in order, at_s from the
    start of the final checkpoint. The two hosts' events are placed by their own clocks: across
    hosts the offsets are as good as the clocks' agreement (NTP); each host's own are exact."""
    frozen_at = freeze.get("frozen_at")
    if not isinstance(frozen_at, (int, float)):
        return []
    events = [(frozen_at, "source", "frozen", "final checkpoint begins (container frozen)")]
    for results, host, wanted in ((freeze, "source", _SOURCE_EVENTS), (restore, "destination", _DESTINATION_EVENTS)):
        spans = results.get("phase_spans") or {}
        for phase, end, step, event in wanted:
            span = spans.get(phase)
            if isinstance(span, list) and len(span) == 2 and all(isinstance(t, (int, float)) for t in span):
                events.append((span[end], host, step, event))
    if isinstance(restore.get("signalled_at"), (int, float)):
        events.append((restore["signalled_at"], "destination", "signal", "signal seen"))
    events.sort(key=lambda e: e[0])
    return [{"at_s": round(at - frozen_at, 3), "host": host, "step": step, "event": event}
            for at, host, step, event in events]


def write(report, reports_dir):
    """Write reports_dir/<UTC timestamp>-<service>.json and append a row to migrations.csv."""
    os.makedirs(reports_dir, exist_ok=True)
    stamp = report["started_at"].replace("-", "").replace(":", "")[:15] + "Z"
    path = os.path.join(reports_dir, "%s-%s.json" % (stamp, report["service"]))
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2, sort_keys=True)
    csv_path = os.path.join(reports_dir, "migrations.csv")
    _set_aside_if_other_columns(csv_path, stamp)
    new = not os.path.exists(csv_path)
    row = dict(report)
    row.update({"phase_" + name: value for name, value in report["phases"].items()})
    with open(csv_path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
    return path, csv_path


def _set_aside_if_other_columns(csv_path, stamp):
    """A CSV written by a version of this tool with other columns is renamed, not appended to."""
    try:
        with open(csv_path, newline="") as handle:
            header = next(csv.reader(handle), None)
    except OSError:
        return
    if header is not None and tuple(header) != CSV_FIELDS:
        os.rename(csv_path, csv_path[:-len(".csv")] + "-until-%s.csv" % stamp)


def summary(report):
    """A few lines a person reads at the end of the play."""
    def mb(value):
        return "-" if value is None else "%.1f MB" % (value / 1e6)
    phases = report["phases"]
    lines = [
        "%s: %s -> %s, strategy %s: %s%s" % (report["service"], report["source"], report["destination"],
                                             report["strategy"], report["outcome"].upper(),
                                             " (%s)" % report["cause"] if report["cause"] else ""),
        "downtime %s s, total %s s, %s" % (report["downtime_s"], report["total_s"], _state_phrase(report)),
        "checkpoint %s, sent in warm-up %s, sent in freeze %s"
        % (mb(report["checkpoint_size"]), mb(report["bytes_warmup"]), mb(report["bytes_freeze"])),
        "phases: " + ", ".join("%s %.2f" % (name, phases[name]) for name in PHASES if name in phases),
    ]
    if report.get("strategy_reason"):
        lines.append("strategy %s: %s" % (report["strategy"], report["strategy_reason"]))
    window = report.get("frozen_window") or []
    if len(window) > 1:
        lines.append("frozen window (s from the freeze): "
                     + ", ".join("%s %.2f" % (e["step"], e["at_s"]) for e in window[1:]))
    if report.get("disk"):
        disk = report["disk"]
        lines.append("disk (layer and volumes, %d directories): %s in warm-up, %s in freeze (final_fs_sync %.2f s)"
                     % (disk["directories"], mb(disk["bytes_warmup"]), mb(disk["bytes_freeze"]), disk["freeze_s"]))
    return lines


def _disk(warmup, in_freeze, after_stop):
    """The service's layer and volumes pushed in warm-up (a loop of edge_fs_sync) and once
    frozen: by edge_freeze, all at once (in_freeze), or by the cold strategy's loop (after_stop)."""
    early = [r for r in warmup.get("results") or [] if "bytes_sent" in r]
    final = [r for r in in_freeze or after_stop or [] if "bytes_sent" in r]
    if not early and not final:
        return None
    return {
        "directories": max(len(early), len(final)),
        "bytes_warmup": sum(r["bytes_sent"] for r in early),
        "bytes_freeze": sum(r["bytes_sent"] for r in final),
        "warmup_s": round(sum(r.get("duration_s") or 0 for r in early), 4),
        "freeze_s": round((max if in_freeze else sum)([r.get("duration_s") or 0 for r in final] or [0]), 4),
        "unchanged_in_freeze": sum(1 for r in final if r.get("unchanged")),
    }


def _state_phrase(report):
    if report["outcome"] == "prepared":
        return "prepared, nothing frozen yet; the service runs on %s" % report["source"]
    if report["outcome"] == "stopped":
        kept = report.get("kept_checkpoint") or {}
        return "the service runs NOWHERE; its state is kept in %s:%s/final" % (kept.get("host"), kept.get("path"))
    if report["outcome"] == "failed":
        return "nothing was frozen, the service runs on %s as before" % report["source"]
    if report["state_preserved"]:
        return "state kept"
    if report["outcome"] == "rolled_back":
        return "rolled back"
    return "state LOST (fresh start)"


def _versions(info):
    engine = info.get("engine") or {}
    tools = dict(info.get("tools") or {})
    tools["docker"] = engine.get("version")
    return tools


def _sum(values):
    values = [v for v in values if v is not None]
    return round(sum(values), 4) if values else None
