#!/usr/bin/env bash
# bench.sh: run one of the project's benchmarks and append its figures, with the machine and the
# date, to docs/BENCHMARKS.md. Ratios are measured side by side within one run (shared machines
# are noisy); absolute figures are for this machine only.
#
# usage: scripts/bench.sh control
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/BENCHMARKS.md

machine() {
	echo "- machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
}

case ${1:-} in
control)
	log=$(mktemp)
	TELEGEN_E2E_RACE=0 go test -run '^$' -bench '^BenchmarkControlPlane$' -benchtime 1x -count 1 -timeout 10m ./pkg/e2e/ | tee "$log"
	line=$(grep '^BenchmarkControlPlane' "$log")
	detail=$(grep -m1 'hset->running over' "$log" | sed 's/^[[:space:]]*bench_test.go:[0-9]*: //')
	metric() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($(i+1) == m) print $i}' <<<"$line"; }
	{
		echo
		echo "## Control plane (make bench-control)"
		machine
		echo "- what: 200 sequential jobs (span_method direct, TCX on this kernel); latency from HSET of TELEGEN_JOB to STATE_DB status running, seen by keyspace notification; telegend built without -race"
		echo
		echo "| figure | value | target |"
		echo "|---|---|---|"
		echo "| hset→running p50 | $(metric p50-ms) ms | |"
		echo "| hset→running p99 | $(metric p99-ms) ms | ≤ 50 ms |"
		echo "| RSS at start (idle) | $(metric rss-start-MiB) MiB | ≤ 30 MiB |"
		echo "| RSS idle after 200 jobs | $(metric rss-idle-MiB) MiB | ≤ 30 MiB |"
		echo
		echo "Raw: \`$detail\`"
	} >>"$out"
	rm -f "$log"
	echo "appended to $out"
	;;
*)
	echo "usage: $0 control" >&2
	exit 2
	;;
esac
