#!/usr/bin/python
"""Ansible module: send an image from this host straight to another host, without the layers it has."""

DOCUMENTATION = r"""
module: edge_image_send
short_description: Send a container's image to the destination (docker save, rsync over SSH)
description:
  - Runs on the source, for an image no registry can give the destination (made here by
    C(docker commit), C(docker build), C(docker load) or C(docker import)), or whose pull
    by digest failed.
  - Unpacks a C(docker save) of I(image_id) into I(workdir), deletes the files of its
    I(skip_layers) lowest layers (those the destination has, M(edge_image)
    C(layers_present); C(docker load) does not read a layer it has), and pushes the rest to
    I(dest_host):I(dest_dir) with rsync over SSH, like M(edge_sync). M(edge_image) with
    I(archive_dir) loads it there. I(workdir) is deleted afterwards, whatever the outcome.
options:
  image_id:
    description: Id of the image (C(sha256:...)).
    type: str
    required: true
  workdir:
    description: Directory on this host for the saved image (created C(0700), deleted after the push).
    type: path
    required: true
  skip_layers:
    description: Number of the image's lowest layers not to send.
    type: int
    default: 0
extends_documentation_fragment:
  - edge
  - edge.sync
requirements: [docker (Python SDK), rsync and ssh on both hosts]
attributes:
  check_mode:
    support: full
    description: Checks that the image is on this host; saves and sends nothing and returns none of the
      counts.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_image
    description: Loads what it sends on the destination (I(archive_dir)).
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Send the image the destination cannot pull
  edge_image_send:
    image_id: "{{ source_info.image.id }}"
    skip_layers: "{{ image.layers_present }}"
    workdir: /var/lib/edge-migrate/openface-1/image
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/openface-1/image
    ssh_key: /root/.ssh/edge_migrate
    known_hosts: /etc/edge-migrate/known_hosts
  when: not image.present
"""

RETURN = r"""
layers_total:
  description: Layers of the image.
  type: int
  returned: success, not in check mode
  sample: 5
layers_sent:
  description: Layers whose files were sent.
  type: int
  returned: success, not in check mode
  sample: 2
saved_bytes:
  description: Bytes of the saved image left to send (its configuration and the layers sent).
  type: int
  returned: success, not in check mode
  sample: 52428800
bytes_sent:
  description: Bytes rsync sent over the wire.
  type: int
  returned: success, not in check mode
  sample: 52431234
duration_s:
  description: Seconds spent (save and push).
  type: float
  returned: success, not in check mode
  sample: 4.8123
cmd:
  description: The rsync command run.
  type: str
  returned: success, not in check mode
  sample: rsync -a ... /var/lib/edge-migrate/openface-1/image/ root@10.0.0.12:/var/lib/edge-migrate/openface-1/image/
"""

import shutil
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_docker import DockerError, inspect_image_id
from ansible.module_utils.edge_image import drop_layers, save, tree_bytes
from ansible.module_utils.edge_module import DOCKER_ARGS, docker_api, fail, runner
from ansible.module_utils.edge_transfer import SYNC_ARGS, TransferError, push, push_options


def main():
    module = AnsibleModule(argument_spec=dict(
        image_id=dict(type="str", required=True),
        workdir=dict(type="path", required=True),
        skip_layers=dict(type="int", default=0),
        **SYNC_ARGS, **DOCKER_ARGS), supports_check_mode=True)
    params = module.params
    if module.check_mode:
        try:
            present = inspect_image_id(docker_api(module), params["image_id"]) is not None
        except DockerError as exc:
            fail(module, exc)
        if not present:
            module.fail_json(msg="image %s is not on this host: nothing to send" % params["image_id"])
        module.exit_json(changed=True)
    begin = time.monotonic()
    try:
        api = docker_api(module)
        manifest = save(api, params["image_id"], params["workdir"])
        kept = drop_layers(params["workdir"], manifest, max(0, params["skip_layers"]))
        saved_bytes = tree_bytes(params["workdir"])
        stats = push(runner(module), params["workdir"], params["dest_host"], params["dest_dir"], whole_file=True,
                     **push_options(params))
    except (DockerError, TransferError, OSError) as exc:
        fail(module, exc)
    finally:
        shutil.rmtree(params["workdir"], ignore_errors=True)
    module.exit_json(changed=True, layers_total=len(manifest["Layers"]), layers_sent=len(kept),
                     saved_bytes=saved_bytes, duration_s=round(time.monotonic() - begin, 4), **stats)


if __name__ == "__main__":
    main()
