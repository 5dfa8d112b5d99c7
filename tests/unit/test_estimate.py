"""The migration time model (module_utils/edge_estimate.py), the estimate modules' argument
handling, and the rsync statistics they read; no root, no daemons."""

import json

import pytest
from ansible.module_utils import edge_estimate as model

NO_DOCKER = "unix:///nonexistent/docker.sock"

# An estimate of a 100 MB service on a 200 Mbit/s link (seconds, bytes, bit/s).
M = {"checkpoint_bytes": 100e6, "checkpoint_s": 0.5, "interval_s": 5.0, "delta_bytes": 2.05e6,
     "delta_fixed_bytes": 50e3, "encode_s": 0.4, "decode_s": 0.3, "rsync_s": 0.7, "rsync_literal_bytes": 4e6,
     "link_bps": 200e6, "push_fixed_s": 0.4, "task_overhead_s": 1.0, "task_gap_s": 0.7, "task_trivial_s": 0.05,
     "pull_present_s": 0.2}


def test_dirty_rate_leaves_out_what_any_interval_has():
    assert model.dirty_Bps(M) == pytest.approx(2e6 / 5.0)


def test_grown_projects_linearly_and_is_capped():
    assert model.grown(10, 110, 5, 10, 1e9) == pytest.approx(210)
    assert model.grown(10, 110, 5, 1000, 500) == 500
    assert model.grown(10, 5, 5, 10, 1e9) == 10  # measured below the fixed part: nothing grows


def test_delta_downtime_is_its_frozen_phases_and_the_signal_to_the_destination():
    p = model.predict(M, "delta", {})
    frozen = sum(p["phases"][k] for k in ("checkpoint", "xdelta_source", "final_rsync", "xdelta_dest", "restore"))
    # the last push leaves the marker the destination polls for: no exchange of its own
    assert p["downtime_s"] == pytest.approx(frozen + model.DEFAULTS["signal_s"], abs=1e-3)
    assert p["phases"]["final_rsync"] == pytest.approx(M["push_fixed_s"] + p["bytes_freeze"] * 8 / M["link_bps"])
    shared = model.predict(dict(M, push_reuse_s=0.05), "delta", {})
    # no shared connection measured: each push is a new one
    assert shared["downtime_s"] == pytest.approx(p["downtime_s"] - (M["push_fixed_s"] - 0.05), abs=1e-3)
    assert p["phases"]["xdelta_source"] == M["encode_s"] and p["phases"]["xdelta_dest"] == M["decode_s"]
    assert p["phases"]["pre_rsync"] == pytest.approx(M["push_fixed_s"] + 100e6 * 8 / 200e6)
    assert p["keeps_state"] and p["basis"] == "measured"
    # the delta grows over the warm-up's length, which is longer than the estimate's interval here
    assert p["bytes_freeze"] > M["delta_bytes"]


def test_rsync_freeze_is_the_measured_scan_plus_its_literal_bytes_on_the_link():
    p = model.predict(M, "rsync", {})
    assert "xdelta_source" not in p["phases"]
    assert p["phases"]["final_rsync"] == pytest.approx(M["rsync_s"] + M["push_fixed_s"]
                                                       + p["bytes_freeze"] * 8 / M["link_bps"], abs=1e-3)
    assert p["downtime_s"] < model.predict(M, "delta", {})["downtime_s"] + M["rsync_s"]


def test_slower_link_means_longer_migration_for_every_strategy():
    fast, slow = model.predict_all(M, {}), model.predict_all(dict(M, link_bps=20e6), {})
    for strategy in ("delta", "rsync", "seed-delta"):
        assert slow[strategy]["total_s"] > fast[strategy]["total_s"]
        assert slow[strategy]["downtime_s"] > fast[strategy]["downtime_s"]


def test_more_ansible_overhead_means_longer_total():
    light = model.predict(M, "delta", {})
    loaded = model.predict(dict(M, task_overhead_s=2.0), "delta", {})
    assert loaded["total_s"] - light["total_s"] >= 11.0  # eleven remote tasks at least


def test_a_copied_layer_adds_warm_up_tasks_and_runs_beside_the_delta_once_frozen():
    plain = model.predict(dict(M, layer_push_s=0.5), "delta", {})
    layer = model.predict(dict(M, layer_push_s=0.5, copies_layer=True), "delta", {})
    assert layer["phases"]["final_fs_sync"] == 0.5 and "final_fs_sync" not in plain["phases"]
    assert layer["total_s"] - plain["total_s"] >= 2 * M["task_overhead_s"] + M["push_fixed_s"] + 0.5
    # beside the delta's encode and push (longer than 0.5 s here): only the delta, grown over
    # the longer warm-up, adds to the downtime
    assert 0 < layer["downtime_s"] - plain["downtime_s"] < 0.1
    slow = model.predict(dict(M, layer_push_s=5.0, copies_layer=True), "delta", {})
    assert slow["downtime_s"] - layer["downtime_s"] > 3.0


