"""playbooks/experiment.yml with its default settings in the lab (real estimates, real
migrations): the CSV, the summary and the plots exist and agree with each other."""

import os
import shutil
import subprocess
import sys

import pytest
from labtools import REPORTS, ROOT, VENV_BIN

sys.path.insert(0, ROOT)

from experiment import analysis  # noqa: E402

pytestmark = pytest.mark.lab

EXPERIMENT_ID = "ci-lab-test"


def test_default_experiment_produces_consistent_results():
    out = os.path.join(REPORTS, "experiments", EXPERIMENT_ID)
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/experiment.yml",
                           "-e", "experiment_id=%s" % EXPERIMENT_ID], cwd=ROOT, capture_output=True, text=True,
                          timeout=2400)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    rows = analysis.read_csv(os.path.join(out, "results.csv"))
    # the default: simple and openface-32, delta and rsync, unshaped, one repeat
    assert sorted((r["service"], r["strategy"]) for r in rows) == [
        ("openface-32", "delta"), ("openface-32", "rsync"), ("simple", "delta"), ("simple", "rsync")]
    for row in rows:
        assert row["outcome"] == "migrated" and row["state_kept"] == "True", row
        assert row["total_s"] > row["downtime_s"] > 0 and row["pred_total_s"] > row["pred_downtime_s"] > 0
        assert row["err_total"] == pytest.approx(abs(row["pred_total_s"] - row["total_s"]) / row["total_s"], abs=1e-3)
        assert row["estimate"].startswith("reports/estimates/") and row["report"].startswith("reports/")
        assert os.path.isfile(os.path.join(ROOT, row["report"]))
    with open(os.path.join(out, "summary.md")) as handle:
        summary = handle.read()
    errs = analysis.errors(rows)
    for line in analysis.acceptance_lines(errs):
        assert line in summary  # the summary's errors are the CSV's
    assert "| openface-32 | unshaped | delta | 1/1 |" in summary
    for name in ("phases.png", "downtime_vs_bandwidth.png", "bytes.png", "predicted_vs_measured.png"):
        path = os.path.join(out, name)
        assert os.path.getsize(path) > 5000 and "(%s)" % name in summary
    printed = " ".join(proc.stdout.split())  # the play's output folds long lines
    assert "median absolute error of the predicted total time over 4 migrated runs" in printed
