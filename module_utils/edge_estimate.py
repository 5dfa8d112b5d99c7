"""Migration time model: predicts each strategy's total time and downtime from what
`playbooks/estimate.yml` measures on the running service and the link (pure functions).

The reference prototype's model (delta = delta size, pre = warm-up checkpoint size, bw in bit/s):
    t_pre = t_cp + max(delta, pre) * 8 / bw + t_xdelta      (warm-up)
    t_mig = t_cp + delta * 8 / bw + t_restore + t_xdelta    (frozen window)
This model follows the migration role task by task instead, because the measurements say:
- every Ansible task on a remote host costs a round trip plus a Python start on the host
  (measured by the estimate as `task_overhead_s`, 0.2-1.5 s depending on the machine's load);
  a live migration runs 10 of them, which is most of its total time on a small service;
- the frozen window holds no Ansible task boundary (the destination waits in the background
  for the source's marker), but an SSH exchange over the warm-up's connection per push
  (`push_reuse_s`, measured);
- the warm-up copies the whole checkpoint (`push_fixed_s` + size / link rate), and the
  delta grows with the time between the warm-up and final checkpoints (the dirty rate times
  the predicted warm-up duration, not the estimate's own interval);
- encode, decode and the rsync scan are measured on the service's own checkpoints with the
  migration's own code, so they follow any change of the delta code.
What cannot be measured without moving the service (the final checkpoint's extra cost of
stopping the container, CRIU's restore, Docker's checkpoint copies for seed-delta) comes from
earlier migration reports (`calibrate`) or, without any, from DEFAULTS (measured in the lab).
"""

import statistics

STRATEGIES = ("delta", "rsync", "cold", "seed-delta")
# Controller-side tasks of a migration (plan, choose, checks, includes) and, in units of a
# remote task, its local modules (local_s).
TRIVIAL_TASKS = 26
LOCAL_MODULE_FACTOR = 0.6
KEEPS_STATE = ("delta", "rsync", "seed-delta")

# Used when no earlier migration report gives a value (lab measurements, 2-core machine).
DEFAULTS = {
    "final_extra_s": 0.3,         # final checkpoint (container stops) minus a leave-running one
    "restore_fixed_s": 0.35,      # CRIU restore through the edge-migrate runtime: fixed part ...
    "restore_Bps": 500e6,         # ... plus checkpoint bytes at this rate
    "pull_present_s": 0.2,        # pull of an image the destination already has
    "create_s": 0.3,              # docker create on the destination
    "async_start_s": 0.5,         # starting the background pull-and-create job
    "peer_check_s": 0.3,          # criu cpuinfo dump and check (plus two SSH connections)
    "remove_s": 0.3,              # removing the stopped source container
    "signal_s": 0.02,             # the destination's restore noticing the marker (10 ms poll)
    "local_s": 2.0,               # controller-side tasks (lock, checks, plan) of a migration
    "cold_stop_s": 0.5,           # docker stop on the source
    "cold_start_s": 0.4,          # docker start on the destination
    "docker_checkpoint_Bps": 30e6,  # seed-delta: `docker checkpoint create` (CRIU + containerd copy)
    "docker_restore_Bps": 30e6,     # seed-delta: `docker start --checkpoint`
    "rsync_z_Bps": 35e6,            # seed-delta: rsync -az of the warm-up checkpoint (zlib bound)
    "xdelta_default_factor": 2.0,   # seed-delta: xdelta3 at default settings vs the migration's encode
    # A migration's remote task cost over the estimate's reading (its tasks carry more
    # variables and modules): median of 8 estimate-then-migration pairs, quiet lab, 2026-11-26.
    "overhead_ratio": 1.25,
}

# Measurements the model needs (estimate.yml collects them; see library/edge_estimate.py).
REQUIRED = ("checkpoint_bytes", "checkpoint_s", "interval_s", "delta_bytes", "delta_fixed_bytes", "encode_s",
            "decode_s", "rsync_s", "rsync_literal_bytes", "link_bps", "push_fixed_s", "task_overhead_s",
            "task_gap_s")