def test_cold_loses_state_and_sends_no_memory():
    p = model.predict(M, "cold", {})
    assert not p["keeps_state"] and p["bytes_freeze"] == 0 and p["bytes_warmup"] == 0


def test_calibration_overrides_defaults():
    base = model.predict(M, "delta", {})
    slower = model.predict(M, "delta", {"restore_fixed_s": 2.0})
    assert slower["downtime_s"] - base["downtime_s"] == pytest.approx(2.0 - model.DEFAULTS["restore_fixed_s"],
                                                                      abs=1e-3)


def test_missing_or_bad_measurements_are_rejected():
    with pytest.raises(model.ModelError, match="lacks link_bps"):
        model.predict({k: v for k, v in M.items() if k != "link_bps"}, "delta")
    with pytest.raises(model.ModelError, match="positive"):
        model.predict(dict(M, link_bps=0), "delta")
    with pytest.raises(model.ModelError, match="unknown strategy"):
        model.predict(M, "teleport")


def test_reference_model_is_the_prototypes_formula():
    ref = model.reference(M, {"restore_fixed_s": 0.5, "restore_Bps": 100e6})
    xdelta = M["encode_s"] + M["decode_s"]
    assert ref["t_pre"] == pytest.approx(0.5 + 100e6 * 8 / 200e6 + xdelta, abs=1e-3)
    assert ref["t_mig"] == pytest.approx(0.5 + 2.05e6 * 8 / 200e6 + 1.5 + xdelta, abs=1e-3)
    assert ref["downtime_s"] == ref["t_mig"] and ref["total_s"] == pytest.approx(ref["t_pre"] + ref["t_mig"])


def test_choose_takes_the_smallest_downtime_among_the_allowed():
    predictions = {"delta": {"strategy": "delta", "downtime_s": 3, "total_s": 20},
                   "rsync": {"strategy": "rsync", "downtime_s": 2, "total_s": 30},
                   "cold": {"strategy": "cold", "downtime_s": 1, "total_s": 10}}
    assert model.choose(predictions) == "rsync"  # cold loses the state: not by default
    assert model.choose(predictions, ["delta", "rsync", "cold"]) == "cold"
    assert model.choose(predictions, ["delta"]) == "delta"
    with pytest.raises(model.ModelError):
        model.choose(predictions, ["seed-delta"])


def report(strategy, size, phases, outcome="migrated", method="runc"):
    return {"strategy": strategy, "checkpoint_size": size, "phases": phases, "outcome": outcome,
            "checkpoint_method": method}


def test_calibrate_from_earlier_reports():
    reports = [report("delta", 100e6, {"pre_checkpoint": 0.4, "checkpoint": 0.7, "restore": 0.5}),
               report("rsync", 200e6, {"pre_checkpoint": 0.5, "checkpoint": 0.7, "restore": 0.6}),
               report("delta", 400e6, {"pre_checkpoint": 0.8, "checkpoint": 1.2, "restore": 0.8}),
               report("delta", 400e6, {"pre_checkpoint": 0.1, "checkpoint": 9.0, "restore": 9.0}, outcome="failed"),
               report("seed-delta", 300e6, {"pre_checkpoint": 10.0, "restore": 12.0}, method="docker")]
    c = model.calibrate(reports)
    assert c["final_extra_s"] == pytest.approx(0.3)
    assert c["restore_fixed_s"] == pytest.approx(0.4, abs=0.01)
    assert c["restore_Bps"] == pytest.approx(1e9, rel=0.05)
    assert c["docker_checkpoint_Bps"] == pytest.approx(30e6) and c["docker_restore_Bps"] == pytest.approx(25e6)
    assert model.calibrate([]) == {}
    # with enough migrations in the last half hour, only they count
    for r, at in zip(reports, (100, 5000, 5100, 5200, 5300), strict=True):
        r["started_epoch"] = at
    reports[0]["phases"]["checkpoint"] = 9.9
    assert model.calibrate(reports, now=6000)["final_extra_s"] == pytest.approx(0.3)
    assert model.calibrate(reports, now=6000, min_recent=5)["final_extra_s"] == pytest.approx(0.4)


