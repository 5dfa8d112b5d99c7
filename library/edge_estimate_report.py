#!/usr/bin/python
"""Ansible module (controller side): predict a migration's time per strategy from an estimate's measurements."""

DOCUMENTATION = r"""
module: edge_estimate_report
short_description: Predict total time and downtime per strategy and write the estimate
description:
  - Feeds what M(edge_estimate) measured on the source and the destination, and the Ansible
    task costs measured by the play, to the model of C(module_utils/edge_estimate.py), with
    the constants it cannot measure calibrated from earlier migration reports in
    I(reports_dir) (the final checkpoint's extra cost, CRIU's restore, Docker's copies).
  - Writes I(reports_dir)/estimates/<UTC timestamp>-<service>.json and returns the
    predictions, the reference prototype's model on the same numbers, a table, and the
    strategy with the smallest predicted downtime among I(allowed).
  - Runs on the controller.
options:
  service:
    description: The service measured.
    type: str
    required: true
  source:
    description: Inventory name of the source.
    type: str
    required: true
  destination:
    description: Inventory name of the destination.
    type: str
    required: true
  measurements:
    description: The C(measurements) M(edge_estimate) returned on the source.
    type: dict
    required: true
  timings:
    description:
      - Costs measured by the play - task_overhead_s (a remote task's wall time less its
        module's), task_gap_s (from one module's end to the next one's start), task_trivial_s
        (a controller-side task), pull_present_s (the destination's image pull).
    type: dict
    required: true
  allowed:
    description: Strategies the choice is made among (the ones that keep the memory state by default).
    type: list
    elements: str
    default: [delta, rsync, seed-delta]
  calibrate:
    description:
      - Calibrate from earlier migration reports in I(reports_dir) the constants the estimate
        cannot measure, and the remote task cost - the median of the play's reading scaled by
        the median ratio of what earlier migrations cost per task to their estimate's reading
        (newest eight estimate-then-migration pairs; without any, the lab's 1.25) and of what
        the migrations of the last ten minutes cost per task (at most four; a migration's cost
        varies less than a reading of four tasks). Constants come from the migrations of the
        last half hour when there are three or more of them.
    type: bool
    default: true
  correct:
    description:
      - What to correct by how far the model was from earlier migrations that followed an
        estimate (newest ten pairs) - C(downtime) shifts the predicted downtime by the median
        of measured - predicted (what the frozen window holds beyond the model under this
        machine's load), C(both) also scales the total time by the median of measured /
        predicted, C(none) leaves the model's numbers. The model's own numbers stay in the
        estimate as C(predictions_model).
      - Off by default - on this shared 2-core lab machine, whose load swung between 7 and 22
        from one migration to the next, past errors did not predict the next ones (median
        error of the downtime over seven runs 56 % corrected, 49 % not).
    type: str
    choices: [none, downtime, both]
    default: none
  copies_layer:
    description:
      - The migration copies the files the service wrote in its layer (the warm-up and the
        frozen window then push them).
    type: bool
    default: false
  reports_dir:
    description: Directory of the migration reports; the estimate goes to its C(estimates) subdirectory.
    type: path
    default: reports
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Computes and returns the predictions but writes no estimate (no I(path)) and reports
      C(changed=false).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_estimate
    description: What it measured on the source.
  - module: edge_estimate_mark
    description: What it measured on the destination.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Predict and write the estimate
  edge_estimate_report:
    service: openface
    source: edge1
    destination: edge2
    measurements: "{{ estimate_source.measurements }}"
    timings: {task_overhead_s: 0.4, task_gap_s: 0.3, task_trivial_s: 0.03, pull_present_s: 0.2}
  delegate_to: localhost
"""

RETURN = r"""
predictions:
  description: Per strategy - total_s, downtime_s, keeps_state, bytes_warmup, bytes_freeze, phases, basis.
  type: dict
  returned: success
  sample: {delta: {total_s: 41.2, downtime_s: 2.8, keeps_state: true, bytes_warmup: 268435456, bytes_freeze: 8388608}}
predictions_model:
  description: The model's predictions before the correction by earlier migrations.
  type: dict
  returned: success
  sample: {delta: {total_s: 40.1, downtime_s: 2.6, keeps_state: true}}
correction:
  description: Per strategy, the factors applied to total_s and downtime_s and the number of pairs they come from.
  type: dict
  returned: success
  sample: {delta: {total: 1.0, downtime: 1.08, pairs: 5}}
reference:
  description: The reference prototype's model on the same measurements (t_pre, t_mig, total_s, downtime_s).
  type: dict
  returned: success
  sample: {t_pre: 35.4, t_mig: 3.1, total_s: 38.5, downtime_s: 3.1}
chosen:
  description: The allowed strategy with the smallest predicted downtime.
  type: str
  returned: success
  sample: delta
calibration:
  description: The constants used and where each came from (earlier reports or defaults).
  type: dict
  returned: success
  sample: {restore_s: {value: 0.9, from: reports}, final_extra_s: {value: 0.3, from: default}}
table:
  description: The predictions as lines of a table.
  type: list
  elements: str
  returned: success
  sample: ['strategy    total_s  downtime_s', 'delta          41.2         2.8']
path:
  description: Path of the JSON estimate.
  type: str
  returned: success, not in check mode
  sample: reports/estimates/20261126T040000123456Z-openface.json
"""

