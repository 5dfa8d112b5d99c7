#!/usr/bin/python3 -IS
"""edge-migrate's forced SSH command: what another edge's key may run on this edge.

authorized_keys gives every other edge's key `restrict,from="...",command="THIS CONFIG"`;
sshd then runs this program instead of what the client asked for, which it finds in
SSH_ORIGINAL_COMMAND. That command is split with shlex (no shell ever sees it) and must be
one of:

  rsync --server [options] . DIR                    rsync receiving into DIR
  edge-migrate-receive [--mkdir DIR] [--done FILE] --server [options] . DIR
                                                    the same, DIR created 0700 first and
                                                    FILE created once everything arrived
  edge-migrate-cpuinfo-check DIR                    criu cpuinfo check -D DIR, then DIR removed
  edge-migrate-remove DIR                           rm -rf DIR

DIR of a receive lies below one of the config's receive_roots (the migration workdir, the
engine's overlay2 and volumes directories); everything else below a workdir_roots entry. Paths
are absolute, without `.` or `..`, and are opened one component at a time without following
symlinks, so nothing received earlier can lead a later command outside its root. rsync's
options are checked against an allow-list: it never sends (no --sender), never reads its
arguments from the connection (no --protect-args), and writes nothing outside DIR (no
--log-file, --backup-dir, --temp-dir, --partial-dir, --link-dest/--copy-dest/--compare-dest).
The config is a JSON file owned by root: {"workdir_roots": [...], "receive_roots": [...]}."""

import errno
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import syslog

RECEIVE = "edge-migrate-receive"
CPUINFO_CHECK = "edge-migrate-cpuinfo-check"
REMOVE = "edge-migrate-remove"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# rsync's server-side short options we allow: those `-a --hard-links --acls --xattrs
# --whole-file --compress` produce, and a few that change nothing outside DIR.
SHORT_FLAGS = set("logDtprHAXWzvcSIiuqEOJ")
NUMBER = re.compile(r"^[0-9]{1,12}$")
LONG_FLAGS = {"--delete", "--delete-before", "--delete-during", "--delete-delay", "--delete-after", "--inplace",
              "--stats", "--numeric-ids", "--whole-file", "--no-whole-file", "--no-W", "--hard-links", "--acls",
              "--xattrs", "--sparse", "--checksum", "--ignore-times", "--partial", "--safe-links", "--munge-links",
              "--fsync", "--size-only", "--force", "--old-compress", "--new-compress"}
LONG_VALUES = {"--timeout": NUMBER, "--contimeout": NUMBER, "--block-size": NUMBER, "--compress-level": NUMBER,
               "--compress-choice": re.compile(r"^(zstd|lz4|zlibx|zlib|none)$"),
               "--checksum-choice": re.compile(r"^[a-z0-9,]{1,40}$"), "--bwlimit": re.compile(r"^[0-9.]{1,12}[KMG]?$"),
               # what --itemize-changes asks of the receiver: the change of each item, on the client's stream
               "--log-format": re.compile(r"^%i$")}
# --modify-window=-N as rsync passes it to the server (-@-N; a value >= 0 goes as the long
# option, which is not allowed); -1 compares nanoseconds.
MODIFY_WINDOW = re.compile(r"^-[0-9]{1,6}$")
# The compatibility flags a client sends after -e in the server's option bundle (not a shell).
COMPAT = re.compile(r"^[.A-Za-z0-9]*$")


class Refused(Exception):
    """The command is not one of the migration's transfers."""


def load_config(path):
    info = os.stat(path)
    if os.geteuid() == 0 and (info.st_uid != 0 or info.st_mode & 0o022):
        raise Refused("%s must be owned by root and writable by root only" % path)
    with open(path) as handle:
        config = json.load(handle)
    roots = {key: [os.path.normpath(root) for root in config.get(key) or []]
             for key in ("workdir_roots", "receive_roots")}
    for root in roots["workdir_roots"] + roots["receive_roots"]:
        if not root.startswith("/") or root == "/":
            raise Refused("%s: %r is not a root a transfer may write under" % (path, root))
    roots["receive_roots"] = roots["workdir_roots"] + roots["receive_roots"]
    return roots