# What an estimate may be asked for (library/edge_estimate.py refuses anything else): seconds
# between its two checkpoints, MB pushed to measure the link, round-trip samples.
BOUNDS = {"interval": (0.5, 300.0), "probe_mb": (1, 1024), "rtt_samples": (1, 100)}


def out_of_bounds(params):
    """Messages for the estimate's inputs outside BOUNDS (NaN and infinities among them)."""
    problems = []
    for name, (low, high) in BOUNDS.items():
        value = params.get(name)
        if value is not None and not low <= value <= high:  # NaN compares false with everything
            problems.append("%s must be between %s and %s, got %s" % (name, low, high, value))
    return problems


class ModelError(ValueError):
    """The measurements cannot feed the model."""


def check(m):
    missing = [k for k in REQUIRED if m.get(k) is None]
    if missing:
        raise ModelError("the estimate lacks %s" % ", ".join(missing))
    if m["link_bps"] <= 0 or m["interval_s"] <= 0:
        raise ModelError("link rate and interval must be positive (got %s bit/s, %s s)"
                         % (m["link_bps"], m["interval_s"]))


def dirty_Bps(m):
    """Bytes per second the service dirties: the delta between the two checkpoints, less the
    part that is there whatever the interval (small files sent whole), over the interval."""
    return max(0.0, m["delta_bytes"] - m["delta_fixed_bytes"]) / m["interval_s"]


def grown(fixed, measured, interval, gap, ceiling):
    """A size measured over `interval` seconds, projected to `gap` seconds (its part above
    `fixed` grows linearly with time), never above `ceiling`."""
    return min(ceiling, fixed + max(0.0, measured - fixed) * gap / interval)


def transfer_s(m, nbytes):
    """One push over SSH: connection and rsync start-up, then the bytes at the link rate."""
    return m["push_fixed_s"] + nbytes * 8.0 / m["link_bps"]


def restore_s(size, c):
    return c["restore_fixed_s"] + size / c["restore_Bps"]


def _prepare_s(m, c):
    """Pull and create on the destination (the estimate pulled the image, so it is there)."""
    return (m.get("pull_present_s") or c["pull_present_s"]) + c["create_s"]


def predict(m, strategy, calibration=None):
    """Prediction for one strategy: total_s and downtime_s (what the migration report calls
    total_s and downtime_s), the phases with the report's names, and the bytes sent."""
    check(m)
    if strategy not in STRATEGIES:
        raise ModelError("unknown strategy %r (known: %s)" % (strategy, ", ".join(STRATEGIES)))
    c = dict(DEFAULTS, **(calibration or {}))
    size = m["checkpoint_bytes"]
    o, gap = m["task_overhead_s"], m["task_gap_s"]
    local = local_s(m, c, o)
    if strategy == "cold":
        prepare = _prepare_s(m, c)
        downtime = c["cold_stop_s"] + gap + c["cold_start_s"]
        total = local + (o + prepare) + (o + c["cold_stop_s"]) + (o + c["cold_start_s"]) + (o + c["remove_s"]) + 2 * o
        return _result(strategy, total, downtime, {"prepare": prepare, "restore": c["cold_start_s"]}, 0, 0, "modelled")
    if strategy == "seed-delta":
        return _seed_delta(m, c, local)
    pre_checkpoint = m["checkpoint_s"]
    pre_rsync = transfer_s(m, size)
    prepare = _prepare_s(m, c)
    # A role that copies the service's layer pushes it in the warm-up and, once frozen, again
    # beside the delta.
    layer = m.get("layer_push_s") if m.get("copies_layer") else None
    # Time between the warm-up dump and the final dump, over which the delta grows: the
    # copy, the wait, starting the destination's background restore, starting the freeze.
    between = (pre_checkpoint + 2 * o + pre_rsync + _prepare_wait(o, prepare, pre_checkpoint + pre_rsync)
               + (o + c["async_start_s"]) + o + _layer_copy_s(o, m, layer))
    # The freeze's pushes reuse the warm-up's SSH connection; the last one leaves the marker
    # the destination's waiting restore looks for (no exchange of its own).
    reuse = m.get("push_reuse_s") or m["push_fixed_s"]
    phases = {"pre_checkpoint": pre_checkpoint, "pre_rsync": pre_rsync, "prepare": prepare,
              "checkpoint": pre_checkpoint + c["final_extra_s"]}
    if strategy == "delta":
        sent = grown(m["delta_fixed_bytes"], m["delta_bytes"], m["interval_s"], between, size)
        phases.update(xdelta_source=m["encode_s"], final_rsync=reuse + sent * 8.0 / m["link_bps"],
                      xdelta_dest=m["decode_s"])
    else:
        sent = grown(min(m["delta_fixed_bytes"], m["rsync_literal_bytes"]), m["rsync_literal_bytes"],
                     m["interval_s"], between, size)
        phases.update(final_rsync=m["rsync_s"] + reuse + sent * 8.0 / m["link_bps"])
    phases["restore"] = restore_s(size, c)
    if layer is not None:
        phases["pre_fs_sync"] = phases["final_fs_sync"] = layer
    source_side, destination_side = _frozen_sides(phases)
    downtime = source_side + c["signal_s"] + destination_side
    total = live_total(o, m, c, phases)
    return _result(strategy, total, downtime, phases, size, sent, "measured")


