"""A `tar` for CRIU's dumps that does not gzip a large tmpfs.

CRIU keeps the files of each tmpfs mount of a container (its /dev, /dev/shm, --tmpfs mounts)
as the output of `tar --create --gzip ... --directory /proc/self/fd/0 .` (criu/filesystems.c),
while the container is frozen. gzip takes seconds for tens of MB of incompressible data (2.5 s
for 50 MB here), and its output differs from the first changed byte on, so the delta of the
next dump is the rest of the archive. The `tar` written here, found first on the dump's PATH,
hands a tmpfs that holds at least `threshold_kb` to a compressor writing the same archive as
stored (level 0) deflate blocks: a gzip stream that CRIU's restore (`tar --extract --gzip`)
reads like any other. Any other call, and a small tmpfs, go to the system's tar unchanged."""

import os
import shlex
import shutil
import sys

DEFAULT_THRESHOLD_KB = 4096

_SHIM = """#!/bin/sh
tar=%(tar)s
directory=
previous=
for arg do
    [ "$previous" = --directory ] && directory=$arg
    previous=$arg
done
case " $* " in
*" --create "*)
    case " $* " in
    *" --gzip "*)
        kb=$(du -skxD -- "$directory" 2>/dev/null)
        kb=${kb%%%%[!0-9]*}
        if [ -n "$directory" ] && [ "${kb:-0}" -ge %(threshold_kb)d ]; then
            exec %(python)s -I -S %(compressor)s "$tar" "$@" 9<&0 </dev/null
        fi
        ;;
    esac
    ;;
esac
exec "$tar" "$@"
"""

_COMPRESSOR = """import subprocess
import sys
import zlib

# The tmpfs comes as fd 9 (Python refuses a directory as its stdin); tar gets it back as its own.
args = [sys.argv[1]] + [arg for arg in sys.argv[2:] if arg != "--gzip"]
tar = subprocess.Popen(args, stdin=9, stdout=subprocess.PIPE)
stored = zlib.compressobj(0, zlib.DEFLATED, 31)
out = sys.stdout.buffer
try:
    while True:
        chunk = tar.stdout.read(1 << 20)
        if not chunk:
            break
        out.write(stored.compress(chunk))
    out.write(stored.flush())
    out.flush()
except BaseException:
    tar.kill()
    tar.wait()
    raise
sys.exit(tar.wait())
"""


def dump_path(directory, threshold_kb=DEFAULT_THRESHOLD_KB, path=None):
    """Write this `tar` into directory (created 0700, inside a private directory of the dump's
    own: never under the migration's directory, where other edges may write, for a `tar`
    put there would run as root) and return the PATH to give the dump, directory first; None
    when this host's tar or sh is not found (CRIU then runs the system's tar, as always)."""
    path = path if path is not None else os.environ.get("PATH", os.defpath)
    tar = shutil.which("tar", path=path)
    if tar is None or shutil.which("sh", path=path) is None:
        return None
    os.makedirs(directory, mode=0o700)
    compressor = os.path.join(directory, "stored-gzip.py")
    with open(compressor, "w") as handle:
        handle.write(_COMPRESSOR)
    shim = os.path.join(directory, "tar")
    with open(shim, "w") as handle:
        handle.write(_SHIM % dict(tar=shlex.quote(tar), python=shlex.quote(sys.executable),
                                  compressor=shlex.quote(compressor), threshold_kb=threshold_kb))
    os.chmod(shim, 0o700)
    return directory + os.pathsep + path
