"""What a person sees during a long warm-up: the copy of a 256 MB memory image over a
20 Mbit/s link (about two minutes) reports its progress while it runs, and nothing in a
healthy migration's output reads FAILED."""

import os
import re

import pytest
from labtools import ROOT, playbook, remove_everywhere, request, run, running_on, start_openface

pytestmark = pytest.mark.lab

NAME = "progress-256"
PORT = 19988
PROGRESS_LINE = re.compile(r"^waiting \[.*\] Warm-up \| the checkpoint on its way to the destination "
                           r"\(check \d+, up to \d+\): ([\d.]+) of ([\d.]+) MB \((\d+)%\)", re.MULTILINE)


def shape(host, *args):
    run([os.path.join(ROOT, "lab", "lab"), "link", host, *args])


@pytest.fixture
def service(lab):
    start_openface(lab, NAME, PORT, 256, attempts=600)
    shape("edge1", "--rate", "20mbit")
    yield NAME
    shape("edge1", "--clear")
    remove_everywhere(lab, NAME)


def test_a_long_warm_up_copy_shows_its_progress(lab, service):
    checksum = request(lab["edge1"], PORT, "SUM")["sha256"]
    proc = playbook("migrate.yml", "-e", "service=%s" % service, "-e", "destination=edge2",
                    "-e", "migration_warmup_compress=false")
    assert "MIGRATED" in proc.stdout
    progress = [tuple(float(x) for x in found) for found in PROGRESS_LINE.findall(proc.stdout)]
    assert len(progress) >= 3, proc.stdout[-4000:]
    sent = [p[0] for p in progress]
    assert sent == sorted(sent) and sent[-1] > sent[0], progress  # it moves forward
    assert all(p[1] >= 256 for p in progress), progress  # of the whole memory image
    assert "FAILED" not in proc.stdout
    assert running_on(lab, service) == ["edge2"]
    assert request(lab["edge2"], PORT, "SUM")["sha256"] == checksum
