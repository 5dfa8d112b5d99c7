"""The lab's command line: its arguments, the dispatch to the commands (up, down, status,
exec, link, images) and `exec`, which hands over to nsenter. Standard library only."""

import argparse
import os
import sys

import labsystems
from labcore import PATH_ENV, LabError
from labdown import cmd_down
from labhosts import DEFAULT_HOSTS, MAX_HOSTS, host_by_name, system_by_name
from labnet import cmd_link
from labstatus import cmd_status
from labup import cmd_images, cmd_up


def cmd_exec(args):
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise LabError("usage: lab/lab exec HOST -- CMD...")
    system = system_by_name(args.host)
    if system is not None:  # inside the edge: its own root, Docker and PATH
        if not system.booted():
            raise LabError("%s is not up; run `lab/lab up`" % system.name)
        sys.stdout.flush()
        os.execvpe("nsenter", system.inside(["env", "EDGELAB_HOST=" + system.name] + cmd),
                   dict(os.environ, PATH=PATH_ENV))
    h = host_by_name(args.host)
    if not os.path.ismount(h.nspath):
        raise LabError("%s is not up (no %s); run `lab/lab up`" % (h.name, h.nspath))
    env = dict(os.environ)
    env["PATH"] = PATH_ENV
    env["DOCKER_HOST"] = h.docker_host
    env["EDGELAB_HOST"] = h.name
    sys.stdout.flush()
    os.execvpe("nsenter", h.ns(cmd), env)


def main(argv=None, doc=""):
    p = argparse.ArgumentParser(prog="lab/lab", description=doc.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring the lab up (idempotent)")
    up.add_argument("--releases", default=None,
                    help="one system edge per Debian release named, comma-separated (%s; default: "
                         "$LAB_RELEASES, else the current lab's, else none)" % ", ".join(sorted(labsystems.RELEASES)))
    up.add_argument("--hosts", type=int, default=None,
                    help="number of edge hosts, 1..%d (default: $LAB_HOSTS, else the current "
                         "lab's, else %d)" % (MAX_HOSTS, DEFAULT_HOSTS))
    down = sub.add_parser("down", help="remove everything the lab made")
    down.add_argument("--purge", action="store_true", help="also the image cache and logs")
    st = sub.add_parser("status", help="show the lab; exit 1 unless fully up")
    st.add_argument("--json", action="store_true")
    ex = sub.add_parser("exec", help="run a command in a host's network namespace")
    ex.add_argument("host")
    ex.add_argument("cmd", nargs=argparse.REMAINDER)
    sub.add_parser("images", help="build and push the lab images that are missing")
    ln = sub.add_parser("link", help="shape a host's link (both directions)")
    ln.add_argument("host")
    ln.add_argument("--rate", help="bandwidth, tc syntax: 100mbit, 20mbit, 512kbit")
    ln.add_argument("--delay", help="one-way delay added in each direction: 20ms")
    ln.add_argument("--loss", help="packet loss in each direction, percent: 1 or 1%%")
    ln.add_argument("--clear", action="store_true", help="remove all shaping")
    args = p.parse_args(argv)
    try:
        return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "exec": cmd_exec,
                "link": cmd_link, "images": cmd_images}[args.command](args)
    except LabError as exc:
        print("lab: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
