"""Fleet runs: the scheduler keeps the per-edge limits and lets the others go on when one fails;
each run's report is found; the fleet report and the edges' cgroup figures are read right."""

import json
import os
import sys
import time

from ansible.module_utils.edge_fleet_host import cgroup_paths, cpu_usage_ns, meminfo, memory_bytes, sample_cpu
from ansible.module_utils.edge_fleet_report import build, markdown, summary, write
from ansible.module_utils.edge_fleet_run import Job, failure_message, find_report, result, run_jobs
from ansible.parsing.yaml.loader import AnsibleLoader


def job(tmp_path, service, source, destination, code="import time; time.sleep(0.3)"):
    migration = {"service": service, "source": source, "destination": destination, "strategy": "delta"}
    return Job(migration, [sys.executable, "-c", code], str(tmp_path / ("%s.log" % service)))


def run_counting(jobs, **limits):
    """Run the jobs; the most that ran at once out of each source, into each destination, and in all."""
    now = {"out": {}, "in": {}, "all": 0}
    peak = {"out": {}, "in": {}, "all": 0}

    def event(kind, job):
        step = 1 if kind == "start" else -1
        for side, host in (("out", job.migration["source"]), ("in", job.migration["destination"])):
            now[side][host] = now[side].get(host, 0) + step
            peak[side][host] = max(peak[side].get(host, 0), now[side][host])
        now["all"] += step
        peak["all"] = max(peak["all"], now["all"])

    run_jobs(jobs, on_event=event, interval=0.05, **limits)
    return peak


def test_limits_per_source_and_per_destination_hold(tmp_path):
    jobs = [job(tmp_path, "s%d" % i, "edge1", "edge%d" % (2 + i % 2)) for i in range(6)]
    peak = run_counting(jobs, per_source=3, per_destination=1)
    assert peak["out"] == {"edge1": 2} and peak["in"] == {"edge2": 1, "edge3": 1}
    peak = run_counting([job(tmp_path, "t%d" % i, "edge1", "edge%d" % (2 + i % 2)) for i in range(6)],
                        per_source=3, per_destination=3)
    assert peak["out"] == {"edge1": 3} and peak["all"] == 3
    peak = run_counting([job(tmp_path, "u%d" % i, "edge%d" % (1 + i % 2), "edge3") for i in range(4)],
                        per_source=4, per_destination=4, parallel=2)
    assert peak["all"] == 2
    assert all(j.rc == 0 and j.finished_at >= j.started_at for j in jobs)


def test_a_blocked_job_does_not_hold_back_the_others(tmp_path):
    jobs = [job(tmp_path, "a", "edge1", "edge2"), job(tmp_path, "b", "edge1", "edge2"),
            job(tmp_path, "c", "edge3", "edge1")]
    run_counting(jobs, per_source=2, per_destination=1)
    assert jobs[2].started_at < jobs[1].started_at  # c did not wait behind b, blocked by edge2's limit


def test_one_failure_does_not_stop_the_others_and_a_slow_run_is_stopped(tmp_path):
    jobs = [job(tmp_path, "bad", "edge1", "edge2", "import sys; print('boom'); sys.exit(2)"),
            job(tmp_path, "good", "edge1", "edge3"),
            job(tmp_path, "slow", "edge1", "edge2", "import time; time.sleep(60)")]
    started = time.time()
    # The limit leaves a loaded machine time to start Python twice (the CI's lab tests run alongside).
    run_jobs(jobs, per_source=3, per_destination=2, timeout=10, interval=0.05)
    assert [j.rc for j in jobs[:2]] == [2, 0]
    assert jobs[2].timed_out and jobs[2].rc != 0 and time.time() - started < 30
    with open(jobs[0].log_path) as handle:
        log = handle.read()
    assert log.startswith("$ %s -c" % sys.executable) and "boom" in log


def write_report(directory, stamp, service, outcome, cause=""):
    path = os.path.join(directory, "%s-%s.json" % (stamp, service))
    with open(path, "w") as handle:
        json.dump({"service": service, "outcome": outcome, "cause": cause, "downtime_s": 0.5, "total_s": 9.0,
                   "state_preserved": outcome == "migrated", "migration_id": "%s-%s" % (service, stamp)}, handle)
    return path


def test_the_newest_report_of_the_service_since_the_start_is_found(tmp_path):
    old = write_report(tmp_path, "20260101T000000Z", "fleet-a", "failed")
    os.utime(old, (time.time() - 600, time.time() - 600))
    since = time.time()
    write_report(tmp_path, "20260101T000100Z", "a", "migrated")  # ends in -a.json too
    new = write_report(tmp_path, "20260101T000200Z", "fleet-a", "rolled_back", "xdelta3 could not rebuild")
    path, report = find_report(str(tmp_path), "fleet-a", since)
    assert path == new and report["outcome"] == "rolled_back"
    assert find_report(str(tmp_path), "nosuch", since) == (None, None)
    assert find_report(str(tmp_path / "missing"), "a", since) == (None, None)


