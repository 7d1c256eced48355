#!/usr/bin/env bash
# bench-record.sh: sourced by the bench scripts; bench_machine prints the machine, date and commit
# lines of a record in docs/BENCHMARKS.md.
#
# The commit is read when this file is sourced, before the benchmark runs and before anything is
# appended: read while the record is being written, docs/BENCHMARKS.md itself differs from HEAD
# and every record would say "(dirty)". "(dirty)" means that code or scripts differ from the
# commit; earlier records not yet committed in docs/BENCHMARKS.md do not count.

bench_commit="none (not a git checkout)"
if git rev-parse --git-dir >/dev/null 2>&1; then
	bench_commit=$(git rev-parse --short HEAD)
	git diff --quiet HEAD -- . ':(exclude)docs/BENCHMARKS.md' || bench_commit+=" (dirty)"
fi

bench_machine() {
	echo "- machine: $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)"
	echo "- date: $(date -u +%Y-%m-%dT%H:%MZ), commit $bench_commit"
}
