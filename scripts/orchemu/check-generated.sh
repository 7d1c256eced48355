#!/usr/bin/env bash
# Regenerate scripts/orchemu/orchemu_bpfel.{go,o} from scripts/orchemu/bpf/orchemu.c with bpf2go
# (a go.mod tool) and the pinned compiler, Debian bookworm's clang 14 (as scripts/gen-bpf.sh).
#
#   scripts/orchemu/check-generated.sh      regenerate and fail if git's copy differs
#   scripts/orchemu/check-generated.sh -w   regenerate in place (after editing the C source)
set -euo pipefail

want_major=14
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

die() {
	echo "orchemu/check-generated: $*" >&2
	exit 1
}

write=0
case ${1:-} in
-w) write=1 ;;
"") ;;
*) die "usage: $0 [-w]" ;;
esac

cc=${CLANG:-$(command -v "clang-$want_major" || command -v clang || true)}
[[ -n $cc ]] || die "no clang found; apt-get install clang-$want_major llvm-$want_major"
version=$("$cc" -dumpversion 2>/dev/null || true)
[[ ${version%%.*} == "$want_major" || ${FORCE:-0} == 1 ]] ||
	die "$cc is clang '$version'; the committed object is built with clang $want_major (FORCE=1 to override)"
strip=${LLVM_STRIP:-$(command -v "$(dirname "$(readlink -f "$cc")")/llvm-strip" || command -v "llvm-strip-${version%%.*}" || command -v llvm-strip || true)}
[[ -n $strip ]] || die "no llvm-strip found for $cc"

cd "$root"
unset BPF2GO_CFLAGS BPF2GO_FLAGS
BPF2GO_CC=$cc BPF2GO_STRIP=$strip go generate ./scripts/orchemu/
if [[ $write == 1 ]]; then
	echo "orchemu/check-generated: regenerated scripts/orchemu/orchemu_bpfel.{go,o} with $cc ($version)" >&2
	exit 0
fi
status=0
if ! git diff --exit-code --stat -- scripts/orchemu/orchemu_bpfel.go scripts/orchemu/orchemu_bpfel.o; then
	echo "orchemu/check-generated: the generated files differ from git; run $0 -w and commit them" >&2
	status=1
fi
untracked=$(git ls-files --others --exclude-standard -- 'scripts/orchemu/orchemu_bpfel.*')
if [[ -n $untracked ]]; then
	echo "orchemu/check-generated: generated files not in git: ${untracked//$'\n'/ }" >&2
	status=1
fi
[[ $status == 0 ]] && echo "orchemu/check-generated: scripts/orchemu is up to date" >&2
exit $status
