"""Fleet plans: a list of migrations checked against what the edges run before anything moves,
or an evacuation of one edge whose destinations are chosen by free memory and load."""

import fnmatch
import math
import re
import reprlib

PLAN_KEYS = ("service", "destination", "strategy", "hooks")
HOOK_POINTS = ("after_warmup_checkpoint", "before_freeze")
MB = 1e6
# Docker's rule for container names; inventory host names are held to it too (they become file
# names and arguments of child runs).
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
NAME_MAX = 128
MAX_ENTRIES = 1000
MAX_HOOK = 4096
MAX_ERRORS = 20
MAX_ERROR = 300
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = 5
_REPR.maxlevel = 3


def bounded(value):
    """repr of a value from a plan or an edge, cut short without building the whole repr (a YAML
    alias bomb has a small file and an enormous repr)."""
    return _REPR.repr(value)


def valid_name(value):
    return isinstance(value, str) and len(value) <= NAME_MAX and bool(NAME_PATTERN.match(value))


def _number(value, integer=False):
    """A figure an edge reported: finite and not negative, else 0."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    if not math.isfinite(number) or number < 0:
        return 0
    return int(number) if integer else number


class PlanError(Exception):
    """The plan cannot run; `errors` lists every reason, each naming its entry or host."""

    def __init__(self, errors, subject="the plan"):
        self.errors = [e if len(e) <= MAX_ERROR else e[:MAX_ERROR] + "…" for e in list(errors)[:MAX_ERRORS]]
        count = len(errors)
        more = count - len(self.errors)
        super().__init__("%s is rejected, nothing was moved (%d error%s): %s%s" % (
            subject, count, "" if count == 1 else "s", "; ".join(self.errors),
            "; and %d more" % more if more else ""))


class Edges:
    """The edges' answers (edge_fleet_facts results by host): who answered, what runs where."""

    def __init__(self, edges, facts):
        self.edges = list(edges)
        self.facts = {}
        self.silent = {}
        # Names an edge reported that are no container names: never planned, never passed on.
        self.bad_names = {}
        for host in self.edges:
            answer = (facts or {}).get(host)
            if not isinstance(answer, dict) or answer.get("failed") or answer.get("unreachable") \
                    or not isinstance(answer.get("containers"), list):
                message = (answer or {}).get("msg") if isinstance(answer, dict) else None
                self.silent[host] = bounded(message)[1:-1] if isinstance(message, str) else None
            else:
                self.facts[host] = self._checked(host, answer)

    def _checked(self, host, answer):
        """The edge's answer with its names checked and its figures made numbers."""
        containers, bad = [], []
        for container in answer["containers"]:
            name = container.get("name") if isinstance(container, dict) else None
            if not valid_name(name):
                bad.append(name)
                continue
            containers.append(dict(container, memory_bytes=_number(container.get("memory_bytes"), True),
                                   cpu_cores=_number(container.get("cpu_cores"))))
        names = answer.get("names") if isinstance(answer.get("names"), list) else [c["name"] for c in containers]
        bad += [n for n in names if not valid_name(n) and n not in bad]
        if bad:
            self.bad_names[host] = bad
        checked = dict(answer, containers=containers, names=[n for n in names if valid_name(n)])
        for key in ("memory_bytes", "free_memory_bytes"):
            checked[key] = _number(answer.get(key), True)
        for key in ("cpus", "cpu_cores_used"):
            checked[key] = _number(answer.get(key))
        return checked

    def bad_names_note(self, host):
        return "%s reported container names that are not Docker names (%s): an edge that reports such names " \
               "may be compromised; nothing was moved" % (host, ", ".join(bounded(n) for n in self.bad_names[host][:5]))

    def answered(self):
        return [host for host in self.edges if host in self.facts]

    def running_on(self, service):
        return [host for host in self.answered()
                if any(c["name"] == service for c in self.facts[host]["containers"])]

    def container(self, host, service):
        return next(c for c in self.facts[host]["containers"] if c["name"] == service)

    def has_name(self, host, service):
        return service in (self.facts[host].get("names") or [c["name"] for c in self.facts[host]["containers"]])

    def silent_note(self):
        if not self.silent:
            return ""
        return " (no answer from %s)" % ", ".join(sorted(self.silent))


def _label(index, entry):
    service = entry.get("service") if isinstance(entry, dict) else None
    if isinstance(service, str) and len(service) > 60:
        service = service[:60] + "…"
    return "entry %d%s" % (index, " (service '%s')" % service if isinstance(service, str) and service else "")


def _migration(edges, service, source, destination, strategy, hooks):
    container = edges.container(source, service)
    return {"service": service, "source": source, "destination": destination, "strategy": strategy,
            "hooks": hooks or {}, "memory_bytes": int(container.get("memory_bytes") or 0),
            "cpu_cores": float(container.get("cpu_cores") or 0.0)}


