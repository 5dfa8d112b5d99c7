"""Known engine bugs that make a restore fail, checked before anything is frozen.

engine_restore_blocker(engine, config, host): why the destination's engine (edge_container_info's
`engine`) cannot restore this container (its portable `config`), or "" when nothing is known
against it. Docker Engine 28 and newer (with containerd 2) fail to restore a checkpoint of a
container that has its own network namespace: `bind-mount /proc/0/ns/net -> ...: no such file or
directory` (moby#50750, containerd#12141). Only `--network host` containers have none."""

import re


def engine_major(version):
    match = re.match(r"\s*(\d+)\.", str(version or ""))
    return int(match.group(1)) if match else None


def engine_restore_blocker(engine, config, host="the destination"):
    version = (engine or {}).get("version")
    major = engine_major(version)
    network_mode = ((config or {}).get("HostConfig") or {}).get("NetworkMode") or "default"
    if major is not None and major >= 28 and network_mode != "host":
        return ("%s runs Docker %s, which cannot restore a container with its own network namespace "
                "(the restore fails with `bind-mount /proc/0/ns/net`: moby#50750, containerd#12141); "
                "choose a destination with Docker 27 or older" % (host, version))
    return ""


class FilterModule:
    def filters(self):
        return {"engine_restore_blocker": engine_restore_blocker}
