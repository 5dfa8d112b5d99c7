"""estimate.yml and migrate.yml -e strategy=auto in the lab: real checkpoints of a running
service, a real link probe over the edges' SSH, the strategy chosen from the predictions.
These tests fail (they do not skip) when the lab is not up."""

import glob
import json
import os
import re

import pytest
from labtools import REPORTS, playbook, remove_everywhere, request, running_on, start_openface

pytestmark = pytest.mark.lab

NAME = "exp-estimate"
PORT = 19989


def estimate_leftovers(lab):
    """Files of an estimate (its checkpoints, its link probe) left on any host."""
    left = []
    for host in lab.values():
        for path in glob.glob(os.path.join(host["checkpoint_dir"], "estimate-*")):
            left.append(path)
    return left


@pytest.fixture
def service(lab):
    start_openface(lab, NAME, PORT, 32)
    yield NAME
    remove_everywhere(lab, NAME)


def test_estimate_measures_without_moving_and_predicts_every_strategy(lab, service):
    checksum = request(lab["edge1"], PORT, "SUM")["sha256"]
    count = request(lab["edge1"], PORT, "GET")["count"]
    before = set(glob.glob(os.path.join(REPORTS, "estimates", "*.json")))
    proc = playbook("playbooks/estimate.yml", "-e", "service=%s" % service, "-e", "destination=edge2",
                    "-e", "estimate_interval=2", "-e", "estimate_probe_mb=8")
    written = sorted(set(glob.glob(os.path.join(REPORTS, "estimates", "*-%s.json" % service))) - before)
    assert len(written) == 1, proc.stdout[-3000:]
    with open(written[0]) as handle:
        estimate = json.load(handle)
    assert "smallest downtime among delta, rsync, seed-delta: " + estimate["chosen"] in proc.stdout
    for strategy in ("delta", "rsync", "cold", "seed-delta"):
        assert strategy in proc.stdout
        p = estimate["predictions"][strategy]
        assert p["total_s"] > p["downtime_s"] > 0
    m = estimate["measurements"]
    assert m["checkpoint_bytes"] > 32 << 20 and 1.5 < m["interval_s"] < 10
    assert m["link_bps"] > 1e6 and m["probe_bytes"] >= 8 << 20 and m["task_overhead_s"] > 0
    assert 0 < m["delta_bytes"] < m["checkpoint_bytes"]
    # the service did not move, kept running with its state, and no image is left
    assert running_on(lab, service) == ["edge1"]
    answer = request(lab["edge1"], PORT, "SUM")
    assert answer["sha256"] == checksum and answer["count"] == count
    assert estimate_leftovers(lab) == []


def test_estimate_rejects_a_service_that_does_not_run(lab):
    remove_everywhere(lab, "exp-nosuch")
    proc = playbook("playbooks/estimate.yml", "-e", "service=exp-nosuch", check=False)
    assert proc.returncode != 0
    assert "unknown service 'exp-nosuch'" in proc.stdout


def test_auto_strategy_migrates_with_the_chosen_strategy(lab, service):
    checksum = request(lab["edge1"], PORT, "SUM")["sha256"]
    proc = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2", "-e", "strategy=auto",
                    "-e", "estimate_interval=2", "-e", "estimate_probe_mb=8")
    assert "smallest downtime among delta, rsync, seed-delta: " in proc.stdout
    chosen = re.search(r"smallest downtime among delta, rsync, seed-delta: ([a-z-]+)", proc.stdout).group(1)
    assert chosen in ("delta", "rsync", "seed-delta")
    assert "strategy %s" % chosen in proc.stdout and "MIGRATED" in proc.stdout
    assert running_on(lab, service) == ["edge2"]
    assert request(lab["edge2"], PORT, "SUM")["sha256"] == checksum
    assert estimate_leftovers(lab) == []
