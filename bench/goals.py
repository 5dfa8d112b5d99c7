"""The downtime goals of the default strategy (what migrate.yml does without -e strategy), each
with its verdict and its ratio to the published reference points, from the benchmark's table."""

GOAL_LINK = "100mbit+20ms"
# (service, the longest client-seen downtime allowed, s)
DOWNTIME_GOALS = (("openface-32", 0.4), ("openface-256", 0.8), ("openface-1024", 2.0))
# (service, the longest whole migration allowed, s: warm-up transfer included)
TOTAL_GOALS = (("openface-32", 8.0),)
# Published downtimes to compare with: (label, seconds).
REFERENCES = (("ReSync, YOLOv8 with runC", 0.378), ("iterative runc migration of Redis, best", 0.48),
              ("iterative runc migration of Redis, worst", 0.69), ("the reference prototype, openface", 7.8))
# PCLive (SoCC 2024) cut pre-copy downtime by this factor; ours is iterative's downtime over default's.
PCLIVE_FACTOR = 2.7


def _verdict(value, limit):
    if value is None:
        return "NOT RUN", "-"
    return ("PASS" if value <= limit else "FAIL"), "%.3f s" % value


def goal_checks(table, downtime="client_downtime_s"):
    """(check, value, verdict) for every goal, from aggregate()'s table (medians per cell)."""
    cells = {(t["service"], t["link"], t["strategy"]): t for t in table}
    checks = []
    for service, limit in DOWNTIME_GOALS:
        cell = cells.get((service, GOAL_LINK, "default")) or {}
        value = cell.get(downtime)
        verdict, shown = _verdict(value, limit)
        compared = []
        if value:
            compared = ["%s %.3f s: x%.2f" % (label, seconds, value / seconds) for label, seconds in REFERENCES]
            iterative = (cells.get((service, GOAL_LINK, "iterative")) or {}).get(downtime)
            if iterative:
                compared.append("iterative / default %.2f (PCLive: %.1f)" % (iterative / value, PCLIVE_FACTOR))
        checks.append(("%s, 100 Mbit/s, default strategy: downtime <= %.1f s%s" % (
            service, limit, " (%s)" % "; ".join(compared) if compared else ""), shown, verdict))
    for service, limit in TOTAL_GOALS:
        value = (cells.get((service, GOAL_LINK, "default")) or {}).get("total_s")
        verdict, shown = _verdict(value, limit)
        checks.append(("%s, 100 Mbit/s, default strategy: whole migration <= %.0f s" % (service, limit), shown,
                       verdict))
    return checks
