#!/usr/bin/env bash
# kernelcheck-vm.sh: runs the data path's tests that need only a kernel (loading programs as
# telegend does, BPF_PROG_TEST_RUN on crafted frames and the shared pcaps) on Debian's 6.1
# kernel, SONiC's, under qemu, with the datapath test binary as the VM's init. The shared
# kernelcheck loads the object as compiled with constants it is given; this loads what telegend
# loads (each job's constants folded into its instructions, TestKernelLoadFolded) and checks
# that the programs measure on 6.1 what they measure here. Tests that need more (network
# namespaces, tshark, tcpreplay) are not run. Needs the kernel the shared kernelcheck fetched
# (make kernelcheck runs that first), qemu, cpio, and root for mknod.
#
# usage: scripts/kernelcheck-vm.sh
# environment: KERNELCHECK_CACHE (default ${TMPDIR:-/tmp}/kernelcheck-cache), KERNELCHECK_TIMEOUT (600)
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -eq 0 ]] || {
	sed -n 's/^# \{0,1\}//; /^usage:/,/^environment:/p' "$0" >&2
	exit 2
}
cache=${KERNELCHECK_CACHE:-${TMPDIR:-/tmp}/kernelcheck-cache}
timeout_s=${KERNELCHECK_TIMEOUT:-600}
kdir=$(find "$cache" -maxdepth 2 -name .complete 2>/dev/null | sed 's|/\.complete$||' |
	grep -E '/linux-image-6\.1\.0-[0-9]+-amd64-unsigned_[^/]+$' | sort -V | tail -n 1 || true)
[[ -n $kdir ]] || {
	echo "kernelcheck-vm: no Debian 6.1 kernel in $cache (run ../shared/tools/kernelcheck/run.sh once)" >&2
	exit 1
}
vmlinuz=$(find "$kdir/boot" -name 'vmlinuz-*' | head -n 1)
for t in qemu-system-x86_64 cpio gzip; do
	command -v "$t" >/dev/null || {
		echo "kernelcheck-vm: $t not found" >&2
		exit 1
	}
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The tests find the shared captures at ../shared/pcaps from the repository root, which in the
# VM is /.
tests='TestKernelLoadFolded|TestVerifierBudget|TestParse|TestGSO|TestFilters|TestFastPathAgrees|TestFoldAgrees'
tests+='|TestTCPRetrans|TestLatency|TestHistogramBuckets|TestChecksum|TestSampling|TestGapTable'
tests+='|TestFlowTable|TestFlowTimes|TestFlowSpread|TestERSPAN|TestCapture'
[[ -d ../shared/pcaps ]] || {
	echo "kernelcheck-vm: ../shared/pcaps not found" >&2
	exit 1
}
mkdir -p "$work/root/dev" "$work/root/tmp" "$work/root/shared"
cp -r ../shared/pcaps "$work/root/shared/"
CGO_ENABLED=0 ${GO:-go} test -c -o "$work/root/init" ./pkg/datapath/
mknod -m 600 "$work/root/dev/console" c 5 1
(cd "$work/root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) |
	gzip -1 >"$work/initrd.gz"

accel=tcg cpu=max
if [[ -w /dev/kvm ]] && grep -qE 'vmx|svm' /proc/cpuinfo; then
	accel=kvm cpu=host
fi
echo "kernelcheck-vm: booting $(basename "$kdir") under qemu ($accel)" >&2
# What follows "--" on the kernel's command line are init's arguments. When the test binary
# exits, init is gone: the kernel panics and, with panic=-1 and -no-reboot, qemu ends.
timeout -k 10 "$timeout_s" qemu-system-x86_64 -nographic -no-reboot -nic none -m 1024 -smp 2 \
	-accel "$accel" -cpu "$cpu" -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
	-append "console=ttyS0 panic=-1 quiet -- -test.run=^($tests)\$ -test.v" \
	</dev/null 2>&1 | tr -d '\r' >"$work/console.log" || true
grep -E '^ *--- (PASS|FAIL|SKIP): Test[A-Za-z]+ |^(PASS|FAIL)$' "$work/console.log" || true
passed=$(grep -cE '^--- PASS: ' "$work/console.log" || true)
# Every listed test must run: a skip here (a missing tool or privilege) is a failure too.
if grep -q '^PASS$' "$work/console.log" && grep -q 'kernel 6\.1\.' "$work/console.log" &&
	! grep -qE -- '--- SKIP: ' "$work/console.log"; then
	echo "kernelcheck-vm: $passed tests passed on $(basename "$kdir")"
	exit 0
fi
echo "kernelcheck-vm: FAILED; the VM's console up to the end of the tests:" >&2
sed '/Kernel panic/q' "$work/console.log" | tail -n 80 >&2
exit 1
