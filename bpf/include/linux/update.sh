#!/usr/bin/env bash
# Refresh the vendored Linux UAPI headers from the installed linux-libc-dev
# package. types.h is ours and is not touched. See README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=${UAPI_INCLUDE:-/usr/include/linux}
for f in bpf.h bpf_common.h; do
	[ -f "$src/$f" ] || { echo "update.sh: $src/$f missing (apt-get install linux-libc-dev)" >&2; exit 1; }
	cp "$src/$f" "$here/$f"
done
ver=$(dpkg-query -W -f='${Version}' linux-libc-dev 2>/dev/null || echo unknown)
echo "update.sh: copied bpf.h bpf_common.h from $src (linux-libc-dev $ver); update README.md"
