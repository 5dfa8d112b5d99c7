"""Filters that turn a service catalog entry into a Docker create body."""


def service_config(entry):
    """Docker create body for a catalog entry: image, env, published ports, labels, command, volumes."""
    ports = entry.get("ports") or {}
    config = {
        "Image": entry["image"],
        "Env": ["%s=%s" % (key, value) for key, value in sorted((entry.get("env") or {}).items())],
        "Labels": dict(entry.get("labels") or {}, **{"edge-migrate.service": entry.get("name", "")}),
        "ExposedPorts": {port: {} for port in ports},
        "HostConfig": {
            "PortBindings": {port: [{"HostIp": "", "HostPort": str(host_port)}] for port, host_port in ports.items()},
            "RestartPolicy": {"Name": entry.get("restart_policy", "no")},
        },
    }
    if entry.get("command"):
        config["Cmd"] = list(entry["command"])
    if entry.get("volumes"):
        # {named volume or host path: path in the container}
        config["HostConfig"]["Binds"] = ["%s:%s" % pair for pair in sorted(entry["volumes"].items())]
    return config


class FilterModule:
    def filters(self):
        return {"service_config": service_config}
