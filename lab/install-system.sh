#!/usr/bin/env bash
# Installs the system packages the lab and the migration need, then a CRIU that works
# on this kernel. Idempotent: packages already present are not fetched again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# No `criu`: Debian 12's does not work on current kernels; install-criu.sh (below) puts one that
# does in /usr/local/sbin, and a broken one in /usr/sbin would be found first by some PATHs.
# ansible-rulebook needs Java 17 or newer: Debian 12 has 17, Debian 13 only 21.
. /etc/os-release
case "${VERSION_CODENAME:-}" in
  bookworm) java=openjdk-17-jre-headless ;;
  *) java=openjdk-21-jre-headless ;;
esac
packages=(docker.io containerd runc xdelta3 rsync openssh-server openssh-client
          iproute2 iptables bridge-utils debootstrap busybox-static docker-registry
          patchelf zstd python3-venv make curl ca-certificates procps util-linux kmod
          docker-compose mosquitto "$java" apt-cacher-ng)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # policy-rc.d keeps the packages' init scripts from starting daemons: the lab starts its own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi
"$here/install-criu.sh"
