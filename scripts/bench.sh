#!/usr/bin/env bash
# bench.sh: run one of the project's benchmarks and append its figures, with the machine and the
# date, to docs/BENCHMARKS.md. Ratios are measured side by side within one run (shared machines
# are noisy); absolute figures are for this machine only.
#
# usage: scripts/bench.sh control
set -euo pipefail
cd "$(dirname "$0")/.."
out=docs/BENCHMARKS.md

# shellcheck source=scripts/bench-record.sh
. scripts/bench-record.sh

case ${1:-} in
control)
	log=$(mktemp)
	TELEGEN_E2E_RACE=0 go test -run '^$' -bench '^BenchmarkControlPlane$' -benchtime 1x -count 1 -timeout 10m ./pkg/e2e/ | tee "$log"
	{
		echo
		echo "## Control plane (make bench-control)"
		bench_machine
		echo "- what: 200 sequential jobs (span_method direct) per attach mode; latency from HSET of TELEGEN_JOB to STATE_DB status running, seen by keyspace notification; telegend built without -race"
		echo
		echo "| attach mode | hset→running p50 | p99 (target ≤ 50 ms) | max | RSS at start | RSS idle after 200 jobs (target ≤ 30 MiB) |"
		echo "|---|---|---|---|---|---|"
		for mode in tcx clsact; do
			line=$(grep "^BenchmarkControlPlane/$mode" "$log")
			metric() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($(i+1) == m) print $i}' <<<"$line"; }
			max=$(grep -A3 "^BenchmarkControlPlane/$mode" "$log" | grep -o 'max [0-9.]*[µm]*s' | head -1 | cut -d' ' -f2)
			echo "| $mode | $(metric p50-ms) ms | $(metric p99-ms) ms | $max | $(metric rss-start-MiB) MiB | $(metric rss-idle-MiB) MiB |"
		done
	} >>"$out"
	rm -f "$log"
	echo "appended to $out"
	;;
rest)
	log=$(mktemp)
	TELEGEN_E2E_RACE=0 go test -run '^$' -bench '^BenchmarkREST$' -benchtime 1x -count 1 -timeout 10m ./pkg/e2e/ | tee "$log"
	line=$(grep '^BenchmarkREST' "$log")
	metric() { awk -v m="$1" '{for (i = 1; i < NF; i++) if ($(i+1) == m) print $i}' <<<"$line"; }
	{
		echo
		echo "## REST shim (make bench-rest)"
		bench_machine
		echo "- what: telegen-rest on loopback TCP in front of a real telegend (built without -race) and redis-server; POST→201 includes telegend loading and attaching the program (TCX here); GET throughput with 8 concurrent Go clients"
		echo
		echo "| figure | value |"
		echo "|---|---|"
		echo "| POST→201 p50 / p99 | $(metric post201-p50-ms) ms / $(metric post201-p99-ms) ms |"
		echo "| POST→429 p50 / p99 | $(metric post429-p50-ms) ms / $(metric post429-p99-ms) ms |"
		echo "| GET throughput | $(metric get-req/s) req/s |"
	} >>"$out"
	rm -f "$log"
	echo "appended to $out"
	;;
otlp)
	log=$(mktemp)
	TELEGEN_E2E_RACE=0 go test -run '^$' -bench '^BenchmarkExportCycle$' -benchtime 200x -benchmem -count 1 -timeout 10m ./pkg/e2e/ | tee "$log"
	go test -run '^$' -bench '^BenchmarkCollect$' -benchtime 200x -benchmem -count 1 ./pkg/otlp/ | tee -a "$log"
	{
		echo
		echo "## OTLP export cycle (make bench-otlp)"
		bench_machine
		echo "- what: one full export of two jobs with 1024 flows each (about 4,100 points) through the OTel SDK and otlpmetrichttp (gzip) to an in-process OTLP sink; BenchmarkCollect is telegen's metric producer alone"
		echo
		echo '```'
		grep -E '^Benchmark' "$log"
		echo '```'
	} >>"$out"
	rm -f "$log"
	echo "appended to $out"
	;;
*)
	echo "usage: $0 control|rest|otlp" >&2
	exit 2
	;;
esac
