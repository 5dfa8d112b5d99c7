#!/usr/bin/env python3
"""Fleet benchmark: evacuating an edge with fleet.yml against the same migrations one
after another, measured in the same run, in the lab.

    .venv/bin/python bench/fleet_bench.py [--per-source 6] [--per-destination 3] [--state-scale 1.0]

1. Starts six services on edge1 (two openface stand-ins, two yolo stand-ins, two busybox
   counters, all named fleet-bench-*), and asks fleet.yml for the evacuation plan of edge1
   (fleet_plan_only) to know where each would go.
2. Migrates them one after another with migrate.yml to those destinations: the sequential
   sum is the sum of the six ansible-playbook runs' wall times.
3. Moves them back to edge1 with fleet.yml and a plan file.
4. Evacuates edge1 with fleet.yml (fleet_match=fleet-bench-*): its wall time, start to end
   of the ansible-playbook run, against the sequential sum.
After every move each service must run on its new host with its state: the stand-ins' request
counter and state checksum unchanged, the counters' count not started again. Prints the
times and the ratio and writes reports/bench/fleet-<UTC>/{summary.md, results.json, logs/}.
Run as root with the lab up (`make lab`); only containers named fleet-bench-* are touched.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.labclient import LabNotUp, lab_hosts, lab_status  # noqa: E402
from bench.prober import ask_once  # noqa: E402

PLAYBOOK = REPO / ".venv" / "bin" / "ansible-playbook"
PREFIX = "fleet-bench-"
SERVICE_PORT = 9999
# name -> image, environment, published host port (None: a busybox counter, asked with docker exec)
SERVICES = {
    "of1": ("openface-standin:latest", {"STATE_MB": 64, "DIRTY_KBPS": 256}, 19711),
    "of2": ("openface-standin:latest", {"STATE_MB": 64, "DIRTY_KBPS": 256}, 19712),
    "yo1": ("yolo-standin:latest", {"STATE_MB": 48, "DIRTY_KBPS": 256}, 19713),
    "yo2": ("yolo-standin:latest", {"STATE_MB": 48, "DIRTY_KBPS": 256}, 19714),
    "si1": ("simple:latest", {}, None),
    "si2": ("simple:latest", {}, None),
}
PLAN_LINE = re.compile(r"^\s*-?\s*'?(?P<service>[\w.-]+): (?P<source>[\w.-]+) -> (?P<destination>[\w.-]+), ")


def hosts_and_registry():
    """The lab's hosts by name and its registry's address; exits when the lab is not up."""
    try:
        status = lab_status(require_up=True)
    except LabNotUp as exc:
        raise SystemExit(str(exc)) from None
    return lab_hosts(status), status["registry"]["address"]


class Fleet:
    """The lab's edges and the bench's services on them."""

    def __init__(self, hosts, registry, scale=1.0, prefix=PREFIX, services=None):
        self.hosts = hosts
        self.registry = registry
        self.prefix = prefix
        self.services = {}
        for short, (image, env, port) in (services or SERVICES).items():
            env = {k: str(max(int(round(v * scale)), 1) if k == "STATE_MB" else v) for k, v in env.items()}
            self.services[prefix + short] = {"image": "%s/%s" % (registry, image), "env": env, "port": port}

    def api(self, host):
        import docker
        return docker.APIClient(base_url=self.hosts[host]["docker_host"], version="auto", timeout=120)

    def start_all(self, host):
        import docker
        api = self.api(host)
        for name, service in self.services.items():
            repository, tag = service["image"].rsplit(":", 1)
            try:
                api.inspect_image(service["image"])
            except docker.errors.ImageNotFound:
                api.pull(repository, tag=tag)
            ports = {SERVICE_PORT: service["port"]} if service["port"] else {}
            container = api.create_container(service["image"], name=name, environment=service["env"],
                                             ports=list(ports), labels={"edge-migrate.service": name},
                                             host_config=api.create_host_config(port_bindings=ports))
            api.start(container["Id"])
        for name in self.services:
            self.state(name, host, timeout=180)

    def remove_all(self):
        import docker
        for host in self.hosts:
            api = self.api(host)
            for name in self.services:
                try:
                    api.remove_container(name, force=True)
                except docker.errors.NotFound:
                    pass

    def running_on(self, name):
        import docker
        found = []
        for host in self.hosts:
            try:
                if self.api(host).inspect_container(name)["State"]["Running"]:
                    found.append(host)
            except docker.errors.NotFound:
                pass
        return found

    def state(self, name, host, timeout=60):
        """The service's state on `host`: {"count", "sha256"} of a stand-in (SUM does not count as a
        request), {"count"} of a busybox counter (its count file, read with docker exec)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                if self.services[name]["port"]:
                    return json.loads(ask_once(self.hosts[host]["address"], self.services[name]["port"], b"SUM\n", 5.0))
                api = self.api(host)
                out = api.exec_start(api.exec_create(name, ["cat", "/tmp/count"])).decode().strip()
                return {"count": int(out)}
            except (OSError, ValueError) as exc:
                last = exc
            except Exception as exc:  # noqa: BLE001 - docker errors while the container comes up
                last = exc
            time.sleep(0.3)
        raise AssertionError("%s on %s did not answer within %d s: %s" % (name, host, timeout, last))

    def touch(self, name, host):
        """One request that the state must remember (the stand-ins count it)."""
        if self.services[name]["port"]:
            ask_once(self.hosts[host]["address"], self.services[name]["port"], b"GET\n", 5.0)

    def states(self, where):
        """{name: state} of every service, asked on the host `where` says, after one counted request each."""
        for name, host in where.items():
            self.touch(name, host)
        return {name: self.state(name, host) for name, host in where.items()}

    def check_moved(self, before, where):
        """Each service runs on where[name] only, with its state: stand-ins' counter and checksum
        unchanged, counters not started again. Returns the list of problems (empty when all is well)."""
        problems = []
        for name, host in where.items():
            running = self.running_on(name)
            if running != [host]:
                problems.append("%s runs on %s, expected on %s only" % (name, running or "no edge", host))
                continue
            now = self.state(name, host)
            if "sha256" in before[name]:
                if (now["sha256"], now["count"]) != (before[name]["sha256"], before[name]["count"]):
                    problems.append("%s lost its state: %s before, %s after" % (name, before[name], now))
            elif now["count"] < before[name]["count"]:
                problems.append("%s counter started again: %d before, %d after" % (
                    name, before[name]["count"], now["count"]))
        return problems


