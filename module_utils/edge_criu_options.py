"""CRIU options chosen per container from what it holds, for the dump and for the restore.

runc passes the same /etc/criu/runc.conf to every dump and restore, and some options are
only valid on one side (mntns-compat-mode: restore only). The restore-only options of one
restore travel in a file inside the checkpoint that dockerd hands to the OCI runtime; the
edge-migrate runtime (roles/edge_runtime) points CRIU at it (CRIU_CONFIG_FILE)."""

import os
import stat

RESTORE_CONF = "edge-migrate-criu.conf"
# The dump's own configuration file (in runc's work directory), for options chosen per dump.
DUMP_CONF = "edge-migrate-dump.conf"
# CRIU's --ghost-limit when not told: the largest file without a name it dumps.
CRIU_GHOST_LIMIT = 1 << 20
DELETED = " (deleted)"
# What a restore may be asked for; anything else in a request is refused.
RESTORE_OPTIONS = ("mntns-compat-mode", "file-locks", "leave-stopped", "lazy-pages")
# CRIU's image of the dumped file locks; a few bytes of magic when there were none.
FILE_LOCKS_IMAGE = "filelocks.img"
EMPTY_IMAGE_BYTES = 8


def process_tree(pid, proc="/proc"):
    """pid and all its descendants (from the parent pids in /proc/*/stat)."""
    children = {}
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "stat")) as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [int(pid)]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, []))
    return found


def lock_holders(locks_text):
    """Pids that hold a POSIX, FLOCK or OFD lock, from the text of /proc/locks."""
    holders = set()
    for line in locks_text.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter, listed under the lock it waits for
            continue
        if len(fields) >= 5 and fields[4].lstrip("-").isdigit():
            holders.add(int(fields[4]))
    return holders


def holds_file_locks(pid, proc="/proc", members=None):
    """Whether the process tree under pid holds file locks (CRIU then needs --file-locks);
    members: that tree, when the caller has it already."""
    if not pid:
        return False
    try:
        with open(os.path.join(proc, "locks")) as handle:
            holders = lock_holders(handle.read())
    except OSError:
        return False
    return bool(holders & set(_members(pid, proc, members)))


def dumped_file_locks(images_dir):
    """Whether a checkpoint holds file locks (then its restore needs --file-locks too)."""
    try:
        return os.path.getsize(os.path.join(images_dir, FILE_LOCKS_IMAGE)) > EMPTY_IMAGE_BYTES
    except OSError:
        return False


def restore_options(host_config, images_dir, trial=False):
    """The restore-only CRIU options this container's checkpoint needs."""
    options = []
    # CRIU's mount-v2 engine cannot restore the file bind mount of docker-init
    # ("mnt-v2: Can't remount ... with MS_PRIVATE"); the compat engine can.
    if (host_config or {}).get("Init"):
        options.append("mntns-compat-mode")
    if dumped_file_locks(images_dir):
        options.append("file-locks")
    if trial:
        options.append("leave-stopped")
    return options


def write_restore_conf(checkpoint_dir, options):
    """Write the restore's options into the checkpoint handed to the runtime (none: no file)."""
    unknown = [option for option in options if option not in RESTORE_OPTIONS]
    if unknown:
        raise ValueError("unsupported CRIU restore options: %s" % ", ".join(unknown))
    path = os.path.join(checkpoint_dir, RESTORE_CONF)
    if not options:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(option + "\n" for option in options))
    return path


def criu_errors(log_path, limit=3):
    """CRIU's first `Error (...)` lines in a dump or restore log (what went wrong), else the
    end of the log; '' without a log. The rlimit warning of hosts without CAP_SYS_RESOURCE
    is not the reason for anything."""
    try:
        with open(log_path, errors="replace") as handle:
            lines = [line.strip() for line in handle]
    except OSError:
        return ""
    errors = [line for line in lines if "Error (" in line and "RLIMIT_NOFILE" not in line]
    return " | ".join(errors[:limit] if errors else lines[-limit:])


CAP_SYS_RESOURCE = 24


def has_cap_sys_resource(proc="/proc"):
    """Whether this process (root on the edge) has CAP_SYS_RESOURCE in its effective set:
    without it, CRIU cannot read the rlimits of a process of another uid ("Can't get rlimit")."""
    try:
        with open(os.path.join(proc, "self", "status")) as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _members(pid, proc, members):
    """members (the tree under pid a caller already walked), else that tree."""
    if members is not None:
        return members
    return process_tree(pid, proc) if pid else ()


def largest_ghost_file(pid, proc="/proc", members=None):
    """Bytes of the largest regular file without a name left (unlinked while open) that the
    processes under pid hold open or mapped, 0 if none. CRIU dumps such a file's content with the
    images ("ghost file") and refuses one larger than its ghost limit: "Can't dump ghost file
    ... increase limit". Temporary files are often unlinked while in use (Python's
    TemporaryFile, nginx's request bodies)."""
    largest = 0
    for member in _members(pid, proc, members):
        for path, target in _open_files(proc, member, ("fd", "map_files")):
            if not target or not target.startswith("/") or not target.endswith(DELETED):
                continue
            try:
                info = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                largest = max(largest, info.st_size)
    return largest


def ghost_limit(largest):
    """The --ghost-limit a dump needs for ghost files of up to `largest` bytes, with room for
    them to grow until CRIU reads them; None when CRIU's own limit is enough."""
    if largest <= CRIU_GHOST_LIMIT // 2:
        return None
    return largest + max(largest, 64 << 20)


def write_dump_conf(work_dir, ghost_limit_bytes):
    """The per-dump CRIU configuration file (for CRIU_CONFIG_FILE) in runc's work directory."""
    path = os.path.join(work_dir, DUMP_CONF)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        handle.write("ghost-limit %d\n" % ghost_limit_bytes)
    return path


def process_uids(pid, proc="/proc", members=None):
    """The real uids of the processes under pid (as the host numbers them); members: that
    tree, when the caller has it already."""
    uids = set()
    for member in _members(pid, proc, members):
        try:
            with open(os.path.join(proc, str(member), "status")) as handle:
                for line in handle:
                    if line.startswith("Uid:"):
                        uids.add(int(line.split()[1]))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return sorted(uids)


IO_URING = "anon_inode:[io_uring]"


def io_uring_holders(pid, proc="/proc", members=None):
    """The processes under pid ("pid (command)") that hold an io_uring instance: CRIU cannot
    dump one (its dump stops with "Unknown shit 600 (anon_inode:[io_uring])")."""
    holders = []
    for member in sorted(_members(pid, proc, members)):
        if any(target == IO_URING for _path, target in _open_files(proc, member, ("fd",))):
            holders.append("%d (%s)" % (member, _command(proc, member)))
    return holders


def _open_files(proc, pid, kinds):
    """(path, what it links to) of each entry of /proc/PID/<kind> (fd, map_files) of a process;
    none for a process or directory gone meanwhile."""
    for kind in kinds:
        directory = os.path.join(proc, str(pid), kind)
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            path = os.path.join(directory, entry)
            yield path, _link(path)


def _link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def _command(proc, pid):
    try:
        with open(os.path.join(proc, str(pid), "comm")) as handle:
            return handle.read().strip()
    except OSError:
        return "?"
