#!/usr/bin/env bash
# yang-check.sh: check sonic-yang/sonic-telegen.yang (make yang-check).
#   1. yanglint compiles the model with its local stand-ins for SONiC's modules (sonic-yang/deps);
#   2. the sonic-yang-models style suite (sonic-yang/tests + tests_config) passes and is up to
#      date with the shared vectors (pkg/jobspec/testdata/jobs.json, sonic-yang/testdata/cases.json);
#   3. YANG and the Go validator (pkg/jobspec) agree on every vector.
# yanglint is Debian's libyang2-tools. -u regenerates the suite from the vectors first.
set -euo pipefail
cd "$(dirname "$0")/.."

update=()
case ${1:-} in
-u) update=(-update) ;;
"") ;;
*)
	echo "usage: $0 [-u]" >&2
	exit 2
	;;
esac

if ! command -v yanglint >/dev/null; then
	echo "yang-check: yanglint not found (apt-get install libyang2-tools)" >&2
	exit 1
fi
yanglint -D -p sonic-yang -p sonic-yang/deps \
	sonic-yang/sonic-telegen.yang sonic-yang/deps/sonic-types.yang sonic-yang/deps/sonic-port.yang
echo "yang-check: $(yanglint -v | head -n1): sonic-telegen.yang compiles"

GO=${GO:-go}
if [[ ${#update[@]} -gt 0 ]]; then
	"$GO" test -count=1 -run '^TestSuiteUpToDate$' ./pkg/internal/yangtest -args "${update[@]}"
fi
"$GO" test -count=1 ./pkg/internal/yangtest
"$GO" test -count=1 -run '^TestYANG' ./pkg/jobspec