import datetime
import glob
import json
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_estimate import (
    DEFAULTS,
    STRATEGIES,
    ModelError,
    calibrate,
    choose,
    corrected,
    correction,
    local_s,
    overhead_from_reports,
    overhead_ratio,
    pair,
    predict_all,
    reference,
    table,
    task_overhead,
)

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _load(pattern, key):
    found = []
    for path in sorted(glob.glob(pattern)):
        try:
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get(key):
            found.append(data)
    return found


def _epoch(stamp):
    try:
        return datetime.datetime.strptime(stamp, ISO).replace(tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


def history(reports_dir):
    """Earlier migration reports and estimates, oldest first (names start with a UTC timestamp)."""
    reports = _load(os.path.join(reports_dir, "*.json"), "migration_id")
    for r in reports:
        r["started_epoch"] = _epoch(r.get("started_at"))
        r["finished_epoch"] = (r["started_epoch"] or 0) + (r.get("total_s") or 0)
    estimates = [e for e in _load(os.path.join(reports_dir, "estimates", "*.json"), "predictions")
                 if e.get("estimated_at_epoch")]
    return [r for r in reports if r["started_epoch"]], estimates


def main():
    module = AnsibleModule(argument_spec=dict(
        service=dict(type="str", required=True),
        source=dict(type="str", required=True),
        destination=dict(type="str", required=True),
        measurements=dict(type="dict", required=True),
        timings=dict(type="dict", required=True),
        allowed=dict(type="list", elements="str", default=["delta", "rsync", "seed-delta"]),
        calibrate=dict(type="bool", default=True),
        correct=dict(type="str", choices=["none", "downtime", "both"], default="none"),
        copies_layer=dict(type="bool", default=False),
        reports_dir=dict(type="path", default="reports"),
    ), supports_check_mode=True)
    params = module.params
    bad = [s for s in params["allowed"] if s not in STRATEGIES]
    if bad or not params["allowed"]:
        module.fail_json(msg="unknown strategies to choose among: %s (known: %s)"
                         % (", ".join(bad) or "none given", ", ".join(STRATEGIES)), cmd=None, rc=None, stderr="")
    m = dict(params["measurements"])
    timings = {k: float(v) for k, v in params["timings"].items() if v not in (None, "")}
    m.update(timings)
    reports, estimates = history(params["reports_dir"]) if params["calibrate"] else ([], [])
    now = datetime.datetime.now(datetime.timezone.utc)
    pairs = pair(estimates, reports)
    calibrated = calibrate(reports, now=now.timestamp())
    ratio = overhead_ratio(pairs, calibrated)
    recent = overhead_from_reports(reports, now.timestamp(), m, calibrated)
    if "task_overhead_s" in m and params["calibrate"]:
        m["task_overhead_now_s"] = m["task_overhead_s"]
        # This moment's load, scaled by how earlier migrations compared with their estimates,
        # and what the latest migrations cost.
        m["task_overhead_ratio"] = ratio or DEFAULTS["overhead_ratio"]
        m["task_overhead_recent_s"] = recent
        m["task_overhead_s"] = task_overhead(m["task_overhead_s"] * m["task_overhead_ratio"], recent)
    m["copies_layer"] = params["copies_layer"]
    if "task_overhead_s" in m:
        m["local_s"] = local_s(m, dict(DEFAULTS, **calibrated), m["task_overhead_s"])
    try:
        model = predict_all(m, calibrated)
        factors = correction(pairs) if params["correct"] != "none" else {}
        predictions = corrected(model, factors, ("total", "downtime") if params["correct"] == "both" else ("downtime",))
        ref = reference(m, calibrated)
        chosen = choose(predictions, params["allowed"])
    except ModelError as exc:
        module.fail_json(msg=str(exc), cmd=None, rc=None, stderr="", measurements=m)
    estimate = {
        "service": params["service"], "source": params["source"], "destination": params["destination"],
        "estimated_at": now.strftime(ISO), "estimated_at_epoch": now.timestamp(), "measurements": m,
        "calibration": {k: {"value": calibrated.get(k, v), "from": "reports" if k in calibrated else "default"}
                        for k, v in DEFAULTS.items()},
        "predictions": predictions, "predictions_model": model, "correction": factors, "reference": ref,
        "allowed": params["allowed"], "chosen": chosen,
    }
    result = dict(changed=False, predictions=predictions, predictions_model=model, correction=factors,
                  reference=ref, chosen=chosen,
                  calibration=estimate["calibration"], table=table(predictions, ref))
    if not module.check_mode:
        out_dir = os.path.join(params["reports_dir"], "estimates")
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, "%s-%s.json" % (now.strftime("%Y%m%dT%H%M%S%fZ"), params["service"]))
        with open(path, "w") as handle:
            json.dump(estimate, handle, indent=2, sort_keys=True)
        result.update(changed=True, path=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
