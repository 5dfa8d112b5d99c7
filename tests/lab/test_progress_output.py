"""What a person sees during a long warm-up: the copy of a 256 MB memory image over a
20 Mbit/s link (about two minutes) reports its progress while it runs, and nothing in a
healthy migration's output reads FAILED. On the system edges (bookworm to trixie), whose
shaped link leaves edge1..N's tests beside it unslowed (tests/run-all)."""

import os
import re

import pytest
from labtools import (
    ROOT,
    latest_report,
    on_systems,
    remove_everywhere,
    request,
    run,
    running_on,
    start_openface,
    system_edge,
    system_edges,
)

pytestmark = pytest.mark.lab

NAME = "progress-256"
PORT = 19988
PROGRESS_LINE = re.compile(r"^waiting \[.*\] Warm-up \| the checkpoint on its way to the destination "
                           r"\(check \d+, up to \d+\): ([\d.]+) of ([\d.]+) MB \((\d+)%\)", re.MULTILINE)


def shape(host, *args):
    run([os.path.join(ROOT, "lab", "lab"), "link", host, *args])


@pytest.fixture
def edges():
    systems = system_edges()
    source = system_edge(systems, "bookworm")
    start_openface(systems, NAME, PORT, 256, host=source, attempts=600)
    shape(source, "--rate", "20mbit")
    yield systems
    shape(source, "--clear")
    remove_everywhere(systems, NAME)


def test_a_long_warm_up_copy_shows_its_progress(edges):
    source, destination = system_edge(edges, "bookworm"), system_edge(edges, "trixie")
    checksum = request(edges[source], PORT, "SUM")["sha256"]
    proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % NAME, "-e", "destination=%s" % destination,
                      "-e", "migration_warmup_compress=false")
    assert "MIGRATED" in proc.stdout
    progress = [tuple(float(x) for x in found) for found in PROGRESS_LINE.findall(proc.stdout)]
    assert len(progress) >= 3, proc.stdout[-4000:]
    sent = [p[0] for p in progress]
    assert sent == sorted(sent) and sent[-1] > sent[0], progress  # it moves forward
    assert all(p[1] >= 256 for p in progress), progress  # of the whole memory image
    assert "FAILED" not in proc.stdout
    # Two minutes of copy without -e strategy: the default takes warm-up rounds, and says why.
    report = latest_report(NAME)
    assert report["strategy"] == "iterative", report["strategy_reason"]
    assert "at least 3.0 s" in report["strategy_reason"], report["strategy_reason"]
    assert report["warmup_rounds"]["rounds"], report["warmup_rounds"]
    assert running_on(edges, NAME) == [destination]
    assert request(edges[destination], PORT, "SUM")["sha256"] == checksum
