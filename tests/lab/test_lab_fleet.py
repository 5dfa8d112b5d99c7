"""Fleets in the lab: real dockerd, CRIU, SSH, each migration a real migrate.yml run. A plan with a bad
entry moves nothing; an evacuation spreads an edge's services over the others with their state;
a plan whose one destination fails mid-way rolls that service back and completes the others.
Three small stand-ins (fleet-lab-*, 16 MB of state) keep it to a few minutes."""

import glob
import json
import os
import sys
import time

import pytest
from labtools import REPORTS, ROOT, playbook

sys.path.insert(0, ROOT)
from bench.fleet_bench import Fleet  # noqa: E402

pytestmark = pytest.mark.lab

SERVICES = {
    "a": ("openface-standin:latest", {"STATE_MB": 16, "DIRTY_KBPS": 64}, 19601),
    "b": ("yolo-standin:latest", {"STATE_MB": 16, "DIRTY_KBPS": 64}, 19602),
    "c": ("openface-standin:latest", {"STATE_MB": 16, "DIRTY_KBPS": 64}, 19603),
}


@pytest.fixture(scope="module")
def fleet(lab):
    """The three services on edge1 (once for the module); removed everywhere at the end."""
    fleet = Fleet(lab, "10.77.0.1:5000", prefix="fleet-lab-", services=SERVICES)
    fleet.remove_all()
    fleet.start_all("edge1")
    yield fleet
    fleet.remove_all()


def where(fleet):
    placed = {}
    for name in fleet.services:
        hosts = fleet.running_on(name)
        assert len(hosts) == 1, "%s runs on %s" % (name, hosts)
        placed[name] = hosts[0]
    return placed


def plan_file(tmp_path, entries):
    path = tmp_path / "plan.yml"
    path.write_text(json.dumps(entries))  # JSON is YAML
    return str(path)


def fleet_report(proc):
    line = next(line for line in proc.stdout.splitlines() if "fleet report: " in line)
    with open(line.split("fleet report: ")[1].split()[0]) as handle:
        return json.load(handle)


def my_images_left(lab):
    """Memory images of this test's services left in any edge's checkpoint directory."""
    return [path for host in lab.values() for path in glob.glob(os.path.join(host["checkpoint_dir"], "fleet-lab-*"))]


def test_a_plan_with_one_unknown_service_is_rejected_before_anything_moves(lab, fleet, tmp_path):
    placed = where(fleet)
    before = fleet.states(placed)
    since = time.time()
    proc = playbook("playbooks/fleet.yml", "-e", "plan=%s" % plan_file(tmp_path, [
        {"service": "fleet-lab-a", "destination": "edge2"},
        {"service": "fleet-lab-nosuch", "destination": "edge3"},
        {"service": "fleet-lab-b", "destination": "edge3"}]), check=False)
    assert proc.returncode != 0
    assert "entry 2 (service 'fleet-lab-nosuch'): unknown service" in proc.stdout, proc.stdout[-3000:]
    assert "the plan is rejected, nothing was moved" in proc.stdout
    assert "Run | migrate" not in proc.stdout
    assert fleet.check_moved(before, placed) == []
    assert not [n for n in os.listdir(REPORTS) if n.startswith("2") and "fleet-lab-" in n
                and os.path.getmtime(os.path.join(REPORTS, n)) >= since]


def test_evacuation_spreads_the_services_and_keeps_their_state(lab, fleet):
    placed = where(fleet)
    source = placed["fleet-lab-a"]
    assert set(placed.values()) == {source}, "the module's services start together on one edge: %s" % placed
    before = fleet.states(placed)
    proc = playbook("playbooks/fleet.yml", "-e", "evacuate=%s" % source, "-e", "fleet_match=fleet-lab-*")
    report = fleet_report(proc)
    assert [r["outcome"] for r in report["results"]] == ["migrated"] * 3
    moved = {r["service"]: r["destination"] for r in report["results"]}
    assert source not in moved.values() and len(set(moved.values())) == 2, moved  # spread over both others
    assert fleet.check_moved(before, moved) == []
    assert report["max_parallel"] >= 2 and report["request"]["evacuate"] == source
    assert os.path.exists(os.path.join(REPORTS, "fleet", report["fleet_id"] + ".md"))
    assert all(r["report"] and r["state_preserved"] for r in report["results"])
    assert my_images_left(lab) == []


def test_one_destination_failing_mid_way_rolls_that_service_back_and_the_others_complete(lab, fleet, tmp_path):
    placed = where(fleet)
    targets = {name: ("edge1" if host != "edge1" else "edge2") for name, host in placed.items()}
    broken = "fleet-lab-b"
    # Just before b's freeze, bytes of its warm-up copy on its destination are flipped: the rebuilt
    # final checkpoint fails its checks there, after the freeze, and the migration rolls back.
    spoil = os.path.join("/tmp", "fleet-spoil-%d.py" % os.getpid())
    with open(spoil, "w") as handle:
        handle.write("import glob, os\n"
                     "for p in glob.glob(%r):\n"
                     "    size = os.path.getsize(p)\n"
                     "    with open(p, 'r+b') as f:\n"
                     "        f.seek(size // 2 // 4096 * 4096)\n"
                     "        f.write(b'\\xa5' * 4096)\n"
                     % os.path.join(lab[targets[broken]]["checkpoint_dir"], broken + "-*", "base", "pages-*.img"))
    entries = [{"service": name, "destination": targets[name]} for name in sorted(fleet.services)]
    for entry in entries:
        if entry["service"] == broken:
            entry["hooks"] = {"before_freeze": "%s %s" % (sys.executable, spoil)}
    before = fleet.states(placed)
    try:
        proc = playbook("playbooks/fleet.yml", "-e", "plan=%s" % plan_file(tmp_path, entries), check=False)
    finally:
        os.unlink(spoil)
    assert proc.returncode != 0
    assert "1 of 3 migrations did not complete (the others did): fleet-lab-b: rolled_back" in proc.stdout, \
        proc.stdout[-3000:]
    report = fleet_report(proc)
    outcomes = {r["service"]: r["outcome"] for r in report["results"]}
    assert outcomes == {"fleet-lab-a": "migrated", "fleet-lab-b": "rolled_back", "fleet-lab-c": "migrated"}
    assert dict(report["counts"]) == {"migrated": 2, "rolled_back": 1}
    expected = dict(targets, **{broken: placed[broken]})
    assert fleet.check_moved(before, expected) == []
    assert my_images_left(lab) == []
