"""Host-to-host transfer of a directory: rsync over SSH, pushed by the host that has the
files straight to the one that needs them (the controller never relays memory images)."""

import hashlib
import os
import re
import shlex
import tempfile
import zlib

from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_private_dir import private_work_dir

SSH_CONNECT_TIMEOUT = 10
# What another edge's key may run on an edge: the verbs of its forced command
# (roles/edge_ssh_trust/files/edge_migrate_ssh.py), with plain path arguments.
RECEIVE = "edge-migrate-receive"
CPUINFO_CHECK = "edge-migrate-cpuinfo-check"
REMOVE = "edge-migrate-remove"
# How the forced command starts its message when it refuses a command.
REFUSED = "edge-migrate-ssh: refused"
# A shared connection outlives its last use by this long (the warm-up opens it, the freeze reuses it).
SSH_CONTROL_PERSIST = 30
# Longer socket paths do not fit a sockaddr_un; such a host simply opens a new connection each time.
SSH_CONTROL_PATH_MAX = 100
# Where root's shared connections have their sockets (other users: the temporary directory).
SSH_CONTROL_DIR = "/run/edge-migrate-ssh"

# Module options shared by the modules that push to another host.
SYNC_ARGS = dict(
    dest_host=dict(type="str", required=True),
    dest_dir=dict(type="path", required=True),
    dest_user=dict(type="str", default="root"),
    ssh_key=dict(type="path", no_log=False),
    known_hosts=dict(type="path"),
    ssh_port=dict(type="int"),
    timeout=dict(type="int", default=60),
    compress=dict(type="bool", default=False),
    compress_choice=dict(type="str", choices=["zstd", "zlib"], default="zstd"),
    ssh_control_path=dict(type="path"),
)


def push_options(params):
    return dict(dest_user=params["dest_user"], ssh_key=params["ssh_key"], known_hosts=params["known_hosts"],
                port=params["ssh_port"], timeout=params["timeout"], compress=params["compress"],
                compress_choice=params["compress_choice"], control_path=params["ssh_control_path"])


def compressed_ratio(directory, chunks=16, chunk_size=256 << 10):
    """Deflated-to-original size of a sample of the largest file under directory: chunks spread
    over the file, so a zeroed tail or a random head do not decide alone. 1.0 for no data."""
    largest, size = None, 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and os.path.getsize(path) > size:
                largest, size = path, os.path.getsize(path)
    if not largest:
        return 1.0
    sampled = packed = 0
    with open(largest, "rb") as handle:
        for index in range(chunks):
            handle.seek(max(0, size - chunk_size) * index // max(1, chunks - 1))
            chunk = handle.read(chunk_size)
            sampled += len(chunk)
            packed += len(zlib.compress(chunk, 1))
    return round(packed / sampled, 4) if sampled else 1.0


# For memory images pushed over an older copy of themselves (warm-up rounds, the rsync
# strategy's final push): rsync skips a file whose size and modification time (in whole
# seconds) match, and two dumps within one second have the same of both. Every file of a
# new dump changed anyway, so none is skipped for nothing.
OVER_AN_OLDER_COPY = ("--ignore-times",)


class TransferError(EdgeError):
    """A transfer failed."""


def control_dir():
    """The private directory of this user's shared connections' sockets."""
    if os.geteuid() == 0 and os.path.isdir(os.path.dirname(SSH_CONTROL_DIR)):
        return SSH_CONTROL_DIR
    return os.path.join(tempfile.gettempdir(), "edge-migrate-ssh-%d" % os.geteuid())


def control_socket(control_path):
    """The socket of the shared connection that control_path names (the callers name it after
    the migration's directory), or None when it cannot have one. The socket is not control_path
    itself: other edges may write in the migration's directory, and ssh connects to, or gives
    up multiplexing for, whatever it finds at ControlPath. It lies in a directory only this user
    may write to, named by a digest of control_path."""
    if not control_path:
        return None
    try:
        directory = private_work_dir(control_dir())
    except (EdgeError, OSError):
        return None
    socket = os.path.join(directory, hashlib.sha256(os.path.abspath(control_path).encode()).hexdigest()[:24])
    return socket if len(socket) <= SSH_CONTROL_PATH_MAX else None


def ssh_command(ssh_key=None, known_hosts=None, port=None, control_path=None):
    """The ssh command rsync runs: key-based, non-interactive, host key checked; with
    control_path, one connection is shared by the transfers of a migration (an SSH handshake
    costs about 0.25 s, which the frozen window should not pay)."""
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=%d" % SSH_CONNECT_TIMEOUT, "-o", "ServerAliveInterval=5",
            "-o", "ServerAliveCountMax=3"]
    if ssh_key:
        argv += ["-i", ssh_key, "-o", "IdentitiesOnly=yes"]
    if known_hosts:
        argv += ["-o", "UserKnownHostsFile=%s" % known_hosts]
    if port:
        argv += ["-p", str(port)]
    socket = control_socket(control_path)
    if socket:
        argv += ["-o", "ControlMaster=auto", "-o", "ControlPath=%s" % socket,
                 "-o", "ControlPersist=%d" % SSH_CONTROL_PERSIST]
    return " ".join(shlex.quote(a) for a in argv)


