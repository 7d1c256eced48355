//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * orchemu: the "ASIC" of the virtual switch's orchagent emulator. It realizes
 * SONiC mirror sessions (MIRROR_SESSION) and mirror ACL rules (ACL_TABLE of
 * type MIRROR/MIRRORV6) in the kernel of a host whose ports are netdevs.
 *
 * - orchemu_in / orchemu_eg (tc ingress / egress of a source port): look the
 *   port's rules up in `hooks`, evaluate them like an ASIC's ACL lookup (per
 *   ACL table, the first matching rule in priority order acts; a port mirror
 *   entry is a table with one match-all rule) and clone every matching frame
 *   to each session it maps to (at most once per session).
 * - SPAN: the clone goes straight to the session's target: transmitted into a
 *   veth whose peer is the sink (so the sink receives it and counts it), or
 *   injected into the sink's receive path (BPF_F_INGRESS).
 * - ERSPAN: the clone is transmitted into the sink's veth peer marked with the
 *   session slot; orchemu_encap on that peer's tc egress wraps it in
 *   Ethernet + IPv4 + GRE (sequence number present) + ERSPAN type II, so the
 *   sink receives the encapsulated copy.
 *
 * Copies carry skb->mark MARK_MAGIC (the ERSPAN ones MARK_MAGIC|MARK_ENCAP|slot
 * until encapsulated), and a frame so marked is never mirrored again: a copy
 * delivered into a port that is itself mirrored cannot loop.
 *
 * Programs never end the chain: they return TC_ACT_UNSPEC (TCX_NEXT), except
 * orchemu_encap, which drops a marked copy it cannot encapsulate.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TC_ACT_UNSPEC (-1)
#define TC_ACT_SHOT 2

#define MAX_SESSIONS 1024	/* slot = ERSPAN session id, 10 bits */
#define MAX_RULES 32		/* per port and direction */
#define MAX_COPIES 8		/* sessions one frame may be copied to */

#define MARK_MASK 0xffff0000u
#define MARK_MAGIC 0x7e1e0000u
#define MARK_ENCAP 0x8000u
#define MARK_SLOT 0x03ffu

/* A global (BPF-to-BPF, separately verified) function: keeps verification short. */
#define __global __attribute__((noinline))

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

enum kind {
	KIND_NONE = 0,
	KIND_SPAN = 1,
	KIND_ERSPAN = 2,
};

/* Directions of the hooks map key. */
enum dir {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* One mirror session, at index slot of `sessions`. */
struct session {
	__u32 kind;		/* enum kind; KIND_NONE = unused slot */
	__u32 ifindex;		/* where clones go */
	__u32 flags;		/* 0 (transmit) or BPF_F_INGRESS (inject) */
	__u32 src_ip;		/* ERSPAN outer IPv4 source, network order */
	__u32 dst_ip;		/* ERSPAN outer IPv4 destination, network order */
	__u16 gre_proto;	/* ERSPAN GRE protocol type, host order */
	__u8 dscp;
	__u8 ttl;
	__u8 smac[6];		/* ERSPAN outer Ethernet source */
	__u8 dmac[6];		/* ERSPAN outer Ethernet destination */
};

/* Match fields of a rule (struct rule.match). */
#define M_SRC4 (1u << 0)
#define M_DST4 (1u << 1)
#define M_SRC6 (1u << 2)
#define M_DST6 (1u << 3)
#define M_PROTO (1u << 4)
#define M_SPORT (1u << 5)
#define M_DPORT (1u << 6)
#define M_DSCP (1u << 7)
#define M_VLAN (1u << 8)

/* One ACL rule (or port-mirror entry) bound to a port and direction. */
struct rule {
	__u32 match;		/* M_*: the fields that must match; 0 matches all */
	__u32 slot;		/* the session copies go to */
	__u32 group;		/* ACL table: one action per group */
	__u16 vlan;
	__u8 proto;
	__u8 dscp;
	__u16 sport_lo, sport_hi;
	__u16 dport_lo, dport_hi;
	__u32 src[4], src_mask[4];	/* network order; IPv4 in [0] */
	__u32 dst[4], dst_mask[4];
};

struct hook_key {
	__u32 ifindex;
	__u32 dir;		/* enum dir */
};

/* The rules of one port and direction, sorted by group, then priority. */
struct hook_rules {
	__u32 n;
	__u32 pad;
	struct rule rules[MAX_RULES];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct hook_key);
	__type(value, struct hook_rules);
} hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SESSIONS);
	__type(key, __u32);
	__type(value, struct session);
} sessions SEC(".maps");

