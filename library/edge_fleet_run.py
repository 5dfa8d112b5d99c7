#!/usr/bin/python
"""Ansible module: run a fleet's migrations at once, each a migrate.yml run of its own, within per-host limits."""

DOCUMENTATION = r"""
module: edge_fleet_run
short_description: Run many migrations at once, each an ansible-playbook run of migrate.yml
description:
  - Starts one C(ansible-playbook migrate.yml -e service=S -e destination=D) per migration, in
    the given order, as soon as its source has fewer than I(per_source) migrations going out,
    its destination fewer than I(per_destination) coming in, and fewer than I(parallel) run
    in all. Each run keeps the migration's own lock, pre-flight checks, rollback and report.
  - Each run's output goes to I(log_dir)/<service>.log, its variables (service, destination,
    strategy, hooks, I(extra_vars)) to I(log_dir)/<service>.vars.yml, passed with C(-e @file)
    and every string in it marked C(!unsafe), so no value becomes a template. A service or
    destination that is not a name by Docker's rule for container names is refused before any
    run starts. One run's failure does not stop the others. A run longer than I(timeout)
    seconds is stopped (SIGTERM, then SIGKILL); the next migration of that service recovers
    what it left.
  - Returns what each run's report (I(reports_dir)/<UTC>-<service>.json) says.
  - Runs on the controller. In check mode nothing is started.
options:
  migrations:
    description: Migrations from edge_fleet_plan (service, source, destination, strategy, hooks).
    type: list
    elements: dict
    required: true
  playbook:
    description: The migration playbook.
    type: path
    required: true
  inventory:
    description: Inventory sources passed to every run with C(-i).
    type: list
    elements: str
    default: []
  extra_vars:
    description: Extra variables for every run (e.g. migration_transfer_timeout); passed as data, never templated.
    type: dict
    default: {}
  per_source:
    description: Migrations at once out of one edge (1 to 64).
    type: int
    default: 3
  per_destination:
    description: Migrations at once into one edge (1 to 64).
    type: int
    default: 3
  parallel:
    description: Migrations at once in all (0 for no limit besides the per-edge ones; at most 256).
    type: int
    default: 0
  timeout:
    description: Seconds one migration may take before it is stopped (0 for no limit; at most 86400).
    type: int
    default: 3600
  log_dir:
    description: Directory for the runs' logs (created).
    type: path
    required: true
  reports_dir:
    description: Where migrate.yml writes its reports.
    type: path
    required: true
  ansible_playbook:
    description: The ansible-playbook program. Default the one beside the Python running this module, else PATH's.
    type: path
  project_dir:
    description: Working directory of the runs (where ansible.cfg is). Default the playbook's directory.
    type: path
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Starts no migration; each result has only service, source, destination, strategy and
      C(outcome=planned), and C(changed) is false.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_fleet_plan
    description: Builds and checks I(migrations).
  - module: edge_fleet_report
    description: Writes the fleet's report from I(results).
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Run the migrations
  edge_fleet_run:
    migrations: "{{ fleet_plan.migrations }}"
    playbook: "{{ playbook_dir }}/../migrate.yml"
    inventory: "{{ ansible_inventory_sources }}"
    per_source: 2
    per_destination: 2
    log_dir: reports/fleet/20261126T000000Z
    reports_dir: reports
  register: fleet_run
"""

RETURN = r"""
results:
  description:
    - One per migration, in the plan's order - service, source, destination, strategy, outcome
      (migrated, rolled_back, failed, timed_out, or planned in check mode), cause, rc,
      started_at, finished_at, duration_s, downtime_s, total_s, state_preserved, log, report.
  type: list
  elements: dict
  returned: always
  sample: [{service: openface, source: edge1, destination: edge2, strategy: delta, outcome: migrated, rc: 0,
    duration_s: 48.2, downtime_s: 2.7, log: logs/fleet/openface.log}]
started_at:
  description: When the first run started (epoch).
  type: float
  returned: always
  sample: 1764129600.123
finished_at:
  description: When the last run ended (epoch).
  type: float
  returned: always
  sample: 1764129661.321
max_parallel:
  description: The most runs that were going at the same time.
  type: int
  returned: always
  sample: 2
"""

