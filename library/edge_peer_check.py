#!/usr/bin/python
"""Ansible module: can this host push a checkpoint to the destination, and can the destination run it?"""

DOCUMENTATION = r"""
module: edge_peer_check
short_description: Check, before a migration, the source-to-destination path and CPU compatibility
description:
  - Runs on the source. Dumps this host's CPU description with C(criu cpuinfo dump),
    pushes it to the destination exactly as a checkpoint travels (rsync over SSH with the
    pinned host key and this host's key), and has the destination run
    C(criu cpuinfo check) against it over the same SSH path, then remove it (the
    destination's forced command verbs C(edge-migrate-cpuinfo-check) and
    C(edge-migrate-remove), see the edge_ssh_trust role). Nothing is frozen.
  - With I(check_restricted), also checks that the destination gives this host's key nothing
    but those transfers (a plain command such as C(id) must be refused by its forced command).
  - Fails with a message that says which part failed (SSH, transfer, CPU features or an
    unrestricted key) and what to do.
options:
  check_cpu:
    description: Run CRIU's cpuinfo check on the destination.
    type: bool
    default: true
  check_restricted:
    description: Check that the destination refuses any other command for this host's key.
    type: bool
    default: false
extends_documentation_fragment:
  - edge.sync
requirements: [criu, rsync and ssh on both hosts]
attributes:
  check_mode:
    support: partial
    description: Can run in check mode and return what it would do, in part.
    details: Dumps, pushes and checks nothing; returns C(ssh_ok=false) and null I(cpu_compatible) and
      I(restricted).
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: edge_sync
    description: The transfer it tries.
author: edge-migrate developers (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Can edge1 hand openface over to edge2?
  edge_peer_check:
    dest_host: 10.0.0.12
    dest_dir: /var/lib/edge-migrate/.preflight-openface
    ssh_key: /root/.ssh/edge_migrate
    known_hosts: /etc/edge-migrate/known_hosts
"""

RETURN = r"""
ssh_ok:
  description: The destination took a transfer over SSH.
  type: bool
  returned: always
  sample: true
cpu_compatible:
  description: CRIU's cpuinfo check passed on the destination (null when not checked).
  type: bool
  returned: always
  sample: true
restricted:
  description: The destination refused a plain command for this host's key (null when not checked).
  type: bool
  returned: always
  sample: true
"""

import os
import shlex
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_fs import TREE_FLAGS
from ansible.module_utils.edge_module import fail, runner
from ansible.module_utils.edge_transfer import (
    CPUINFO_CHECK,
    OVER_AN_OLDER_COPY,
    REFUSED,
    REMOVE,
    SYNC_ARGS,
    TransferError,
    close_shared_connection,
    push,
    push_options,
    run_remote,
    ssh_run,
)


def main():
    module = AnsibleModule(argument_spec=dict(check_cpu=dict(type="bool", default=True),
                                              check_restricted=dict(type="bool", default=False), **SYNC_ARGS),
                           supports_check_mode=True)
    params = module.params
    result = dict(changed=False, ssh_ok=False, cpu_compatible=None, restricted=None)
    if module.check_mode:
        module.exit_json(**result)
    scratch = tempfile.mkdtemp(prefix="edge-preflight-")
    options = push_options(params)
    # The check's SSH sessions share one connection (a handshake costs about 0.25 s), its own
    # unless the caller names one to keep.
    own_connection = not options["control_path"]
    if own_connection:
        options["control_path"] = os.path.join(scratch, "ssh")
    try:
        if params["check_cpu"]:
            argv = ["criu", "cpuinfo", "dump", "-D", scratch]
            rc, out, err = module.run_command(argv)
            if rc != 0:
                module.fail_json(msg="criu cpuinfo dump failed on the source: %s" % (err or out).strip(),
                                 cmd=" ".join(argv), rc=rc, stderr=err, **result)
        try:
            # With every option a migration's pushes send: an edge whose forced command is older
            # than this source refuses here, before anything is frozen.
            push(runner(module), scratch, params["dest_host"], params["dest_dir"], whole_file=True,
                 extra_args=TREE_FLAGS + OVER_AN_OLDER_COPY, **options)
        except TransferError as exc:
            exc.msg = ("this host cannot push to %s@%s over SSH (key %s, known_hosts %s): %s; check that the "
                       "destination's sshd accepts this host's key for edge-migrate's transfers and that its "
                       "host key is pinned (playbooks/prepare_edges.yml sets up both)"
                       % (params["dest_user"], params["dest_host"], params["ssh_key"], params["known_hosts"], exc.msg))
            fail(module, exc, **result)
        result["ssh_ok"] = True
        # The destination's forced command removes the directory after the check, or alone.
        rc, out, err, argv = run_remote(runner(module), params["dest_host"],
                                        CPUINFO_CHECK if params["check_cpu"] else REMOVE, params["dest_dir"],
                                        **options)
        if rc != 0 and not params["check_cpu"]:
            module.fail_json(msg="the destination %s did not remove %s: %s" % (
                params["dest_host"], params["dest_dir"], (out + err).strip() or "rc=%d" % rc),
                cmd=" ".join(shlex.quote(a) for a in argv), rc=rc, stderr=err, **result)
        if params["check_cpu"]:
            result["cpu_compatible"] = rc == 0
        if rc != 0:
            module.fail_json(msg="the destination %s cannot run a checkpoint taken here: criu cpuinfo check says %s"
                             % (params["dest_host"], (out + err).strip() or "rc=%d" % rc),
                             cmd=" ".join(shlex.quote(a) for a in argv), rc=rc, stderr=err, **result)
        if params["check_restricted"]:
            rc, out, err, argv = ssh_run(runner(module), params["dest_host"], "id", **options)
            result["restricted"] = rc != 0 and REFUSED in err
            if not result["restricted"]:
                module.fail_json(msg="the destination %s gives this host's key more than edge-migrate's transfers: "
                                 "`id` answered %s; its authorized_keys must hold this key only in the block "
                                 "playbooks/prepare_edges.yml writes (restrict, from=, command=)"
                                 % (params["dest_host"], (out + err).strip()[:200] or "rc=%d" % rc),
                                 cmd=" ".join(shlex.quote(a) for a in argv), rc=rc, stderr=err, **result)
    finally:
        if own_connection:
            close_shared_connection(runner(module), params["dest_host"], **options)
        shutil.rmtree(scratch, ignore_errors=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
