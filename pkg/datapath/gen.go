package datapath

// The eBPF object is built from bpf/telegen_tc.c by bpf2go (a go.mod tool) and the
// generated telegen_bpfel.go/.o are committed, so building and testing need no clang.
// Regenerate with scripts/gen-bpf.sh (pinned clang); scripts/check-generated.sh
// verifies the committed files. Only little-endian (amd64, arm64) is generated.
// -mcpu=v3 (atomic fetch-and-add, 32-bit jumps) needs Linux 5.12; SONiC runs 6.1.

//go:generate go tool bpf2go -tags linux -target bpfel -type dir_stats -type direction -type flow_dir -type flow4_set -type flow6_set -type hist -type hist_id -type capture_state -cflags "-O2 -g -Wall -Werror -mcpu=v3" telegen ../../bpf/telegen_tc.c -- -I../../bpf/include