def test_result_takes_the_reports_outcome_or_the_logs_message(tmp_path):
    done = job(tmp_path, "fleet-b", "edge1", "edge2")
    run_jobs([done], per_source=1, per_destination=1, interval=0.05)
    write_report(tmp_path, "20260101T000300Z", "fleet-b", "rolled_back", "restore failed")
    entry = result(done, str(tmp_path))
    assert entry["outcome"] == "rolled_back" and entry["cause"] == "restore failed" and entry["report"]
    lost = job(tmp_path, "fleet-c", "edge1", "edge2",
               "print('fatal: [localhost]: FAILED! => changed=false'); print('  msg: fleet-c is already being'); "
               "print('    migrated (migration fleet-c-1)'); print('PLAY RECAP'); raise SystemExit(2)")
    run_jobs([lost], per_source=1, per_destination=1, interval=0.05)
    entry = result(lost, str(tmp_path))
    assert entry["outcome"] == "failed" and entry["report"] is None and entry["rc"] == 2
    assert entry["cause"] == "fleet-c is already being migrated (migration fleet-c-1)"


def test_failure_message_without_msg_takes_the_last_fatal_line():
    message = "ERROR! the playbook: x could not be found"
    assert failure_message("ok\n%s\n" % message) == message
    assert failure_message("all fine\n") == ""


def fleet_results():
    base = 1000.0
    return [
        {"service": "a", "source": "edge1", "destination": "edge2", "strategy": "delta", "outcome": "migrated",
         "cause": "", "started_at": base, "finished_at": base + 20, "duration_s": 20.0, "downtime_s": 1.25,
         "report": "/r/x-a.json"},
        {"service": "b", "source": "edge1", "destination": "edge3", "strategy": "delta", "outcome": "rolled_back",
         "cause": "Restore | xdelta3 could not rebuild pages-1.img", "started_at": base + 1, "finished_at": base + 25,
         "duration_s": 24.0, "downtime_s": 2.0, "report": "/r/x-b.json"},
    ]


def test_fleet_report_says_what_became_of_each_and_how_much_overlapped(tmp_path):
    report = build("20260101T000000Z", {"mode": "evacuate", "evacuate": "edge1", "per_source": 3,
                                        "per_destination": 2, "parallel": 0}, [], fleet_results(),
                   [{"host": "edge2", "free_memory_bytes": 2e9, "load": 0.1, "assigned": ["a"], "pressure_after": 0.3}],
                   max_parallel=2)
    assert report["wall_s"] == 25.0 and report["sum_of_migrations_s"] == 44.0 and report["overlap"] == 1.76
    assert report["counts"] == {"migrated": 1, "rolled_back": 1}
    lines = summary(report)
    assert lines[0] == ("fleet 20260101T000000Z, evacuation of edge1: 2 migrations, 1 migrated, 1 rolled back; "
                        "25.0 s in all, 44.0 s of migrations (x1.76 at once, at most 2 together)")
    assert lines[1].split() == ["service", "source", "destination", "strategy", "outcome", "start", "+s", "took", "s",
                                "downtime", "s", "cause"]
    assert lines[3].split()[:8] == ["b", "edge1", "edge3", "delta", "rolled_back", "1.0", "24.0", "2.00"]
    text = markdown(report)
    assert "| edge2 | 2000.0 | 0.100 | a | 0.3000 |" in text and "| x-b.json |" in text
    json_path, md_path = write(report, str(tmp_path / "fleet"))
    with open(json_path) as handle:
        assert json.load(handle)["results"][1]["outcome"] == "rolled_back"
    assert md_path.endswith("20260101T000000Z.md") and os.path.exists(md_path)


def test_report_module_rejects_results_without_outcome(run_module, tmp_path):
    args = {"fleet_id": "x", "request": {"mode": "plan"}, "migrations": [], "results": [{"service": "a"}],
            "reports_dir": str(tmp_path)}
    kind, result_ = run_module("edge_fleet_report", args)
    assert kind == "fail" and "result 1 lacks source, destination, outcome" in result_["msg"]
    kind, result_ = run_module("edge_fleet_report", dict(args, results=fleet_results()))
    assert kind == "exit" and result_["changed"] and os.path.exists(result_["markdown_path"])


def test_run_module_checks_its_limits_and_runs_nothing_in_check_mode(run_module, tmp_path):
    playbook = tmp_path / "migrate.yml"
    playbook.write_text("---\n")
    args = {"migrations": [{"service": "a", "source": "edge1", "destination": "edge2", "strategy": "delta"}],
            "playbook": str(playbook), "log_dir": str(tmp_path / "logs"), "reports_dir": str(tmp_path)}
    kind, result_ = run_module("edge_fleet_run", dict(args, per_source=0))
    assert kind == "fail" and "at least 1" in result_["msg"]
    kind, result_ = run_module("edge_fleet_run", dict(args, playbook=str(tmp_path / "none.yml")))
    assert kind == "fail" and "does not exist" in result_["msg"]
    kind, result_ = run_module("edge_fleet_run", dict(args, _ansible_check_mode=True))
    assert kind == "exit" and result_["results"][0]["outcome"] == "planned" and not os.path.exists(args["log_dir"])


