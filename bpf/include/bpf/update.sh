#!/usr/bin/env bash
# Refresh the vendored libbpf headers from the installed libbpf-dev package
# (Debian: apt-get install libbpf-dev). Update LICENSE with the new version,
# then regenerate with scripts/gen-bpf.sh and review the object diff.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${LIBBPF_INCLUDE:-/usr/include/bpf}
for f in bpf_helpers.h bpf_helper_defs.h bpf_endian.h; do
	[ -f "$src/$f" ] || { echo "update.sh: $src/$f missing (apt-get install libbpf-dev)" >&2; exit 1; }
	cp "$src/$f" "$here/$f"
done
ver=$(dpkg-query -W -f='${Version}' libbpf-dev 2>/dev/null || echo unknown)
echo "update.sh: copied libbpf headers from $src (libbpf-dev $ver); update LICENSE"