def test_correction_from_estimates_followed_by_migrations():
    def estimate(at, total, downtime, source="edge1"):
        return {"service": "web", "source": source, "destination": "edge2", "estimated_at_epoch": at,
                "predictions_model": {"delta": {"total_s": total, "downtime_s": downtime}}}

    def migration(at, total, downtime, outcome="migrated"):
        return {"service": "web", "source": "edge1", "destination": "edge2", "strategy": "delta",
                "outcome": outcome, "started_epoch": at, "finished_epoch": at + total, "total_s": total,
                "downtime_s": downtime}
    estimates = [estimate(0, 10, 1), estimate(100, 10, 1), estimate(200, 10, 1), estimate(5000, 10, 1),
                 estimate(6001, 1, 1)]
    reports = [migration(10, 20, 1.5),     # follows the first estimate: total x 2, downtime + 0.5
               migration(110, 10, 1.0),    # x 1, + 0
               migration(210, 30, 3.0, outcome="failed"),
               migration(3000, 99, 99),    # too long after any estimate
               migration(6000, 40, 4.0)]   # an estimate ran inside it (strategy auto)
    pairs = model.pair(estimates, reports)
    assert [(e["estimated_at_epoch"], r["started_epoch"]) for e, r in pairs] == [(0, 10), (100, 110)]
    factors = model.correction(pairs)
    assert factors["delta"] == {"total": pytest.approx(1.5), "downtime": pytest.approx(0.25), "pairs": 2}
    assert factors["rsync"]["pairs"] == 2  # pooled over the strategies that keep the state
    assert "cold" not in factors and model.correction(pairs[:1]) == {}
    predictions = {"delta": {"total_s": 10.0, "downtime_s": 2.0, "basis": "measured"}, "cold": {"total_s": 5.0}}
    fixed = model.corrected(predictions, factors)
    assert fixed["delta"]["total_s"] == 15.0 and fixed["delta"]["downtime_s"] == 2.25
    assert "total and downtime corrected by 2" in fixed["delta"]["basis"] and fixed["cold"] == predictions["cold"]
    only = model.corrected(predictions, factors, ("downtime",))["delta"]
    assert only["total_s"] == 10.0 and only["downtime_s"] == 2.25


def migration_like(strategy, o, started=0.0, outcome="migrated", m=M, copies_layer=False):
    """The report a migration would write if the model were exact and a remote task cost o."""
    p = model.predict(dict(m, task_overhead_s=o, copies_layer=copies_layer, layer_push_s=0.3), strategy, {})
    return {"strategy": strategy, "outcome": outcome, "started_epoch": started, "total_s": p["total_s"],
            "checkpoint_size": m["checkpoint_bytes"], "phases": dict(p["phases"], migrate=50)}


@pytest.mark.parametrize("strategy", ["delta", "rsync"])
@pytest.mark.parametrize("copies_layer", [False, True])
@pytest.mark.parametrize("o", [0.3, 1.5, 4.0])
def test_implied_overhead_inverts_the_model(strategy, copies_layer, o):
    # the cost of a task read back from a report is the one that predicts its total (CI run of
    # 2026-11-26: with 11 tasks assumed here and 14 counted by the model, the estimates' total
    # times were 25-35 % off even with the migration's own task cost)
    r = migration_like(strategy, o, copies_layer=copies_layer)
    assert model.implied_overhead(r, M) == pytest.approx(o, rel=1e-3)
    assert model.implied_overhead(dict(r, total_s=0.5), M) is None  # its phases alone take longer
    assert model.implied_overhead(dict(r, phases={"migrate": 50}), M) is None


def test_task_overhead_from_recent_migrations():
    reports = [migration_like("delta", 9.0, started=100),   # more than ten minutes before: left out
               migration_like("delta", 1.2, started=4500), migration_like("rsync", 2.5, started=4600),
               dict(migration_like("delta", 9.0, started=4700), strategy="cold"),
               migration_like("delta", 9.0, started=4800, outcome="failed")]
    assert model.overhead_from_reports(reports, 5000, M) == pytest.approx([1.2, 2.5], rel=1e-3)
    assert model.overhead_from_reports(reports[:1], 5000, M) == []
    assert model.task_overhead(7.0, [2.0, 3.0]) == 3.0 and model.task_overhead(7.0, []) == 7.0


def test_overhead_ratio_from_estimate_then_migration_pairs():
    pairs = [({"measurements": dict(M, task_overhead_now_s=1.0)}, migration_like("delta", 2.0)),  # x2
             ({"measurements": dict(M, task_overhead_s=2.0)}, migration_like("rsync", 3.0)),      # x1.5
             ({"measurements": dict(M, task_overhead_s=2.0)}, {"strategy": "cold", "total_s": 99.0, "phases": {}})]
    assert model.overhead_ratio(pairs) == pytest.approx(1.75, rel=1e-3)
    assert model.overhead_ratio([]) is None


