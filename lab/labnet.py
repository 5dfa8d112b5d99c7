"""The lab's network and the shaping of its links: the bridge, each host's network namespace
and veth (ip), and `lab/lab link` (tc: rate, delay, loss). tc_rate_bits is also the
benchmarks' (bench/labclient.py imports it). Standard library only."""

import os
import re
from pathlib import Path

from labcore import Changes, LabError, addrs, link_info, link_is_up, netns_list, run, say
from labhosts import BRIDGE, GATEWAY, host_by_name, require_root, system_by_name


def ensure_bridge():
    info = link_info(BRIDGE)
    if info is None:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        Changes.add("created bridge %s" % BRIDGE)
        info = link_info(BRIDGE)
    if GATEWAY + "/24" not in addrs(BRIDGE):
        run(["ip", "addr", "add", GATEWAY + "/24", "dev", BRIDGE])
        Changes.add("address %s/24 on %s" % (GATEWAY, BRIDGE))
    if not link_is_up(info):
        run(["ip", "link", "set", BRIDGE, "up"])
        Changes.add("%s up" % BRIDGE)


def ensure_host_network(h):
    ns_ok = h.netns in netns_list() and os.path.ismount(h.nspath)
    if not ns_ok:
        if Path(h.nspath).exists() or h.netns in netns_list():
            run(["ip", "netns", "del", h.netns], check=False)
        if link_info(h.veth) is not None:
            run(["ip", "link", "del", h.veth], check=False)
        run(["ip", "netns", "add", h.netns])
        Changes.add("%s: network namespace %s" % (h.name, h.netns))
    if link_info(h.veth) is None:
        if link_info("eth0", h.netns) is not None:
            run(["ip", "-n", h.netns, "link", "del", "eth0"], check=False)
        run(["ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns])
        Changes.add("%s: veth %s <-> eth0" % (h.name, h.veth))
    info = link_info(h.veth)
    if "master %s " % BRIDGE not in info:
        run(["ip", "link", "set", h.veth, "master", BRIDGE])
        Changes.add("%s: %s joined %s" % (h.name, h.veth, BRIDGE))
    if not link_is_up(info):
        run(["ip", "link", "set", h.veth, "up"])
        Changes.add("%s: %s up" % (h.name, h.veth))
    if not link_is_up(link_info("lo", h.netns)):
        run(["ip", "-n", h.netns, "link", "set", "lo", "up"])
        Changes.add("%s: lo up" % h.name)
    if h.address + "/24" not in addrs("eth0", h.netns):
        run(["ip", "-n", h.netns, "addr", "add", h.address + "/24", "dev", "eth0"])
        Changes.add("%s: address %s/24 on eth0" % (h.name, h.address))
    if not link_is_up(link_info("eth0", h.netns)):
        run(["ip", "-n", h.netns, "link", "set", "eth0", "up"])
        Changes.add("%s: eth0 up" % h.name)
    routes = run(["ip", "-n", h.netns, "route", "show", "default"], check=False).stdout
    if "via %s " % GATEWAY not in routes + " ":
        run(["ip", "-n", h.netns, "route", "replace", "default", "via", GATEWAY])
        Changes.add("%s: default route via %s" % (h.name, GATEWAY))


def tc_summary(dev, netns=None):
    cmd = ["tc"] + (["-n", netns] if netns else []) + ["qdisc", "show", "dev", dev]
    out = run(cmd, check=False).stdout
    qd = [re.sub(r"\s+", " ", line.strip()) for line in out.splitlines()
          if re.match(r"qdisc (tbf|netem|htb) ", line)]
    cmd[-4:-2] = ["filter", "show"]
    if "bpf" in run(cmd, check=False).stdout:
        qd.append("random loss filter (cls_bpf)")
    return "; ".join(qd)


class RateError(LabError, ValueError):
    """A rate tc_rate_bits cannot read: a LabError for lab/lab, a ValueError for the
    benchmarks and experiments that check their link settings with it."""


def tc_rate_bits(rate):
    """Bits per second (a float) of a rate in tc's syntax, e.g. 20mbit -> 20e6: kbit, mbit, gbit
    and tbit are powers of 1000 bits, kibit, mibit and gibit powers of 1024 bits; bps, kbps,
    mbps and gbps (and a bare number) are bytes per second. RateError on anything else."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([a-zA-Z]*)", rate.strip())
    if not m:
        raise RateError("bad rate %r (e.g. 100mbit, 20mbit, 500kbit)" % rate)
    num, unit = float(m.group(1)), m.group(2).lower()
    units = {"": 8, "bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9, "tbit": 1e12,
             "bps": 8, "kbps": 8e3, "mbps": 8e6, "gbps": 8e9,
             "kibit": 1024, "mibit": 1 << 20, "gibit": 1 << 30}
    if unit not in units:
        raise RateError("bad rate unit in %r (bit, kbit, mbit, gbit, bps, kbps, mbps)" % rate)
    return num * units[unit]


def cmd_link(args):
    require_root()
    h = system_by_name(args.host) or host_by_name(args.host)
    if h.netns not in netns_list() or link_info(h.veth) is None:
        raise LabError("%s is not up; run `lab/lab up`" % h.name)
    sides = [("egress", ["tc", "-n", h.netns], "eth0"), ("ingress", ["tc"], h.veth)]
    if args.delay and not args.clear:
        probe = ["tc", "-n", h.netns, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "netem",
                 "delay", "0ms"]
        proc = run(probe, check=False)
        if proc.returncode != 0:
            raise LabError("--delay needs the kernel's netem qdisc, which this kernel (%s) lacks "
                           "(CONFIG_NET_SCH_NETEM; tc: %s); --rate and --loss work without it"
                           % (os.uname().release, proc.stderr.strip()))
        run(["tc", "-n", h.netns, "qdisc", "del", "dev", "lo", "root"], check=False)
    for _label, tc, dev in sides:
        run(tc + ["qdisc", "del", "dev", dev, "root"], check=False)
    if args.clear:
        say("%s: link shaping cleared" % h.name)
        return 0
    if not (args.rate or args.delay or args.loss):
        raise LabError("give --rate (and optionally --delay, --loss), or --clear")
    tbf = []
    if args.rate:
        bits = tc_rate_bits(args.rate)
        # burst: 4 ms worth of bytes at the rate, at least 32 KiB so that tbf reaches its rate
        # with the veth's GSO segments; queue: 50 ms worth of bytes
        burst = max(32 * 1024, int(bits / 8 * 0.004))
        tbf = ["tbf", "rate", args.rate, "burst", str(burst), "latency", "50ms"]
    loss = None
    if args.loss:
        try:
            loss = float(args.loss.rstrip("%"))
        except ValueError as exc:
            raise LabError("bad --loss %r (a percentage: 1, 0.5%%)" % args.loss) from exc
        if not 0 <= loss <= 100:
            raise LabError("--loss is a percentage between 0 and 100")
    for _label, tc, dev in sides:
        if args.delay:
            netem = ["netem", "limit", "100000", "delay", args.delay]
            if loss:
                netem += ["loss", "%g%%" % loss]
            run(tc + ["qdisc", "add", "dev", dev, "root", "handle", "1:"] + netem)
            if tbf:
                run(tc + ["qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:"] + tbf)
        elif loss:
            # no netem needed: a classic-BPF classifier sends a random share of the packets
            # to an HTB class whose queue holds nothing (every packet there is dropped)
            threshold = min(int((1 - loss / 100) * 2 ** 32), 2 ** 32 - 1)
            big = ["htb", "rate", "100gbit", "burst", "1mb", "cburst", "1mb", "quantum", "60000"]
            run(tc + ["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"])
            run(tc + ["class", "add", "dev", dev, "parent", "1:", "classid", "1:1"] + big)
            run(tc + ["class", "add", "dev", dev, "parent", "1:", "classid", "1:2"] + big)
            run(tc + ["qdisc", "add", "dev", dev, "parent", "1:2", "handle", "20:", "pfifo",
                      "limit", "0"])
            if tbf:
                run(tc + ["qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:"] + tbf)
            # A = random u32; A > threshold -> class 1:2 (drop), else class 1:1
            code = "4,32 0 0 %d,37 0 1 %d,6 0 0 %d,6 0 0 %d" % (
                0xFFFFF000 + 56, threshold, 0x10002, 0x10001)
            run(tc + ["filter", "add", "dev", dev, "parent", "1:", "prio", "1", "bpf",
                      "bytecode", code])
        else:
            run(tc + ["qdisc", "add", "dev", dev, "root", "handle", "1:"] + tbf)
    say("%s: egress (eth0 in %s): %s" % (h.name, h.netns, tc_summary("eth0", h.netns)))
    say("%s: ingress (%s): %s" % (h.name, h.veth, tc_summary(h.veth)))
    return 0
