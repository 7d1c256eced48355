#!/usr/bin/env bash
# install-deps.sh: install what telegen-sonic needs at run and test time on Debian 12 (bookworm):
# Redis, iproute2, the packet judges (tshark, capinfos, tcpreplay), the eBPF toolchain (clang,
# llvm, libbpf headers, bpftool) and the small tools the scripts use. Idempotent: when every
# package is already installed it does not touch apt at all. Then it checks that Go is present.
#
# usage: scripts/install-deps.sh [--dev]    --dev adds shellcheck (lint of scripts/)
set -euo pipefail

PKGS=(
	redis-server redis-tools # redis-server for the vswitch and tests, redis-cli for the scripts
	iproute2 procps util-linux  # ip/netns/veth, sysctl/pgrep, nsenter/mountpoint
	tcpreplay tshark wireshark-common # traffic judges; wireshark-common has capinfos
	clang llvm libbpf-dev bpftool linux-libc-dev # eBPF build (bpf2go) and inspection
	python3 # pretty-printing in scripts/demo
	python3-click python3-redis python3-pytest # SONiC CLI plugins and their tests
	python3-jinja2 # rendering the buildimage templates in the packaging lint
	libyang2-tools # yanglint: the YANG model and its test vectors
	supervisor # the container's supervisord configuration, exercised for real
	libcap2-bin # capsh: the least-privilege test
	tcpdump # the reference cost in make bench-e2e
	qemu-system-x86 cpio # make kernelcheck: the programs on Debian's 6.1 kernel
	ca-certificates # Go module downloads over HTTPS
)

case ${1:-} in
--dev) PKGS+=(shellcheck) ;;
"") ;;
*)
	echo "usage: $0 [--dev]" >&2
	exit 2
	;;
esac

missing=()
for p in "${PKGS[@]}"; do
	if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) != ii* ]]; then
		missing+=("$p")
	fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
	echo "install-deps: all ${#PKGS[@]} packages already installed"
else
	if [[ $(id -u) -ne 0 ]]; then
		echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "install-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# tshark asks whether non-root users may capture; answer no so the install never prompts.
	echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Go is not an apt package here (bookworm's is too old): the module's go.mod says which.
want_go=$(awk '$1 == "go" { print $2; exit }' "$(dirname "$0")/../go.mod" 2>/dev/null || true)
if command -v go >/dev/null; then
	echo "install-deps: $(go version) (go.mod wants go ${want_go:-?}; GOTOOLCHAIN=auto fetches a newer one if needed)"
elif [[ -x /usr/local/go/bin/go ]]; then
	echo "install-deps: Go is in /usr/local/go/bin but not in PATH; add it: export PATH=\$PATH:/usr/local/go/bin" >&2
	exit 1
else
	echo "install-deps: Go not found; install go ${want_go:-1.26} or newer from https://go.dev/dl/ and put it in PATH" >&2
	exit 1
fi
