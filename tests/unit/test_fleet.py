"""Fleet plans: every bad entry of a plan file is named before anything moves; an evacuation
chooses destinations by free memory and load, counting what the run already gave each edge."""

import pytest
import yaml
from ansible.module_utils.edge_fleet import Edges, PlanError, evacuation_plan, validate_plan
from ansible.module_utils.edge_fleet_host import edge_capacity

MB = 10 ** 6
GB = 10 ** 9
STRATEGIES = ["delta", "rsync", "cold", "seed-delta"]


def edge(containers=(), free=None, capacity=8 * GB, cpus=2.0, cpu_used=0.0, stopped=()):
    """An edge_fleet_facts answer: containers as (name, memory MB, cores); 4 GB free less theirs by default."""
    listed = [{"name": n, "id": n * 4, "image": "img", "memory_bytes": int(mb * MB), "cpu_cores": cores}
              for n, mb, cores in containers]
    return {"containers": listed, "names": sorted([c["name"] for c in listed] + list(stopped)),
            "memory_bytes": capacity,
            "free_memory_bytes": 4 * GB - sum(c["memory_bytes"] for c in listed) if free is None else free,
            "cpus": cpus,
            "cpu_cores_used": cpu_used + sum(c["cpu_cores"] for c in listed), "load": 0.0}


@pytest.fixture
def lab():
    return Edges(["edge1", "edge2", "edge3"], {
        "edge1": edge([("openface", 190, 0.05), ("yolo", 160, 0.05), ("simple", 1, 0.0)]),
        "edge2": edge([("cache", 50, 0.0)], stopped=["old"]),
        "edge3": edge(),
    })


def errors_of(entries, edges, **kw):
    with pytest.raises(PlanError) as raised:
        validate_plan(entries, edges, catalog=["openface", "yolo", "simple", "game"], strategies=STRATEGIES, **kw)
    return raised.value.errors


def test_a_good_plan_gives_one_migration_per_entry(lab):
    migrations = validate_plan([{"service": "openface", "destination": "edge2"},
                                {"service": "yolo", "destination": "edge3", "strategy": "rsync"},
                                {"service": "cache", "destination": "edge1",
                                 "hooks": {"before_freeze": "drain cache"}}],
                               lab, strategies=STRATEGIES)
    assert [(m["service"], m["source"], m["destination"], m["strategy"]) for m in migrations] == [
        ("openface", "edge1", "edge2", None), ("yolo", "edge1", "edge3", "rsync"),
        ("cache", "edge2", "edge1", None)]  # no strategy named: migrate.yml's default decides
    assert migrations[0]["memory_bytes"] == 190 * MB and migrations[2]["hooks"] == {"before_freeze": "drain cache"}


def test_one_unknown_service_rejects_the_whole_plan_and_names_the_entry(lab):
    errors = errors_of([{"service": "openface", "destination": "edge2"},
                        {"service": "nosuch", "destination": "edge3"}], lab)
    assert errors == ["entry 2 (service 'nosuch'): unknown service: it is not in the catalog and no edge runs "
                      "a container of that name"]


@pytest.mark.parametrize("entry,message", [
    ({"service": "game", "destination": "edge2"}, "entry 1 (service 'game'): is in the catalog but no edge runs it"),
    ({"service": "openface", "destination": "edge9"},
     "entry 1 (service 'openface'): destination 'edge9' is not in the inventory's edges group (edge1, edge2, edge3)"),
    ({"service": "openface", "destination": "edge1"},
     "entry 1 (service 'openface'): destination edge1 is the source: 'openface' already runs there"),
    ({"service": "openface", "destination": "edge2", "strategy": "detla"},
     "entry 1 (service 'openface'): unknown strategy 'detla'"),
    ({"service": "openface"}, "entry 1 (service 'openface'): no destination"),
    ({"destination": "edge2"}, "entry 1: no service"),
    ({"service": "openface", "destination": "edge2", "desitnation": "x"},
     "entry 1 (service 'openface'): unknown key desitnation"),
    ({"service": "openface", "destination": "edge2", "hooks": {"before_frezee": "x"}},
     "entry 1 (service 'openface'): hooks must map"),
    ("openface edge2", "entry 1: expected a mapping"),
    ({"service": "old", "destination": "edge3"}, "entry 1 (service 'old'): unknown service"),
])
def test_bad_entries_are_named(lab, entry, message):
    errors = errors_of([entry], lab)
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_every_bad_entry_is_reported_at_once(lab):
    errors = errors_of([{"service": "openface", "destination": "edge2"},
                        {"service": "nosuch", "destination": "edge2"},
                        {"service": "openface", "destination": "edge3"},
                        {"service": "yolo", "destination": "edge1"}], lab)
    assert [e.split(":")[0] for e in errors] == ["entry 2 (service 'nosuch')", "entry 3 (service 'openface')",
                                                 "entry 4 (service 'yolo')"]
    assert "duplicate of entry 1" in errors[1]
    message = str(PlanError(errors))
    assert message.startswith("the plan is rejected, nothing was moved (3 errors)")


