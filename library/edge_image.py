#!/usr/bin/python
"""Ansible module: have on this host the very image (by id) a container runs on its source."""

DOCUMENTATION = r"""
module: edge_image
short_description: Get the source container's image, by its id, on the destination
description:
  - Runs on the destination before anything is frozen. The image is identified by its id
    (I(image_id)), never by a tag, which may have moved since the source pulled it.
  - When this engine has no image of that id, pulls each of I(repo_digests) (the source
    image's C(repo@sha256:...) references, those of I(name)'s repository first) until one
    gives that id. With I(archive_dir), loads it from there instead (a C(docker save) of the
    image sent by M(edge_image_send), possibly without the layers this host has) and
    deletes the directory.
  - Once the image is here, I(name) (the container's C(Config.Image)) is made to resolve to
    it, so the container created from the source's configuration shows the same name. A
    tag is set (moved, if this host had it on another image); a name that is an image id
    needs nothing; a C(repo@sha256:...) name resolves only when the image came from a
    registry under that digest.
  - Without I(archive_dir) an image it cannot get is not an error, C(present) is false and
    C(layers_present) tells the source which layers to leave out of what it sends. With
    I(archive_dir) it fails, with every reason.
options:
  image_id:
    description: Id of the source container's image (C(sha256:...)).
    type: str
    required: true
  name:
    description: How the container names its image (C(Config.Image)), to resolve to I(image_id) here.
    type: str
    required: true
  repo_digests:
    description: The source image's C(RepoDigests), the registry references it can be pulled by.
    type: list
    elements: str
    default: []
  layers:
    description: The source image's layers (C(RootFS.Layers) diff ids), to count those this host has.
    type: list
    elements: str
    default: []
  pull:
    description: Try to pull the image by I(repo_digests).
    type: bool
    default: true
  archive_dir:
    description: A C(docker save) of the image unpacked in a directory, to load when the image is not here.
    type: path
extends_documentation_fragment:
  - edge
requirements: [docker (Python SDK)]
attributes:
  check_mode:
    support: full
    description: Reports whether the image would be fetched or tagged; pulls, loads and tags nothing
      (I(present) is whether it was here).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_image_send
    description: Sends the image when no registry can give it.
  - module: edge_container_info
    description: The source image's id, digests and layers.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The destination gets the image the service runs, by digest if a registry has it
  edge_image:
    image_id: "{{ source_info.image.id }}"
    name: "{{ source_info.config.Image }}"
    repo_digests: "{{ source_info.image.repo_digests }}"
    layers: "{{ source_info.image.layers }}"
  register: image

- name: Load what the source sent
  edge_image:
    image_id: "{{ source_info.image.id }}"
    name: "{{ source_info.config.Image }}"
    pull: false
    archive_dir: /var/lib/edge-migrate/openface-1/image
  when: not image.present
"""

RETURN = r"""
present:
  description: Whether this engine has the image now (in check mode, had it before).
  type: bool
  returned: always
  sample: true
how:
  description: C(present) (it was here), C(pulled) (by digest), C(loaded) (from I(archive_dir)), or null.
  type: str
  returned: always
  sample: pulled
pulled:
  description: The digest reference the image was pulled by.
  type: str
  returned: when how is pulled
  sample: '10.77.0.1:5000/openface@sha256:ab12...'
pull_errors:
  description: Why each digest pull tried did not give the image.
  type: list
  elements: str
  returned: always
  sample: []
layers_present:
  description: How many of the image's lowest layers this engine has.
  type: int
  returned: when the image is not present
  sample: 3
tagged:
  description: Whether I(name) was (or in check mode would be) set on the image here.
  type: bool
  returned: always
  sample: true
retagged_from:
  description: The image id I(name) named on this host before it was moved to the source's image.
  type: str
  returned: when a tag was moved
  sample: 'sha256:1e4b...'
duration_s:
  description: Seconds spent (pulls or the load included).
  type: float
  returned: success
  sample: 3.2031
"""

import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError
from ansible.module_utils.edge_image import (
    digest_candidates,
    load,
    local_chains,
    present_prefix,
    pull_digest,
    reference_kind,
    resolves_to,
    tag,
)
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail


def get(module, api, result):
    """Pull by digest, then load the archive, until the image of that id is here."""
    params = module.params
    image_id = params["image_id"]
    for reference in digest_candidates(params["name"], params["repo_digests"]) if params["pull"] else []:
        try:
            got = pull_digest(api, reference)
        except DockerError as exc:
            result["pull_errors"].append(str(exc))
            continue
        if got == image_id:
            result.update(how="pulled", pulled=reference)
            return True
        result["pull_errors"].append("%s gave image %s, not the source's %s" % (reference, got, image_id))
    if params["archive_dir"] and os.path.isdir(params["archive_dir"]):
        try:
            loaded = load(api, params["archive_dir"])
        finally:
            shutil.rmtree(params["archive_dir"], ignore_errors=True)
        if resolves_to(api, image_id) == image_id:
            result["how"] = "loaded"
            return True
        result["pull_errors"].append("loading %s gave %s, not the source's %s"
                                     % (params["archive_dir"], ", ".join(loaded) or "no image", image_id))
    return False


def name_it(module, api, result):
    """Make the container's image name resolve to the image here."""
    params = module.params
    kind = reference_kind(params["name"], params["image_id"])
    current = resolves_to(api, params["name"])
    if current == params["image_id"]:
        return
    if kind == "digest" and params["pull"] and not module.check_mode:
        try:
            if pull_digest(api, params["name"]) == params["image_id"]:
                result["changed"] = True
                return
        except DockerError as exc:
            result["pull_errors"].append(str(exc))
    if kind == "digest":
        raise DockerError("the container names its image %s, which does not resolve to %s on this host: only a "
                          "registry that has it under that digest can give that name (%s)"
                          % (params["name"], params["image_id"], "; ".join(result["pull_errors"]) or "no pull"))
    if kind == "id":
        raise DockerError("the container names its image by the id prefix %s, which names another image or several "
                          "on this host (%s)" % (params["name"], current))
    result.update(tagged=True, changed=True)
    if current:
        result["retagged_from"] = current
    if not module.check_mode:
        tag(api, params["image_id"], params["name"])


def main():
    module = AnsibleModule(argument_spec=dict(
        image_id=dict(type="str", required=True),
        name=dict(type="str", required=True),
        repo_digests=dict(type="list", elements="str", default=[]),
        layers=dict(type="list", elements="str", default=[]),
        pull=dict(type="bool", default=True),
        archive_dir=dict(type="path"),
        **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    result = dict(changed=False, present=False, how=None, pull_errors=[], tagged=False)
    begin = time.monotonic()
    try:
        api = docker_api(module)
        if resolves_to(api, params["image_id"]) == params["image_id"]:
            result.update(present=True, how="present")
        elif module.check_mode:
            result["changed"] = True
        elif get(module, api, result):
            result.update(present=True, changed=True)
        if result["present"]:
            name_it(module, api, result)
        else:
            result["layers_present"] = present_prefix(params["layers"], local_chains(api))
            if params["archive_dir"] and not module.check_mode:
                module.fail_json(msg="the destination could not get image %s (%s) that the service runs on its source: "
                                 "%s. Nothing was frozen." % (params["name"], params["image_id"],
                                                              "; ".join(result["pull_errors"]) or "nothing was sent"),
                                 cmd=None, rc=None, stderr="", **result)
    except DockerError as exc:
        fail(module, exc, **result)
    module.exit_json(duration_s=round(time.monotonic() - begin, 4), **result)


if __name__ == "__main__":
    main()