def _where(edges, service, catalog):
    """(source, error) for a service named in a plan."""
    hosts = edges.running_on(service)
    if len(hosts) == 1:
        return hosts[0], None
    if len(hosts) > 1:
        return None, "runs on several edges (%s); stop all but one" % ", ".join(hosts)
    if service in (catalog or []):
        return None, "is in the catalog but no edge runs it; start it first (playbooks/deploy.yml -e service=%s)%s" % (
            service, edges.silent_note())
    return None, "unknown service: it is not in the catalog and no edge runs a container of that name%s" % (
        edges.silent_note())


def _entry_shape(entry, strategies):
    """Errors in one entry's keys and values (without looking at the edges)."""
    if not isinstance(entry, dict):
        return ["expected a mapping with service and destination, got %s" % bounded(entry)]
    errors = []
    unknown = sorted(str(key)[:60] for key in entry if key not in PLAN_KEYS)
    if unknown:
        errors.append("unknown key%s %s (allowed: %s)" % ("" if len(unknown) == 1 else "s", ", ".join(unknown[:5]),
                                                          ", ".join(PLAN_KEYS)))
    for key in ("service", "destination"):
        value = entry.get(key)
        if value in (None, ""):
            errors.append("no %s" % key)
        elif not isinstance(value, str):
            errors.append("%s must be a name, got %s" % (key, bounded(value)))
    if isinstance(entry.get("service"), str) and entry["service"] and not valid_name(entry["service"]):
        errors.append("service must be a container name (Docker's rule: a letter or digit, then letters, digits, "
                      "'_', '.' or '-'), got %s" % bounded(entry["service"]))
    strategy = entry.get("strategy")
    if strategy is not None and (not isinstance(strategy, str) or strategy not in strategies):
        errors.append("unknown strategy %s: choose one of %s" % (bounded(strategy), ", ".join(strategies)))
    hooks = entry.get("hooks")
    if hooks is not None and (not isinstance(hooks, dict) or any(k not in HOOK_POINTS for k in hooks)
                              or not all(isinstance(v, str) and len(v) <= MAX_HOOK for v in hooks.values())):
        errors.append("hooks must map %s to a command (at most %d characters)" % (" or ".join(HOOK_POINTS), MAX_HOOK))
    return errors


def validate_plan(entries, edges, catalog=(), strategies=("delta",), default_strategy=None):
    """The migrations of a plan file's entries (a list of {service, destination[, strategy, hooks]}),
    or PlanError naming every bad entry: unknown or ambiguous service, unknown, silent or
    same-as-source destination, a name already taken there, duplicates, memory the destination lacks."""
    if not isinstance(entries, list) or not entries:
        raise PlanError(["a plan is a non-empty YAML list of {service, destination} entries, got %s"
                         % bounded(entries)])
    if len(entries) > MAX_ENTRIES:
        raise PlanError(["a plan has at most %d entries, this one %d" % (MAX_ENTRIES, len(entries))])
    errors, migrations, seen = [], [], {}
    for index, entry in enumerate(entries, start=1):
        label = _label(index, entry)
        shape = _entry_shape(entry, strategies)
        if shape:
            errors += ["%s: %s" % (label, problem) for problem in shape]
            continue
        service, destination = entry["service"], entry["destination"]
        if service in seen:
            errors.append("%s: duplicate of entry %d; a service moves once per fleet run" % (label, seen[service]))
            continue
        seen[service] = index
        source, problem = _where(edges, service, catalog)
        if problem:
            errors.append("%s: %s" % (label, problem))
        if destination not in edges.edges:
            errors.append("%s: destination '%s' is not in the inventory's edges group (%s)" % (
                label, destination, ", ".join(edges.edges)))
            continue
        if destination in edges.bad_names:
            errors.append("%s: %s" % (label, edges.bad_names_note(destination)))
            continue
        if destination in edges.silent:
            errors.append("%s: destination %s did not answer: %s" % (
                label, destination, edges.silent[destination] or "unreachable"))
            continue
        if source is None:
            continue
        if destination == source:
            errors.append("%s: destination %s is the source: '%s' already runs there" % (label, destination, service))
            continue
        if edges.has_name(destination, service):
            errors.append("%s: a container named '%s' already exists on %s; remove it first" % (
                label, service, destination))
            continue
        migrations.append(dict(_migration(edges, service, source, destination,
                                          entry.get("strategy") or default_strategy, entry.get("hooks")),
                               entry=index))
    errors += _memory_errors(migrations, edges)
    if errors:
        raise PlanError(errors)
    return migrations


