#!/usr/bin/env bash
# otelcol.sh: build a real OpenTelemetry Collector (OTLP receiver, debug exporter) from the Go
# module proxy with the collector's own builder, following scripts/otelcol/builder.yaml, and print
# the binary's path. The binary is cached under
# ${XDG_CACHE_HOME:-$HOME/.cache}/telegen-sonic/otelcol-<version>-<recipe hash>/, so only the first
# run on a machine pays for the build (about 2 minutes); later runs print the cached path at once.
# Concurrent runs wait for each other (flock).
#
# usage: scripts/otelcol.sh            build if needed, print the binary's path
#        scripts/otelcol.sh --config   print the path of the sample config (OTLP/HTTP on
#                                      ${OTELCOL_ENDPOINT:-127.0.0.1:14318}, debug exporter)
# run:   "$(scripts/otelcol.sh)" --config "file:$(scripts/otelcol.sh --config)"
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
recipe=$here/otelcol/builder.yaml
version=v0.150.0 # the builder's version; keep in step with the gomod lines of the recipe

case ${1:-} in
--config)
	echo "$here/otelcol/config.yaml"
	exit 0
	;;
"") ;;
*)
	echo "usage: $0 [--config]" >&2
	exit 2
	;;
esac

export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || {
	echo "otelcol.sh: go is not in PATH" >&2
	exit 1
}
hash=$(sha256sum "$recipe" | cut -c1-12)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/telegen-sonic
dir=$cache/otelcol-$version-$hash
bin=$dir/otelcol-telegen
if [[ -x $bin ]]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/otelcol.lock"
flock 9
if [[ -x $bin ]]; then # built by a run we waited for
	echo "$bin"
	exit 0
fi

work=$(mktemp -d "$cache/otelcol-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "otelcol.sh: building the collector in $work (first time on this machine: ~2 min)" >&2
GOBIN=$work/gobin go install "go.opentelemetry.io/collector/cmd/builder@$version" >&2
sed 's|^\(  output_path:\).*|\1 '"$work"'/out|' "$recipe" >"$work/builder.yaml"
(cd "$work" && ./gobin/builder --config builder.yaml >&2)
"$work/out/otelcol-telegen" components >/dev/null # a smoke test of the binary
mkdir -p "$dir.tmp"
mv "$work/out/otelcol-telegen" "$dir.tmp/"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$bin"
