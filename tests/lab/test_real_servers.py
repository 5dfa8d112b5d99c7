"""Real servers from Debian's packages (images built by `lab/lab up`), each started as people
start it with `docker run` on the bookworm system edge (Docker 20.10), migrated by name to the
trixie one (Docker 26.1, as on Debian 13) while a client writes to it from the controller; the
client then reads back from the destination everything the server acknowledged. The system
edges alone take part (labtools.on_systems), so that this runs beside the tests of edge1..N.
Nothing is persisted to disk unless said: what comes back was carried over in memory.
In the lab every server runs as root (lab/lab SERVERS_ROOTFS says why)."""

import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import docker
import pytest
from labtools import (
    REPORTS,
    engine,
    latest_report,
    memory_images_left,
    on_systems,
    remove_everywhere,
    running_on,
    system_edge,
    system_edges,
)

pytestmark = pytest.mark.lab

REGISTRY = "10.77.0.1:5000"
TIMEOUT = 2.0


# ---------------------------------------------------------------- clients (standard library only)

class Redis:
    """RESP client."""

    def __init__(self, address, port):
        self.sock = socket.create_connection((address, port), timeout=TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def close(self):
        self.sock.close()

    def __call__(self, *args):
        out = b"*%d\r\n" % len(args)
        for arg in args:
            arg = arg if isinstance(arg, bytes) else str(arg).encode()
            out += b"$%d\r\n%s\r\n" % (len(arg), arg)
        self.sock.sendall(out)
        return self._reply()

    def _reply(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise AssertionError("redis error: %s" % rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self.reader.read(size + 2)[:-2].decode()
        if kind == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ConnectionError("unexpected reply %r" % line)


class Memcached:
    """Text protocol client."""

    def __init__(self, address, port):
        self.sock = socket.create_connection((address, port), timeout=TIMEOUT)
        self.reader = self.sock.makefile("rb")

    def close(self):
        self.sock.close()

    def _line(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        return line[:-2].decode()

    def set(self, key, value):
        self.sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), len(value), value.encode()))
        return self._line() == "STORED"

    def get_many(self, keys):
        self.sock.sendall(("get %s\r\n" % " ".join(keys)).encode())
        found = {}
        while True:
            line = self._line()
            if line == "END":
                return found
            _value, key, _flags, size = line.split()
            found[key] = self.reader.read(int(size) + 2)[:-2].decode()

    def stats(self):
        self.sock.sendall(b"stats\r\n")
        stats = {}
        while True:
            line = self._line()
            if line == "END":
                return stats
            _stat, key, value = line.split(" ", 2)
            stats[key] = value


class Mqtt:
    """MQTT 3.1.1: connect, publish (QoS 1, acknowledged), subscribe (QoS 0)."""

    def __init__(self, address, port, client_id):
        self.sock = socket.create_connection((address, port), timeout=TIMEOUT)
        self.next_id = 1
        self._send(0x10, _mqtt_str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _mqtt_str(client_id))
        kind, body = self.packet()
        if kind >> 4 != 2 or body[1] != 0:
            raise ConnectionError("CONNACK %r" % body)

    def close(self):
        self.sock.close()

    def _send(self, first, body):
        size, encoded = len(body), b""
        while True:
            byte, size = size % 128, size // 128
            encoded += bytes([byte | (0x80 if size else 0)])
            if not size:
                break
        self.sock.sendall(bytes([first]) + encoded + body)

    def _read(self, n):
        data = b""
        deadline = time.time() + TIMEOUT
        while len(data) < n:
            try:
                chunk = self.sock.recv(n - len(data))
            except socket.timeout:
                if time.time() > deadline:
                    raise
                continue
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def packet(self):
        """The next packet; socket.timeout only when none has started to come."""
        first = self.sock.recv(1)
        if not first:
            raise ConnectionError("connection closed")
        first = first[0]
        size, shift = 0, 0
        while True:
            byte = self._read(1)[0]
            size += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return first, self._read(size)

    def publish_retained(self, topic, payload):
        packet_id = self.next_id
        self.next_id += 1
        self._send(0x33, _mqtt_str(topic) + struct.pack("!H", packet_id) + payload.encode())
        kind, body = self.packet()
        return kind >> 4 == 4 and struct.unpack("!H", body[:2])[0] == packet_id

    def retained(self, topic_filter, quiet=1.0):
        """The retained messages under topic_filter: subscribe, collect until none came for
        `quiet` seconds (live publications, without the retain flag, do not count)."""
        self._send(0x82, struct.pack("!H", 1) + _mqtt_str(topic_filter) + b"\x00")
        messages = {}
        last = time.time()
        self.sock.settimeout(0.2)
        while time.time() - last < quiet:
            try:
                kind, body = self.packet()
            except socket.timeout:
                continue
            if kind >> 4 == 3 and kind & 1:
                size = struct.unpack("!H", body[:2])[0]
                messages[body[2:2 + size].decode()] = body[2 + size:].decode()
                last = time.time()
        return messages


def _mqtt_str(text):
    return struct.pack("!H", len(text)) + text.encode()


def http(method, url, body=None, timeout=TIMEOUT):
    request = urllib.request.Request(url, data=body.encode() if body is not None else None, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read().decode()


# ---------------------------------------------------------------- the servers

def _redis_write(address, port, i):
    client = Redis(address, port)
    try:
        return client("SET", "real:%d" % i, "value-%d" % i) == "OK" and client("RPUSH", "real:log", i) >= 1
    finally:
        client.close()


def _redis_read(address, port, written):
    client = Redis(address, port)
    try:
        keys = ["real:%d" % i for i in written]
        values = client("MGET", *keys) if keys else []
        log = {int(x) for x in client("LRANGE", "real:log", 0, -1)}
        info = dict(line.split(":", 1) for line in client("INFO", "server").splitlines() if ":" in line)
        return {"values": dict(zip(keys, values, strict=True)), "log": log, "run_id": info["run_id"]}
    finally:
        client.close()


def _redis_check(before, after, written):
    assert after["run_id"] == before["run_id"], "redis-server was started again, not restored"
    assert after["values"] == {"real:%d" % i: "value-%d" % i for i in written}
    assert set(written) <= after["log"]


def _memcached_write(address, port, i):
    client = Memcached(address, port)
    try:
        return client.set("real:%d" % i, "value-%d" % i)
    finally:
        client.close()


def _memcached_read(address, port, written):
    client = Memcached(address, port)
    try:
        keys = ["real:%d" % i for i in written]
        found = {}
        for start in range(0, len(keys), 100):
            found.update(client.get_many(keys[start:start + 100]))
        stats = client.stats()
        return {"values": found, "pid": stats["pid"], "uptime": int(stats["uptime"])}
    finally:
        client.close()


def _memcached_check(before, after, written):
    assert after["pid"] == before["pid"] and after["uptime"] >= before["uptime"], (before, after)
    assert after["values"] == {"real:%d" % i: "value-%d" % i for i in written}


def _nginx_write(address, port, i):
    return http("PUT", "http://%s:%d/uploads/%d.txt" % (address, port, i), "upload %d\n" % i)[0] in (201, 204)


def _nginx_read(address, port, written):
    uploads = {i: http("GET", "http://%s:%d/uploads/%d.txt" % (address, port, i))[1] for i in written}
    status = http("GET", "http://%s:%d/nginx_status" % (address, port))[1].split()
    # "Active connections: N server accepts handled requests A H R Reading: ..."
    return {"uploads": uploads, "requests": int(status[9])}


def _nginx_check(before, after, written):
    # stub_status's counters live in the shared memory of nginx's master and workers
    assert after["requests"] > before["requests"], (before["requests"], after["requests"])
    assert after["uploads"] == {i: "upload %d\n" % i for i in written}


def _mosquitto_write(address, port, i):
    client = Mqtt(address, port, "real-writer-%d" % i)
    try:
        return client.publish_retained("real/%d" % i, "value-%d" % i)
    finally:
        client.close()


def _mosquitto_read(address, port, written):
    client = Mqtt(address, port, "real-reader-%d" % time.time_ns())
    try:
        return {"retained": client.retained("real/#")}
    finally:
        client.close()


def _mosquitto_check(before, after, written):
    lost = [i for i in written if after["retained"].get("real/%d" % i) != "value-%d" % i]
    assert not lost, "retained messages lost: %s" % lost


def _notes_write(address, port, i):
    status, body = http("POST", "http://%s:%d/notes" % (address, port), "note %d" % i)
    return status == 201 and json.loads(body)["id"] >= 1


def _notes_read(address, port, written):
    return json.loads(http("GET", "http://%s:%d/notes" % (address, port))[1])


def _notes_check(before, after, written):
    assert (after["pid"], after["started"]) == (before["pid"], before["started"]), "gunicorn's worker restarted"
    assert set("note %d" % i for i in written) <= set(after["notes"])
    assert after["notes"][:len(before["notes"])] == before["notes"]


def _health(*cmd):
    return {"test": list(cmd), "interval": 5 * 10**9, "timeout": 3 * 10**9, "retries": 3,
            "start_period": 2 * 10**9}


# Each as `docker run -d --name NAME --restart unless-stopped --memory M -p HOST:PORT [--health-cmd ...] IMAGE [CMD]`.
SERVERS = {
    "real-redis": {
        "image": "redis", "port": 6379, "host_port": 26379, "mem_limit": "256m",
        "command": ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"],
        "healthcheck": _health("CMD", "redis-cli", "ping"),
        "write": _redis_write, "read": _redis_read, "check": _redis_check,
    },
    "real-nginx": {
        "image": "nginx", "port": 80, "host_port": 28080, "mem_limit": "128m",
        "write": _nginx_write, "read": _nginx_read, "check": _nginx_check,
    },
    "real-memcached": {
        "image": "memcached", "port": 11211, "host_port": 21211, "mem_limit": "128m",
        "command": ["memcached", "-u", "root", "-m", "64"],
        "write": _memcached_write, "read": _memcached_read, "check": _memcached_check,
    },
    "real-mosquitto": {
        "image": "mosquitto", "port": 1883, "host_port": 21883, "mem_limit": "128m",
        "write": _mosquitto_write, "read": _mosquitto_read, "check": _mosquitto_check,
    },
    "real-notes": {
        "image": "notes-app", "port": 8000, "host_port": 28000, "mem_limit": "256m",
        "healthcheck": _health("CMD", "python3", "-c",
                               "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"),
        "write": _notes_write, "read": _notes_read, "check": _notes_check,
    },
}


# ---------------------------------------------------------------- helpers

def docker_run(host, name, server):
    """`docker run -d` with the options people use."""
    client = docker.DockerClient(base_url=host["docker_host"], version="auto")
    options = {"detach": True, "name": name, "restart_policy": {"Name": "unless-stopped"},
               "mem_limit": server["mem_limit"], "ports": {"%d/tcp" % server["port"]: server["host_port"]}}
    if "healthcheck" in server:
        options["healthcheck"] = server["healthcheck"]
    return client.containers.run("%s/%s:latest" % (REGISTRY, server["image"]), server.get("command"), **options)


def processes(host, name):
    """'pid command line' of the container's main process and its descendants, as the container
    sees them (processes that `docker exec` started, like health checks, are not among them)."""
    script = ("import os\n"
              "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
              "parent = {p: int(open('/proc/%d/stat' % p).read().rsplit(')', 1)[1].split()[1]) for p in pids}\n"
              "for p in pids:\n"
              "    q = p\n"
              "    while q > 1:\n"
              "        q = parent.get(q, 0)\n"
              "    if q == 1:\n"
              "        print(p, open('/proc/%d/cmdline' % p, 'rb').read().replace(b'\\0', b' ').decode().strip())\n")
    api = engine(host)
    out = api.exec_start(api.exec_create(name, ["python3", "-c", script])).decode()
    return sorted(line for line in out.splitlines() if line.strip())


def wait_until(check, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if check():
                return
        except (OSError, ConnectionError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Writer(threading.Thread):
    """Writes 0, 1, 2... to whichever host answers, as a client that retries would; keeps the
    numbers the server acknowledged and the host that acknowledged each."""

    def __init__(self, lab, server, hosts):
        super().__init__(daemon=True)
        self.lab, self.server, self.hosts = lab, server, hosts
        self.acked = {}
        self.errors = 0
        self.stop = threading.Event()

    def run(self):
        i = 0
        while not self.stop.is_set():
            for host_name in self.hosts:
                try:
                    if self.server["write"](self.lab[host_name]["address"], self.server["host_port"], i):
                        self.acked[i] = host_name
                        break
                except (OSError, ConnectionError, urllib.error.URLError, ValueError):
                    self.errors += 1
            i += 1
            time.sleep(0.02)

    def on(self, host_name):
        return sum(1 for h in list(self.acked.values()) if h == host_name)


def migrate(edges, name, destination):
    before = set(os.listdir(REPORTS)) if os.path.isdir(REPORTS) else set()
    t0 = time.time()
    proc = on_systems(edges, "migrate.yml", "-e", "service=%s" % name, "-e", "destination=%s" % destination,
                      check=False)
    elapsed = time.time() - t0
    new = sorted(set(os.listdir(REPORTS)) - before) if os.path.isdir(REPORTS) else []
    report = latest_report(name) if any(n.endswith("-%s.json" % name) for n in new) else {}
    assert proc.returncode == 0 and report.get("outcome") == "migrated", (
        "migration of %s failed (rc=%d), report %s: outcome %s, cause %s\n%s\n%s" % (
            name, proc.returncode, new, report.get("outcome"), report.get("cause"),
            proc.stdout[-6000:], proc.stderr[-2000:]))
    print("%s: migrated to %s, downtime %.2f s, playbook %.1f s, strategy %s" % (
        name, destination, report["downtime_s"], elapsed, report.get("strategy")))
    return report


# ---------------------------------------------------------------- the test

@pytest.fixture(scope="module")
def lab():
    """The system edges (the tests here use no other)."""
    return system_edges()


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_real_server_keeps_what_its_client_wrote(lab, name):
    server = SERVERS[name]
    src_name, dst_name = system_edge(lab, "bookworm"), system_edge(lab, "trixie")
    source, destination = lab[src_name], lab[dst_name]
    port = server["host_port"]
    remove_everywhere(lab, name)
    writer = Writer(lab, server, (src_name, dst_name))
    try:
        first = docker_run(source, name, server)
        wait_until(lambda: server["write"](source["address"], port, -1), 30, "%s to answer on %s" % (name, src_name))
        if "healthcheck" in server:
            wait_until(lambda: engine(source).inspect_container(name)["State"]["Health"]["Status"] == "healthy",
                       30, "%s to be healthy" % name)
        procs = processes(source, name)
        assert procs and procs[0].startswith("1 "), procs

        writer.start()
        wait_until(lambda: writer.on(src_name) >= 20, 30, "20 writes to %s on %s" % (name, src_name))
        before = server["read"](source["address"], port, sorted(writer.acked))
        on_source = writer.on(src_name)
        migrate(lab, name, dst_name)
        assert writer.on(src_name) > on_source, "the client wrote to the source while the migration ran"
        # the client goes on writing, now to the destination
        wait_until(lambda: writer.on(dst_name) >= 5, 30, "5 writes to %s on %s" % (name, dst_name))
        writer.stop.set()
        writer.join(10)

        assert running_on(lab, name) == [dst_name]
        written = sorted(writer.acked)
        after = server["read"](destination["address"], port, written)
        server["check"](before, after, written)
        assert processes(destination, name) == procs, "the same processes (pids, command lines) go on"
        moved = engine(destination).inspect_container(name)
        assert moved["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert moved["HostConfig"]["Memory"] == int(server["mem_limit"][:-1]) << 20
        assert moved["HostConfig"]["PortBindings"]["%d/tcp" % server["port"]][0]["HostPort"] == str(port)
        if "healthcheck" in server:
            wait_until(lambda: engine(destination).inspect_container(name)["State"]["Health"]["Status"] == "healthy",
                       30, "%s to be healthy on %s" % (name, dst_name))
        # other migrations may be under way in the lab: only this service's leftovers count
        mine = ["%s/%s-" % (host["checkpoint_dir"], name) for host in lab.values()]
        mine += ["/containers/%s/checkpoints" % cid for cid in (first.id, moved["Id"])]
        assert [p for p in memory_images_left(lab) if any(m in p for m in mine)] == []
    finally:
        writer.stop.set()
        remove_everywhere(lab, name)