def _frozen_sides(phases):
    """The frozen window's two halves: the source (final checkpoint, then the memory delta and
    its push beside the layer's push) and the destination (patch, restore)."""
    memory = phases.get("xdelta_source", 0) + phases["final_rsync"]
    source_side = phases["checkpoint"] + max(memory, phases.get("final_fs_sync") or 0)
    return source_side, phases.get("xdelta_dest", 0) + phases["restore"]


def _prepare_wait(o, prepare, pre):
    """The wait for the destination's pull and create: that background job started one task
    before the warm-up checkpoint, the wait task returns once it is done."""
    return max(0.0, prepare - (2 * o + pre))


def _layer_copy_s(o, m, layer):
    """The warm-up's layer copy (find the destination's layer, push it), 0 without one."""
    return 0.0 if layer is None else 2 * o + m["push_fixed_s"] + layer


def local_s(m, c, o):
    """The controller-side tasks of a migration: many trivial ones (plan, choose, checks,
    includes) and its local modules (lock, report, hooks), which cost about what a remote
    task costs."""
    if m.get("task_trivial_s") is None:
        return c["local_s"]
    return TRIVIAL_TASKS * m["task_trivial_s"] + LOCAL_MODULE_FACTOR * o


def live_total(o, m, c, phases):
    """Total time of a live migration (delta, rsync) task by task as the role runs them, from
    its phases and `o`, the cost of a remote Ansible task beyond its module's work. predict()
    feeds it the model's phases, implied_overhead() a report's, so that the two agree."""
    pre = phases["pre_checkpoint"] + phases["pre_rsync"]
    peer = o + 2 * m["push_fixed_s"] + c["peer_check_s"]
    warmup = ((o + c["async_start_s"]) + (2 * o + pre) + (o + _prepare_wait(o, phases.get("prepare", 0), pre))
              + _layer_copy_s(o, m, phases.get("pre_fs_sync")))
    source_side, destination_side = _frozen_sides(phases)
    # The controller polls the background restore once the freeze returns, then every second.
    freeze = (o + c["async_start_s"]) + (o + source_side) + (o + max(0.0, destination_side - o))
    return local_s(m, c, o) + peer + warmup + freeze + (o + c["remove_s"]) + 2 * o


