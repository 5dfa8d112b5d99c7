"""What the migration benchmark can run: its services, link settings and strategies, and the
sets of cells `make bench` (QUICK) and `make bench-full` (FULL) run."""

# name -> how to start it and how to ask it
SERVICES = {
    "openface-32": {"image": "openface-standin:latest", "env": {"STATE_MB": "32"}, "state_mb": 32, "protocol": "json"},
    "openface-64": {"image": "openface-standin:latest", "env": {"STATE_MB": "64"}, "state_mb": 64, "protocol": "json"},
    "openface-256": {"image": "openface-standin:latest", "env": {"STATE_MB": "256"}, "state_mb": 256,
                     "protocol": "json"},
    "openface-1024": {"image": "openface-standin:latest", "env": {"STATE_MB": "1024"}, "state_mb": 1024,
                      "protocol": "json"},
    # busybox counter: replies with its counter (a number ten times a second) and closes
    "simple": {"image": "simple:latest", "env": {}, "state_mb": 0, "protocol": "line"},
}
# name -> (tc rate or None, delay or None)
LINKS = {
    "unshaped": (None, None),
    "1gbit": ("1gbit", None),
    "100mbit+20ms": ("100mbit", "20ms"),
    "20mbit+50ms": ("20mbit", "50ms"),
}
LINK_ALIASES = {"100mbit": "100mbit+20ms", "20mbit": "20mbit+50ms"}
# "default": what migrate.yml does without -e strategy (it picks the method per migration).
STRATEGIES = ("cold", "rsync", "delta", "iterative", "seed-delta", "default")
# (service, link, strategies): openface 256 MB with every strategy on both links, the 1024 MB
# cell with the two strategies it compares, and the default strategy at every size of the goals.
QUICK = [("openface-32", "unshaped", ["default"]), ("openface-32", "100mbit+20ms", ["default"]),
         ("openface-256", "unshaped", list(STRATEGIES)), ("openface-256", "100mbit+20ms", list(STRATEGIES)),
         ("openface-1024", "100mbit+20ms", ["rsync", "delta", "default"])]
FULL = {"services": ["openface-64", "openface-256", "openface-1024", "simple"], "links": list(LINKS),
        "strategies": list(STRATEGIES)}