def below(path, roots, what):
    """(root, [components below it]) for an absolute path strictly below one of roots."""
    if not path.startswith("/") or "\0" in path:
        raise Refused("%s %r is not an absolute path" % (what, path))
    parts = [part for part in path.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise Refused("%s %r has a . or .. component" % (what, path))
    for root in roots:
        for form in dict.fromkeys((root, os.path.realpath(root))):
            prefix = [part for part in form.split("/") if part]
            if len(parts) > len(prefix) and parts[:len(prefix)] == prefix:
                return root, parts[len(prefix):]
    raise Refused("%s %s is not below %s" % (what, path, " or ".join(roots)))


def parse_rsync(args):
    """The rsync server arguments of a receive, checked; returns (options, destination)."""
    if not args or args[0] != "--server":
        raise Refused("only rsync's server side may run (--server first)")
    options, rest = [], args[1:]
    while rest and rest[0] != ".":
        option = rest.pop(0)
        if option.startswith("--"):
            name, _eq, value = option.partition("=")
            if name in LONG_FLAGS and not _eq:
                pass
            elif name in LONG_VALUES and _eq and LONG_VALUES[name].fullmatch(value):
                pass
            else:
                raise Refused("rsync option %s is not allowed here" % option)
        elif option.startswith("-") and len(option) > 1:
            _short_bundle(option)
        else:
            raise Refused("unexpected rsync argument %r" % option)
        options.append(option)
    if len(rest) != 2 or rest[0] != ".":
        raise Refused("rsync must receive into exactly one directory (. DIR)")
    return options, rest[1]


def _short_bundle(option):
    letters = option[1:]
    for index, letter in enumerate(letters):
        if letter == "e":
            if not COMPAT.fullmatch(letters[index + 1:]) or index + 1 == len(letters):
                raise Refused("rsync option %s is not allowed here (-e)" % option)
            return
        if letter == "B":
            if not NUMBER.fullmatch(letters[index + 1:]):
                raise Refused("rsync option %s is not allowed here" % option)
            return
        if letter == "@":  # --modify-window, which only changes how times are compared
            if not MODIFY_WINDOW.fullmatch(letters[index + 1:]):
                raise Refused("rsync option %s is not allowed here" % option)
            return
        if letter not in SHORT_FLAGS:
            raise Refused("rsync option -%s (in %s) is not allowed here" % (letter, option))


def parse(command, config):
    """What to do for SSH_ORIGINAL_COMMAND: a dict with the verb and its checked arguments."""
    if not command:
        raise Refused("this key only runs edge-migrate's transfers, not a shell")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise Refused("cannot parse the command: %s" % exc)
    if not argv:
        raise Refused("empty command")
    verb, args = argv[0], argv[1:]
    if verb in ("rsync", RECEIVE):
        action = {"verb": "receive", "mkdir": None, "done": None}
        while verb == RECEIVE and args and args[0] in ("--mkdir", "--done"):
            if len(args) < 2:
                raise Refused("%s needs a path" % args[0])
            key, value, args = args[0][2:], args[1], args[2:]
            roots = config["receive_roots"] if key == "mkdir" else config["workdir_roots"]
            action[key] = below(value, roots, key)
        action["rsync"], dest = parse_rsync(args)
        action["dest"] = below(dest, config["receive_roots"], "destination")
        action["into_dir"] = dest.endswith("/")
        return action
    if verb in (CPUINFO_CHECK, REMOVE):
        if len(args) != 1:
            raise Refused("%s takes one directory" % verb)
        return {"verb": "cpuinfo" if verb == CPUINFO_CHECK else "remove",
                "dir": below(args[0], config["workdir_roots"], "directory")}
    raise Refused("%s is not one of edge-migrate's transfers" % verb)


def open_dir(root, parts, create=0, mode=0o700):
    """A file descriptor of root/parts, walked without following symlinks; the last `create`
    missing components are made (mode)."""
    fd = os.open(os.path.realpath(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, part in enumerate(parts):
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                child = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                if index < len(parts) - create:
                    raise Refused("%s does not exist" % os.path.join(root, *parts[:index + 1]))
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                except FileExistsError:
                    pass
                child = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise Refused("%s is a symlink or not a directory" % os.path.join(root, *parts[:index + 1]))
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def remove_below(root, parts):
    parent = open_dir(root, parts[:-1])
    try:
        try:
            info = os.lstat(parts[-1], dir_fd=parent)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            os.fchdir(parent)
            shutil.rmtree(parts[-1])
        else:
            os.unlink(parts[-1], dir_fd=parent)
    finally:
        os.close(parent)


def receive_target(root, parts, into_dir):
    """(directory fd to work in, rsync's destination there). rsync writes into "." of a
    directory opened here, or a plain name in it (a file, or a directory rsync makes), so a
    path swapped for a symlink after these checks cannot redirect it; DIR/ is made 0700."""
    if into_dir:
        return open_dir(root, parts, create=1), "."
    parent = open_dir(root, parts[:-1])
    try:
        info = os.lstat(parts[-1], dir_fd=parent)
    except FileNotFoundError:
        return parent, "./" + parts[-1]
    if stat.S_ISDIR(info.st_mode):
        os.close(parent)
        return open_dir(root, parts), "."
    if stat.S_ISREG(info.st_mode):
        return parent, "./" + parts[-1]
    raise Refused("%s is a symlink or a special file" % os.path.join(root, *parts))


def touch_below(root, parts):
    parent = open_dir(root, parts[:-1])
    try:
        fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        os.utime(fd)
        os.close(fd)
    finally:
        os.close(parent)


def run(action):
    env = {"PATH": SAFE_PATH, "LC_ALL": "C"}
    if action["verb"] == "receive":
        if action["mkdir"]:
            os.close(open_dir(*action["mkdir"], create=len(action["mkdir"][1])))
        fd, dest = receive_target(*action["dest"], action["into_dir"])
        os.fchdir(fd)
        argv = ["rsync", "--server"] + action["rsync"] + [".", dest]
        if not action["done"]:
            os.execvpe("rsync", argv, env)
        rc = subprocess.call(argv, env=env)
        if rc == 0:
            touch_below(*action["done"])
        return rc
    root, parts = action["dir"]
    if action["verb"] == "remove":
        remove_below(root, parts)
        return 0
    fd = open_dir(root, parts)
    os.fchdir(fd)
    try:
        rc = subprocess.call(["criu", "cpuinfo", "check", "-D", "."], env=env)
    finally:
        os.chdir("/")
        remove_below(root, parts)
    return rc


def main(argv):
    command = os.environ.get("SSH_ORIGINAL_COMMAND")
    try:
        if len(argv) != 2:
            raise Refused("usage: %s CONFIG (as the command= of an authorized key)" % argv[0])
        return run(parse(command, load_config(argv[1])))
    except (Refused, OSError, ValueError) as exc:
        sys.stderr.write("edge-migrate-ssh: refused: %s\n" % exc)
        syslog.syslog(syslog.LOG_AUTH | syslog.LOG_WARNING, "refused %r from %s: %s" % (
            (command or "")[:200], os.environ.get("SSH_CONNECTION", "?").split(" ")[0], exc))
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv))
