#!/usr/bin/env bash
# kernelcheck-folded.sh: verifies what telegend loads on SONiC's kernel. The shared kernelcheck
# loads the object as compiled; telegend folds each job's constants into the instructions first
# (pkg/datapath/internal/constfold). This boots the same Debian 6.1 kernel under qemu with the
# datapath test binary as init, running TestKernelLoadFolded: both hooks' programs of
# representative jobs, folded, loaded on the clsact path. Needs the kernel the shared
# kernelcheck fetched (make kernelcheck runs that first), qemu, cpio, root for mknod.
#
# usage: scripts/kernelcheck-folded.sh
# environment: KERNELCHECK_CACHE (default ${TMPDIR:-/tmp}/kernelcheck-cache), KERNELCHECK_TIMEOUT (300)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 0 ]] || {
	sed -n 's/^# \{0,1\}//; /^usage:/,/^environment:/p' "$0" >&2
	exit 2
}
cache=${KERNELCHECK_CACHE:-${TMPDIR:-/tmp}/kernelcheck-cache}
timeout_s=${KERNELCHECK_TIMEOUT:-300}
kdir=$(find "$cache" -maxdepth 2 -name .complete 2>/dev/null | sed 's|/\.complete$||' |
	grep -E '/linux-image-6\.1\.0-[0-9]+-amd64-unsigned_[^/]+$' | sort -V | tail -n 1 || true)
[[ -n $kdir ]] || {
	echo "kernelcheck-folded: no Debian 6.1 kernel in $cache (run ../shared/tools/kernelcheck/run.sh once)" >&2
	exit 1
}
vmlinuz=$(find "$kdir/boot" -name 'vmlinuz-*' | head -n 1)
for t in qemu-system-x86_64 cpio gzip; do
	command -v "$t" >/dev/null || {
		echo "kernelcheck-folded: $t not found" >&2
		exit 1
	}
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/dev" "$work/root/tmp"
CGO_ENABLED=0 ${GO:-go} test -c -o "$work/root/init" ./pkg/datapath/
mknod -m 600 "$work/root/dev/console" c 5 1
(cd "$work/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
	gzip -1 >"$work/initrd.gz"

accel=tcg cpu=max
if [[ -w /dev/kvm ]] && grep -qE 'vmx|svm' /proc/cpuinfo; then
	accel=kvm cpu=host
fi
echo "kernelcheck-folded: booting $(basename "$kdir") under qemu ($accel)" >&2
# Kernel parameters with "=" that the kernel does not know become init's environment; what
# follows "--" its arguments. When the test binary exits, init is gone: the kernel panics and,
# with panic=-1 and -no-reboot, qemu ends.
timeout -k 10 "$timeout_s" qemu-system-x86_64 -nographic -no-reboot -nic none -m 1024 -smp 2 \
	-accel "$accel" -cpu "$cpu" -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet -- -test.run=^TestKernelLoadFolded\$ -test.v" \
	</dev/null 2>&1 | tr -d '\r' >"$work/console.log" || true
grep -E 'kernel_linux_test.go|^(--- |PASS|FAIL|ok )' "$work/console.log" | sed 's/^ *//' || true
if grep -q '^--- PASS: TestKernelLoadFolded' "$work/console.log" &&
	grep -q 'kernel 6\.1\.' "$work/console.log"; then
	echo "kernelcheck-folded: every folded program loaded on $(basename "$kdir")"
	exit 0
fi
echo "kernelcheck-folded: FAILED; the VM's console ends:" >&2
tail -n 40 "$work/console.log" >&2
exit 1
