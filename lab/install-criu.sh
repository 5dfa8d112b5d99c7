#!/usr/bin/env bash
# The lab machine's CRIU comes from the same installer as the edges' (roles/edge_criu).
exec "$(cd "$(dirname "$0")" && pwd)/../roles/edge_criu/files/install-criu.sh" "$@"