def _seed_delta(m, c, local):
    """The reference prototype's method through Docker's checkpoint path: Docker's copies
    through containerd are not measured by the estimate (it would cost two Docker checkpoints)."""
    size = m["checkpoint_bytes"]
    o, gap = m["task_overhead_s"], m["task_gap_s"]
    pre_checkpoint = size / c["docker_checkpoint_Bps"]
    pre_rsync = m["push_fixed_s"] + max(size * 8.0 / m["link_bps"], size / c["rsync_z_Bps"])
    prepare = _prepare_s(m, c)
    between = pre_checkpoint + 2 * o + pre_rsync + prepare + gap
    sent = grown(m["delta_fixed_bytes"], m["delta_bytes"], m["interval_s"], between, size)
    phases = {"pre_checkpoint": pre_checkpoint, "pre_rsync": pre_rsync, "prepare": prepare,
              "checkpoint": size / c["docker_checkpoint_Bps"],
              "xdelta_source": m["encode_s"] * c["xdelta_default_factor"], "final_rsync": transfer_s(m, sent),
              "xdelta_dest": m["decode_s"], "restore": size / c["docker_restore_Bps"] + c["restore_fixed_s"]}
    frozen = sum(phases[p] for p in ("checkpoint", "xdelta_source", "final_rsync", "xdelta_dest", "restore"))
    # Five tasks inside the frozen window (checkpoint, mark, delta, push, patch, restore).
    downtime = frozen + 4 * gap + 2 * o
    total = (local + (o + 2 * m["push_fixed_s"] + c["peer_check_s"]) + (o + pre_checkpoint) + (o + pre_rsync)
             + (o + prepare) + (downtime + o) + (o + c["remove_s"]) + 2 * o)
    return _result("seed-delta", total, downtime, phases, size, sent, "modelled (Docker's copies not measured)")


def _result(strategy, total, downtime, phases, warmup_bytes, freeze_bytes, basis):
    return {"strategy": strategy, "total_s": round(total, 3), "downtime_s": round(downtime, 3),
            "keeps_state": strategy in KEEPS_STATE, "bytes_warmup": int(warmup_bytes),
            "bytes_freeze": int(freeze_bytes), "phases": {k: round(v, 4) for k, v in phases.items()},
            "basis": basis}


def predict_all(m, calibration=None):
    return {s: predict(m, s, calibration) for s in STRATEGIES}


def reference(m, calibration=None):
    """The reference prototype's model on the same measurements: t_pre (warm-up), t_mig
    (frozen window); its total is their sum, its downtime t_mig."""
    check(m)
    c = dict(DEFAULTS, **(calibration or {}))
    bw = m["link_bps"]
    xdelta = m["encode_s"] + m["decode_s"]
    t_pre = m["checkpoint_s"] + max(m["delta_bytes"], m["checkpoint_bytes"]) * 8.0 / bw + xdelta
    t_mig = m["checkpoint_s"] + m["delta_bytes"] * 8.0 / bw + restore_s(m["checkpoint_bytes"], c) + xdelta
    return {"t_pre": round(t_pre, 3), "t_mig": round(t_mig, 3), "total_s": round(t_pre + t_mig, 3),
            "downtime_s": round(t_mig, 3)}


def choose(predictions, allowed=KEEPS_STATE):
    """The allowed strategy with the smallest predicted downtime (then total time)."""
    candidates = [p for s, p in predictions.items() if s in allowed]
    if not candidates:
        raise ModelError("no strategy to choose from: allowed %s, predicted %s"
                         % (", ".join(allowed), ", ".join(predictions)))
    return min(candidates, key=lambda p: (p["downtime_s"], p["total_s"]))["strategy"]


def calibrate(reports, limit=30, now=None, window_s=1800, min_recent=3):
    """What earlier migrations measured and the estimate cannot: the final checkpoint's extra
    cost, CRIU's restore (fixed part and rate), Docker's checkpoint and restore rates for
    seed-delta. `reports`: migration report dicts (reports/*.json), oldest first; only
    successful ones count, the newest `limit` of each kind, and only those of the last
    window_s before `now` when there are min_recent of them (the machine's load of the
    moment). Keys without data are left out."""
    ok = [r for r in reports if r.get("outcome") == "migrated" and r.get("checkpoint_size")]
    if now is not None:
        recent = [r for r in ok if r.get("started_epoch") and now - r["started_epoch"] <= window_s]
        if len(recent) >= min_recent:
            ok = recent
    live = [r for r in ok if r.get("strategy") in ("delta", "rsync") and r.get("checkpoint_method") == "runc"][-limit:]
    seed = [r for r in ok if r.get("strategy") == "seed-delta"][-limit:]
    out = {}
    extra = [r["phases"]["checkpoint"] - r["phases"]["pre_checkpoint"] for r in live
             if "checkpoint" in r["phases"] and "pre_checkpoint" in r["phases"]]
    if extra:
        out["final_extra_s"] = max(0.0, statistics.median(extra))
    points = [(r["checkpoint_size"], r["phases"]["restore"]) for r in live if "restore" in r["phases"]]
    fit = fit_line(points)
    if fit:
        out["restore_fixed_s"], slope = fit
        out["restore_Bps"] = 1.0 / slope
    elif points:
        out["restore_fixed_s"] = max(0.0, statistics.median(
            t - size / DEFAULTS["restore_Bps"] for size, t in points))
    rates = [r["checkpoint_size"] / r["phases"]["pre_checkpoint"] for r in seed if r["phases"].get("pre_checkpoint")]
    if rates:
        out["docker_checkpoint_Bps"] = statistics.median(rates)
    rates = [r["checkpoint_size"] / r["phases"]["restore"] for r in seed if r["phases"].get("restore")]
    if rates:
        out["docker_restore_Bps"] = statistics.median(rates)
    return out


