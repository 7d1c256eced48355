#!/usr/bin/env bash
# bench-e2e.sh: the CPU a running full telegen job adds per packet on a port's receive path,
# against tcpdump -w /dev/null on the same traffic in the same run (BenchmarkDataPlaneCPU in
# pkg/e2e: tcpreplay --topspeed into a veth port of a test network namespace; CPU time of the
# sender, telegend, redis-server and tcpdump by cgroup, plus ksoftirqd). Appends the figures, with
# the machine and date, to docs/BENCHMARKS.md; the last line printed is
# "telegen_extra_ns=N tcpdump_extra_ns=N ratio=R". Needs root, tcpreplay and tcpdump.
#
# usage: scripts/bench-e2e.sh
# environment: BENCH_E2E_PACKETS (2000000) frames per phase, BENCH_E2E_ROUNDS (15) rounds,
# BENCH_E2E_STATS_ROUNDS (5) rounds of the program run-time phases (kernel BPF statistics on:
# what the programs themselves cost per frame in this traffic, to tell their share from the
# hook's; each figure includes the statistics' own clock reads)
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/BENCHMARKS.md
[[ $# -eq 0 ]] || {
	sed -n 's/^# \{0,1\}//; /^usage:/,/^environment:/p' "$0" >&2
	exit 2
}
[[ $(id -u) -eq 0 ]] || {
	echo "bench-e2e: must run as root (network namespaces, eBPF, cgroups)" >&2
	exit 1
}
for t in tcpreplay tcpdump nsenter; do
	command -v "$t" >/dev/null || {
		echo "bench-e2e: $t not found (scripts/install-deps.sh installs it)" >&2
		exit 1
	}
done

# shellcheck source=scripts/bench-record.sh
. scripts/bench-record.sh

machine() {
	bench_machine
	echo "- datapath object: pkg/datapath/telegen_bpfel.o sha256 $(sha256sum pkg/datapath/telegen_bpfel.o | cut -c1-12)"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
TELEGEN_E2E_RACE=0 go test -run '^$' -bench '^BenchmarkDataPlaneCPU$' -benchtime 1x -count 1 -timeout 30m \
	./pkg/e2e/ | tee "$log"
line=$(grep -o 'telegen_extra_ns=[^ ]* tcpdump_extra_ns=[^ ]* ratio=[^ ]*' "$log" | tail -1)
[[ -n $line ]] || {
	echo "bench-e2e: the benchmark printed no result line" >&2
	exit 1
}
rounds=$(grep -E '^bench-e2e round ' "$log" | sed 's/^bench-e2e //')
detail=$(grep -m1 '^bench-e2e detail: ' "$log" | sed 's/^bench-e2e detail: //')
field() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$line"; }
empty=$(grep -o 'empty_extra_ns=[^ ]*' "$log" | tail -1 | cut -d= -f2)
rate100=$(grep -o 'telegen_1in100_extra_ns=[^ ]* telegen_1in100_ratio=[^ ]*' "$log" | tail -1)
rfield() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" <<<"$rate100"; }
prog=$(grep -m1 '^bench-e2e program ns/frame' "$log" | sed 's/^bench-e2e //')
pfield() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$prog"; }
verdict=$(awk -v r="$(field ratio)" 'BEGIN { print (r <= 0.25 ? "met" : "NOT met") }')
{
	echo
	echo "## Data plane CPU per packet (make bench-e2e)"
	machine
	echo "- what: a full job (direction both; ip_proto, l4 port and dscp filters matching every frame; sample_rate 1; result_detail flows) against \`tcpdump -i Ethernet16 -w /dev/null\`, on tcpreplay --topspeed traffic (trafgen mix flows: TCP/UDP, IPv4/IPv6, 1024 flows) into a veth port; telegend with its production intervals (live stats every 1 s) and info logs; CPU = cgroup of sender + telegend + redis-server + tcpdump, plus ksoftirqd; extra = ns/packet less the same round's idle baseline, median over rounds; the empty-program and sample_rate 100 rows are measured in the same rounds (the first a do-nothing program on the same TCX hooks); the target is the full job's"
	echo
	echo "| figure | value | target |"
	echo "|---|---|---|"
	echo "| telegen job extra CPU | $(field telegen_extra_ns) ns/packet | |"
	echo "| tcpdump -w /dev/null extra CPU | $(field tcpdump_extra_ns) ns/packet | |"
	echo "| empty program on the same hooks, extra CPU (for reference) | ${empty:-?} ns/packet | |"
	echo "| the same job at sample_rate 100 (DESIGN's default), extra CPU and ratio to tcpdump (for reference) | $(rfield telegen_1in100_extra_ns) ns/packet, $(rfield telegen_1in100_ratio) | |"
	echo "| run time of the ingress program per frame, by bpf_stats (separate phases): job / job at 1-in-100 / empty program | $(pfield telegen) / $(pfield telegen-1in100) / $(pfield empty) ns | |"
	echo "| ratio telegen/tcpdump | $(field ratio) | ≤ 0.25 ($verdict) |"
	echo
	echo "Raw: \`$detail\`"
	echo
	echo '```'
	echo "$rounds"
	echo '```'
} >>"$out"
echo "appended to $out"
echo "$line"