def test_a_name_taken_on_the_destination_is_rejected(lab):
    lab.facts["edge2"]["names"].append("simple")  # a stopped container of that name
    errors = errors_of([{"service": "simple", "destination": "edge2"}], lab)
    assert errors == ["entry 1 (service 'simple'): a container named 'simple' already exists on edge2; remove it first"]


def test_a_service_on_two_edges_is_ambiguous():
    edges = Edges(["a", "b"], {"a": edge([("web", 10, 0)]), "b": edge([("web", 10, 0)])})
    assert "runs on several edges (a, b)" in errors_of([{"service": "web", "destination": "b"}], edges)[0]


def test_a_silent_destination_and_a_silent_source_are_named(lab):
    edges = Edges(["edge1", "edge2", "edge3"], {"edge1": lab.facts["edge1"],
                                                "edge2": {"failed": True, "msg": "cannot reach the Docker Engine"}})
    errors = errors_of([{"service": "openface", "destination": "edge2"},
                        {"service": "cache", "destination": "edge1"}], edges)
    assert errors[0] == "entry 1 (service 'openface'): destination edge2 did not answer: cannot reach the Docker Engine"
    assert "no edge runs a container of that name (no answer from edge2, edge3)" in errors[1]


def test_more_memory_than_the_destination_has_free_is_rejected(lab):
    lab.facts["edge3"]["free_memory_bytes"] = 300 * MB
    errors = errors_of([{"service": "openface", "destination": "edge3"}, {"service": "yolo", "destination": "edge3"}],
                       lab)
    assert errors == ["destination edge3 has 300.0 MB free but entries 1, 2 need 350.0 MB"]


@pytest.mark.parametrize("plan", [[], {"service": "x"}, None, "edge1"])
def test_a_plan_that_is_not_a_list_is_rejected(lab, plan):
    assert "non-empty YAML list" in errors_of(plan, lab)[0]


def test_evacuation_moves_everything_largest_first_and_spreads_it(lab):
    migrations, placements = evacuation_plan("edge1", lab)
    assert [m["service"] for m in migrations] == ["openface", "yolo", "simple"]
    where = {m["service"]: m["destination"] for m in migrations}
    # edge2 already holds 50 MB and a container: openface goes to the emptier edge3, yolo then to edge2.
    assert where["openface"] == "edge3" and where["yolo"] == "edge2"
    assert {p["host"] for p in placements} == {"edge2", "edge3"}
    assert all(m["source"] == "edge1" for m in migrations)


def test_evacuation_counts_what_the_run_already_assigned():
    services = [("s%d" % i, 100, 0.0) for i in range(6)]
    edges = Edges(["edge1", "edge2", "edge3"], {"edge1": edge(services), "edge2": edge(), "edge3": edge()})
    migrations, _ = evacuation_plan("edge1", edges)
    counts = [sum(1 for m in migrations if m["destination"] == host) for host in ("edge2", "edge3")]
    assert counts == [3, 3]


def test_evacuation_prefers_the_less_loaded_edge():
    services = [("s%d" % i, 10, 0.05) for i in range(4)]
    edges = Edges(["edge1", "edge2", "edge3"], {"edge1": edge(services), "edge2": edge(cpu_used=1.6),
                                                "edge3": edge(cpu_used=0.2)})
    migrations, _ = evacuation_plan("edge1", edges)
    assert [m["destination"] for m in migrations] == ["edge3"] * 4  # edge2 stays busier even after four


def test_evacuation_prefers_the_edge_with_more_free_memory():
    edges = Edges(["edge1", "edge2", "edge3"], {"edge1": edge([("big", 500, 0.0)]), "edge2": edge(free=1 * GB),
                                                "edge3": edge(free=6 * GB)})
    assert evacuation_plan("edge1", edges)[0][0]["destination"] == "edge3"