LIVE_STRATEGIES = ("delta", "rsync")


def overhead_from_reports(reports, now, m, calibration=None, window_s=600, limit=4):
    """What a remote Ansible task cost in the newest successful live migrations of the last
    ten minutes on this controller (older ones describe another load), one value per
    migration, oldest first (implied_overhead, with `m` for what a report does not hold)."""
    values = []
    for r in reports:
        started = r.get("started_epoch")
        if (r.get("outcome") != "migrated" or r.get("strategy") not in LIVE_STRATEGIES or not started
                or now - started > window_s or not r.get("total_s")):
            continue
        values.append(implied_overhead(r, m, calibration))
    return [v for v in values if v][-limit:]


def implied_overhead(report, m, calibration=None):
    """A live migration's remote task cost: the `o` for which live_total() on the report's
    phases gives its measured total (m: the measurements of an estimate, for the costs a report
    does not hold: SSH start-up, trivial tasks), or None when its phases alone exceed it."""
    c = dict(DEFAULTS, **(calibration or {}))
    phases = dict(report.get("phases") or {})
    if any(phases.get(k) is None for k in ("pre_checkpoint", "pre_rsync", "checkpoint", "final_rsync", "restore")):
        return None
    total = report["total_s"]
    low, high = 0.0, 60.0
    if live_total(low, m, c, phases) >= total:
        return None
    for _round in range(50):  # live_total grows with o
        mid = (low + high) / 2
        if live_total(mid, m, c, phases) < total:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def overhead_ratio(pairs, calibration=None, limit=8):
    """How much more a migration's remote task cost than the estimate's own reading just before
    it (the estimate's calls are lighter than a migration's): the median over the newest pairs
    of live migrations, or None. Both scale with the machine's load; their ratio does not."""
    ratios = []
    for e, r in pairs:
        m = e.get("measurements") or {}
        reading = m.get("task_overhead_now_s") or m.get("task_overhead_s")
        if r.get("strategy") in LIVE_STRATEGIES and reading and r.get("total_s") and m.get("push_fixed_s"):
            implied = implied_overhead(r, m, calibration)
            if implied:
                ratios.append(implied / reading)
    ratios = ratios[-limit:]
    return statistics.median(ratios) if ratios else None


def task_overhead(now_reading, recent):
    """The remote task cost to predict with: the median of this estimate's own (scaled) reading
    and the recent migrations' (one reading is one moment of a shared machine's load)."""
    return statistics.median([now_reading] + list(recent))


def pair(estimates, reports, window_s=900):
    """(estimate, report) pairs: a successful migration of the estimated service from the same
    source to the same destination that started within window_s after the estimate, with no
    other estimate of that service in between, and not the migration the estimate ran inside
    (strategy auto, whose total includes the estimate). Both lists: dicts with epoch times
    `estimated_at_epoch` / `started_epoch` and `finished_epoch`."""
    by_service = {}
    for e in sorted(estimates, key=lambda e: e["estimated_at_epoch"]):
        by_service.setdefault(e.get("service"), []).append(e)
    pairs = []
    for r in reports:
        if r.get("outcome") != "migrated":
            continue
        before = [e for e in by_service.get(r.get("service"), []) if e["estimated_at_epoch"] <= r["started_epoch"]]
        inside = [e for e in by_service.get(r.get("service"), [])
                  if r["started_epoch"] < e["estimated_at_epoch"] <= r["finished_epoch"]]
        if not before or inside:
            continue
        e = before[-1]
        if (r["started_epoch"] - e["estimated_at_epoch"] <= window_s and e.get("source") == r.get("source")
                and e.get("destination") == r.get("destination")):
            pairs.append((e, r))
    return pairs


