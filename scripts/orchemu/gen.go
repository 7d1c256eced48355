package main

// The eBPF object is built from bpf/orchemu.c by bpf2go (a go.mod tool), and the generated
// orchemu_bpfel.go/.o are committed, so building the emulator needs no clang. Regenerate with
// scripts/orchemu/check-generated.sh -w (pinned clang 14, as scripts/gen-bpf.sh uses);
// without -w it verifies the committed files.

//go:generate go tool bpf2go -tags linux -target bpfel -type session -type rule -type hook_key -type hook_rules -cflags "-O2 -g -Wall -Werror -mcpu=v3" orchemu bpf/orchemu.c -- -I../../bpf/include