def rsync_command(src, dest_host, dest_dir, dest_user="root", ssh_key=None, known_hosts=None,
                  port=None, timeout=60, compress=False, whole_file=False, delete=True, compress_choice="zstd",
                  inplace=True, done_marker=None,
                  extra_args=(), control_path=None):
    """argv of an rsync that makes dest_host:dest_dir a copy of src (a directory); extra_args
    are more rsync options (e.g. what a container's filesystem needs, module_utils/edge_fs).
    done_marker: a file the destination creates once the transfer has been received whole,
    the signal a waiter there (edge_restore wait_for_file) acts on."""
    # rsync appends its server arguments to --rsync-path. The destination's forced command
    # (roles/edge_ssh_trust) creates the directory private (memory images hold secrets),
    # runs rsync's server and then creates the marker, in the same SSH session (a new one
    # costs 0.2 s); the words are plain arguments, no shell reads them.
    remote = [RECEIVE, "--mkdir", dest_dir] + (["--done", done_marker] if done_marker else [])
    argv = ["rsync", "-a", "--stats", "--timeout=%d" % timeout,
            "-e", ssh_command(ssh_key, known_hosts, port, control_path),
            "--rsync-path=%s" % " ".join(shlex.quote(word) for word in remote)]
    if delete:
        argv.append("--delete")
    if whole_file:
        argv.append("--whole-file")
    else:
        # In place, rsync can only reuse data at or after the position it writes: a memory
        # image whose pages moved up (a new mapping below them) would be sent whole.
        argv += ["--no-whole-file"] + (["--inplace"] if inplace else [])
    if compress:
        argv += ["--compress", "--compress-choice=%s" % compress_choice]
    argv += list(extra_args)
    argv += [src.rstrip("/") + "/", "%s@%s:%s/" % (dest_user, dest_host, dest_dir.rstrip("/"))]
    return argv


def remote_command(verb, path):
    """The command line of one of the destination's fixed verbs (CPUINFO_CHECK, REMOVE) on path."""
    return "%s %s" % (verb, shlex.quote(path))


def run_remote(run, dest_host, verb, path, **options):
    """Run one of the destination's fixed verbs over SSH; returns (rc, stdout, stderr, argv)."""
    return ssh_run(run, dest_host, remote_command(verb, path), **options)


def ssh_run(run, dest_host, command, dest_user="root", ssh_key=None, known_hosts=None, port=None, control_path=None,
            **_ignored):
    """Send command over SSH as rsync would (options as push_options gives them); returns
    (rc, stdout, stderr, argv)."""
    argv = shlex.split(ssh_command(ssh_key, known_hosts, port, control_path))
    argv += ["%s@%s" % (dest_user, dest_host), command]
    rc, out, err = run(argv)
    return rc, out, err, argv


def close_shared_connection(run, dest_host, dest_user="root", ssh_key=None, known_hosts=None, port=None,
                            control_path=None, **_ignored):
    """End the shared connection (ssh -O exit) that commands given control_path opened; nothing
    when there is none. Returns ssh's exit code."""
    socket = control_socket(control_path)
    if not socket or not os.path.exists(socket):
        return 0
    argv = shlex.split(ssh_command(ssh_key, known_hosts, port, control_path))
    return run(argv + ["-O", "exit", "%s@%s" % (dest_user, dest_host)])[0]


# A line of rsync --itemize-changes: "YXcstpoguax name" (an item it created, sent or changed
# the attributes of), or "*deleting name".
ITEMIZED = re.compile(r"^(?:\*deleting +|[<>ch.][fdLDS][.+ ?a-zA-Z]{9} )", re.MULTILINE)
ITEMIZE_ARGS = ("--itemize-changes",)


def parse_stats(stdout):
    """Byte counts from rsync --stats output, and how many items rsync changed (the lines of
    --itemize-changes, 0 without it)."""
    def number(label):
        match = re.search(r"^%s:\s*([\d,.]+)" % re.escape(label), stdout or "", re.MULTILINE)
        return int(match.group(1).replace(",", "").replace(".", "")) if match else 0
    return {
        "bytes_sent": number("Total bytes sent"),
        "bytes_received": number("Total bytes received"),
        "files_transferred": number("Number of regular files transferred"),
        "total_file_size": number("Total file size"),
        "literal_data": number("Literal data"),
        "items_changed": len(ITEMIZED.findall(stdout or "")),
    }


def push(run, src, dest_host, dest_dir, **options):
    argv = rsync_command(src, dest_host, dest_dir, **options)
    rc, out, err = run(argv)
    if rc != 0:
        raise TransferError("rsync from %s to %s:%s failed (rc=%s): %s"
                            % (src, dest_host, dest_dir, rc, _last_line(err)),
                            cmd=" ".join(shlex.quote(a) for a in argv), rc=rc, stderr=err)
    stats = parse_stats(out)
    stats["cmd"] = " ".join(shlex.quote(a) for a in argv)
    return stats


def _last_line(text):
    """rsync's last error line, or the destination's refusal (rsync ends with its own rc 126 line)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    refused = [line for line in lines if REFUSED in line]
    return (refused or lines or ["no error output"])[-1]