/* GRE sequence numbers, per session slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SESSIONS);
	__type(key, __u32);
	__type(value, __u32);
} seqs SEC(".maps");

/* ---- parsing ------------------------------------------------------------- */

#define P_VLAN (1u << 0)
#define P_IP4 (1u << 1)
#define P_IP6 (1u << 2)
#define P_PORTS (1u << 3)

struct pkt {
	__u32 flags;		/* P_* */
	__u16 vlan;
	__u8 proto;
	__u8 dscp;
	__u16 sport, dport;
	__u32 src[4], dst[4];
};

static __always_inline int is_vlan(__u16 proto_be)
{
	return proto_be == bpf_htons(ETH_P_8021Q) || proto_be == bpf_htons(ETH_P_8021AD);
}

static __always_inline void parse_l4(struct __sk_buff *skb, struct pkt *p, __u32 off)
{
	__u16 ports[2];

	if (p->proto != 6 && p->proto != 17 && p->proto != 132)
		return;
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)))
		return;
	p->sport = bpf_ntohs(ports[0]);
	p->dport = bpf_ntohs(ports[1]);
	p->flags |= P_PORTS;
}

__global int parse(struct __sk_buff *skb, struct pkt *p)
{
	__u32 off = 12;
	__u16 proto;

	if (!p)
		return 0;
	__builtin_memset(p, 0, sizeof(*p));
	if (bpf_skb_load_bytes(skb, off, &proto, sizeof(proto)))
		return 0;
	off += 2;
	if (skb->vlan_present) {
		p->flags |= P_VLAN;
		p->vlan = skb->vlan_tci & 0x0fff;
	}
#pragma unroll
	for (int i = 0; i < 2; i++) {
		__u16 tag[2];

		if (!is_vlan(proto))
			break;
		if (bpf_skb_load_bytes(skb, off, tag, sizeof(tag)))
			return 0;
		if (!(p->flags & P_VLAN)) {
			p->flags |= P_VLAN;
			p->vlan = bpf_ntohs(tag[0]) & 0x0fff;
		}
		proto = tag[1];
		off += 4;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		__u8 h[20];

		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) || (h[0] >> 4) != 4 || (h[0] & 0x0f) < 5)
			return 0;
		p->flags |= P_IP4;
		p->dscp = h[1] >> 2;
		p->proto = h[9];
		__builtin_memcpy(&p->src[0], &h[12], 4);
		__builtin_memcpy(&p->dst[0], &h[16], 4);
		if (((h[6] & 0x1f) | h[7]) == 0)	/* first fragment (or none) */
			parse_l4(skb, p, off + (h[0] & 0x0f) * 4);
		return 0;
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		__u8 h[40];
		__u8 next;

		if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) || (h[0] >> 4) != 6)
			return 0;
		p->flags |= P_IP6;
		p->dscp = (((h[0] & 0x0f) << 4) | (h[1] >> 4)) >> 2;
		__builtin_memcpy(p->src, &h[8], 16);
		__builtin_memcpy(p->dst, &h[24], 16);
		next = h[6];
		off += 40;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			__u8 x[4];

			if (next != 0 && next != 43 && next != 60 && next != 44)
				break;
			if (bpf_skb_load_bytes(skb, off, x, sizeof(x)))
				return 0;
			if (next == 44) {	/* fragment: ports only in the first */
				if (((x[2] << 8) | x[3]) & 0xfff8) {
					p->proto = x[0];
					return 0;
				}
				off += 8;
			} else {
				off += (x[1] + 1) * 8;
			}
			next = x[0];
		}
		p->proto = next;
		parse_l4(skb, p, off);
	}
	return 0;
}

/* ---- matching ------------------------------------------------------------ */

static __always_inline int match_addr(const __u32 *pa, const __u32 *ra, const __u32 *mask, int words)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i < words && (pa[i] & mask[i]) != ra[i])
			return 0;
	}
	return 1;
}

