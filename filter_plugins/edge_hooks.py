"""Filters for the hooks that tell a service's users where it runs."""


def published_ports(config):
    """The ports a container publishes on its host, as `9999/tcp=19999 53/udp=5353` (from a
    Docker create body's HostConfig.PortBindings); empty when it publishes none."""
    bindings = ((config or {}).get("HostConfig") or {}).get("PortBindings") or {}
    pairs = []
    for port, binds in sorted(bindings.items()):
        for bind in binds or []:
            if bind.get("HostPort"):
                pairs.append("%s=%s" % (port, bind["HostPort"]))
    return " ".join(pairs)


class FilterModule:
    def filters(self):
        return {"published_ports": published_ports}
