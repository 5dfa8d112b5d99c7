"""Run as AWX runs it: migrate.yml through ansible-runner on a private data directory; the
migration's report is among the job's artifacts (set_stats, in the stats event)."""

import glob
import json
import os

import pytest
from labtools import ROOT, VENV_BIN, remove_everywhere, request, run, running_on, start_openface

pytestmark = pytest.mark.lab

NAME = "runner-moved"
PORT = 19987


@pytest.fixture
def service(lab):
    start_openface(lab, NAME, PORT, 16)
    yield NAME
    remove_everywhere(lab, NAME)


def test_a_migration_under_ansible_runner_leaves_its_report_in_the_artifacts(lab, service, tmp_path):
    private = tmp_path / "job"
    (private / "env").mkdir(parents=True)
    (private / "env" / "extravars").write_text(json.dumps({"service": service, "destination": "edge2"}))
    checksum = request(lab["edge1"], PORT, "SUM")["sha256"]
    proc = run([os.path.join(VENV_BIN, "ansible-runner"), "run", str(private), "-p", "migrate.yml",
                "--project-dir", ROOT, "--inventory", os.path.join(ROOT, "inventory", "lab"), "--ident", "move-1"],
               timeout=600, env=dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"]))
    artifacts = private / "artifacts" / "move-1"
    assert (artifacts / "rc").read_text().strip() == "0", proc.stdout[-4000:]
    assert (artifacts / "status").read_text().strip() == "successful"
    stats = []
    for path in glob.glob(str(artifacts / "job_events" / "*.json")):
        with open(path) as handle:
            event = json.load(handle)
        if event.get("event") == "playbook_on_stats":
            stats.append(event["event_data"].get("artifact_data") or {})
    assert len(stats) == 1, "no stats event among the job's events"
    reports = stats[0].get("edge_migrate_reports")
    assert isinstance(reports, list) and len(reports) == 1, stats[0]
    report = reports[0]
    assert report["service"] == service and report["source"] == "edge1" and report["destination"] == "edge2"
    assert report["outcome"] == "migrated" and report["downtime_s"] > 0
    assert running_on(lab, service) == ["edge2"]
    assert request(lab["edge2"], PORT, "SUM")["sha256"] == checksum
