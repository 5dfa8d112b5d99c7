#!/usr/bin/python
"""Ansible module: can this host push a checkpoint to the destination, and can the destination run it?"""

DOCUMENTATION = r"""
module: edge_peer_check
short_description: Check, before a migration, the source-to-destination path and CPU compatibility
description:
  - Runs on the source. Dumps this host's CPU description with C(criu cpuinfo dump),
    pushes it to the destination exactly as a checkpoint travels (rsync over SSH with the
    pinned host key and this host's key), and has the destination run
    C(criu cpuinfo check) against it over the same SSH path. Nothing is frozen.
  - Fails with a message that says which part failed (SSH, transfer, or CPU features) and
    what to do.
options:
  check_cpu:
    description: Run CRIU's cpuinfo check on the destination.
    type: bool
    default: true
extends_documentation_fragment:
  - edge.sync
requirements: [criu, rsync and ssh on both hosts]
author: edge-migrate developers
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
cpu_compatible:
  description: CRIU's cpuinfo check passed on the destination (null when not checked).
  type: bool
  returned: always
"""

import shlex
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.edge_module import fail, runner
from ansible.module_utils.edge_transfer import SYNC_ARGS, TransferError, push, push_options, ssh_command


def main():
    module = AnsibleModule(argument_spec=dict(check_cpu=dict(type="bool", default=True), **SYNC_ARGS),
                           supports_check_mode=True)
    params = module.params
    result = dict(changed=False, ssh_ok=False, cpu_compatible=None)
    if module.check_mode:
        module.exit_json(**result)
    scratch = tempfile.mkdtemp(prefix="edge-preflight-")
    try:
        if params["check_cpu"]:
            argv = ["criu", "cpuinfo", "dump", "-D", scratch]
            rc, out, err = module.run_command(argv)
            if rc != 0:
                module.fail_json(msg="criu cpuinfo dump failed on the source: %s" % (err or out).strip(),
                                 cmd=" ".join(argv), rc=rc, stderr=err, **result)
        try:
            push(runner(module), scratch, params["dest_host"], params["dest_dir"], whole_file=True,
                 **push_options(params))
        except TransferError as exc:
            exc.msg = ("this host cannot push to %s@%s over SSH (key %s, known_hosts %s): %s; check that the "
                       "destination's sshd accepts this host's key and that its host key is pinned"
                       % (params["dest_user"], params["dest_host"], params["ssh_key"], params["known_hosts"], exc.msg))
            fail(module, exc, **result)
        result["ssh_ok"] = True
        remote = "rc=0; %s || rc=$?; rm -rf %s; exit $rc" % (
            "criu cpuinfo check -D %s" % shlex.quote(params["dest_dir"]) if params["check_cpu"] else "true",
            shlex.quote(params["dest_dir"]))
        argv = shlex.split(ssh_command(params["ssh_key"], params["known_hosts"], params["ssh_port"]))
        argv += ["%s@%s" % (params["dest_user"], params["dest_host"]), remote]
        rc, out, err = module.run_command(argv)
        if params["check_cpu"]:
            result["cpu_compatible"] = rc == 0
        if rc != 0:
            module.fail_json(msg="the destination %s cannot run a checkpoint taken here: criu cpuinfo check says %s"
                             % (params["dest_host"], (out + err).strip() or "rc=%d" % rc),
                             cmd=" ".join(argv), rc=rc, stderr=err, **result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
