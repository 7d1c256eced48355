#!/usr/bin/env bash
# Regenerate the committed eBPF artifacts in place with the pinned toolchain
# (scripts/gen-bpf.sh) and fail if they differ from what git has, so the
# committed pkg/datapath/telegen_bpfel.{go,o} always match bpf/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

"$root/scripts/gen-bpf.sh"

status=0
if ! git diff --exit-code --stat -- pkg/datapath; then
	echo "check-generated: pkg/datapath differs from git after regeneration;" \
		"run scripts/gen-bpf.sh and commit the result" >&2
	status=1
fi
untracked=$(git ls-files --others --exclude-standard -- 'pkg/datapath/telegen_*')
if [ -n "$untracked" ]; then
	echo "check-generated: generated files not in git: $untracked" >&2
	status=1
fi
[ $status -eq 0 ] && echo "check-generated: pkg/datapath is up to date" >&2
exit $status
