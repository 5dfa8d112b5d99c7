"""A container's user-defined networks: its create body keeps them (with aliases and static
addresses), and the destination's networks of those names are checked (module_utils/edge_network)."""

import copy

from ansible.module_utils.edge_docker import container_endpoints, portable_config, split_endpoints
from ansible.module_utils.edge_network import conflicts, create_body, portable_network, refusals

CONTAINER_ID = "d46a3585c5ebd7887829fc3683ad6a1f7d453740d280b7b7f1e24074d16e0b86"
# `docker run --network imgnet-net --network-alias kv --ip 172.29.77.50` on dockerd 20.10.
INSPECT = {
    "Id": CONTAINER_ID,
    "Config": {"Image": "10.77.0.1:5000/simple:latest"},
    "HostConfig": {"NetworkMode": "imgnet-net"},
    "NetworkSettings": {"Networks": {"imgnet-net": {
        "Aliases": ["kv", "d46a3585c5eb"], "DriverOpts": None, "EndpointID": "30eb", "Gateway": "172.29.77.1",
        "IPAMConfig": {"IPv4Address": "172.29.77.50"}, "IPAddress": "172.29.77.50", "IPPrefixLen": 24,
        "Links": None, "MacAddress": "02:42:ac:1d:4d:32", "NetworkID": "c7bf"}}},
}
NETWORK = {
    "Name": "imgnet-net", "Id": "c7bf", "Scope": "local", "Driver": "bridge", "EnableIPv6": False,
    "IPAM": {"Driver": "default", "Options": {}, "Config": [{"Subnet": "172.29.77.0/24", "Gateway": "172.29.77.1"}]},
    "Internal": False, "Attachable": False, "Ingress": False,
    "Containers": {CONTAINER_ID: {"Name": "imgnet-netted", "IPv4Address": "172.29.77.50/24", "IPv6Address": ""}},
    "Options": {"com.docker.network.bridge.enable_icc": "true"}, "Labels": {"team": "edge"},
}


def wanted(**changes):
    network = dict(portable_network(NETWORK), endpoint=container_endpoints(INSPECT)["imgnet-net"])
    network.update(changes)
    return network


def on_destination(**changes):
    network = copy.deepcopy(NETWORK)
    network.update(Id="other", Containers={})
    network.update(changes)
    return network


def test_endpoint_keeps_aliases_and_static_address_not_the_engines_own():
    assert container_endpoints(INSPECT) == {"imgnet-net": {"Aliases": ["kv"],
                                                           "IPAMConfig": {"IPv4Address": "172.29.77.50"}}}


def test_predefined_networks_have_no_endpoint_config():
    for mode in ("bridge", "host", "none"):
        inspect = {"Id": CONTAINER_ID, "HostConfig": {"NetworkMode": mode},
                   "NetworkSettings": {"Networks": {mode: {"Aliases": None, "IPAMConfig": None}}}}
        assert container_endpoints(inspect) == {}
        assert "NetworkingConfig" not in portable_config(inspect)
        assert portable_config(inspect)["HostConfig"]["NetworkMode"] == mode


def test_portable_config_has_the_networking_config():
    config = portable_config(INSPECT)
    assert config["HostConfig"]["NetworkMode"] == "imgnet-net"
    assert config["NetworkingConfig"] == {"EndpointsConfig": container_endpoints(INSPECT)}
    assert split_endpoints(config) == (config, {})


def test_network_given_by_id_is_named_in_the_config():
    inspect = copy.deepcopy(INSPECT)
    inspect["HostConfig"]["NetworkMode"] = "c7bf6a5c66d7"
    assert portable_config(inspect)["HostConfig"]["NetworkMode"] == "imgnet-net"


def test_more_networks_are_connected_after_the_create():
    config = {"Image": "x", "HostConfig": {"NetworkMode": "front"},
              "NetworkingConfig": {"EndpointsConfig": {"front": {"Aliases": ["web"]}, "back": {},
                                                       "db": {"IPAMConfig": {"IPv4Address": "10.9.0.5"}}}}}
    body, more = split_endpoints(config)
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"front": {"Aliases": ["web"]}}}
    assert more == {"back": {}, "db": {"IPAMConfig": {"IPv4Address": "10.9.0.5"}}}
    assert config["NetworkingConfig"]["EndpointsConfig"]["back"] == {}  # the caller's config is left alone
    body, more = split_endpoints(dict(config, HostConfig={"NetworkMode": "default"}))
    assert body["NetworkingConfig"] == {"EndpointsConfig": {}} and len(more) == 3


def test_portable_network():
    assert portable_network(NETWORK) == {
        "name": "imgnet-net", "driver": "bridge", "scope": "local",
        "options": {"com.docker.network.bridge.enable_icc": "true"}, "labels": {"team": "edge"},
        "internal": False, "attachable": False, "enable_ipv6": False,
        "ipam": {"driver": "default", "options": {},
                 "config": [{"Subnet": "172.29.77.0/24", "Gateway": "172.29.77.1"}]}}


def test_create_body_is_the_sources_network():
    body = create_body(wanted())
    assert body["Name"] == "imgnet-net" and body["Driver"] == "bridge" and body["Labels"] == {"team": "edge"}
    assert body["IPAM"]["Config"] == [{"Subnet": "172.29.77.0/24", "Gateway": "172.29.77.1"}]
    assert body["Options"] == {"com.docker.network.bridge.enable_icc": "true"}


def test_absent_bridge_network_is_created_other_drivers_are_refused():
    assert refusals(wanted(), None) == []
    [reason] = refusals(wanted(driver="macvlan"), None)
    assert "imgnet-net (driver macvlan) does not exist on the destination" in reason


def test_same_network_on_the_destination_is_used():
    assert refusals(wanted(), on_destination()) == []
    assert refusals(wanted(), on_destination(Labels={}, Options={})) == []  # labels and options do not matter


def test_other_driver_or_subnet_is_refused():
    assert conflicts(portable_network(NETWORK), portable_network(on_destination(Driver="ipvlan"))) == [
        "its driver is ipvlan, the source's bridge"]
    [reason] = refusals(wanted(), on_destination(IPAM={"Config": [{"Subnet": "172.29.79.0/24"}]}))
    assert reason.startswith("network imgnet-net exists on the destination but is not the source's")
    assert "its subnets are 172.29.79.0/24, the source's 172.29.77.0/24" in reason


def test_static_address_taken_on_the_destination_is_refused():
    taken = on_destination(Containers={"x": {"Name": "squatter", "IPv4Address": "172.29.77.50/24"}})
    [reason] = refusals(wanted(), taken)
    assert "172.29.77.50 on network imgnet-net is taken on the destination by squatter" in reason
    other = on_destination(Containers={"x": {"Name": "neighbour", "IPv4Address": "172.29.77.51/24"}})
    assert refusals(wanted(), other) == []


def test_source_without_explicit_subnet_fits_any_destination_network_of_that_driver():
    source = wanted(ipam={"driver": "default", "options": {}, "config": []}, endpoint={})
    assert refusals(source, on_destination(IPAM={"Config": [{"Subnet": "10.1.0.0/16"}]})) == []


def test_network_gone_from_the_source_must_exist_on_the_destination():
    missing = {"name": "imgnet-net", "missing": True, "endpoint": {}}
    assert "no longer exists on its source" in refusals(missing, None)[0]
    assert refusals(missing, on_destination()) == []
