#!/usr/bin/python
"""Ansible module: the migrations of a fleet run, from a plan file or an evacuation, checked before anything moves."""

DOCUMENTATION = r"""
module: edge_fleet_plan
short_description: Build and check the migrations of a fleet run
description:
  - From a plan file (a YAML list of C(service), C(destination) and optionally C(strategy) and
    C(hooks); at most 1 MB and 1000 entries, without anchors or aliases), checks every entry
    against what the edges run and fails with every bad entry named (a service that is not a
    container name by Docker's rule, unknown service or one that runs nowhere or on several
    edges, unknown or silent destination, destination equal to the source, a container of
    that name already there, an edge that reports names that are not container names,
    duplicates, more memory than the destination has free).
  - Or, with I(evacuate), plans to move every running container of that edge (whose name
    matches I(match)) to the others, largest first, each to the edge with the lowest memory
    share plus CPU per CPU once the services this run already gave it are counted.
  - Runs on the controller and changes nothing.
options:
  plan_file:
    description: YAML plan file. Exactly one of I(plan_file) and I(evacuate).
    type: path
  evacuate:
    description: Edge to empty.
    type: str
  match:
    description: Only containers whose name matches this shell pattern are evacuated.
    type: str
    default: '*'
  exclude:
    description: Edges that must not receive services in an evacuation.
    type: list
    elements: str
    default: []
  edges:
    description: The inventory's edges, in order.
    type: list
    elements: str
    required: true
  facts:
    description: edge_fleet_facts results by edge name (missing or failed for edges that did not answer).
    type: dict
    required: true
  catalog:
    description: Names in the service catalog (for the error of a service that runs nowhere).
    type: list
    elements: str
    default: []
  strategy:
    description:
      - Strategy of entries that name none, and of every evacuated service. Without it, those
        migrations name no strategy and take migrate.yml's default (which decides on warm-up
        rounds by itself).
    type: str
  strategies:
    description: Strategies migrate.yml knows.
    type: list
    elements: str
    default: [delta, rsync, cold, seed-delta]
  cpu_request:
    description: CPU cores a service counts for at least when destinations are chosen.
    type: float
    default: 0.1
attributes:
  check_mode:
    support: full
    description: Changes nothing in any mode.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_fleet_facts
    description: What each edge runs, for I(facts).
  - module: edge_fleet_run
    description: Runs the planned migrations.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the evacuation of edge1
  edge_fleet_plan:
    evacuate: edge1
    edges: "{{ groups['edges'] }}"
    facts: "{{ dict(groups['edges'] | zip(groups['edges'] | map('extract', hostvars, 'fleet_facts'))) }}"
  register: fleet_plan
"""

RETURN = r"""
migrations:
  description:
    - One per service, in the order they should start - service, source, destination,
      strategy, hooks, memory_bytes, cpu_cores (and entry, the plan file's entry number).
  type: list
  elements: dict
  returned: success
  sample: [{service: openface, source: edge1, destination: edge2, strategy: delta, hooks: {}, memory_bytes:
    157286400, cpu_cores: 0.35}]
placements:
  description: For an evacuation, each candidate edge's free memory, load, assigned services and pressure afterwards.
  type: list
  elements: dict
  returned: success
  sample: [{edge: edge2, free_memory_bytes: 2906652672, load: 0.13, assigned: [openface], pressure: 0.22}]
mode:
  description: plan or evacuate.
  type: str
  returned: always
  sample: evacuate
summary:
  description: One line per migration - service, source, destination, strategy, memory.
  type: list
  elements: str
  returned: success
  sample: ['openface  edge1 -> edge2  delta  150 MiB']
errors:
  description: Every reason the plan was rejected.
  type: list
  elements: str
  returned: failure
  sample: ['entry 2: service notes runs nowhere']
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_fleet import Edges, PlanError, evacuation_plan, validate_plan

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core depends on PyYAML
    yaml = None


MAX_PLAN_BYTES = 1048576


class PlanLoader(yaml.SafeLoader if yaml else object):
    """YAML without anchors and aliases: a plan has no use for them, and a few hundred bytes of
    nested aliases expand to gigabytes."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            event = self.peek_event()
            raise yaml.YAMLError("YAML anchors and aliases are not allowed in a plan (line %d)"
                                 % (event.start_mark.line + 1))
        return super().compose_node(parent, index)


def load_plan(path):
    try:
        size = os.path.getsize(path)
        if size > MAX_PLAN_BYTES:
            raise PlanError(["the plan file %s has %d bytes, more than a plan needs (at most %d)"
                             % (path, size, MAX_PLAN_BYTES)])
        with open(path) as handle:
            return yaml.load(handle, Loader=PlanLoader)  # noqa: S506 - PlanLoader is a SafeLoader
    except OSError as exc:
        raise PlanError(["cannot read the plan file %s: %s" % (path, exc.strerror)]) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PlanError(["%s is not valid YAML: %s" % (path, str(exc)[:500])]) from exc


def main():
    module = AnsibleModule(argument_spec=dict(
        plan_file=dict(type="path"),
        evacuate=dict(type="str"),
        match=dict(type="str", default="*"),
        exclude=dict(type="list", elements="str", default=[]),
        edges=dict(type="list", elements="str", required=True),
        facts=dict(type="dict", required=True),
        catalog=dict(type="list", elements="str", default=[]),
        strategy=dict(type="str"),
        strategies=dict(type="list", elements="str", default=["delta", "rsync", "cold", "seed-delta"]),
        cpu_request=dict(type="float", default=0.1),
    ), mutually_exclusive=[("plan_file", "evacuate")], required_one_of=[("plan_file", "evacuate")],
        supports_check_mode=True)
    params = module.params
    mode = "evacuate" if params["evacuate"] else "plan"
    edges = Edges(params["edges"], params["facts"])
    placements = []
    try:
        if not 0 <= params["cpu_request"] <= 1024 or len(params["match"]) > 256:  # NaN fails the comparison
            raise PlanError(["cpu_request must be 0 to 1024 cores and match at most 256 characters (got %s, %d)"
                             % (params["cpu_request"], len(params["match"]))])
        if params["strategy"] is not None and params["strategy"] not in params["strategies"]:
            raise PlanError(["unknown strategy '%s': choose one of %s"
                             % (params["strategy"], ", ".join(params["strategies"]))])
        if mode == "evacuate":
            migrations, placements = evacuation_plan(params["evacuate"], edges, params["match"], params["strategy"],
                                                     params["cpu_request"], params["exclude"])
        else:
            migrations = validate_plan(load_plan(params["plan_file"]), edges, params["catalog"],
                                       params["strategies"], params["strategy"])
    except PlanError as exc:
        module.fail_json(msg=str(exc), errors=exc.errors, mode=mode)
    summary = ["%s: %s -> %s, %s, %.1f MB, %.2f CPU"
               % (m["service"], m["source"], m["destination"], m["strategy"] or "default strategy",
                  m["memory_bytes"] / 1e6, m["cpu_cores"])
               for m in migrations]
    module.exit_json(changed=False, mode=mode, migrations=migrations, placements=placements, summary=summary)


if __name__ == "__main__":
    main()