static __always_inline int match(const struct rule *r, const struct pkt *p)
{
	__u32 m = r->match;

	if ((m & M_VLAN) && (!(p->flags & P_VLAN) || p->vlan != r->vlan))
		return 0;
	if ((m & (M_SRC4 | M_DST4)) && !(p->flags & P_IP4))
		return 0;
	if ((m & (M_SRC6 | M_DST6)) && !(p->flags & P_IP6))
		return 0;
	if ((m & M_SRC4) && !match_addr(p->src, r->src, r->src_mask, 1))
		return 0;
	if ((m & M_DST4) && !match_addr(p->dst, r->dst, r->dst_mask, 1))
		return 0;
	if ((m & M_SRC6) && !match_addr(p->src, r->src, r->src_mask, 4))
		return 0;
	if ((m & M_DST6) && !match_addr(p->dst, r->dst, r->dst_mask, 4))
		return 0;
	if ((m & (M_PROTO | M_DSCP)) && !(p->flags & (P_IP4 | P_IP6)))
		return 0;
	if ((m & M_PROTO) && p->proto != r->proto)
		return 0;
	if ((m & M_DSCP) && p->dscp != r->dscp)
		return 0;
	if ((m & (M_SPORT | M_DPORT)) && !(p->flags & P_PORTS))
		return 0;
	if ((m & M_SPORT) && (p->sport < r->sport_lo || p->sport > r->sport_hi))
		return 0;
	if ((m & M_DPORT) && (p->dport < r->dport_lo || p->dport > r->dport_hi))
		return 0;
	return 1;
}

/* ---- mirroring ----------------------------------------------------------- */

static __always_inline void copy(struct __sk_buff *skb, __u32 slot)
{
	struct session *s = bpf_map_lookup_elem(&sessions, &slot);
	__u32 mark;

	if (!s || s->kind == KIND_NONE)
		return;
	mark = skb->mark;
	skb->mark = s->kind == KIND_ERSPAN ? MARK_MAGIC | MARK_ENCAP | (slot & MARK_SLOT) : MARK_MAGIC;
	bpf_clone_redirect(skb, s->ifindex, s->flags);
	skb->mark = mark;
}

/* The state of one frame's walk over its port's rules. */
struct walk {
	__u32 done;		/* the group whose action was taken last */
	__u32 nsent;
	__u32 sent[MAX_COPIES];	/* sessions already copied to */
};

/* One rule: if it matches and its group has not acted yet, copy to its session once. */
__global int step(struct __sk_buff *skb, const struct rule *r, const struct pkt *p, struct walk *w)
{
	__u32 n;

	if (!r || !p || !w || r->group == w->done || !match(r, p))
		return 0;
	w->done = r->group;
	n = w->nsent;
	if (n >= MAX_COPIES)
		return 0;
	for (__u32 j = 0; j < MAX_COPIES; j++) {
		if (j < n && w->sent[j] == r->slot)
			return 0;
	}
	w->sent[n] = r->slot;
	w->nsent = n + 1;
	copy(skb, r->slot);
	return 1;
}

