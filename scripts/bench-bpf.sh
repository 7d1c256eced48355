#!/usr/bin/env bash
# bench-bpf.sh: ns per frame of a job's tc program with BPF_PROG_TEST_RUN on the reference
# frames (IPv4/TCP 64 B, IPv4/UDP 512 B DSCP 46, VLAN IPv4/TCP, IPv6/TCP 1500 B), for:
#   full            every filter kind set (and passed), every feature on (flows, TCP analysis,
#                   latency, IPv4 checksum, pcaplike capture with a reader draining the ring,
#                   no capture caps), every frame sampled
#   full-nocapture  the same without pcaplike capture (a summary or flows job)
#   unsampled       the full job at sample_rate 1<<24, so the frame is not sampled
#   1-in-100        the full job at sample_rate 100 (the average over sampled and not)
#   filtered        a frame that fails the job's filters (at the last one checked)
#   nofilter        a job with no filter, the frame not sampled
#   floor           an empty tc program (mostly BPF_PROG_TEST_RUN's own overhead)
#   peer            PEER=obj.o:prog, any other compiled tc program, on the same frames
# all interleaved in one run (medians of rounds). A figure is the wall time of a
# BPF_PROG_TEST_RUN call over its repeat count; the kernel's own average, which it rounds
# down to whole ns, is printed beside. Prints the table and appends it, with the
# machine and the date, to docs/BENCHMARKS.md. The last line printed is exactly
#   full/floor=R unsampled/floor=R filtered/floor=R [full/peer=R]
#
# usage: [PEER=obj.o:prog] [BENCH_BPF_ROUNDS=15] [BENCH_BPF_REPEAT=200000] scripts/bench-bpf.sh
# (root: loading programs needs CAP_BPF)
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/BENCHMARKS.md
# shellcheck source=scripts/bench-record.sh
. scripts/bench-record.sh

if [ -n "${PEER:-}" ]; then
	obj=${PEER%%:*}
	[ -f "$obj" ] || { echo "bench-bpf: PEER=$PEER: no file $obj" >&2; exit 2; }
	PEER="$(cd "$(dirname "$obj")" && pwd)/$(basename "$obj"):${PEER#*:}"
	export PEER
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
go test -run '^$' -bench '^BenchmarkBPF$' -benchtime 1x -count 1 -timeout 20m ./pkg/datapath/ >"$log" 2>&1 || {
	cat "$log" >&2
	exit 1
}
table=$(sed -n '/^ns\/frame/,/^with the kernel/p' "$log")
last=$(grep -E '^full/floor=' "$log" | tail -1)
if [ -z "$table" ] || [ -z "$last" ]; then
	cat "$log" >&2
	echo "bench-bpf: no result in the benchmark's output" >&2
	exit 1
fi

{
	echo
	echo "## eBPF program cost (make bench-bpf)"
	bench_machine
	echo "- what: ns per frame under BPF_PROG_TEST_RUN: the wall time of each call over its repeat count (the kernel's own average is rounded down to whole ns, up to 7 % off at the floor: it is shown beside, with its ratios), one program instance per job as telegend loads it; variants are described in scripts/bench-bpf.sh${PEER:+; peer: \`$PEER\`}"
	echo "- targets: full ≤ 3.0× floor, unsampled and filtered ≤ 1.5× floor"
	echo
	echo '```'
	echo "$table"
	echo "$last"
	echo '```'
} >>"$out"
echo "$table"
echo "appended to $out"
echo "$last"
