#!/usr/bin/python
"""Ansible module (controller side): write a migration's report. The action plugin of the same
name runs the same code in the controller's own process; this module is its documentation and
runs where the action is not used."""

DOCUMENTATION = r"""
module: edge_report
short_description: Write a migration's report (JSON + CSV row) and return a short summary
description:
  - Builds the report of one migration from the raw results of its tasks (per-phase
    durations with the reference prototype's phase names, bytes sent in warm-up and in
    freeze, checkpoint size, downtime from freeze to running, outcome, tool versions),
    writes it to I(reports_dir)/<UTC timestamp>-<service>.json and appends a row to
    I(reports_dir)/migrations.csv.
  - Runs on the controller.
options:
  request:
    description:
      - The migration and its outcome, with keys migration_id, service, source,
        destination, strategy, outcome (migrated, rolled_back or failed), cause,
        started_at and finished_at (epoch seconds), and optionally strategy_reason
        (why that strategy) and kept_checkpoint.
    type: dict
    required: true
  results:
    description:
      - Raw registered results of the migration's tasks, by role (warmup_checkpoint,
        warmup_sync, prepare, freeze, restore, cold_stop, source_info, destination_info,
        and fs_warmup, fs_final for the service's layer and volumes).
    type: dict
    required: true
  reports_dir:
    description: Directory of the reports.
    type: path
    default: reports
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Builds and returns the report and its summary but writes no file (no I(path) or I(csv_path))
      and reports C(changed=false).
  diff_mode:
    support: none
    description: Returns no diff.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the report
  edge_report:
    request: "{{ migration_request }}"
    results: "{{ migration_results }}"
  delegate_to: localhost
"""

RETURN = r"""
report:
  description: The report.
  type: dict
  returned: success
  sample: {migration_id: openface-20261126T040000, service: openface, outcome: migrated, downtime_s: 2.7}
path:
  description: Path of the JSON report.
  type: str
  returned: success, not in check mode
  sample: reports/20261126T040000Z-openface.json
csv_path:
  description: Path of the CSV with one row per migration.
  type: str
  returned: success, not in check mode
  sample: reports/migrations.csv
summary:
  description: The report in a few lines.
  type: list
  elements: str
  returned: success
  sample: ['openface edge1 -> edge2 (delta): migrated', 'downtime 2.70 s, total 48.20 s']
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_report import ARGUMENT_SPEC, make_report


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = make_report(module.params, module.check_mode)
    except ValueError as exc:
        module.fail_json(msg=str(exc), cmd=None, rc=None, stderr="")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