def playbook(args, log_path, timeout=3600):
    """Run ansible-playbook; (wall seconds, rc, output), the output also in log_path."""
    started = time.monotonic()
    proc = subprocess.run([str(PLAYBOOK), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          check=False)
    wall = time.monotonic() - started
    with open(log_path, "w") as handle:
        handle.write("$ ansible-playbook %s\n%s\n%s" % (" ".join(args), proc.stdout, proc.stderr))
    return wall, proc.returncode, proc.stdout


def parse_plan(output):
    """{service: destination} from fleet.yml's 'Plan | what will move where' lines."""
    return {m["service"]: m["destination"] for m in map(PLAN_LINE.match, output.splitlines()) if m}


def fleet_report_of(output):
    found = re.search(r"fleet report: (\S+\.json)", output)
    if not found:
        return None
    with open(found.group(1)) as handle:
        return json.load(handle)


def ratio(fleet_s, sequential_s):
    return round(fleet_s / sequential_s, 3) if sequential_s else None


def summary_markdown(run):
    lines = ["# Fleet benchmark %s" % run["id"], "",
             "Evacuation of %s (%d services: %s) with `playbooks/fleet.yml`, limits %d per source and %d per "
             "destination, against the same migrations one after another with `migrate.yml`, in the same run "
             "(lab, 2-core machine shared with other work; code %s)." % (
                 run["source"], len(run["sequential"]), ", ".join(run["services"]), run["per_source"],
                 run["per_destination"], run["code"]), "",
             "| | seconds |", "|---|---|",
             "| sequential: sum of the %d migrate.yml runs | %.1f |" % (len(run["sequential"]), run["sequential_s"]),
             "| fleet.yml evacuation, whole run | %.1f |" % run["fleet_s"],
             "| **ratio fleet / sequential** | **%.3f** |" % run["ratio"], "",
             "Load average (1 min) of the machine at the start and end of each phase: %s." % ", ".join(
                 "%s %.1f / %.1f" % (phase, *values) for phase, values in run["load"].items()), "",
             "| service | destination | sequential s | sequential downtime s | fleet destination | fleet s | "
             "fleet downtime s | fleet outcome |", "|---|---|---|---|---|---|---|---|"]
    fleet = {r["service"]: r for r in (run.get("fleet_report") or {}).get("results", [])}
    for entry in run["sequential"]:
        other = fleet.get(entry["service"], {})
        lines.append("| %s | %s | %.1f | %s | %s | %s | %s | %s |" % (
            entry["service"], entry["destination"], entry["wall_s"], entry.get("downtime_s"),
            other.get("destination", "-"), other.get("duration_s", "-"), other.get("downtime_s", "-"),
            other.get("outcome", "-")))
    lines += ["", "State after every move: %s." % ("kept for every service" if not run["problems"] else
                                                    "; ".join(run["problems"])),
              "", "Command: `%s`" % run["command"], ""]
    return "\n".join(lines)


def code_state():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "library", "module_utils", "roles", "playbooks"],
                           cwd=REPO, capture_output=True, text=True, check=False).stdout.strip()
    return head + (" with uncommitted changes" if dirty else "")


