"""The host's neighbor entries for a started container: which addresses, on which device,
and the `ip` commands that set them (run against what `ip` prints)."""

from ansible.module_utils.edge_neighbors import announce, bridge_towards, endpoints

BRIDGE_DETAILS = ("3: docker0: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state DOWN \\    link/ether "
                  "02:42:83:0c:44:2b brd ff:ff:ff:ff:ff:ff promiscuity 0 \\    bridge forward_delay 1500 "
                  "hello_time 200 stp_state 0 bridge_id 8000.2:42:83:c:44:2b")
PORT_DETAILS = ("7: vethb549686@if6: <BROADCAST,MULTICAST,UP> mtu 1500 master docker0 \\    link/ether "
                "5e:11:22:33:44:55 \\    veth \\    bridge_slave state forwarding priority 32")


def inspect(networks):
    return {"NetworkSettings": {"Networks": networks}}


class Ip:
    """Answers `ip route get` and `ip -d link show` as a host with docker0 (172.17.0.0/16) and
    eth0 (everything else, through a gateway) would; records every call."""

    def __init__(self, neigh_rc=0):
        self.calls = []
        self.neigh_rc = neigh_rc

    def __call__(self, argv):
        self.calls.append(argv)
        if argv[:3] == ["ip", "route", "get"]:
            if argv[3].startswith("172.17."):
                return 0, "%s dev docker0 src 172.17.0.1 uid 0 \n    cache \n" % argv[3], ""
            if argv[3].startswith("10.9."):
                return 0, "%s dev vethb549686 src 10.9.0.1 uid 0\n" % argv[3], ""
            return 0, "%s via 10.77.0.1 dev eth0 src 10.77.0.12 uid 0\n" % argv[3], ""
        if argv[:4] == ["ip", "-o", "-d", "link"]:
            return 0, BRIDGE_DETAILS if argv[-1] == "docker0" else PORT_DETAILS, ""
        if argv[:3] == ["ip", "neigh", "replace"]:
            return self.neigh_rc, "", "RTNETLINK answers: Operation not permitted\n" if self.neigh_rc else ""
        raise AssertionError(argv)


def test_endpoints_take_well_formed_addresses_with_a_mac():
    found = endpoints(inspect({
        "bridge": {"IPAddress": "172.17.0.2", "MacAddress": "02:42:AC:11:00:02", "GlobalIPv6Address": "fd00::2"},
        "host": {"IPAddress": "", "MacAddress": ""},
        "odd": {"IPAddress": "172.17.0.9; reboot", "MacAddress": "02:42:ac:11:00:09"},
        "badmac": {"IPAddress": "172.17.0.3", "MacAddress": "02:42:ac:11:00:03 dev lo"},
        "none": None}))
    assert found == [("bridge", "172.17.0.2", "02:42:ac:11:00:02"), ("bridge", "fd00::2", "02:42:ac:11:00:02")]


def test_only_a_bridge_reached_directly_is_used():
    ip = Ip()
    assert bridge_towards(ip, "172.17.0.2") == "docker0"
    assert bridge_towards(ip, "192.168.5.5") is None  # through a gateway
    assert bridge_towards(ip, "10.9.0.2") is None  # a device that is not a bridge


def test_announce_sets_each_address_to_its_mac_and_reports_failures():
    ip = Ip()
    done = announce(ip, inspect({"bridge": {"IPAddress": "172.17.0.2", "MacAddress": "02:42:ac:11:00:02"},
                                 "far": {"IPAddress": "192.168.5.5", "MacAddress": "02:42:c0:a8:05:05"}}))
    assert done == [{"network": "bridge", "address": "172.17.0.2", "mac": "02:42:ac:11:00:02", "device": "docker0"}]
    assert ["ip", "neigh", "replace", "172.17.0.2", "lladdr", "02:42:ac:11:00:02", "dev", "docker0", "nud",
            "reachable"] in ip.calls
    assert not any(call[:3] == ["ip", "neigh", "replace"] and "192.168.5.5" in call for call in ip.calls)
    failed = announce(Ip(neigh_rc=2), inspect({"bridge": {"IPAddress": "172.17.0.2",
                                                          "MacAddress": "02:42:ac:11:00:02"}}))
    assert failed[0]["error"] == "RTNETLINK answers: Operation not permitted"
