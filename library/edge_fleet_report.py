#!/usr/bin/python
"""Ansible module (controller side): write a fleet run's report."""

DOCUMENTATION = r"""
module: edge_fleet_report
short_description: Write a fleet run's report (JSON + Markdown) and return its summary table
description:
  - Writes I(reports_dir)/<fleet_id>.json (the request, the plan, each migration's outcome,
    timing, downtime, cause and report path, the wall time against the sum of the
    migrations) and the same as a Markdown table in <fleet_id>.md.
  - Runs on the controller.
options:
  fleet_id:
    description: Name of the fleet run (its UTC start), used for the file names.
    type: str
    required: true
  request:
    description: What was asked - mode, evacuate or plan_file, match, per_source, per_destination, parallel.
    type: dict
    required: true
  migrations:
    description: The planned migrations (edge_fleet_plan's migrations).
    type: list
    elements: dict
    required: true
  results:
    description: What became of each (edge_fleet_run's results).
    type: list
    elements: dict
    required: true
  placements:
    description: The evacuation's destination choices (edge_fleet_plan's placements).
    type: list
    elements: dict
    default: []
  max_parallel:
    description: The most migrations that ran at the same time.
    type: int
  reports_dir:
    description: Directory of the fleet reports.
    type: path
    default: reports/fleet
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Builds and returns the report and its summary but writes no file (no I(path) or
      I(markdown_path)) and reports C(changed=false).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_fleet_run
    description: The results it reports.
  - module: edge_fleet_plan
    description: The plan it reports.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the fleet report
  edge_fleet_report:
    fleet_id: 20261126T000000Z
    request: {mode: evacuate, evacuate: edge1, per_source: 3, per_destination: 3}
    migrations: "{{ fleet_plan.migrations }}"
    results: "{{ fleet_run.results }}"
    reports_dir: reports/fleet
"""

RETURN = r"""
report:
  description: The report.
  type: dict
  returned: always
  sample: {fleet_id: 20261126T000000Z, request: {mode: evacuate, evacuate: edge1}, migrations: [], results: []}
path:
  description: Path of the JSON report.
  type: str
  returned: success, not in check mode
  sample: reports/fleet/20261126T000000Z.json
markdown_path:
  description: Path of the Markdown report.
  type: str
  returned: success, not in check mode
  sample: reports/fleet/20261126T000000Z.md
summary:
  description: A headline and a fixed-width table, one row per migration.
  type: list
  elements: str
  returned: always
  sample: ['2 migrations, 2 migrated, wall 61.2 s (sum 98.4 s)', 'service   source  destination  outcome']
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_fleet_report import build, summary, write

RESULT_KEYS = ("service", "source", "destination", "outcome")


def main():
    module = AnsibleModule(argument_spec=dict(
        fleet_id=dict(type="str", required=True),
        request=dict(type="dict", required=True),
        migrations=dict(type="list", elements="dict", required=True),
        results=dict(type="list", elements="dict", required=True),
        placements=dict(type="list", elements="dict", default=[]),
        max_parallel=dict(type="int"),
        reports_dir=dict(type="path", default="reports/fleet"),
    ), supports_check_mode=True)
    params = module.params
    for index, entry in enumerate(params["results"], start=1):
        missing = [key for key in RESULT_KEYS if not entry.get(key)]
        if missing:
            module.fail_json(msg="result %d lacks %s" % (index, ", ".join(missing)), cmd=None, rc=None, stderr="")
    report = build(params["fleet_id"], params["request"], params["migrations"], params["results"],
                   params["placements"], params["max_parallel"])
    if module.check_mode:
        module.exit_json(changed=False, report=report, summary=summary(report))
    path, markdown_path = write(report, params["reports_dir"])
    module.exit_json(changed=True, report=report, path=path, markdown_path=markdown_path, summary=summary(report))


if __name__ == "__main__":
    main()
