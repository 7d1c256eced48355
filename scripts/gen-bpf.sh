#!/usr/bin/env bash
# Regenerate pkg/datapath/telegen_bpfel.{go,o} from bpf/ with bpf2go (go.mod tool)
# and the pinned compiler: Debian bookworm's clang 14. A different clang emits a
# different object, which scripts/check-generated.sh would then report as drift,
# so any other major version is refused unless FORCE=1.
#
#   scripts/gen-bpf.sh              # uses clang-14 (or clang if it is 14)
#   CLANG=/path/to/clang FORCE=1 scripts/gen-bpf.sh
set -euo pipefail

want_major=14
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

die() {
	echo "gen-bpf: $*" >&2
	exit 1
}

pick() {
	local c
	for c in "$@"; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return 0
		fi
	done
	return 1
}

cc=${CLANG:-$(pick "clang-$want_major" clang)} ||
	die "no clang found; install Debian bookworm's clang-$want_major (apt-get install clang-$want_major llvm-$want_major)"
version=$("$cc" -dumpversion 2>/dev/null || true)
major=${version%%.*}
if [ "$major" != "$want_major" ]; then
	if [ "${FORCE:-0}" != 1 ]; then
		die "$cc is clang '${version:-unknown}', but the committed object is built with clang $want_major;" \
			"install clang-$want_major or set FORCE=1 (the result will differ from the committed files)"
	fi
	echo "gen-bpf: FORCE=1: using clang '${version:-unknown}' instead of $want_major" >&2
fi

# llvm-strip of the same LLVM as the compiler.
strip=${LLVM_STRIP:-$(pick "$(dirname "$(readlink -f "$cc")")/llvm-strip" "llvm-strip-$major" llvm-strip)} ||
	die "no llvm-strip found for $cc (apt-get install llvm-$major)"

cd "$root"
unset BPF2GO_CFLAGS BPF2GO_FLAGS
BPF2GO_CC=$cc BPF2GO_STRIP=$strip go generate ./pkg/datapath/
echo "gen-bpf: generated pkg/datapath/telegen_bpfel.{go,o} with $cc ($version)" >&2
