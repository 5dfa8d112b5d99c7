"""A fleet run against edges and plans that may be hostile: a templated container name runs
nothing on the controller, names cannot leave the fleet's directory, plans are bounded."""

import os
import subprocess
import time

import pytest
from ansible.module_utils.edge_fleet import Edges, PlanError, evacuation_plan, validate_plan
from ansible.module_utils.edge_fleet_run import RunError, inside, unsafe_yaml, write_vars
from module_runner import ROOT

GB = 10 ** 9
PLAYBOOK = os.path.join(ROOT, ".venv", "bin", "ansible-playbook")


def answer(*names):
    return {"containers": [{"name": n, "memory_bytes": 10 ** 6, "cpu_cores": 0.01} for n in names],
            "names": list(names), "memory_bytes": 8 * GB, "free_memory_bytes": 4 * GB, "cpus": 2.0,
            "cpu_cores_used": 0.0}


def test_an_edge_reporting_a_templated_name_is_refused_and_its_name_is_never_planned(tmp_path):
    canary = tmp_path / "canary"
    hostile = "x{{ lookup('pipe', 'touch %s') }}" % canary
    edges = Edges(["edge1", "edge2"], {"edge1": answer("web", hostile), "edge2": answer()})
    with pytest.raises(PlanError) as refused:
        evacuation_plan("edge1", edges)
    assert "edge1 reported container names that are not Docker names" in str(refused.value)
    with pytest.raises(PlanError) as refused:
        validate_plan([{"service": hostile, "destination": "edge2"}], edges)
    assert "service must be a container name" in str(refused.value)
    # Into an edge that reports such names nothing is planned either.
    with pytest.raises(PlanError) as refused:
        validate_plan([{"service": "web", "destination": "edge1"}],
                      Edges(["edge1", "edge2"], {"edge1": answer(hostile), "edge2": answer("web")}))
    assert "may be compromised" in str(refused.value)
    assert not canary.exists()


def test_figures_an_edge_reports_are_numbers():
    facts = answer("web")
    facts["free_memory_bytes"] = float("nan")
    facts["containers"][0]["memory_bytes"] = "1e999"
    edges = Edges(["edge1"], {"edge1": facts})
    assert edges.facts["edge1"]["free_memory_bytes"] == 0 and edges.container("edge1", "web")["memory_bytes"] == 0