def report_downtime(service, since):
    reports = REPO / "reports"
    found = sorted(p for p in reports.glob("*-%s.json" % service) if p.stat().st_mtime >= since - 1)
    if not found:
        return None
    with open(found[-1]) as handle:
        return json.load(handle).get("downtime_s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="edge1")
    parser.add_argument("--per-source", type=int, default=6)
    parser.add_argument("--per-destination", type=int, default=3)
    parser.add_argument("--state-scale", type=float, default=1.0, help="multiplies the stand-ins' STATE_MB")
    args = parser.parse_args(argv)
    hosts, registry = hosts_and_registry()
    run_id = "fleet-" + datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "reports" / "bench" / run_id
    (out / "logs").mkdir(parents=True, exist_ok=True)
    fleet = Fleet(hosts, registry, args.state_scale)
    limits = ["-e", "fleet_per_source=%d" % args.per_source, "-e", "fleet_per_destination=%d" % args.per_destination]
    evacuate = ["playbooks/fleet.yml", "-e", "evacuate=%s" % args.source, "-e", "fleet_match=%s*" % PREFIX] + limits
    run = {"id": run_id, "source": args.source, "services": list(fleet.services), "per_source": args.per_source,
           "per_destination": args.per_destination, "code": code_state(), "problems": [], "sequential": [], "load": {},
           "command": " ".join([".venv/bin/python", "bench/fleet_bench.py"] + (argv if argv is not None else
                                                                                sys.argv[1:]))}
    try:
        fleet.remove_all()
        print("starting %d services on %s" % (len(fleet.services), args.source), flush=True)
        fleet.start_all(args.source)
        home = dict.fromkeys(fleet.services, args.source)
        _wall, rc, output = playbook(evacuate + ["-e", "fleet_plan_only=true"], out / "logs" / "plan.log")
        plan = parse_plan(output)
        if rc != 0 or set(plan) != set(fleet.services):
            raise SystemExit("fleet.yml did not plan the evacuation (rc=%d, planned %s); see %s" % (
                rc, plan, out / "logs" / "plan.log"))
        print("evacuation plan: %s" % ", ".join("%s -> %s" % item for item in sorted(plan.items())), flush=True)

        run["load"]["sequential"] = [os.getloadavg()[0]]
        for name, destination in plan.items():
            before = fleet.states({name: args.source})
            started = time.time()
            migrate = ["migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % destination]
            wall, rc, _output = playbook(migrate, out / "logs" / ("sequential-%s.log" % name))
            problems = ([] if rc == 0 else ["sequential migration of %s failed (rc=%d)" % (name, rc)]) + \
                fleet.check_moved(before, {name: destination})
            run["problems"] += problems
            run["sequential"].append({"service": name, "destination": destination, "wall_s": round(wall, 2), "rc": rc,
                                      "downtime_s": report_downtime(name, started)})
            print("  sequential %s -> %s: %.1f s%s" % (name, destination, wall, " PROBLEM: %s" % problems
                                                         if problems else ""), flush=True)
        run["sequential_s"] = round(sum(entry["wall_s"] for entry in run["sequential"]), 2)
        run["load"]["sequential"].append(os.getloadavg()[0])

        back = out / "back-plan.yml"
        back.write_text("".join("- {service: %s, destination: %s}\n" % (name, args.source) for name in plan))
        before = fleet.states(plan)
        wall, rc, _output = playbook(["playbooks/fleet.yml", "-e", "plan=%s" % back] + limits,
                                     out / "logs" / "back.log")
        problems = ([] if rc == 0 else ["moving back with a plan failed (rc=%d)" % rc])
        problems += fleet.check_moved(before, home)
        run["problems"] += problems
        run["back_s"] = round(wall, 2)
        print("  back to %s with a plan file: %.1f s%s" % (args.source, wall, " PROBLEM: %s" % problems
                                                           if problems else ""), flush=True)

        before = fleet.states(home)
        run["load"]["evacuation"] = [os.getloadavg()[0]]
        wall, rc, output = playbook(evacuate, out / "logs" / "evacuate.log")
        run["load"]["evacuation"].append(os.getloadavg()[0])
        run["fleet_s"] = round(wall, 2)
        run["fleet_rc"] = rc
        run["fleet_report"] = fleet_report_of(output)
        moved = {r["service"]: r["destination"] for r in (run["fleet_report"] or {}).get("results", [])}
        problems = ([] if rc == 0 and set(moved) == set(fleet.services) else
                    ["the evacuation did not complete (rc=%d); see %s" % (rc, out / "logs" / "evacuate.log")])
        problems += fleet.check_moved(before, {name: moved.get(name, "another edge") for name in fleet.services})
        run["problems"] += problems
        run["ratio"] = ratio(run["fleet_s"], run["sequential_s"])
        print("  evacuation of %s with fleet.yml: %.1f s%s" % (args.source, wall, " PROBLEM: %s" % problems
                                                               if problems else ""), flush=True)
    finally:
        fleet.remove_all()
    (out / "results.json").write_text(json.dumps(run, indent=2, default=str))
    if "ratio" in run:
        (out / "summary.md").write_text(summary_markdown(run))
        print("\nsequential sum %.1f s, fleet evacuation %.1f s, ratio %.3f (target < 0.6)%s" % (
            run["sequential_s"], run["fleet_s"], run["ratio"], "" if not run["problems"] else
            "; PROBLEMS: %s" % "; ".join(run["problems"])))
        print("summary: %s" % (out / "summary.md"))
    return 1 if run["problems"] or "ratio" not in run else 0


if __name__ == "__main__":
    sys.exit(main())
