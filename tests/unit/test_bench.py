"""Unit tests of the benchmark's arithmetic: the prober's gap, the counter check, floors, medians, ratios."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import bench, goals, labclient, matrix, prober, report  # noqa: E402


def test_longest_gap_between_answers():
    times = [0.0, 0.01, 0.02, 1.52, 1.53, 1.54]
    gap, start, end = prober.longest_gap(times)
    assert gap == pytest.approx(1.5)
    assert (start, end) == (0.02, 1.52)


def test_longest_gap_counts_from_window_start_and_to_window_end():
    # answers before the window are ignored; the time before the first answer in it counts
    assert prober.longest_gap([0.0, 5.0, 5.1, 5.2], start=2.0, end=5.3)[0] == pytest.approx(3.0)
    # a service that never answered again: the gap runs to the end of the window
    gap, start, end = prober.longest_gap([1.0, 1.01, 1.02], start=1.0, end=9.0)
    assert gap == pytest.approx(7.98)
    assert end == 9.0


def test_longest_gap_unsorted_input_and_no_answers():
    assert prober.longest_gap([3.0, 1.0, 2.0, 2.5])[0] == pytest.approx(1.0)
    assert prober.longest_gap([]) is None
    assert prober.longest_gap([1.0, 2.0], start=3.0) is None


def test_counter_check():
    assert prober.counter_check([(0.1, 1), (0.2, 2), (3.0, 3)]) == "continued"
    assert prober.counter_check([(0.1, 7), (0.2, 7), (0.3, 8)]) == "continued"  # simple repeats a value
    assert prober.counter_check([(0.1, 40), (0.2, 41), (5.0, 1), (5.1, 2)]) == "reset"
    assert prober.counter_check([(5.0, 1), (0.1, 40)]) == "reset"  # ordered by time, not by arrival
    assert prober.counter_check([]) is None


def test_parse_count():
    assert prober.parse_count('{"count": 12}\n') == 12
    assert prober.parse_count("34\n") == 34
    with pytest.raises(ValueError):
        prober.parse_count("")


def test_floor():
    # 0.25 s frozen + 0.5 s restore + 1.25 MB at 100 Mbit/s (0.1 s)
    assert report.floor_s(0.25, 0.5, 1_250_000, 100e6) == pytest.approx(0.85)
    assert report.floor_s(0.25, None, 1_250_000, 100e6) is None


def row(strategy, repeat, client, total, floor=None, freeze=1000, size=100_000, link="100mbit+20ms",
        service="openface-256", outcome="migrated"):
    return {"service": service, "link": link, "strategy": strategy, "repeat": repeat, "outcome": outcome,
            "client_downtime_s": client, "report_downtime_s": client, "floor_s": floor, "total_s": total,
            "bytes_warmup": size, "bytes_freeze": freeze, "checkpoint_size": size,
            "freeze_ratio": freeze / size, "counter": "continued"}


def test_seed_delta_takes_the_floor_of_the_delta_run_of_its_cell():
    rows = [row("delta", 1, 2.0, 20, floor=1.0), row("seed-delta", 1, 12.0, 30),
            row("delta", 2, 2.0, 20, floor=1.5), row("seed-delta", 2, 12.0, 30), row("cold", 1, 3.0, 10)]
    report.fill_floors(rows)
    assert [r["floor_s"] for r in rows] == [1.0, 1.0, 1.5, 1.5, None]
    assert rows[1]["floor_from"] == "delta run"


def test_aggregate_medians_and_ratios_within_one_run():
    rows = [
        row("delta", 1, 2.0, 20.0, floor=1.0), row("seed-delta", 1, 10.0, 30.0), row("rsync", 1, 4.0, 25.0),
        row("delta", 2, 3.0, 22.0, floor=1.0), row("seed-delta", 2, 9.0, 33.0), row("rsync", 2, 5.0, 20.0),
        row("delta", 3, 9.0, 21.0, floor=1.0), row("seed-delta", 3, 18.0, 31.0), row("rsync", 3, 4.5, 30.0),
        row("delta", 4, 1.0, 1.0, floor=1.0, outcome="rolled_back"),  # not migrated: left out
    ]
    table, ratios = report.aggregate(rows)
    by_strategy = {t["strategy"]: t for t in table}
    assert [t["strategy"] for t in table] == ["rsync", "delta", "seed-delta"]
    assert by_strategy["delta"]["client_downtime_s"] == 3.0
    assert by_strategy["delta"]["runs"] == 4 and by_strategy["delta"]["migrated"] == 3
    assert by_strategy["seed-delta"]["total_s"] == 31.0
    cell = ratios[("openface-256", "100mbit+20ms")]
    # per run: 10/2 = 5, 9/3 = 3, 18/9 = 2 -> median 3 (a ratio of medians would give 10/3)
    assert cell["seed_over_delta"] == pytest.approx(3.0)
    assert cell["delta_over_floor"] == pytest.approx(3.0)
    # 20/25, 22/20, 21/30 -> median 0.8
    assert cell["delta_total_over_rsync_total"] == pytest.approx(0.8)
    assert cell["delta_freeze_over_checkpoint"] == pytest.approx(0.01)


def test_acceptance_verdicts():
    ratios = {("openface-256", "100mbit+20ms"): {"delta_over_floor": 1.8, "seed_over_delta": 2.5,
                                                  "delta_total_over_rsync_total": None,
                                                  "delta_freeze_over_checkpoint": 0.01}}
    verdicts = [v for _name, _value, v in report.acceptance(ratios, "not emulated")]
    assert verdicts == ["PASS", "FAIL", "NOT RUN", "NOT RUN"]


def test_link_names_and_rates():
    args = bench.parse_args(["--links", "100mbit,unshaped", "--strategies", "delta"])
    assert args.links == ["100mbit+20ms", "unshaped"]
    assert labclient.tc_rate_bits("20mbit") == 20e6
    with pytest.raises(SystemExit):
        bench.parse_args(["--services", "nope"])


def test_default_cells_cover_every_acceptance_check():
    cells = bench.parse_args([]).cells
    assert ("openface-256", "100mbit+20ms", list(matrix.STRATEGIES)) in cells
    assert ("openface-1024", "100mbit+20ms", ["rsync", "delta", "default"]) in cells
    for service, _limit in goals.DOWNTIME_GOALS:  # every goal's cell runs the default strategy
        assert any(c[0] == service and c[1] == goals.GOAL_LINK and "default" in c[2] for c in cells), service
    chosen = bench.parse_args(["--services", "simple", "--links", "unshaped", "--strategies", "cold,delta"]).cells
    assert chosen == [("simple", "unshaped", ["cold", "delta"])]


def test_goal_lines_judge_the_default_strategy_and_compare_with_the_references():
    rows = [row("default", 1, 0.756, 7.5, service="openface-32"),
            row("iterative", 1, 1.512, 20.0, service="openface-32"),
            row("default", 1, 0.7, 30.0), row("delta", 1, 0.1, 30.0, service="openface-1024")]
    table, _ratios = report.aggregate(rows)
    checks = {name.split(" (")[0]: (value, verdict) for name, value, verdict in goals.goal_checks(table)}
    assert checks["openface-32, 100 Mbit/s, default strategy: downtime <= 0.4 s"] == ("0.756 s", "FAIL")
    assert checks["openface-32, 100 Mbit/s, default strategy: whole migration <= 8 s"] == ("7.500 s", "PASS")
    assert checks["openface-256, 100 Mbit/s, default strategy: downtime <= 0.8 s"] == ("0.700 s", "PASS")
    assert checks["openface-1024, 100 Mbit/s, default strategy: downtime <= 2.0 s"] == ("-", "NOT RUN")
    line = next(name for name, _v, _r in goals.goal_checks(table) if name.startswith("openface-32, 100 Mbit/s, "
                                                                                      "default strategy: downtime"))
    assert "ReSync, YOLOv8 with runC 0.378 s: x2.00" in line and "iterative / default 2.00 (PCLive: 2.7)" in line


def test_ratios_on_the_report_downtime_when_run_without_prober():
    rows = [row("delta", 1, None, 20.0, floor=1.0), row("seed-delta", 1, None, 30.0)]
    rows[0]["report_downtime_s"], rows[1]["report_downtime_s"] = 2.0, 8.0
    _table, ratios = report.aggregate(rows, "report_downtime_s")
    assert ratios[("openface-256", "100mbit+20ms")]["seed_over_delta"] == pytest.approx(4.0)
    assert ratios[("openface-256", "100mbit+20ms")]["delta_over_floor"] == pytest.approx(2.0)


def test_a_row_takes_the_reports_times_statistics_and_frozen_window():
    row = {}
    report.fill_from_report(row, {
        "downtime_s": 0.9, "total_s": 11.0, "bytes_freeze": 1_000_000, "checkpoint_size": 40_000_000,
        "phases": {"checkpoint": 0.22, "restore": 0.35},
        "criu": {"dump": {"frozen_time": 0.2}, "restore": {"restore_time": 0.1}},
        "frozen_window": [{"at_s": 0.0, "step": "frozen"}, {"at_s": 0.22, "step": "dumped"},
                          {"at_s": 0.41, "step": "signal"}, {"at_s": 0.85, "step": "running"}]}, 100e6)
    assert row["report_downtime_s"] == 0.9 and row["phase_checkpoint"] == 0.22 and row["phase_xdelta_dest"] is None
    assert row["freeze_ratio"] == pytest.approx(0.025)
    assert row["frozen_window"] == "dumped 0.220 signal 0.410 running 0.850"
    assert "frozen_window" in report.CSV_FIELDS