import os
import sys
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_fleet_run import Job, RunError, inside, result, run_jobs, write_vars


def command(params, playbook_bin, migration, vars_path):
    """The child run's command line; its variables go in a file whose strings are all !unsafe."""
    extra = dict(params["extra_vars"], service=migration["service"], destination=migration["destination"])
    if migration.get("strategy"):
        extra["strategy"] = migration["strategy"]
    if migration.get("hooks"):
        extra["migration_hooks"] = migration["hooks"]
    write_vars(vars_path, extra)
    argv = [playbook_bin, params["playbook"]]
    for source in params["inventory"]:
        argv += ["-i", source]
    return argv + ["-e", "@" + vars_path]


def main():
    module = AnsibleModule(argument_spec=dict(
        migrations=dict(type="list", elements="dict", required=True),
        playbook=dict(type="path", required=True),
        inventory=dict(type="list", elements="str", default=[]),
        extra_vars=dict(type="dict", default={}),
        per_source=dict(type="int", default=3),
        per_destination=dict(type="int", default=3),
        parallel=dict(type="int", default=0),
        timeout=dict(type="int", default=3600),
        log_dir=dict(type="path", required=True),
        reports_dir=dict(type="path", required=True),
        ansible_playbook=dict(type="path"),
        project_dir=dict(type="path"),
    ), supports_check_mode=True)
    params = module.params
    if not (1 <= params["per_source"] <= 64 and 1 <= params["per_destination"] <= 64
            and 0 <= params["parallel"] <= 256 and 0 <= params["timeout"] <= 86400):
        module.fail_json(msg="per_source and per_destination must be at least 1 and at most 64, parallel 0 to 256 "
                             "and timeout 0 to 86400 seconds (got %d, %d, %d, %d)"
                             % (params["per_source"], params["per_destination"], params["parallel"], params["timeout"]))
    if not os.path.isfile(params["playbook"]):
        module.fail_json(msg="the migration playbook %s does not exist" % params["playbook"])
    playbook_bin = params["ansible_playbook"] or module.get_bin_path(
        "ansible-playbook", opt_dirs=[os.path.dirname(sys.executable)])
    if not playbook_bin:
        module.fail_json(msg="ansible-playbook not found beside %s or on PATH: name it with ansible_playbook"
                             % sys.executable)
    now = time.time()
    if module.check_mode:
        module.exit_json(changed=False, started_at=now, finished_at=now, max_parallel=0, results=[
            dict({k: m.get(k) for k in ("service", "source", "destination", "strategy")}, outcome="planned")
            for m in params["migrations"]])
    os.makedirs(params["log_dir"], mode=0o700, exist_ok=True)
    try:
        for migration in params["migrations"]:
            inside(params["log_dir"], migration.get("service"), ".log")
            inside(params["log_dir"], migration.get("destination"), "")
        jobs = [Job(m, command(params, playbook_bin, m, inside(params["log_dir"], m["service"], ".vars.yml")),
                    inside(params["log_dir"], m["service"], ".log")) for m in params["migrations"]]
    except RunError as exc:
        module.fail_json(msg="the fleet's migrations were not started: %s" % exc, cmd=None, rc=None, stderr="")
    going = [0, 0]

    def count(kind, _job):
        going[0] += 1 if kind == "start" else -1
        going[1] = max(going)

    run_jobs(jobs, params["per_source"], params["per_destination"], params["parallel"], params["timeout"],
             cwd=params["project_dir"] or os.path.dirname(params["playbook"]), on_event=count)
    results = [result(job, params["reports_dir"]) for job in jobs]
    module.exit_json(changed=any(r["outcome"] != "failed" for r in results), results=results,
                     started_at=min([j.started_at for j in jobs] or [now]),
                     finished_at=max([j.finished_at for j in jobs] or [now]), max_parallel=going[1])


if __name__ == "__main__":
    main()
