"""The experiment's arithmetic and outputs (experiment/analysis.py, experiment/run.py's argument
handling): rows from an estimate and a report, errors, tables, CSV, plots."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiment import analysis, run  # noqa: E402

ESTIMATE = {"predictions": {"delta": {"total_s": 22.0, "downtime_s": 2.2, "bytes_freeze": 1e6,
                                      "phases": {"checkpoint": 0.6, "restore": 0.5}},
                            "rsync": {"total_s": 30.0, "downtime_s": 1.0, "bytes_freeze": 3e6, "phases": {}}},
            "reference": {"total_s": 5.0, "downtime_s": 1.5},
            "measurements": {"checkpoint_bytes": 9e7, "dirty_Bps": 4e5, "link_bps": 3e8, "task_overhead_s": 1.0,
                             "task_gap_s": 0.6}}


def report(total, downtime, outcome="migrated"):
    return {"outcome": outcome, "total_s": total, "downtime_s": downtime, "bytes_warmup": 9e7, "bytes_freeze": 2e6,
            "checkpoint_size": 9e7, "phases": {"checkpoint": 0.5, "restore": 0.4, "pre_rsync": 1.0}}


def meta(strategy, repeat=1, service="openface-32"):
    return {"experiment": "x", "service": service, "state_mb": 32, "link": "unshaped", "link_rate_bps": None,
            "strategy": strategy, "repeat": repeat}


def test_row_compares_the_prediction_for_the_runs_strategy_with_its_report():
    row = analysis.row_from(meta("delta"), ESTIMATE, report(20.0, 2.0))
    assert row["err_total"] == pytest.approx(0.1) and row["err_downtime"] == pytest.approx(0.1)
    assert row["ref_err_total"] == pytest.approx(0.75) and row["ref_downtime_s"] == 1.5
    assert row["phase_checkpoint"] == 0.5 and row["pred_phase_checkpoint"] == 0.6
    assert row["link_rate_bps"] == 3e8  # unshaped: the estimate's measured rate
    rsync = analysis.row_from(meta("rsync"), ESTIMATE, report(25.0, 1.25))
    assert rsync["err_downtime"] == pytest.approx(0.2) and rsync.get("ref_total_s") is None


def test_failed_runs_have_no_error_and_do_not_count():
    failed = analysis.row_from(meta("delta"), ESTIMATE, report(20.0, None, outcome="rolled_back"))
    assert failed["err_total"] is None and failed["outcome"] == "rolled_back"
    rows = [analysis.row_from(meta("delta", r), ESTIMATE, report(t, d)) for r, (t, d) in enumerate(
        [(20.0, 2.0), (11.0, 1.1), (44.0, 2.2)], 1)] + [failed]
    errs = analysis.errors(rows)
    assert errs["err_total"] == (pytest.approx(0.5), 3)  # errors 0.1, 1.0, 0.5
    assert errs["err_downtime"] == (pytest.approx(0.1), 3)  # 0.1, 1.0, 0.0
    lines = analysis.acceptance_lines(errs)
    assert lines[0].startswith("FAIL: median absolute error of the predicted total time over 3")
    assert lines[1].startswith("PASS: median absolute error of the predicted downtime")
    assert analysis.acceptance_lines(analysis.errors([failed]))[0].startswith("NOT RUN")


def test_tables_have_a_row_per_cell_with_median_min_max():
    rows = [analysis.row_from(meta("delta", r), ESTIMATE, report(t, d)) for r, (t, d) in enumerate(
        [(20.0, 2.0), (30.0, 3.0), (25.0, 1.0)], 1)]
    rows.append(analysis.row_from(meta("rsync"), ESTIMATE, report(25.0, 1.25)))
    phases = analysis.phase_table(rows)
    assert len(phases) == 2 + 2
    assert "| openface-32 | unshaped | delta | 3/3 |" in phases[2] and "2.00 (1.00-3.00)" in phases[2]
    predictions = analysis.prediction_table(rows)
    assert len(predictions) == 4 and "| 25.0 | 22.0 | 12 % |" in predictions[2]


def test_csv_round_trip_and_plots(tmp_path):
    rows = [analysis.row_from(meta(s, service=svc), ESTIMATE, report(20.0, 2.0))
            for svc in ("simple", "openface-32") for s in ("delta", "rsync")]
    analysis.write_csv(rows, tmp_path / "results.csv")
    back = analysis.read_csv(tmp_path / "results.csv")
    assert len(back) == 4 and back[0]["total_s"] == 20.0 and back[0]["strategy"] == "delta"
    analysis.plot(back, tmp_path)
    for name in ("phases.png", "downtime_vs_bandwidth.png", "bytes.png", "predicted_vs_measured.png"):
        assert (tmp_path / name).stat().st_size > 1000, name


def test_experiment_arguments():
    args = run.parse_args([])
    assert args.services == ["simple", "openface-32"] and args.strategies == ["delta", "rsync"]
    assert args.links == ["unshaped"] and args.repeats == 1
    args = run.parse_args(["--links", "unshaped,100mbit", "--strategies", "cold", "--repeats", "3"])
    assert args.links == ["unshaped", "100mbit"] and run.link_rate("100mbit") == "100mbit"
    for bad in (["--services", "nosuch"], ["--strategies", "detla"], ["--links", "fast"], ["--repeats", "0"]):
        with pytest.raises(SystemExit):
            run.parse_args(bad)


def test_paths_are_read_from_playbook_output():
    out = "    - 'estimate: /work/main/reports/estimates/20261126T0017Z-x.json'\n - 'report: /r/1-x.json'\n"
    assert run.path_after("estimate", out) == "/work/main/reports/estimates/20261126T0017Z-x.json"
    assert run.path_after("report", out) == "/r/1-x.json"
    assert run.path_after("report", "nothing") is None