static __always_inline int mirror(struct __sk_buff *skb, __u32 dir)
{
	struct hook_key k = { .ifindex = skb->ifindex, .dir = dir };
	struct hook_rules *hr;
	struct pkt p;
	struct walk w = { .done = 0xffffffff };

	if ((skb->mark & MARK_MASK) == MARK_MAGIC)
		return TC_ACT_UNSPEC;	/* a copy of ours */
	hr = bpf_map_lookup_elem(&hooks, &k);
	if (!hr)
		return TC_ACT_UNSPEC;
	parse(skb, &p);
	for (__u32 i = 0; i < MAX_RULES; i++) {
		if (i >= hr->n)
			break;
		step(skb, &hr->rules[i], &p, &w);
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int orchemu_in(struct __sk_buff *skb)
{
	return mirror(skb, DIR_INGRESS);
}

SEC("tc")
int orchemu_eg(struct __sk_buff *skb)
{
	return mirror(skb, DIR_EGRESS);
}

/* ---- ERSPAN encapsulation ------------------------------------------------ */

struct erspan_hdr {
	/* Ethernet */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 eth_proto;
	/* IPv4, no options */
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
	/* GRE with the S bit: flags, protocol, sequence number */
	__u16 gre_flags;
	__u16 gre_proto;
	__u32 gre_seq;
	/* ERSPAN type II */
	__u16 ver_vlan;		/* version 1 (4 bits), VLAN (12) */
	__u16 cos_en_t_sid;	/* COS (3), En (2), T (1), session id (10) */
	__u32 index;		/* reserved (12), index (20) */
} __attribute__((packed));

#define ERSPAN_HLEN sizeof(struct erspan_hdr)	/* 50 */
#define OUTER_IP_OFF 14

static __always_inline __u16 ip_checksum(const struct erspan_hdr *h)
{
	const __u16 *w = (const __u16 *)((const __u8 *)h + OUTER_IP_OFF);
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

SEC("tc")
int orchemu_encap(struct __sk_buff *skb)
{
	__u32 mark = skb->mark, slot, inner, tagged = 0, *seqp, seq;
	__u16 tci = 0;
	__be16 tpid = 0;
	struct erspan_hdr h = {};
	struct session *s;

	if ((mark & (MARK_MASK | MARK_ENCAP)) != (MARK_MAGIC | MARK_ENCAP))
		return TC_ACT_UNSPEC;
	slot = mark & MARK_SLOT;
	s = bpf_map_lookup_elem(&sessions, &slot);
	seqp = bpf_map_lookup_elem(&seqs, &slot);
	if (!s || !seqp || s->kind != KIND_ERSPAN)
		return TC_ACT_SHOT;
	skb->mark = MARK_MAGIC;

	/* A tag the kernel holds as metadata goes back into the mirrored frame. */
	if (skb->vlan_present) {
		tagged = 1;
		tci = skb->vlan_tci;
		tpid = skb->vlan_proto;
		if (bpf_skb_vlan_pop(skb))
			return TC_ACT_SHOT;
	}
	inner = skb->len + (tagged ? 4 : 0);
	if (inner > 0xffff - (ERSPAN_HLEN - OUTER_IP_OFF))
		return TC_ACT_SHOT;
	if (bpf_skb_change_head(skb, ERSPAN_HLEN + (tagged ? 4 : 0), 0))
		return TC_ACT_SHOT;
	if (tagged) {
		__u8 macs[12];
		__be16 tag[2] = { tpid, bpf_htons(tci) };

		if (bpf_skb_load_bytes(skb, ERSPAN_HLEN + 4, macs, sizeof(macs)) ||
		    bpf_skb_store_bytes(skb, ERSPAN_HLEN, macs, sizeof(macs), 0) ||
		    bpf_skb_store_bytes(skb, ERSPAN_HLEN + 12, tag, sizeof(tag), 0))
			return TC_ACT_SHOT;
	}

	seq = __sync_fetch_and_add(seqp, 1);
	__builtin_memcpy(h.dmac, s->dmac, 6);
	__builtin_memcpy(h.smac, s->smac, 6);
	h.eth_proto = bpf_htons(ETH_P_IP);
	h.ver_ihl = 0x45;
	h.tos = s->dscp << 2;
	h.tot_len = bpf_htons(ERSPAN_HLEN - OUTER_IP_OFF + inner);
	h.id = bpf_htons(seq & 0xffff);
	h.ttl = s->ttl;
	h.protocol = 47;	/* GRE */
	h.saddr = s->src_ip;
	h.daddr = s->dst_ip;
	h.check = ip_checksum(&h);
	h.gre_flags = bpf_htons(0x1000);	/* S: sequence number present */
	h.gre_proto = bpf_htons(s->gre_proto);
	h.gre_seq = bpf_htonl(seq);
	h.ver_vlan = bpf_htons((1 << 12) | (tci & 0x0fff));
	/* En: 0 = the frame was untagged, 3 = its tag is preserved in the frame. */
	h.cos_en_t_sid = bpf_htons(((tci >> 13) << 13) | ((tagged ? 3 : 0) << 11) | (slot & 0x03ff));
	if (bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0))
		return TC_ACT_SHOT;
	return TC_ACT_UNSPEC;
}