def test_fit_line_needs_spread_and_a_physical_fit():
    assert model.fit_line([(1, 1), (1.5, 2), (1.2, 3)]) is None  # sizes too close
    assert model.fit_line([(1, 5), (3, 3), (9, 1)]) is None  # slower for bigger checkpoints? not a restore
    a, b = model.fit_line([(1, 1.1), (4, 1.4), (10, 2.0)])
    assert a == pytest.approx(1.0) and b == pytest.approx(0.1)


def test_relative_error_and_table():
    assert model.relative_error(12, 10) == pytest.approx(0.2)
    assert model.relative_error(None, 10) is None and model.relative_error(1, 0) is None
    lines = model.table(model.predict_all(M, {}), model.reference(M))
    assert lines[0].split()[:3] == ["strategy", "state", "total"]
    assert len(lines) == 1 + len(model.STRATEGIES) + 1 and "lost" in lines[3]


def test_literal_bytes_from_rsync_stats():
    from module_runner import load_module
    module = load_module("edge_estimate")
    assert module.literal_bytes("Number of files: 3\nLiteral data: 1,234,567 bytes\nMatched data: 9 bytes\n") == 1234567
    assert module.literal_bytes("") == 0


@pytest.mark.parametrize("args,message", [
    ({"name": "web", "workdir": "/tmp/w", "dest_host": "h", "dest_dir": "/d", "interval": 0, "docker_host": NO_DOCKER},
     "interval must be between 0.5 and 300.0"),
    ({"name": "web", "workdir": "/tmp/w", "dest_host": "h", "dest_dir": "/d", "probe_mb": 0, "docker_host": NO_DOCKER},
     "probe_mb must be between 1 and 1024"),
    ({"name": "web", "workdir": "/tmp/w", "dest_host": "h", "dest_dir": "/d", "docker_host": NO_DOCKER},
     "cannot reach the Docker Engine"),
])
def test_estimate_rejects_bad_requests_before_any_checkpoint(run_module, args, message, monkeypatch, tmp_path):
    from ansible.module_utils import basic
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/usr/bin/" + name)
    args["workdir"] = str(tmp_path / "w")
    outcome, result = run_module("edge_estimate", args)
    assert outcome == "fail" and message in result["msg"]
    assert not (tmp_path / "w").exists()  # nothing was checkpointed


def test_mark_without_image_only_tells_the_time(run_module):
    outcome, result = run_module("edge_estimate_mark", {"docker_host": NO_DOCKER})
    assert outcome == "exit" and not result["changed"] and result["finished_at"] >= result["started_at"]


def test_mark_with_an_image_needs_the_engine(run_module):
    outcome, result = run_module("edge_estimate_mark", {"image": "r/i:1", "docker_host": NO_DOCKER})
    assert outcome == "fail" and "cannot reach the Docker Engine" in result["msg"]


def test_estimate_report_writes_the_estimate_and_chooses(run_module, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "20260101T000000Z-web.json").write_text(json.dumps(dict(
        report("delta", 100e6, {"pre_checkpoint": 0.4, "checkpoint": 0.9, "restore": 0.5}), migration_id="web-1",
        started_at="2026-01-01T00:00:00.000000Z", total_s=20.0)))
    measurements = {k: v for k, v in M.items() if not k.startswith("task_") and k != "pull_present_s"}
    timings = {"task_overhead_s": 1.0, "task_gap_s": 0.7, "task_trivial_s": 0.05, "pull_present_s": ""}
    outcome, result = run_module("edge_estimate_report", {
        "service": "web", "source": "edge1", "destination": "edge2", "measurements": measurements,
        "timings": timings, "reports_dir": str(reports)})
    assert outcome == "exit" and result["changed"]
    assert result["chosen"] in ("delta", "rsync", "seed-delta")
    assert result["calibration"]["final_extra_s"] == {"value": pytest.approx(0.5), "from": "reports"}
    written = json.loads(open(result["path"]).read())
    assert written["predictions"] == result["predictions"] and written["measurements"]["local_s"] > 0
    assert result["path"].startswith(str(reports / "estimates"))


def test_estimate_report_rejects_unknown_strategies(run_module, tmp_path):
    outcome, result = run_module("edge_estimate_report", {
        "service": "web", "source": "a", "destination": "b", "measurements": M, "timings": {},
        "allowed": ["delta", "teleport"], "reports_dir": str(tmp_path)})
    assert outcome == "fail" and "teleport" in result["msg"]