def correction(pairs, limit=10, min_pairs=2):
    """How far the model's own predictions were from the measured migrations, per strategy:
    {strategy: {"total": factor, "downtime": seconds, "pairs": n}}: the median of measured /
    predicted total time (Ansible's cost grows with the controller's load, so its error
    scales), and the median of measured - predicted downtime (what the frozen window holds
    beyond the model is a fixed cost: a step the role added, a file-system sync), over the
    newest `limit` pairs of that strategy (of all strategies that keep the state when a
    strategy has fewer than min_pairs)."""
    ratios = []  # (strategy, total ratio, downtime ratio), in the order of the reports
    for e, r in pairs:
        p = (e.get("predictions_model") or e.get("predictions") or {}).get(r["strategy"])
        if p and p.get("total_s") and p.get("downtime_s") and r.get("total_s") and r.get("downtime_s"):
            ratios.append((r["strategy"], r["total_s"] / p["total_s"], r["downtime_s"] - p["downtime_s"]))
    pooled = [x for x in ratios if x[0] in KEEPS_STATE][-limit:]
    out = {}
    for strategy in STRATEGIES:
        own = [x for x in ratios if x[0] == strategy][-limit:]
        use = own if len(own) >= min_pairs else (pooled if strategy in KEEPS_STATE else [])
        if len(use) >= min_pairs:
            out[strategy] = {"total": statistics.median(x[1] for x in use),
                             "downtime": statistics.median(x[2] for x in use), "pairs": len(use)}
    return out


def corrected(predictions, factors, what=("total", "downtime")):
    """The predictions with their total scaled and their downtime shifted by the correction
    (only the ones named in `what`)."""
    out = {}
    for strategy, p in predictions.items():
        f = factors.get(strategy)
        q = dict(p)
        if f and "total" in what:
            q["total_s"] = round(p["total_s"] * f["total"], 3)
        if f and "downtime" in what:
            q["downtime_s"] = round(max(0.01, p["downtime_s"] + f["downtime"]), 3)
        if f and what:
            q["basis"] = "%s, %s corrected by %d earlier migrations" % (p["basis"], " and ".join(what), f["pairs"])
        out[strategy] = q
    return out


def fit_line(points, min_points=3, min_spread=2.0):
    """Least squares t = a + b * size when there are enough points over sizes spread by at
    least min_spread x and the fit is physical (a >= 0, b > 0); else None."""
    if len(points) < min_points:
        return None
    sizes = [p[0] for p in points]
    if min(sizes) <= 0 or max(sizes) / min(sizes) < min_spread:
        return None
    mx = statistics.fmean(sizes)
    my = statistics.fmean(p[1] for p in points)
    sxx = sum((x - mx) ** 2 for x in sizes)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    a = my - b * mx
    if b <= 0 or a < 0:
        return None
    return a, b


def relative_error(predicted, measured):
    """|predicted - measured| / measured, None when either is missing or measured is 0."""
    if predicted is None or not measured:
        return None
    return abs(predicted - measured) / measured


def table(predictions, ref=None):
    """Lines of a table, one row per strategy."""
    header = ("strategy", "state", "total s", "downtime s", "warm-up MB", "freeze MB", "basis")
    lines = ["%-10s %6s %9s %10s %11s %10s  %s" % header]
    for strategy in STRATEGIES:
        p = predictions.get(strategy)
        if not p:
            continue
        lines.append("%-10s %6s %9.2f %10.2f %11.1f %10.2f  %s" % (
            strategy, "kept" if p["keeps_state"] else "lost", p["total_s"], p["downtime_s"],
            p["bytes_warmup"] / 1e6, p["bytes_freeze"] / 1e6, p["basis"]))
    if ref:
        lines.append("reference prototype's model: t_pre %.2f s, t_mig %.2f s" % (ref["t_pre"], ref["t_mig"]))
    return lines
