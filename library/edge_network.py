#!/usr/bin/python
"""Ansible module: make a container's user-defined networks on this host, as they are on its source."""

DOCUMENTATION = r"""
module: edge_network
short_description: Make a container's user-defined networks on the destination
description:
  - Runs on the destination before anything is frozen. For each network of I(networks)
    (M(edge_container_info) C(networks) on the source) a network of that name is created
    with the source's driver, options, IPAM (driver, subnets, gateways, ranges), labels,
    internal, attachable and IPv6 settings, unless it exists.
  - Refuses, before creating any, when a network of that name exists with another driver
    or other subnets, when a static address the container has on it is outside its subnets
    or already taken on this host, or when an absent network's driver is not C(bridge)
    (an overlay or macvlan network depends on more than this engine).
  - The container's aliases and static addresses are in its configuration
    (M(edge_container_info) C(config.NetworkingConfig)); this module only makes sure they
    can be had here.
options:
  networks:
    description:
      - The source's networks, each a dict with name, driver, scope, options, labels,
        internal, attachable, enable_ipv6, ipam (driver, options, config) and endpoint
        (Aliases, IPAMConfig), as M(edge_container_info) returns them.
    type: list
    elements: dict
    required: true
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK)]
attributes:
  check_mode:
    support: full
    description: Refuses as a real run does and lists in I(created) the networks it would create; creates
      none.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_container_info
    description: The source's I(networks).
  - module: edge_volume
    description: The service's volumes on the destination.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Make the service's networks on the destination
  edge_network:
    networks: "{{ source_info.networks }}"
    docker_host: unix:///run/edgelab/edge2/docker.sock
"""

RETURN = r"""
created:
  description: Names of the networks created (to be created, in check mode).
  type: list
  elements: str
  returned: always
  sample: [appnet]
existing:
  description: Names of the networks that were already here, the same as the source's.
  type: list
  elements: str
  returned: always
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail
from ansible.module_utils.edge_network import create, inspect_network, refusals


def main():
    module = AnsibleModule(argument_spec=dict(
        networks=dict(type="list", elements="dict", required=True),
        **DOCKER_ARGS), supports_check_mode=True)
    result = dict(changed=False, created=[], existing=[])
    try:
        api = docker_api(module)
        missing, problems = [], []
        for wanted in module.params["networks"]:
            existing = inspect_network(api, wanted["name"])
            problems += refusals(wanted, existing)
            (missing if existing is None else result["existing"]).append(wanted)
        result["existing"] = [network["name"] for network in result["existing"]]
        if problems:
            module.fail_json(msg="; ".join(problems) + ". Nothing was frozen.", cmd=None, rc=None, stderr="",
                             **result)
        for wanted in missing:
            if not module.check_mode:
                create(api, wanted)
            result["created"].append(wanted["name"])
            result["changed"] = True
    except DockerError as exc:
        fail(module, exc, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
