package datapath

// The eBPF object is built from bpf/telegen_tc.c by bpf2go (a go.mod tool) and the
// generated telegen_bpfel.go/.o are committed, so building and testing need no clang.
// Regenerate with scripts/gen-bpf.sh (pinned clang); scripts/check-generated.sh
// verifies the committed files. Only little-endian (amd64, arm64) is generated.

//go:generate go tool bpf2go -tags linux -target bpfel -type dir_stats -type direction -cflags "-O2 -g -Wall -Werror" telegen ../../bpf/telegen_tc.c -- -I../../bpf/include
