/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types and maps shared between the telegen tc program (bpf/telegen_tc.c) and
 * pkg/datapath. bpf2go turns the types named with -type in
 * pkg/datapath/gen.go into unexported Go types (telegenDirStats, ...).
 *
 * Compatibility rules, because a restarted daemon adopts maps pinned by an
 * older one (pkg/datapath refuses a pinned map whose layout differs):
 *  - struct dir_stats only grows at the end; never reorder or resize fields;
 *  - enum direction values are map keys and never change.
 */
#ifndef TELEGEN_H
#define TELEGEN_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* From <linux/pkt_cls.h>: let the next filter decide. */
#ifndef TC_ACT_UNSPEC
#define TC_ACT_UNSPEC (-1)
#endif

/*
 * enum tcx_action_base arrived in <linux/bpf.h> with TCX in 6.6, together
 * with the bpf_mprog flags; the vendored 6.1 UAPI has neither.
 */
#ifndef BPF_F_BEFORE
enum tcx_action_base {
	TCX_NEXT = -1,
};
#endif

/* Length of an 802.1Q/802.1ad tag. */
#define VLAN_HLEN 4

/* Key of the stats map: which hook saw the frame. */
enum direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
	DIR_MAX = 2,
};

/*
 * Per-direction totals, one copy per CPU (BPF_MAP_TYPE_PERCPU_ARRAY), summed
 * in user space. Append new counters at the end (see above).
 */
struct dir_stats {
	__u64 packets;
	/* Wire frame bytes without FCS, VLAN tags included. */
	__u64 bytes;
};

/*
 * Run-time knobs will be `volatile const` globals (in .rodata), set from Go
 * through CollectionSpec.Variables before load, e.g.
 *
 *	volatile const __u16 filter_vlan = 0;	// 0 = any
 *
 * None exist yet.
 */

#endif /* TELEGEN_H */