def test_evacuation_sends_nothing_where_it_does_not_fit():
    edges = Edges(["edge1", "edge2", "edge3"], {"edge1": edge([("aa", 600, 0), ("bb", 600, 0)]),
                                                "edge2": edge(free=700 * MB), "edge3": edge(free=1000 * MB)})
    migrations, _ = evacuation_plan("edge1", edges)
    assert sorted(m["destination"] for m in migrations) == ["edge2", "edge3"]
    edges.facts["edge2"]["free_memory_bytes"] = 100 * MB
    with pytest.raises(PlanError) as raised:
        evacuation_plan("edge1", edges)
    assert raised.value.errors == ["no edge can take 'bb' (600.0 MB): edge2 has 100.0 MB free after this run's other "
                                   "moves; edge3 has 400.0 MB free after this run's other moves"]


def test_evacuation_match_and_exclude(lab):
    migrations, placements = evacuation_plan("edge1", lab, match="[oy]*", exclude=["edge3"])
    assert [(m["service"], m["destination"]) for m in migrations] == [("openface", "edge2"), ("yolo", "edge2")]
    assert [p["host"] for p in placements] == ["edge2"]


@pytest.mark.parametrize("host,facts,message", [
    ("edge9", None, "'edge9' is not in the inventory's edges group"),
    ("edge1", {"edge1": {"failed": True, "msg": "boom"}}, "edge1 did not answer: boom"),
    ("edge1", {"edge1": edge([("aa", 1, 0)])},
     "no other edge answered to take its services (no answer from edge2, edge3)"),
])
def test_evacuation_errors(lab, host, facts, message):
    edges = lab if facts is None else Edges(["edge1", "edge2", "edge3"], facts)
    with pytest.raises(PlanError) as raised:
        evacuation_plan(host, edges)
    assert len(raised.value.errors) == 1 and raised.value.errors[0].startswith(message)


def test_evacuation_rejects_an_unknown_edge_to_exclude(lab):
    with pytest.raises(PlanError) as raised:
        evacuation_plan("edge1", lab, exclude=["edge4"])
    assert raised.value.errors == ["cannot exclude edge4: not in the inventory's edges group (edge1, edge2, edge3)"]


def test_evacuating_an_empty_edge_plans_nothing(lab):
    assert evacuation_plan("edge3", lab)[0] == []


def test_capacity_is_the_override_or_the_host_and_free_never_exceeds_available():
    containers = [{"memory_bytes": 300 * MB, "cpu_cores": 0.5}, {"memory_bytes": 200 * MB, "cpu_cores": 0.3}]
    facts = edge_capacity(containers, {"total": 16 * GB, "available": 10 * GB}, 4, memory_override=2 * GB)
    assert facts["free_memory_bytes"] == 1500 * MB and facts["load"] == 0.2 and facts["cpus"] == 4.0
    facts = edge_capacity(containers, {"total": 16 * GB, "available": 3 * GB}, 4)
    assert facts["free_memory_bytes"] == 3 * GB and facts["memory_bytes"] == 16 * GB


def test_plan_module_reads_the_file_and_fails_with_every_error(run_module, tmp_path, lab):
    plan = tmp_path / "plan.yml"
    plan.write_text(yaml.safe_dump([{"service": "openface", "destination": "edge2"},
                                    {"service": "nosuch", "destination": "edge3"}]))
    args = {"plan_file": str(plan), "edges": lab.edges, "facts": lab.facts, "catalog": ["openface"]}
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "fail" and "entry 2 (service 'nosuch'): unknown service" in result["msg"]
    assert result["msg"].startswith("the plan is rejected, nothing was moved")
    plan.write_text("- service: openface\n  destination: edge2\n")
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "exit" and result["migrations"][0]["destination"] == "edge2" and not result["changed"]
    assert result["summary"] == ["openface: edge1 -> edge2, default strategy, 190.0 MB, 0.05 CPU"]
    plan.write_text("- service: [unclosed\n")
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "fail" and "is not valid YAML" in result["msg"]
    kind, result = run_module("edge_fleet_plan", dict(args, plan_file=str(tmp_path / "none.yml")))
    assert kind == "fail" and "cannot read the plan file" in result["msg"]


def test_plan_module_evacuates_and_rejects_an_unknown_strategy(run_module, lab):
    args = {"evacuate": "edge1", "edges": lab.edges, "facts": lab.facts}
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "exit" and result["mode"] == "evacuate" and len(result["migrations"]) == 3
    kind, result = run_module("edge_fleet_plan", dict(args, strategy="detla"))
    assert kind == "fail" and "unknown strategy 'detla'" in result["msg"]
