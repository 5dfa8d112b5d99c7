#!/usr/bin/python
"""Ansible module: named volumes of a migrated service, made like the source's or removed."""

DOCUMENTATION = r"""
module: edge_volume
short_description: Create a service's named volumes like the source's, or remove them
description:
  - With I(state=present) makes each volume of I(volumes) exist on this host's Docker
    Engine with the given driver, labels and driver options (before the service's
    container is created, so the engine does not create it bare). A volume of that name
    that no container uses but that differs is made again; its content is to be replaced
    by the copy from the source anyway. A volume that another container uses is never
    touched, the task fails and names the container.
  - With I(state=absent) removes them (after a migration, on the host the service left);
    a volume still in use is an error.
options:
  volumes:
    description: Volumes, each with name and optionally driver (default C(local)), labels and options.
    type: list
    elements: dict
    required: true
  state:
    description: C(present) or C(absent).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK)]
attributes:
  check_mode:
    support: full
    description: Lists in I(created) and I(removed) what it would create, make again or remove; changes
      nothing.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_fs_sync
    description: Copies the volumes' content from the source.
  - module: edge_container_info
    description: The source's volumes (C(storage.mounts)).
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Create the service's volumes on the destination
  edge_volume:
    volumes:
      - {name: notes-data, driver: local, labels: {team: mobility}}
"""

RETURN = r"""
created:
  description: Volumes created (or made again) on this host.
  type: list
  elements: str
  returned: success
  sample: [notes-data]
removed:
  description: Volumes removed from this host.
  type: list
  elements: str
  returned: success
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError
from ansible.module_utils.edge_fs import inspect_volume, volume_users
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail

try:
    from docker.errors import APIError
except ImportError:  # docker_api reports the missing SDK
    APIError = Exception


def same(current, wanted):
    return (current.get("Driver") == wanted["driver"] and (current.get("Labels") or {}) == wanted["labels"]
            and (current.get("Options") or {}) == wanted["options"])


def remove(api, name):
    try:
        api.remove_volume(name)
    except APIError as exc:
        raise DockerError("cannot remove volume %s: %s" % (name, getattr(exc, "explanation", None) or exc),
                          cmd="DELETE /volumes/%s" % name) from exc


def main():
    module = AnsibleModule(argument_spec=dict(
        volumes=dict(type="list", elements="dict", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        **DOCKER_ARGS), supports_check_mode=True)
    wanted = []
    for volume in module.params["volumes"]:
        if not volume.get("name"):
            module.fail_json(msg="every volume needs a name: %s" % volume, cmd=None, rc=None, stderr="")
        wanted.append({"name": volume["name"], "driver": volume.get("driver") or "local",
                       "labels": volume.get("labels") or {}, "options": volume.get("options") or {}})
    result = dict(changed=False, created=[], removed=[])
    try:
        api = docker_api(module)
        for volume in wanted:
            current = inspect_volume(api, volume["name"])
            if module.params["state"] == "absent":
                if current is not None:
                    in_use = volume_users(api, volume["name"])
                    if in_use:
                        raise DockerError("volume %s is still used by %s; it was left in place"
                                          % (volume["name"], ", ".join(in_use)), cmd="GET /containers/json")
                    if not module.check_mode:
                        remove(api, volume["name"])
                    result["removed"].append(volume["name"])
                continue
            if current is not None:
                in_use = volume_users(api, volume["name"])
                if in_use:
                    raise DockerError("a volume named %s already exists on this host and %s uses it: the service's "
                                      "copy would overwrite it; remove or rename it, or choose another destination"
                                      % (volume["name"], ", ".join(in_use)), cmd="GET /containers/json")
                if same(current, volume):
                    continue
                if not module.check_mode:
                    remove(api, volume["name"])
            if not module.check_mode:
                try:
                    api.create_volume(volume["name"], driver=volume["driver"], driver_opts=volume["options"] or None,
                                      labels=volume["labels"] or None)
                except APIError as exc:
                    raise DockerError("cannot create volume %s (driver %s): %s"
                                      % (volume["name"], volume["driver"], getattr(exc, "explanation", None) or exc),
                                      cmd="POST /volumes/create") from exc
            result["created"].append(volume["name"])
    except DockerError as exc:
        fail(module, exc, **result)
    result["changed"] = bool(result["created"] or result["removed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