def test_run_module_passes_each_migration_to_its_own_run(run_module, tmp_path):
    """ansible-playbook is replaced by a program that prints its arguments, to see the command lines."""
    program = tmp_path / "show-args"
    program.write_text("#!%s\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n" % sys.executable)
    program.chmod(0o755)
    playbook = tmp_path / "migrate.yml"
    playbook.write_text("---\n")
    migrations = [{"service": "aa", "source": "edge1", "destination": "edge2", "strategy": "rsync",
                   "hooks": {"before_freeze": "drain a"}},
                  {"service": "bb", "source": "edge1", "destination": "edge3", "strategy": "delta", "hooks": {}}]
    kind, result_ = run_module("edge_fleet_run", {
        "migrations": migrations, "playbook": str(playbook), "inventory": ["/inv/hosts.yml"],
        "extra_vars": {"migration_transfer_timeout": 5}, "ansible_playbook": str(program),
        "log_dir": str(tmp_path / "logs"), "reports_dir": str(tmp_path)})
    assert kind == "exit" and [r["outcome"] for r in result_["results"]] == ["failed", "failed"]  # no report
    with open(result_["results"][0]["log"]) as handle:
        argv = json.loads(handle.read().splitlines()[1])
    assert argv[:3] == [str(playbook), "-i", "/inv/hosts.yml"] and argv[3] == "-e"
    assert argv[4] == "@" + str(tmp_path / "logs" / "aa.vars.yml")
    with open(argv[4][1:]) as handle:
        assert AnsibleLoader(handle).get_single_data() == {
            "service": "aa", "destination": "edge2", "strategy": "rsync", "migration_transfer_timeout": 5,
            "migration_hooks": {"before_freeze": "drain a"}}
    assert result_["max_parallel"] >= 1


def test_cgroup_v1_and_v2_figures(tmp_path):
    proc = tmp_path / "proc"
    (proc / "10").mkdir(parents=True)
    (proc / "10" / "cgroup").write_text("4:memory:/edge1/abc\n2:cpu,cpuacct:/edge1/abc\n0::/edge1/abc\n")
    root = tmp_path / "cgroup"
    (root / "memory" / "edge1" / "abc").mkdir(parents=True)
    (root / "memory" / "edge1" / "abc" / "memory.usage_in_bytes").write_text("5000\n")
    (root / "memory" / "edge1" / "abc" / "memory.stat").write_text("cache 10\ntotal_inactive_file 1000\n")
    (root / "cpu,cpuacct" / "edge1" / "abc").mkdir(parents=True)
    (root / "cpu,cpuacct" / "edge1" / "abc" / "cpuacct.usage").write_text("2000000000\n")
    paths = cgroup_paths(10, str(proc))
    assert paths["memory"] == "/edge1/abc" and paths["cpuacct"] == "/edge1/abc"
    assert memory_bytes(paths, str(root)) == 4000 and cpu_usage_ns(paths, str(root)) == 2 * 10 ** 9
    v2 = tmp_path / "v2"
    (v2 / "edge1" / "abc").mkdir(parents=True)
    (v2 / "edge1" / "abc" / "cgroup.controllers").write_text("cpu memory\n")
    (v2 / "edge1" / "abc" / "memory.current").write_text("9000\n")
    (v2 / "edge1" / "abc" / "memory.stat").write_text("anon 8000\ninactive_file 500\n")
    (v2 / "edge1" / "abc" / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\n")
    assert memory_bytes({"": "/edge1/abc"}, str(v2)) == 8500 and cpu_usage_ns({"": "/edge1/abc"}, str(v2)) == 1500000
    assert memory_bytes({}, str(v2)) is None and cgroup_paths(99, str(proc)) == {}
    # The cgroup used 0.5 s of CPU over a 2 s sample: a quarter of a core.
    readings = iter(["2000000000\n", "2500000000\n"])
    clock = iter([0.0, 2.0])

    def next_reading(_seconds):
        (root / "cpu,cpuacct" / "edge1" / "abc" / "cpuacct.usage").write_text(next(readings))
    next_reading(0)
    assert sample_cpu([10], 2.0, str(root), str(proc), clock=lambda: next(clock), sleep=next_reading) == {10: 0.25}


def test_meminfo_of_this_host():
    info = meminfo()
    assert info["total"] > 0 and 0 < info["available"] <= info["total"]



def test_bench_reads_the_plan_lines_fleet_yml_prints():
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from bench.fleet_bench import parse_plan, ratio
    output = ("TASK [Plan | what will move where] ***\nok: [localhost] => \n    msg:\n"
              "    - 'fleet-bench-of1: edge1 -> edge3, delta, 75.2 MB, 0.01 CPU'\n"
              "    - 'si-2: edge1 -> edge2, rsync, 1.0 MB, 0.00 CPU'\n"
              "    - 'fleet-try-a  edge1   edge3        delta     migrated  0.0       70.8    5.73        '\n")
    assert parse_plan(output) == {"fleet-bench-of1": "edge3", "si-2": "edge2"}
    assert ratio(30.0, 120.0) == 0.25 and ratio(1.0, 0) is None
