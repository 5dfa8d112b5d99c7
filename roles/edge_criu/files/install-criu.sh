#!/usr/bin/env bash
# Makes `criu` on PATH a CRIU that works on this kernel and prints which one it is.
# Debian 12's CRIU 3.17.1 fails `criu check` on kernel 6.18 (vDSO bounds) and 4.1.1 cannot
# dump an AF_INET socket on kernels >= 6.16 (criu#2705/#2718); 4.2.1 from sid works.
# The newer CRIU is unpacked with its own libraries under PREFIX, so the system's libc
# is left alone, and linked as /usr/local/sbin/criu (ahead of /usr/sbin on PATH).
# Used by the lab (lab/install-criu.sh) and by the edge_criu role on every edge.
#   install-criu.sh           make `criu` work (nothing is done when it already does)
#   install-criu.sh --check   only say whether it works (exit 0) or not (exit 3)
# CRIU_MIRROR: the Debian mirror to download from (default: the one in this machine's apt
# sources; an Ubuntu host has none and must name one). Needs patchelf and the Debian
# archive keyring (/usr/share/keyrings/debian-archive-keyring.gpg) to install.
set -euo pipefail
PREFIX=${CRIU_PREFIX:-/opt/edgelab-criu}
SUITE=${CRIU_SUITE:-sid}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

criu_works() {  # criu check passes and CRIU can dump a process holding a TCP socket
  local criu=$1 dir pid ok=1
  "$criu" check >/dev/null 2>&1 || return 1
  dir=$(mktemp -d)
  setsid python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); time.sleep(30)' \
    </dev/null >/dev/null 2>&1 &
  pid=$!
  sleep 0.3
  "$criu" dump -t "$pid" -D "$dir" --leave-running -o dump.log >/dev/null 2>&1 && ok=0
  kill "$pid" 2>/dev/null || true
  rm -rf "$dir"
  return $ok
}

report() { echo "CRIU in use: $(command -v criu) -> $(readlink -f "$(command -v criu)"), $(criu --version | head -1)"; }

if command -v criu >/dev/null && criu_works criu; then report; exit 0; fi
if [ "${1:-}" = --check ]; then
  echo "the CRIU on PATH ($(criu --version 2>/dev/null | head -1 || echo none)) does not work on $(uname -r)"
  exit 3
fi
for need in patchelf dpkg apt-get python3; do
  command -v "$need" >/dev/null || { echo "installing CRIU needs $need" >&2; exit 1; }
done
[ -r "$KEYRING" ] || { echo "installing CRIU needs the Debian archive keyring $KEYRING" >&2; exit 1; }
echo "the CRIU on PATH ($(criu --version 2>/dev/null | head -1 || echo none)) does not work on $(uname -r); installing CRIU from Debian $SUITE under $PREFIX"

mirror=${CRIU_MIRROR:-}
[ -n "$mirror" ] || mirror=$(grep -hoE '^(URIs:|deb) +[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
  | awk '{print $2}' | grep -v security | grep -E '/debian/?$' | head -1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources: set CRIU_MIRROR" >&2; exit 1; }
apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir"/{state/lists/partial,cache/archives/partial,debs,etc/preferences.d,etc/sources.list.d}
echo "deb [signed-by=$KEYRING] $mirror $SUITE main" > "$apt_dir/etc/sources.list"
apt_opts=(-o Dir::Etc="$apt_dir/etc" -o Dir::Etc::sourcelist="$apt_dir/etc/sources.list"
          -o Dir::Etc::sourceparts="$apt_dir/etc/sources.list.d" -o Dir::Etc::preferencesparts="$apt_dir/etc/preferences.d"
          -o Dir::State="$apt_dir/state" -o Dir::State::status=/dev/null -o Dir::Cache="$apt_dir/cache"
          -o APT::Get::AllowUnauthenticated=false -o Debug::NoLocking=1)
apt-get "${apt_opts[@]}" update -q >"$apt_dir/update.log" 2>&1 || { cat "$apt_dir/update.log" >&2; false; } || { echo "apt-get update of $SUITE from $mirror failed" >&2; exit 1; }
deps=$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances criu | grep -E '^[a-z0-9]' | grep -v ':i386' | sort -u)
(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download $deps >/dev/null 2>&1 || true)
(cd "$apt_dir/debs" && for p in $deps; do ls "${p}"_*.deb >/dev/null 2>&1 || apt-get "${apt_opts[@]}" download "$p" >/dev/null 2>&1 || true; done)
rm -rf "$PREFIX.new"; mkdir -p "$PREFIX.new"
for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$PREFIX.new"; done
[ -x "$PREFIX.new/usr/sbin/criu" ] || { echo "criu was not downloaded from $mirror $SUITE" >&2; exit 1; }
ld=
for candidate in usr/lib64 lib64 usr/lib/x86_64-linux-gnu; do
  [ -e "$PREFIX.new/$candidate/ld-linux-x86-64.so.2" ] && { ld="$PREFIX/$candidate/ld-linux-x86-64.so.2"; break; }
done
[ -n "$ld" ] || { echo "no dynamic loader among the downloaded packages" >&2; exit 1; }
cp "$PREFIX.new/usr/sbin/criu" "$PREFIX.new/usr/sbin/criu.patched"
patchelf --set-interpreter "$ld" --force-rpath \
  --set-rpath "$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/lib/x86_64-linux-gnu" "$PREFIX.new/usr/sbin/criu.patched"
rm -rf "$PREFIX"; mv "$PREFIX.new" "$PREFIX"
ln -sf "$PREFIX/usr/sbin/criu.patched" /usr/local/sbin/criu
hash -r
criu_works /usr/local/sbin/criu || { echo "CRIU from $SUITE does not work here either: $(/usr/local/sbin/criu check 2>&1 | tail -3)" >&2; exit 1; }
report