def _memory_errors(migrations, edges):
    errors = []
    for host in edges.answered():
        incoming = [m for m in migrations if m["destination"] == host]
        # What leaves the host frees its memory only once it has left: not counted.
        need = sum(m["memory_bytes"] for m in incoming)
        free = edges.facts[host]["free_memory_bytes"]
        if incoming and need > free:
            errors.append("destination %s has %.1f MB free but entries %s need %.1f MB" % (
                host, free / MB, ", ".join(str(m["entry"]) for m in incoming), need / MB))
    return errors


class Placement:
    """One destination's projected use while an evacuation assigns services to it."""

    def __init__(self, host, facts, cpu_request):
        self.host = host
        self.capacity = max(int(facts["memory_bytes"]), 1)
        self.free = int(facts["free_memory_bytes"])
        self.cpus = max(float(facts["cpus"]), 1e-3)
        self.cpu_used = float(facts["cpu_cores_used"])
        self.cpu_request = cpu_request
        self.assigned = []

    def demand(self, service):
        return service["memory_bytes"], max(service["cpu_cores"], self.cpu_request)

    def fits(self, service):
        return self.free - sum(s["memory_bytes"] for s in self.assigned) >= service["memory_bytes"]

    def pressure(self, extra=None):
        """Memory in use as a share of the capacity + CPU in use per CPU, after this run's assignments."""
        services = self.assigned + ([extra] if extra else [])
        memory = self.capacity - self.free + sum(self.demand(s)[0] for s in services)
        cpu = self.cpu_used + sum(self.demand(s)[1] for s in services)
        return memory / self.capacity + cpu / self.cpus

    def describe(self):
        return {"host": self.host, "free_memory_bytes": self.free, "load": round(self.cpu_used / self.cpus, 4),
                "assigned": [s["service"] for s in self.assigned],
                "assigned_memory_bytes": sum(s["memory_bytes"] for s in self.assigned),
                "pressure_after": round(self.pressure(), 4)}


def evacuation_plan(host, edges, match="*", strategy=None, cpu_request=0.1, exclude=()):
    """The migrations that empty `host` of its running containers (names matching `match`), each to
    the other edge with the lowest pressure (memory share + CPU per CPU) once this run's earlier
    assignments are counted; a service counts at least `cpu_request` cores. Largest first.
    Returns (migrations, placements)."""
    if host not in edges.edges:
        raise PlanError(["'%s' is not in the inventory's edges group (%s)" % (host, ", ".join(edges.edges))],
                        "the evacuation of %s" % host)
    if host in edges.silent:
        raise PlanError(["%s did not answer: %s" % (host, edges.silent[host] or "unreachable")],
                        "the evacuation of %s" % host)
    if host in edges.bad_names:
        raise PlanError([edges.bad_names_note(host)], "the evacuation of %s" % host)
    unknown = [h for h in exclude if h not in edges.edges]
    if unknown:
        raise PlanError(["cannot exclude %s: not in the inventory's edges group (%s)" % (
            ", ".join(unknown), ", ".join(edges.edges))], "the evacuation of %s" % host)
    candidates = [Placement(h, edges.facts[h], cpu_request) for h in edges.answered()
                  if h != host and h not in exclude]
    if not candidates:
        raise PlanError(["no other edge answered to take its services%s" % edges.silent_note()],
                        "the evacuation of %s" % host)
    services = [c for c in edges.facts[host]["containers"] if fnmatch.fnmatchcase(c["name"], match)]
    services.sort(key=lambda c: (-int(c.get("memory_bytes") or 0), c["name"]))
    errors, migrations = [], []
    for container in services:
        name = container["name"]
        elsewhere = [h for h in edges.running_on(name) if h != host]
        if elsewhere:
            errors.append("'%s' runs on %s too; stop all but one" % (name, ", ".join(elsewhere)))
            continue
        migration = _migration(edges, name, host, None, strategy, {})
        fitting = [p for p in candidates if p.fits(migration) and not edges.has_name(p.host, name)]
        if not fitting:
            errors.append("no edge can take '%s' (%.1f MB): %s" % (name, migration["memory_bytes"] / MB, "; ".join(
                "%s %s" % (p.host, "has a container of that name" if edges.has_name(p.host, name) else
                           "has %.1f MB free after this run's other moves" % (
                               (p.free - sum(s["memory_bytes"] for s in p.assigned)) / MB))
                for p in candidates)))
            continue
        best = min(fitting, key=lambda p: (round(p.pressure(migration), 6), len(p.assigned),
                                           edges.edges.index(p.host)))
        migration["destination"] = best.host
        best.assigned.append(migration)
        migrations.append(migration)
    if errors:
        raise PlanError(errors, "the evacuation of %s" % host)
    return migrations, [p.describe() for p in candidates]