def test_child_runs_take_their_variables_as_data_not_templates(tmp_path):
    """A real ansible-playbook reads the vars file: the lookup in the name stays text."""
    canary = tmp_path / "canary"
    hostile = "x{{ lookup('pipe', 'touch %s') }}" % canary
    playbook = tmp_path / "show.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug:\n"
                        "        msg: 'service is <{{ service }}> {{ hooks.before_freeze }}'\n")
    vars_path = write_vars(str(tmp_path / "x.vars.yml"), {"service": hostile, "hooks": {"before_freeze": hostile},
                                                          "n": 5, "ok": True, "list": [hostile, None]})
    assert oct(os.stat(vars_path).st_mode & 0o777) == "0o600"
    env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run([PLAYBOOK, str(playbook), "-e", "@" + vars_path], capture_output=True, text=True,
                          cwd=str(tmp_path), env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "service is <x{{ lookup('pipe', 'touch %s') }}>" % canary in proc.stdout
    assert not canary.exists()


def test_vars_files_are_yaml_of_plain_variables():
    assert unsafe_yaml({"a": ["b", 1, 2.5, None, False]}) == '{"a": [!unsafe "b", 1, 2.5, null, false]}'
    assert unsafe_yaml({"s": "line\nnext \u00e9"}) == '{"s": !unsafe "line\\nnext \\u00e9"}'
    for bad in ({"not a var": 1}, {"x": object()}):
        with pytest.raises(RunError):
            unsafe_yaml(bad)


def test_log_paths_stay_in_the_fleet_directory(tmp_path):
    assert inside(str(tmp_path), "web-1", ".log") == str(tmp_path / "web-1.log")
    for name in ("../../x", "/etc/cron.d/x", "..", "a/b", "x{{ 1 }}", ".hidden"):
        with pytest.raises(RunError):
            inside(str(tmp_path), name, ".log")


def test_the_run_module_starts_nothing_for_a_name_that_is_no_container_name(run_module, tmp_path):
    playbook = tmp_path / "migrate.yml"
    playbook.write_text("---\n")
    kind, result = run_module("edge_fleet_run", {
        "migrations": [{"service": "web", "source": "edge1", "destination": "edge2"},
                       {"service": "../../x", "source": "edge1", "destination": "edge2"}],
        "playbook": str(playbook), "ansible_playbook": "/bin/false", "log_dir": str(tmp_path / "logs"),
        "reports_dir": str(tmp_path)})
    assert kind == "fail" and "'../../x' is not a container name" in result["msg"]
    assert os.listdir(tmp_path / "logs") == []


def test_a_plan_with_yaml_aliases_is_refused_at_once_with_a_short_message(run_module, tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        "%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((chr(98 + i),) * 2 + (chr(97 + i),) * 9)
        for i in range(8))
    plan = tmp_path / "plan.yml"
    plan.write_text(bomb)
    args = {"plan_file": str(plan), "edges": ["edge1"], "facts": {"edge1": answer("web")}}
    started = time.monotonic()
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "fail" and "anchors and aliases are not allowed" in result["msg"]
    assert len(result["msg"]) < 1000 and time.monotonic() - started < 5
    plan.write_text("- service: web\n  destination: edge1\n" * 1 + "#" * (1024 * 1024))
    kind, result = run_module("edge_fleet_plan", args)
    assert kind == "fail" and "more than a plan needs" in result["msg"]


def test_errors_about_huge_or_many_entries_are_bounded():
    edges = Edges(["edge1"], {"edge1": answer()})
    nested = ["x" * 10000] * 50
    for _ in range(20):
        nested = [nested] * 50
    with pytest.raises(PlanError) as refused:
        validate_plan([nested] + [{"service": "s%02d" % i, "destination": "edge1"} for i in range(60)], edges)
    assert len(str(refused.value)) < 10000 and "and 41 more" in str(refused.value)
    with pytest.raises(PlanError) as refused:
        validate_plan([{"service": "web", "destination": "edge1"}] * 1001, edges)
    assert "at most 1000 entries" in str(refused.value)


@pytest.mark.parametrize("module, args, message", [
    ("edge_estimate", {"interval": 1e9}, "interval must be between 0.5 and 300.0, got 1000000000.0"),
    ("edge_estimate", {"interval": float("nan")}, "interval must be between 0.5 and 300.0, got nan"),
    ("edge_estimate", {"probe_mb": 10000000}, "probe_mb must be between 1 and 1024, got 10000000"),
    ("edge_estimate", {"rtt_samples": 0}, "rtt_samples must be between 1 and 100"),
    ("edge_fleet_facts", {"sample_seconds": float("nan")}, "sample_seconds must be 0 to 60"),
    ("edge_fleet_facts", {"cpus": float("inf")}, "cpus more than 0 and at most 4096"),
    ("edge_fleet_plan", {"evacuate": "edge1", "edges": ["edge1"], "facts": {}, "cpu_request": float("nan")},
     "cpu_request must be 0 to 1024"),
    ("edge_fleet_run", {"migrations": [], "playbook": "/x", "log_dir": "/x", "reports_dir": "/x", "parallel": 10 ** 6},
     "parallel 0 to 256"),
])
def test_inputs_out_of_bounds_are_refused_before_anything_runs(run_module, module, args, message):
    base = {"edge_estimate": {"name": "web", "workdir": "/nonexistent", "dest_host": "192.0.2.1",
                              "dest_dir": "/nonexistent"}}.get(module, {})
    kind, result = run_module(module, dict(base, **args))
    assert kind == "fail" and message in result["msg"]


def test_experiment_inputs_are_bounded():
    from experiment.run import parse_args
    for argv in (["--interval", "nan"], ["--probe-mb", "10000000"], ["--repeats", "1000000"], ["--id", "../../x"],
                 ["--prefix", "../"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert parse_args(["--interval", "2", "--id", "run-1"]).id == "run-1"
