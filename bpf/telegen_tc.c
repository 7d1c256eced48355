//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * telegen tc observer: counts the frames and bytes that pass a port's tc
 * ingress or egress hook. One body (observe) and thin wrappers per attach
 * flavour: TCX links (kernel >= 6.6) and classic clsact + cls_bpf in
 * direct-action mode (SONiC's 6.1). An observer never ends the chain: the
 * wrappers return TCX_NEXT / TC_ACT_UNSPEC (both -1) so that whatever is
 * attached after us decides the frame's fate.
 */
#include "telegen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIR_MAX);
	__type(key, enum direction);
	__type(value, struct dir_stats);
} stats SEC(".maps");

/*
 * Length of the frame as it is (or was) on the wire, without FCS. tc runs
 * with the MAC header in the data on both hooks, so skb->len covers the whole
 * frame, except a VLAN tag the kernel holds in metadata: on receive it moves
 * the outer tag there before tc ingress; on transmit a VLAN device or
 * bpf_skb_vlan_push may leave it there for the NIC to insert. vlan_present is
 * UAPI on 6.1 and still translated by 6.2+ (where skb->vlan_present is gone).
 */
static __always_inline __u64 wire_len(const struct __sk_buff *skb)
{
	__u64 len = skb->len;

	if (skb->vlan_present)
		len += VLAN_HLEN;
	return len;
}

static __always_inline void observe(struct __sk_buff *skb, enum direction dir)
{
	struct dir_stats *st;

	/* Filters (volatile const knobs) will go here and return early. */

	st = bpf_map_lookup_elem(&stats, &dir);
	if (!st)
		return;
	/* Per-CPU slot, and tc runs with BH disabled: plain adds suffice. */
	st->packets++;
	st->bytes += wire_len(skb);
}

SEC("tcx/ingress")
int telegen_tcx_in(struct __sk_buff *skb)
{
	observe(skb, DIR_INGRESS);
	return TCX_NEXT;
}

SEC("tcx/egress")
int telegen_tcx_eg(struct __sk_buff *skb)
{
	observe(skb, DIR_EGRESS);
	return TCX_NEXT;
}

SEC("tc")
int telegen_tc_in(struct __sk_buff *skb)
{
	observe(skb, DIR_INGRESS);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int telegen_tc_eg(struct __sk_buff *skb)
{
	observe(skb, DIR_EGRESS);
	return TC_ACT_UNSPEC;
}
