"""Directories only this user may write to, for files a root process creates or follows by
name (CRIU's logs, SSH's control sockets): never in a migration's directory, where other edges
may write (module_utils/edge_transfer RECEIVE)."""

import os
import stat

from ansible.module_utils.edge_errors import EdgeError


def private_work_dir(path):
    """path as a directory only this user may write to: created 0700, or an earlier one of
    ours (a real directory, ours, 0700), else refused."""
    try:
        os.mkdir(path, 0o700)
        return path
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise EdgeError("%s is not a private directory of this user (a symlink, another user's, or open to "
                        "others): refused" % path, cmd="stat %s" % path)
    return path


def write_own_file(path, text):
    """Write text to path as a new file of this user's (0600), whatever stood there: for files
    this host writes in a migration's directory, where other edges may plant a symlink (root
    would write through it) or a fifo (the open would block), both removed, never opened."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def replace_own_file(path, text):
    """Replace path with text, whole or not at all (a reader never sees half of it): written as
    write_own_file does to a file of this process's beside it, then renamed over path."""
    partial = "%s.%d.tmp" % (path, os.getpid())
    write_own_file(partial, text)
    os.replace(partial, path)
