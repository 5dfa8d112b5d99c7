import csv
import json

from ansible.module_utils.edge_report import CSV_FIELDS, build, summary, write

REQUEST = {"migration_id": "openface-1", "service": "openface", "source": "edge1", "destination": "edge2",
           "strategy": "delta", "outcome": "migrated", "cause": "", "started_at": 1000.0, "finished_at": 1012.0}
RESULTS = {
    "warmup_checkpoint": {"duration_s": 3.5, "size_bytes": 200_000_000},
    "warmup_sync": {"duration_s": 1.2, "bytes_sent": 200_100_000},
    "prepare": {"phases": {"pull": 2.0, "create": 0.1}},
    "freeze": {"frozen_at": 1008.0, "checkpoint_size": 200_000_000, "bytes_sent": 2_000_000,
               "phases": {"checkpoint": 3.4, "xdelta_source": 0.4, "final_rsync": 0.2}},
    "restore": {"running_at": 1011.5, "from_checkpoint": True, "phases": {"xdelta_dest": 0.3, "restore": 3.6}},
    "cold_stop": {"skipped": True},
    "source_info": {"engine": {"version": "20.10.24"}, "tools": {"criu": "Version: 4.2.1"}},
}


def test_report_has_every_reference_phase_and_downtime():
    report = build(REQUEST, RESULTS)
    for phase in ("pre_checkpoint", "pre_rsync", "prepare", "checkpoint", "xdelta_source", "final_rsync",
                  "xdelta_dest", "restore", "migrate"):
        assert phase in report["phases"], phase
    assert report["downtime_s"] == 3.5
    assert report["phases"]["migrate"] == 11.5
    assert report["total_s"] == 12.0
    assert report["bytes_warmup"] == 200_100_000 and report["bytes_freeze"] == 2_000_000
    assert report["freeze_bytes_ratio"] == 0.01
    assert report["state_preserved"] is True
    assert report["tool_versions"]["source"] == {"criu": "Version: 4.2.1", "docker": "20.10.24"}


def test_cold_report_says_state_was_lost():
    request = dict(REQUEST, strategy="cold")
    results = {"cold_stop": {"stopped_at": 1001.0}, "restore": {"running_at": 1003.0, "from_checkpoint": False}}
    report = build(request, results)
    assert report["state_preserved"] is False and "lost" in report["note"]
    assert report["downtime_s"] == 2.0
    assert "LOST" in summary(report)[1]


def test_write_json_and_csv_rows(tmp_path):
    first, csv_path = write(build(REQUEST, RESULTS), str(tmp_path))
    write(build(dict(REQUEST, started_at=2000.0, finished_at=2010.0, outcome="rolled_back", cause="x"), {}),
          str(tmp_path))
    assert json.load(open(first))["service"] == "openface"
    assert first.endswith("-openface.json")
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2 and list(rows[0]) == list(CSV_FIELDS)
    assert rows[1]["outcome"] == "rolled_back" and rows[1]["cause"] == "x"


def test_the_frozen_window_is_a_timeline_of_both_hosts_from_the_freeze():
    freeze = dict(RESULTS["freeze"], phase_spans={"checkpoint": [1008.0, 1008.22], "xdelta_source": [1008.22, 1008.3],
                                                  "final_rsync": [1008.3, 1008.45]})
    restore = dict(RESULTS["restore"], signalled_at=1008.46,
                   phase_spans={"xdelta_dest": [1008.47, 1008.5], "restore": [1008.5, 1008.85]})
    report = build(REQUEST, dict(RESULTS, freeze=freeze, restore=restore))
    window = report["frozen_window"]
    assert [(e["at_s"], e["host"]) for e in window] == [
        (0.0, "source"), (0.22, "source"), (0.3, "source"), (0.45, "source"), (0.46, "destination"),
        (0.5, "destination"), (0.5, "destination"), (0.85, "destination")]
    assert window[0]["event"].startswith("final checkpoint begins") and window[4]["event"] == "signal seen"
    assert window[-1]["event"].startswith("restore ends")


def test_no_frozen_window_without_a_freeze_and_spans_from_an_edge_must_be_numbers():
    assert build(REQUEST, dict(RESULTS, freeze={}))["frozen_window"] == []
    freeze = dict(RESULTS["freeze"], phase_spans={"checkpoint": ["1008", None], "final_rsync": "x"})
    assert [e["at_s"] for e in build(REQUEST, dict(RESULTS, freeze=freeze))["frozen_window"]] == [0.0]
    assert not any(line.startswith("frozen window") for line in summary(build(REQUEST, RESULTS)))


def test_the_summary_reads_the_frozen_window_in_short():
    freeze = dict(RESULTS["freeze"], phase_spans={"checkpoint": [1008.0, 1008.22], "final_rsync": [1008.3, 1008.45]})
    restore = dict(RESULTS["restore"], signalled_at=1008.46, phase_spans={"restore": [1008.5, 1008.85]})
    lines = summary(build(REQUEST, dict(RESULTS, freeze=freeze, restore=restore)))
    assert "frozen window (s from the freeze): dumped 0.22, pushed 0.45, signal 0.46, restore 0.50, running 0.85" \
        in lines


def test_the_lazy_restore_and_the_neighbor_entries_are_reported():
    neighbors = [{"network": "bridge", "address": "172.17.0.2", "mac": "02:42:ac:11:00:02", "device": "docker0"}]
    restore = dict(RESULTS["restore"], criu_options=["lazy-pages"], lazy_pages={"rc": 0, "handed_over_s": 0.5},
                   neighbors=neighbors, phase_spans={"restore": [1008.5, 1008.85], "neighbors": [1008.85, 1008.87]})
    freeze = dict(RESULTS["freeze"], phase_spans={"checkpoint": [1008.0, 1008.22]})
    report = build(REQUEST, dict(RESULTS, freeze=freeze, restore=restore))
    assert report["criu"]["restore_options"] == ["lazy-pages"]
    assert report["criu"]["lazy_pages"] == {"rc": 0, "handed_over_s": 0.5}
    assert report["neighbors"] == neighbors
    assert [(e["at_s"], e["step"]) for e in report["frozen_window"]][-2:] == [(0.85, "running"), (0.87, "announced")]
    plain = build(REQUEST, RESULTS)
    assert plain["neighbors"] == [] and plain["criu"]["lazy_pages"] == {}
