//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * telegen tc observer: one job's per-port telemetry. Every frame that passes
 * the job's filters is counted exactly (frames, bytes, malformed); 1 in N of
 * them (cfg_sample_rate) goes on to the sampled analysis: IPv4 header
 * checksum, the flow tables with TCP retransmissions and passive latency,
 * and, for pcaplike jobs, a copy of its first bytes into a ring buffer.
 *
 * Configuration is load-time constants (volatile const, frozen .rodata), so
 * the verifier prunes what a job does not use and it costs nothing.
 *
 * One body (observe) and thin wrappers per attach flavour: TCX links (kernel
 * >= 6.6) and classic clsact + cls_bpf in direct-action mode (SONiC's 6.1).
 * An observer never ends the chain: the wrappers return TCX_NEXT /
 * TC_ACT_UNSPEC (both -1) so that whatever runs after us decides the frame's
 * fate. Helpers used are all in 6.1: map ops, ktime_get_ns (4.1),
 * ktime_get_coarse_ns (5.11), jiffies64 (5.5), get_prandom_u32,
 * skb_pull_data (4.9), skb_load_bytes, ringbuf_reserve/submit/discard/query
 * (5.8).
 * docs/DATAPLANE.md says what is measured and how.
 */
#include "telegen.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- configuration, set by pkg/datapath before load ---------------------- */

volatile const __u32 cfg_filters = 0;	/* F_* */
volatile const __u32 cfg_features = FEAT_FLOWS | FEAT_TCP | FEAT_LATENCY | FEAT_CHECKSUM;
volatile const __u16 cfg_vlan = 0;	/* F_VLAN: this VID in any of the two outer tags */
volatile const __u64 cfg_protos[4] = {};	/* F_PROTO: bit set of IP protocols */
volatile const __u64 cfg_dscps = 0;	/* F_DSCP: bit set of DSCP values */
/* F_SPORT, F_DPORT: bit sets of source and destination ports, each port at
 * its wire (network byte order) value: the fast path checks the field as
 * loaded, which also bounds the index where Linux 6.1's verifier sees it. */
volatile const __u64 cfg_sports[1024] = {};
volatile const __u64 cfg_dports[1024] = {};
volatile const __u32 cfg_src4 = 0, cfg_src4_mask = 0;	/* network byte order */
volatile const __u32 cfg_dst4 = 0, cfg_dst4_mask = 0;
/* 8-aligned: compared a 64-bit word at a time. */
volatile const __u32 cfg_src6[4] __attribute__((aligned(8))) = {};
volatile const __u32 cfg_src6_mask[4] __attribute__((aligned(8))) = {};
volatile const __u32 cfg_dst6[4] __attribute__((aligned(8))) = {};
volatile const __u32 cfg_dst6_mask[4] __attribute__((aligned(8))) = {};
/* Sampling: 1 = every frame; else the gap to the next sampled frame is drawn
 * from cfg_gaps (geometric quantiles of mean cfg_sample_rate). */
volatile const __u32 cfg_sample_rate = 1;
volatile const __u32 cfg_gaps[GAP_SLOTS] = {};
/* Latency histogram upper bounds (ns), ascending, padded with 2^62. */
volatile const __u64 cfg_lat_bounds[LAT_SLOTS] = {};
/* pcaplike. */
volatile const __u32 cfg_snaplen = 64;	/* a multiple of 8, <= MAX_SNAPLEN */
volatile const __u32 cfg_cap_rate = 0;	/* samples per second, 0 = no cap */
volatile const __u64 cfg_cap_max_packets = 0;	/* 0 = no cap */
volatile const __u64 cfg_cap_max_bytes = 0;	/* captured bytes, 0 = no cap */
volatile const __u64 cfg_wakeup = 0;	/* wake the reader from this many bytes in the ring */
/* ERSPAN: the session whose copies this job analyses; 0xffff = any (and type I). */
volatile const __u16 cfg_erspan_session = 0xffff;
/* Flow tables: sets - 1, 64 - log2(sets), and the job's hash seed (random,
 * so that nobody can aim conversations at one set). */
volatile const __u32 cfg_flow_mask = 255;
volatile const __u32 cfg_flow_shift = 56;
volatile const __u64 cfg_flow_seed = 0;
/* Not used here: recorded for a restarted daemon that adopts the job. */
volatile const __u32 cfg_topk = 0;

/* ---- maps -------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DIR_MAX);
	__type(key, enum direction);
	__type(value, struct dir_stats);
} stats SEC(".maps");

/* Flow tables: max_entries (sets) is set per job from topk_flows, a power
 * of two; cfg_flow_mask is max_entries - 1. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_MMAPABLE);	/* page-aligned values */
	__type(key, __u32);
	__type(value, struct flow4_set);
} flows4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_MMAPABLE);	/* page-aligned values */
	__type(key, __u32);
	__type(value, struct flow6_set);
} flows6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HIST_MAX);
	__type(key, enum hist_id);
	__type(value, struct hist);
} latency SEC(".maps");

/* max_entries (bytes) is set per job. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct capture_state);
} capstate SEC(".maps");

/* ---- packet parsing ------------------------------------------------------ */

/*
 * What is not on the per-frame fast path is in global functions (tg_*):
 * BPF-to-BPF calls that the verifier checks once each, with what they are
 * passed taken as unknown. That keeps verification linear in the code size
 * instead of multiplying the paths of the parser, the filters and the
 * analysis. A call costs about a nanosecond. (6.1 hands a pointer argument
 * over as possibly NULL: each checks.)
 */
#define __global __attribute__((noinline))

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define ETH_P_ERSPAN 0x88BE
#define ETH_P_ERSPAN3 0x22EB

#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_GRE 47
#define IPPROTO_ICMPV6 58
#define IPPROTO_SCTP 132

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Headers further in than this are not parsed (IPv6 extension chains). */
#define MAX_L4_OFF 512
/* What bpf_skb_pull_data makes linear when headers are not. */
#define PULL_LEN 256
/* Latency values are clamped here (below 2^62, see hist_add). */
#define LAT_MAX (1ULL << 60)
/* A ring-buffer record: the ring's own 8-byte header, ours, the snap length. */
#define RECORD_SIZE (8 + sizeof(struct sample_hdr) + cfg_snaplen)
/* A tcp.rtt probe with no answer after this long is replaced. */
#define PROBE_TIMEOUT_NS 2000000000ULL

#define bswap16(x) __builtin_bswap16(x)
#define bswap32(x) __builtin_bswap32(x)
#define NS_PER_SEC 1000000000ULL

/* What parse() learnt about a frame. Offsets are from skb->data. Kept small:
 * the fast path zeroes it for every frame. */
struct pkt {
	__u32 saddr4, daddr4;	/* network order */
	__u32 seq, ack;	/* TCP, host order */
	__u32 payload;	/* TCP payload bytes */
	__u16 sport, dport;
	__u16 vlan_outer, vlan_inner;
	__u16 l3_off;
	__u16 hdr_len;	/* bytes up to the L4 payload (GSO accounting), 0 = unknown */
	__u8 ntags;
	__u8 l3;	/* 0 (not IP), 4 or 6 */
	__u8 proto;
	__u8 dscp;
	__u8 ihl;	/* IPv4 header bytes */
	__u8 ports;	/* sport/dport are valid */
	__u8 tcp_flags;
	__u8 malformed;
};

/* A frame on its way through the sampled analysis. */
struct sample {
	struct pkt p;
	__u32 base;	/* ERSPAN: offset of the mirrored frame */
	__u32 wire_len;	/* this frame's wire length */
	__u8 dir;	/* enum direction */
	__u8 sampled;
	__u8 side;	/* which endpoint of its conversation sent it */
	__u8 pad[5];
	__u64 pkts;	/* frames it stands for (GSO) */
	__u64 bytes;	/* and their wire bytes */
	__u64 now;	/* coarse clock, for flows */
};

enum {
	PARSE_DONE = 0,
	PARSE_PULL = 1,	/* headers lie beyond the linear data */
};

/*
 * The verifier explores every path through the parser with the offsets it can
 * prove; paths that reach a point with different offset ranges cannot be
 * merged. WIDEN() forgets all but an upper bound (1023) at such points, so
 * the paths agree and are merged, which keeps verification short.
 */
#define WIDEN(x) asm volatile("%0 &= 0x3ff" : "+r"(x))

/* The header of n bytes at off is not in the linear data: the frame is too
 * short (malformed), or the rest is in page fragments (pull and retry). */
#define ENSURE(n)							\
	do {								\
		if (data + off + (n) > data_end) {			\
			if (off + (n) > len)				\
				goto bad;				\
			return PARSE_PULL;				\
		}							\
	} while (0)

static __always_inline int is_ext6(__u8 nh)
{
	return nh == 0 || nh == 43 || nh == 60 || nh == 44 || nh == 51;
}

/*
 * IPv6 extension headers (hop-by-hop, routing, fragment, destination
 * options, authentication), at most 6, starting at off with next header nh,
 * the payload ending at end. Returns EXT6_* | proto << 8 | l4 offset << 16:
 * EXT6_L4 when they lead to the upper layer (proto) at that offset;
 * EXT6_NOPORTS for a non-first fragment, or a chain too long or too far in
 * (proto is then what is known); EXT6_BAD for a header that overruns the
 * payload; EXT6_PULL when one lies beyond the linear data. Scalars in and
 * out keep the caller's packet description in registers.
 */
enum {
	EXT6_L4 = 0,
	EXT6_NOPORTS = 1,
	EXT6_BAD = 2,
	EXT6_PULL = 3,
};

#define EXT6(st, proto, off) ((__u64)(st) | ((__u64)(proto) << 8) | ((__u64)(off) << 16))

__global __u64 tg_ext6(struct __sk_buff *skb, __u32 off, __u32 end, __u32 nh)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 len = skb->len, el;
	__u8 *p;

	nh &= 0xff;
#pragma unroll
	for (int i = 0; i < 6; i++) {
		if (!is_ext6(nh))
			break;
		if (off + 8 > end)
			return EXT6(EXT6_BAD, nh, 0);
		if (off > MAX_L4_OFF)
			return EXT6(EXT6_NOPORTS, nh, 0);
		WIDEN(off);
		if (data + off + 8 > data_end)
			return EXT6(off + 8 > len ? EXT6_BAD : EXT6_PULL, nh, 0);
		p = data + off;
		el = (p[1] + 1) * 8;	/* hop-by-hop, routing, destination options */
		if (nh == 44) {	/* fragment */
			el = 8;
			if (*(__u16 *)(p + 2) & bswap16(0xfff8))
				return EXT6(EXT6_NOPORTS, p[0], 0);	/* not the first fragment */
		} else if (nh == 51) {	/* authentication header */
			el = (p[1] + 2) * 4;
		}
		nh = p[0];
		if (off + el > end)
			return EXT6(EXT6_BAD, nh, 0);
		off += el;
	}
	if (is_ext6(nh) || off > MAX_L4_OFF)
		return EXT6(EXT6_NOPORTS, nh, 0);	/* more than 6, or too far in */
	return EXT6(EXT6_L4, nh, off);
}

static __always_inline int parse(struct __sk_buff *skb, struct pkt *pk, __u32 base)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 len = skb->len;
	__u32 off, avail, tot, hl, l4_len;
	__u16 proto;
	__u8 *p, nh;

	if (base > 256)
		return PARSE_DONE;
	off = base;
	ENSURE(ETH_HLEN);
	proto = *(__u16 *)(data + off + 12);
	off += ETH_HLEN;

#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bswap16(ETH_P_8021Q) && proto != bswap16(ETH_P_8021AD))
			break;
		ENSURE(VLAN_HLEN);
		__u16 vid = bswap16(*(__u16 *)(data + off)) & 0x0fff;
		if (pk->ntags == 0)
			pk->vlan_outer = vid;
		else if (pk->ntags == 1)
			pk->vlan_inner = vid;
		pk->ntags++;
		proto = *(__u16 *)(data + off + 2);
		off += VLAN_HLEN;
	}
	WIDEN(off);
	pk->l3_off = off;
	if (len < off)
		goto bad;
	avail = len - off;

	if (proto == bswap16(ETH_P_IP)) {
		ENSURE(20);
		p = data + off;
		if ((p[0] >> 4) != 4)
			goto bad;
		hl = (p[0] & 0x0f) * 4;
		if (hl < 20)
			goto bad;
		ENSURE(hl);
		pk->l3 = 4;
		pk->ihl = hl;
		pk->dscp = p[1] >> 2;
		pk->proto = p[9];
		pk->saddr4 = *(__u32 *)(p + 12);
		pk->daddr4 = *(__u32 *)(p + 16);
		tot = bswap16(*(__u16 *)(p + 2));
		if (tot == 0)	/* TSO / BIG TCP: the frame says */
			tot = avail;
		if (tot > avail || tot < hl)
			goto bad;
		if (*(__u16 *)(p + 6) & bswap16(0x1fff))	/* not the first fragment */
			return PARSE_DONE;
		off += hl;
		l4_len = tot - hl;
	} else if (proto == bswap16(ETH_P_IPV6)) {
		__u32 plen;

		ENSURE(40);
		p = data + off;
		if ((p[0] >> 4) != 6)
			goto bad;
		pk->l3 = 6;
		pk->dscp = ((p[0] & 0x0f) << 2) | (p[1] >> 6);
		plen = bswap16(*(__u16 *)(p + 4));
		nh = p[6];
		pk->proto = nh;
		if (avail < 40)
			goto bad;
		if (plen == 0)	/* jumbogram / BIG TCP: the frame says */
			plen = avail - 40;
		if (plen > avail - 40)
			goto bad;
		off += 40;
		l4_len = plen;
		if (is_ext6(nh)) {
			__u64 r = tg_ext6(skb, off, off + plen, nh);
			__u32 l4 = (r >> 16) & 0x3ff;

			pk->proto = r >> 8;
			switch (r & 0xff) {
			case EXT6_L4:
				break;
			case EXT6_NOPORTS:
				return PARSE_DONE;
			case EXT6_PULL:
				return PARSE_PULL;
			default:
				goto bad;
			}
			l4_len = plen - (l4 - off);
			off = l4;
		}
	} else {
		return PARSE_DONE;
	}

	/* Transport. */
	if (off > MAX_L4_OFF)
		return PARSE_DONE;
	WIDEN(off);
	switch (pk->proto) {
	case IPPROTO_TCP:
		if (l4_len < 20)
			goto bad;
		ENSURE(20);
		p = data + off;
		hl = (p[12] >> 4) * 4;
		if (hl < 20 || hl > l4_len)
			goto bad;
		pk->sport = bswap16(*(__u16 *)p);
		pk->dport = bswap16(*(__u16 *)(p + 2));
		pk->seq = bswap32(*(__u32 *)(p + 4));
		pk->ack = bswap32(*(__u32 *)(p + 8));
		pk->tcp_flags = p[13];
		pk->payload = l4_len - hl;
		pk->hdr_len = off + hl;
		pk->ports = 1;
		break;
	case IPPROTO_UDP:
		if (l4_len < 8)
			goto bad;
		ENSURE(8);
		p = data + off;
		hl = bswap16(*(__u16 *)(p + 4));
		if (hl < 8 || hl > l4_len)
			goto bad;
		pk->sport = bswap16(*(__u16 *)p);
		pk->dport = bswap16(*(__u16 *)(p + 2));
		pk->hdr_len = off + 8;
		pk->ports = 1;
		break;
	case IPPROTO_SCTP:
		if (l4_len < 12)
			goto bad;
		ENSURE(4);
		p = data + off;
		pk->sport = bswap16(*(__u16 *)p);
		pk->dport = bswap16(*(__u16 *)(p + 2));
		pk->ports = 1;
		break;
	}
	return PARSE_DONE;

bad:
	pk->malformed = 1;
	return PARSE_DONE;
}

/* The parser again, as a function of its own, for the second attempt after
 * bpf_skb_pull_data (rare): one more copy to verify, not one more path. */
__global int tg_parse(struct __sk_buff *skb, struct pkt *pk, __u32 base)
{
	if (!pk)
		return PARSE_DONE;
	return parse(skb, pk, base);
}

/*
 * ERSPAN: returns the offset of the mirrored frame inside an ERSPAN copy of
 * the job's session, or 0 when the frame is something else. Outer headers:
 * Ethernet, up to two VLAN tags, IPv4 (any header length) or IPv6 (no
 * extension headers), GRE (RFC 2784/2890 flags) with protocol 0x88BE (type I
 * without, type II with a sequence number) or 0x22EB (type III, with its
 * optional platform sub-header).
 */
__global int tg_erspan(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 off = ETH_HLEN, hl;
	__u16 proto, gflags, gproto, sid;
	__u8 *p;

	if (!(cfg_features & FEAT_ERSPAN) || data + ETH_HLEN > data_end)
		return 0;
	proto = *(__u16 *)(data + 12);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bswap16(ETH_P_8021Q) && proto != bswap16(ETH_P_8021AD))
			break;
		if (data + off + VLAN_HLEN > data_end)
			return 0;
		proto = *(__u16 *)(data + off + 2);
		off += VLAN_HLEN;
	}
	if (proto == bswap16(ETH_P_IP)) {
		if (data + off + 20 > data_end)
			return 0;
		p = data + off;
		hl = (p[0] & 0x0f) * 4;
		if ((p[0] >> 4) != 4 || hl < 20 || p[9] != IPPROTO_GRE ||
		    (*(__u16 *)(p + 6) & bswap16(0x1fff)))
			return 0;
		off += hl;
	} else if (proto == bswap16(ETH_P_IPV6)) {
		if (data + off + 40 > data_end)
			return 0;
		p = data + off;
		if ((p[0] >> 4) != 6 || p[6] != IPPROTO_GRE)
			return 0;
		off += 40;
	} else {
		return 0;
	}
	if (data + off + 4 > data_end)
		return 0;
	p = data + off;
	gflags = bswap16(*(__u16 *)p);
	gproto = bswap16(*(__u16 *)(p + 2));
	if (gflags & 0x0007)	/* GRE version 0 only */
		return 0;
	off += 4;
	if (gflags & 0x8000)	/* checksum present */
		off += 4;
	if (gflags & 0x2000)	/* key present */
		off += 4;
	if (gproto == ETH_P_ERSPAN) {
		if (!(gflags & 0x1000))	/* type I: no ERSPAN header, no session */
			return cfg_erspan_session == 0xffff ? off : 0;
		off += 4;	/* sequence number */
		if (data + off + 8 > data_end)
			return 0;
		p = data + off;
		if ((p[0] >> 4) != 1)
			return 0;
		sid = bswap16(*(__u16 *)(p + 2)) & 0x03ff;
		off += 8;
	} else if (gproto == ETH_P_ERSPAN3) {
		if (gflags & 0x1000)
			off += 4;
		if (data + off + 12 > data_end)
			return 0;
		p = data + off;
		if ((p[0] >> 4) != 2)
			return 0;
		sid = bswap16(*(__u16 *)(p + 2)) & 0x03ff;
		if ((p[10] >> 2) & 0x1f)	/* frame type: only 0 (Ethernet) is a mirrored frame */
			return 0;
		off += 12;
		if (p[11] & 0x01)	/* platform specific sub-header */
			off += 8;
	} else {
		return 0;
	}
	if (cfg_erspan_session != 0xffff && sid != cfg_erspan_session)
		return 0;
	return off;
}

/* ---- filters ------------------------------------------------------------- */

static __always_inline int bit_set(volatile const __u64 *set, __u32 n)
{
	return (set[(n >> 6) & 1023] >> (n & 63)) & 1;
}

/* A port of a frame's description (host order) at its wire value, bounded
 * where the verifier sees it: Linux 6.1 learns no range from a byte swap,
 * and clang drops a mask it can prove redundant. */
static __always_inline __u32 wire_port(__u16 port)
{
	__u32 w = bswap16(port);

	asm("%0 &= 0xffff" : "+r"(w));
	return w;
}

/* Is the IPv6 address at a in net/mask? Two 64-bit words (byte order does
 * not matter to a masked compare). */
static __always_inline int match6(void *a, volatile const __u32 *net, volatile const __u32 *mask)
{
	__u64 *w = a;
	volatile const __u64 *n = (volatile const __u64 *)net, *m = (volatile const __u64 *)mask;

	return (w[0] & m[0]) == n[0] && (w[1] & m[1]) == n[1];
}

/*
 * Does a frame pass the job's filters? In three parts, by layer, each on
 * scalars, so that the fast path (fast_observe) can check a field as soon as
 * it has it in a register. A filter on a field the frame does not have (a
 * port of ICMP, an address of ARP) fails.
 */
/* (fast_l3 has this test in the form its frame shapes allow: keep them alike.) */
static __always_inline int match_l2(__u32 f, __u32 ntags, __u32 vlan_outer, __u32 vlan_inner)
{
	if (!(f & F_VLAN))
		return 1;
	return ntags && (vlan_outer == cfg_vlan || (ntags >= 2 && vlan_inner == cfg_vlan));
}

static __always_inline int match_l3(__u32 f, struct __sk_buff *skb, __u32 l3, __u32 proto,
				    __u32 dscp, __u32 saddr4, __u32 daddr4, __u32 l3_off)
{
	if (!(f & ~(F_VLAN | F_SPORT | F_DPORT)))
		return 1;
	if (!l3)
		return 0;
	if ((f & F_PROTO) && !bit_set(cfg_protos, proto))
		return 0;
	if ((f & F_DSCP) && !((cfg_dscps >> (dscp & 63)) & 1))
		return 0;
	if (f & (F_SRC4 | F_DST4)) {
		if (l3 != 4)
			return 0;
		if ((f & F_SRC4) && (saddr4 & cfg_src4_mask) != cfg_src4)
			return 0;
		if ((f & F_DST4) && (daddr4 & cfg_dst4_mask) != cfg_dst4)
			return 0;
	}
	if (f & (F_SRC6 | F_DST6)) {
		void *data = (void *)(long)skb->data;
		void *data_end = (void *)(long)skb->data_end;

		if (l3 != 6 || l3_off > 512)
			return 0;
		if (data + l3_off + 40 > data_end)
			return 0;
		if ((f & F_SRC6) && !match6(data + l3_off + 8, cfg_src6, cfg_src6_mask))
			return 0;
		if ((f & F_DST6) && !match6(data + l3_off + 24, cfg_dst6, cfg_dst6_mask))
			return 0;
	}
	return 1;
}

/* (sport and dport at their wire values: see cfg_sports) */
static __always_inline int match_l4(__u32 f, __u32 ports, __u32 sport, __u32 dport)
{
	if ((f & F_SPORT) && (!ports || !bit_set(cfg_sports, sport)))
		return 0;
	if ((f & F_DPORT) && (!ports || !bit_set(cfg_dports, dport)))
		return 0;
	return 1;
}

static __always_inline int match(struct __sk_buff *skb, const struct pkt *pk)
{
	__u32 f = cfg_filters;	/* one load: volatile reads are not merged */

	return match_l2(f, pk->ntags, pk->vlan_outer, pk->vlan_inner) &&
	       match_l3(f, skb, pk->l3, pk->proto, pk->dscp, pk->saddr4, pk->daddr4, pk->l3_off) &&
	       match_l4(f, pk->ports, wire_port(pk->sport), wire_port(pk->dport));
}

/* ---- sampled analysis ----------------------------------------------------- */

static __always_inline int seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static __always_inline void hist_add(enum hist_id which, __u64 v)
{
	struct hist *h = bpf_map_lookup_elem(&latency, &which);
	__u64 lo = 0, lt;

	if (!h)
		return;
	if (v > LAT_MAX)
		v = LAT_MAX;
	/* lo = number of bounds below v = the bucket of v: a branch-free binary
	 * search (bounds and v are below 2^62, so bound - v is negative exactly
	 * when bound < v), one verifier path instead of 32. */
#pragma unroll
	for (__u32 step = LAT_SLOTS / 2; step; step >>= 1) {
		lt = (cfg_lat_bounds[(lo + step - 1) & (LAT_SLOTS - 1)] - v) >> 63;
		asm volatile("" : "+r"(lt));
		lo += step * lt;
	}
	h->counts[lo & (LAT_SLOTS - 1)]++;
	h->sum += v;
}

/* IPv4 header checksum over ihl bytes (20..60, linear: parse checked). */
static __always_inline int ip4_csum_bad(struct __sk_buff *skb, const struct pkt *pk)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 off = pk->l3_off, ihl = pk->ihl;
	__u64 sum;
	__u32 *w;

	if (off > 512)
		return 0;
	w = data + off;
	if (ihl == 20) {
		if ((void *)(w + 5) > data_end)
			return 0;
		sum = (__u64)w[0] + w[1] + w[2] + w[3] + w[4];
		sum = (sum & 0xffffffff) + (sum >> 32);
	} else {
		/* With options (rare): copy them out, sum all 15 words. */
		__u32 buf[15] = {};

		if (ihl < 20 || ihl > 60 || bpf_skb_load_bytes(skb, off, buf, ihl))
			return 0;
		sum = 0;
#pragma unroll
		for (int i = 0; i < 15; i++)
			sum += buf[i];
		sum = (sum & 0xffffffff) + (sum >> 32);
	}
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum != 0xffff;
}

/*
 * TCP on the conversation entry v, for a segment sent by endpoint pk->side.
 * Handshake matching (network.latency) runs on every SYN, sampled or not;
 * retransmissions and tcp.rtt on sampled segments only. Returns 1 for a
 * retransmission.
 */
__global int tg_tcp(struct flow_val *v, struct sample *sm)
{
	struct flow_dir *fd, *rd;
	__u32 side, span, end;
	int retrans = 0;
	__u8 fl;

	if (!v || !sm || !(cfg_features & FEAT_TCP))
		return 0;
	side = sm->side & 1;
	fd = &v->d[side];
	rd = &v->d[side ^ 1];
	fl = sm->p.tcp_flags;

	if ((cfg_features & FEAT_LATENCY) && (fl & TCP_SYN)) {
		struct flow_dir *hs = &v->d[0];	/* holds the handshake */

		if (!(fl & TCP_ACK)) {
			if (hs->syn_ns && hs->syn_isn == sm->p.seq && hs->syn_dir == side) {
				hs->syn_ns = 1;	/* retransmitted SYN: ambiguous (Karn) */
			} else {
				hs->syn_ns = bpf_ktime_get_ns();
				hs->syn_isn = sm->p.seq;
				hs->syn_dir = side;
			}
		} else if (hs->syn_ns > 1 && hs->syn_dir != side && sm->p.ack == hs->syn_isn + 1) {
			hist_add(HIST_NET_LATENCY, bpf_ktime_get_ns() - hs->syn_ns);
			hs->syn_ns = 0;
		}
	}
	if (!sm->sampled)
		return 0;

	span = sm->p.payload + !!(fl & TCP_SYN) + !!(fl & TCP_FIN);
	if (span) {
		if (fd->seq_valid && !(fl & TCP_RST) && seq_before(sm->p.seq, fd->seq_end) &&
		    !(sm->p.payload <= 1 && !(fl & (TCP_SYN | TCP_FIN)) && sm->p.seq == fd->seq_end - 1)) {
			retrans = 1;	/* (not a keep-alive, which repeats one byte) */
			if (fd->probe_ns && seq_before(sm->p.seq, fd->probe_ack))
				fd->probe_ns = 0;	/* Karn: its answer would be ambiguous */
		}
		end = sm->p.seq + span;
		if (!fd->seq_valid || seq_before(fd->seq_end, end)) {
			fd->seq_end = end;
			fd->seq_valid = 1;
		}
		if ((cfg_features & FEAT_LATENCY) && !retrans && !(fl & TCP_SYN) &&
		    (!fd->probe_ns || (__s64)(sm->now - fd->probe_ns) > (__s64)PROBE_TIMEOUT_NS)) {
			fd->probe_ns = bpf_ktime_get_ns();
			fd->probe_ack = end;
		}
	}
	if ((cfg_features & FEAT_LATENCY) && (fl & TCP_ACK) && rd->probe_ns &&
	    !seq_before(sm->p.ack, rd->probe_ack)) {
		__u64 t = rd->probe_ns;

		rd->probe_ns = 0;
		hist_add(HIST_TCP_RTT, bpf_ktime_get_ns() - t);
	}
	return retrans;
}

/* The set of a key: each word, seeded, times its own odd constant, the
 * products added (independent multiplies: a short dependency chain); the
 * set is the top bits of the sum, the only ones every input bit reaches
 * (Fibonacci hashing). */
static __always_inline __u32 flow_hash(const __u64 *w, int n)
{
	static const __u64 mult[5] = {
		0x9e3779b97f4a7c15ULL, 0xbf58476d1ce4e5b9ULL, 0x94d049bb133111ebULL,
		0xd6e8feb86659fd93ULL, 0xc2b2ae3d27d4eb4fULL,
	};
	__u64 seed = cfg_flow_seed, h = 0;

#pragma unroll
	for (int i = 0; i < n && i < 5; i++)
		h += (w[i] ^ (seed >> i)) * mult[i];
	return (__u32)(h >> cfg_flow_shift) & cfg_flow_mask;
}

/* The recency of a slot: when it was last sampled (0 = never: a handshake
 * seen unsampled, the first to go). */
static __always_inline __u64 slot_age(const struct flow_val *v)
{
	return v->d[0].last_ns > v->d[1].last_ns ? v->d[0].last_ns : v->d[1].last_ns;
}

/*
 * Per address family f: flow_find##f returns the slot of key k in its set,
 * or -1; tg_insert##f puts k in a free slot of the set, or else in the least
 * recently sampled one (an eviction), and returns that slot, or -1 when
 * another CPU holds the set's claim (flow_errors). The inserter claims the
 * set (one CPU at a time) and looks for k again first: another CPU may have
 * just put it there. Hits take no lock: a CPU handles a conversation at a
 * time (RSS), and a hit racing an insert into its own slot costs that
 * conversation a frame, never the totals.
 */
#define WRITE_ONCE_U8(x, v) (*(volatile __u8 *)&(x) = (v))

#define FLOW_TABLE(f)									\
static __always_inline int flow_find##f(struct flow##f##_set *set, const struct flow##f##_key *k) \
{											\
	const __u64 *b = (const __u64 *)k;						\
											\
	for (int i = 0; i < FLOW_WAYS; i++) {						\
		const __u64 *a = (const __u64 *)&set->key[i];			\
		int j;									\
											\
		_Pragma("unroll")							\
		for (j = 0; j < (int)(sizeof(*k) / 8); j++)				\
			if (a[j] != b[j])						\
				break;							\
		if (j == (int)(sizeof(*k) / 8))						\
			return i;							\
	}										\
	return -1;									\
}											\
											\
/* A function of its own, so that the slot it returns is one unknown value to	\
 * the caller's verification, not 17 known ones, each a path to verify. */	\
__global int tg_find##f(struct flow##f##_set *set, const struct flow##f##_key *k)	\
{											\
	if (!set || !k)									\
		return -1;								\
	return flow_find##f(set, k);							\
}											\
											\
/* The slot a new conversation takes: the first free one, else the least	\
 * recently sampled. Apart, for the same reason as tg_find##f. */		\
__global int tg_victim##f(struct flow##f##_set *set)				\
{											\
	__u64 oldest = 1ULL << 62, age, lt, victim = 0;					\
											\
	if (!set)									\
		return 0;								\
	for (__u64 i = 0; i < FLOW_WAYS; i++) {						\
		if (!set->key[i].used)							\
			return i;							\
		/* Branch-free minimum (ages are below 2^62): one path to	\
		 * verify per slot, not one per way the minimum could go. */	\
		age = slot_age(&set->val[i]) & ((1ULL << 62) - 1);		\
		lt = -((age - oldest) >> 63);						\
		oldest ^= (oldest ^ age) & lt;						\
		victim ^= (victim ^ i) & lt;						\
	}										\
	return victim;									\
}											\
											\
__global int tg_insert##f(struct flow##f##_set *set, const struct flow##f##_key *k,	\
			  struct dir_stats *st)						\
{											\
	int i, victim;									\
											\
	if (!set || !k || !st)								\
		return -1;								\
	if (__sync_val_compare_and_swap(&set->claim, 0, 1) != 0) {			\
		st->flow_errors++;							\
		return -1;								\
	}										\
	i = tg_find##f(set, k);								\
	if (i >= 0) {									\
		__sync_fetch_and_and(&set->claim, 0);					\
		return i;								\
	}										\
	victim = tg_victim##f(set) & (FLOW_WAYS - 1);					\
	if (set->key[victim].used) {							\
		st->flow_evictions++;							\
		/* Unmatchable first (every key looked up has used = 1), so	\
		 * the evicted conversation's frames stop landing here. */	\
		WRITE_ONCE_U8(set->key[victim].used, 0);				\
	}										\
	st->flow_inserts++;								\
	__builtin_memset(&set->val[victim], 0, sizeof(struct flow_val));		\
	set->key[victim] = *k;								\
	__sync_fetch_and_and(&set->claim, 0);						\
	return victim;									\
}

FLOW_TABLE(4)
FLOW_TABLE(6)

static __always_inline void flow_update(struct flow_val *v, struct sample *sm, struct dir_stats *st)
{
	if (sm->sampled) {
		struct flow_dir *fd = &v->d[sm->side & 1];

		/* Plain adds: a flow is handled by one CPU at a time (RSS), and a
		 * lost update costs one packet of one flow, never the totals. */
		if (!fd->packets)
			fd->first_ns = sm->now;
		fd->last_ns = sm->now;
		fd->packets += sm->pkts;
		fd->bytes += sm->bytes;
		fd->tcp_flags |= sm->p.tcp_flags;
	}
	if ((cfg_features & FEAT_TCP) && sm->p.proto == IPPROTO_TCP && sm->p.ports && tg_tcp(v, sm))
		st->tcp_retrans++;
}

/*
 * Per address family: the conversation of key k (endpoints in canonical
 * order) is found or inserted in its set and given the frame. The key is
 * built as whole 64-bit words, each stored once: the hash and the slot
 * compares read it back a word at a time, and a word read back from several
 * narrower stores still in flight stalls the load (no store forwarding).
 */
#define FLOW_COUNT(f)									\
static __always_inline void flow_count##f(__u64 *k, struct sample *sm, struct dir_stats *st)	\
{											\
	struct flow##f##_set *set;							\
	__u32 idx;									\
	int slot;									\
											\
	idx = flow_hash(k, sizeof(struct flow##f##_key) / 8);				\
	set = bpf_map_lookup_elem(&flows##f, &idx);					\
	if (!set)									\
		return;									\
	slot = tg_find##f(set, (struct flow##f##_key *)k);				\
	if (slot < 0)									\
		slot = tg_insert##f(set, (struct flow##f##_key *)k, st);		\
	if (slot >= 0)									\
		flow_update(&set->val[slot & (FLOW_WAYS - 1)], sm, st);		\
}

FLOW_COUNT(4)
FLOW_COUNT(6)

/* The last word of a key, after the addresses: ports, VLAN, protocol, used. */
static __always_inline __u64 key_tail(__u16 port0, __u16 port1, const struct sample *sm)
{
	return (__u64)port0 | (__u64)port1 << 16 | (__u64)sm->p.vlan_outer << 32 |
	       (__u64)sm->p.proto << 48 | 1ULL << 56;
}

_Static_assert(sizeof(struct flow4_key) == 16 && __builtin_offsetof(struct flow4_key, port) == 8 &&
	       __builtin_offsetof(struct flow4_key, vlan) == 12 &&
	       __builtin_offsetof(struct flow4_key, proto) == 14 &&
	       __builtin_offsetof(struct flow4_key, used) == 15, "flow4_key words");
_Static_assert(sizeof(struct flow6_key) == 40 && __builtin_offsetof(struct flow6_key, port) == 32 &&
	       __builtin_offsetof(struct flow6_key, used) == 39, "flow6_key words");

/* IPv4 conversation of the frame: count it, analyse TCP. */
static __always_inline int tg_flow4(struct sample *sm, struct dir_stats *st)
{
	__u64 k[2];
	__u32 a, b;
	__u16 sp = 0, dp = 0;

	if (!sm || !st || !(cfg_features & FEAT_FLOWS))
		return 0;
	if (sm->p.ports) {
		sp = sm->p.sport;
		dp = sm->p.dport;
	}
	a = sm->p.saddr4;
	b = sm->p.daddr4;
	if (a > b || (a == b && sp > dp)) {	/* any total order will do */
		sm->side = 1;
		k[0] = (__u64)b | (__u64)a << 32;
		k[1] = key_tail(dp, sp, sm);
	} else {
		sm->side = 0;
		k[0] = (__u64)a | (__u64)b << 32;
		k[1] = key_tail(sp, dp, sm);
	}
	flow_count4(k, sm, st);
	return 0;
}

/* IPv6 conversation of the frame: count it, analyse TCP. */
static __always_inline int tg_flow6(struct __sk_buff *skb, struct sample *sm, struct dir_stats *st)
{
	__u64 k[5], *s, *d;
	void *data, *data_end;
	__u32 off;
	__u16 sp = 0, dp = 0;
	int swap;

	if (!sm || !st || !(cfg_features & FEAT_FLOWS))
		return 0;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	off = sm->p.l3_off;
	if (off > 512 || data + off + 40 > data_end)
		return 0;
	if (sm->p.ports) {
		sp = sm->p.sport;
		dp = sm->p.dport;
	}
	s = data + off + 8;
	d = data + off + 24;
	if (s[0] != d[0])	/* any total order will do: raw words */
		swap = s[0] > d[0];
	else if (s[1] != d[1])
		swap = s[1] > d[1];
	else
		swap = sp > dp;
	if (swap) {
		sm->side = 1;
		k[0] = d[0];
		k[1] = d[1];
		k[2] = s[0];
		k[3] = s[1];
		k[4] = key_tail(dp, sp, sm);
	} else {
		sm->side = 0;
		k[0] = s[0];
		k[1] = s[1];
		k[2] = d[0];
		k[3] = d[1];
		k[4] = key_tail(sp, dp, sm);
	}
	flow_count6(k, sm, st);
	return 0;
}

/* pcaplike: copy the frame's first cfg_snaplen bytes (with a VLAN tag the
 * kernel holds in metadata put back in place) into the ring buffer, within
 * the job's caps. */
__global int tg_capture(struct __sk_buff *skb, struct sample *sm, struct dir_stats *st)
{
	__u32 key = 0, dir, tag, len, cap, base;
	struct capture_state *cs;
	__u64 n, avail;
	struct sample_hdr *h;
	__u8 *rec;

	if (!sm || !st || !(cfg_features & FEAT_CAPTURE))
		return 0;
	dir = sm->dir & 1;
	cs = bpf_map_lookup_elem(&capstate, &key);
	if (!st || !cs)
		return 0;
	base = sm->base;
	tag = base == 0 && skb->vlan_present;
	len = skb->len;
	if (len <= base)
		return 0;
	cap = len - base + (tag ? VLAN_HLEN : 0);
	if (cap > cfg_snaplen)
		cap = cfg_snaplen;
	/* Caps shared by all CPUs: a plain read first, so that once a cap is
	 * reached the CPUs only read its line instead of bouncing it between
	 * them with atomic adds; under the cap the atomic add decides. */
	if (cfg_cap_rate) {
		__u64 now = sm->now ? sm->now : bpf_ktime_get_coarse_ns();	/* flows read it */

		if (now - cs->win_start >= NS_PER_SEC) {
			cs->win_start = now;
			cs->win_count = 0;
		}
		if (cs->win_count >= cfg_cap_rate ||
		    __sync_fetch_and_add(&cs->win_count, 1) >= cfg_cap_rate) {
			st->capture_capped++;
			return 0;
		}
	}
	if (cfg_cap_max_packets && (cs->packets >= cfg_cap_max_packets ||
				    __sync_fetch_and_add(&cs->packets, 1) >= cfg_cap_max_packets)) {
		st->capture_capped++;
		return 0;
	}
	if (cfg_cap_max_bytes && (cs->bytes + cap > cfg_cap_max_bytes ||
				  __sync_fetch_and_add(&cs->bytes, cap) + cap > cfg_cap_max_bytes)) {
		st->capture_capped++;
		return 0;
	}
	rec = bpf_ringbuf_reserve(&samples, sizeof(struct sample_hdr) + cfg_snaplen, 0);
	if (!rec) {
		st->capture_lost++;
		return 0;
	}
	h = (void *)rec;
	h->ktime_ns = bpf_ktime_get_ns();
	h->wire_len = sm->wire_len;
	h->ifindex = skb->ifindex;
	h->dir = dir;
	h->pad[0] = h->pad[1] = h->pad[2] = 0;
	rec += sizeof(struct sample_hdr);
	/* Lengths for bpf_skb_load_bytes must be provably in [1, room]; 6.1
	 * learns no lower bound from "!= 0", so bound n - 1 instead. */
	if (tag && cap > 16) {
		h->cap_len = cap;
		if (bpf_skb_load_bytes(skb, 0, rec, 12))
			goto fail;
		*(__u16 *)(rec + 12) = (__u16)skb->vlan_proto;
		*(__u16 *)(rec + 14) = bswap16((__u16)skb->vlan_tci);
		n = (__u64)cap - 17;
		asm volatile("" : "+r"(n));
		if (n >= cfg_snaplen - 16)
			goto fail;
		if (bpf_skb_load_bytes(skb, 12, rec + 16, n + 1))
			goto fail;
	} else {
		if (tag)	/* a snap length this short keeps no tag */
			cap = cap > VLAN_HLEN ? cap - VLAN_HLEN : 0;
		h->cap_len = cap;
		n = (__u64)cap - 1;
		asm volatile("" : "+r"(n));
		if (n >= cfg_snaplen)
			goto fail;
		if (bpf_skb_load_bytes(skb, base, rec, n + 1))
			goto fail;
	}
	/* Wake the reader when the data in the ring crosses a quarter of it (a
	 * watermark: once per crossing, however many records follow); it also
	 * polls, so a trickle of samples is not left waiting. Waking it for
	 * every record would cost more than the record. */
	avail = bpf_ringbuf_query(&samples, BPF_RB_AVAIL_DATA);	/* this record included */
	bpf_ringbuf_submit(h, avail >= cfg_wakeup && avail < cfg_wakeup + RECORD_SIZE ?
				      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	st->capture_samples++;
	return 0;
fail:
	bpf_ringbuf_discard(h, 0);
	st->capture_lost++;
	return 0;
}

/*
 * CLOCK_MONOTONIC at tick granularity, as bpf_ktime_get_coarse_ns, read once
 * per tick per CPU: jiffies is one load (the verifier inlines bpf_jiffies64),
 * the clock a helper call. The tick moves jiffies just before the coarse
 * clock, so a frame in between may keep the previous tick's time for the
 * tick: never more than one tick behind.
 */
static __always_inline __u64 coarse_now(struct dir_stats *st)
{
	__u64 j = bpf_jiffies64();

	if (j != st->clock_jiffies) {
		st->clock_ns = bpf_ktime_get_coarse_ns();
		st->clock_jiffies = j;
	}
	return st->clock_ns;
}

/* pcaplike: is a cap already reached? Plain reads of the shared caps, before
 * anything else: under load the rate cap is reached for most of each second,
 * and a frame then costs this much. Once a CPU has seen a cap reached it
 * remembers until when (the end of the rate window; for good for the packet
 * cap), so that its next frames read only that. The atomic adds in
 * tg_capture decide at the margin. */
static __always_inline int capture_capped(struct sample *sm, struct dir_stats *st)
{
	struct capture_state *cs;
	__u32 key = 0;

	if (sm->now && sm->now < st->cap_closed_until)
		goto capped;
	cs = bpf_map_lookup_elem(&capstate, &key);
	if (!cs)
		return 0;
	if (cfg_cap_max_packets && cs->packets >= cfg_cap_max_packets) {
		st->cap_closed_until = ~0ULL;
		goto capped;
	}
	if (cfg_cap_rate && cs->win_count >= cfg_cap_rate && sm->now &&
	    sm->now - cs->win_start < NS_PER_SEC) {
		st->cap_closed_until = cs->win_start + NS_PER_SEC;
		goto capped;
	}
	return 0;
capped:
	st->capture_capped++;
	return 1;
}

/* Everything a sampled frame (pk->sampled), or an unsampled TCP SYN, goes
 * through; st is the frame's direction's counters. */
__global int tg_analyse(struct __sk_buff *skb, struct sample *sm, struct dir_stats *st)
{
	__u32 feat = cfg_features;	/* one load: volatile reads are not merged */

	if (!sm || !st)
		return 0;
	if (sm->sampled) {
		st->sampled++;
		if ((feat & FEAT_CHECKSUM) && sm->p.l3 == 4 && ip4_csum_bad(skb, &sm->p))
			st->l3_checksum++;
	}
	if ((feat & FEAT_FLOWS) && !sm->p.malformed) {
		sm->now = coarse_now(st);
		if (sm->p.l3 == 4)
			tg_flow4(sm, st);
		else if (sm->p.l3 == 6)
			tg_flow6(skb, sm, st);
	}
	if ((feat & FEAT_CAPTURE) && sm->sampled && !capture_capped(sm, st))
		tg_capture(skb, sm, st);
	return 0;
}

/* ---- the body ------------------------------------------------------------ */

static __always_inline void pkt_init(struct __sk_buff *skb, struct pkt *pk, __u32 base)
{
	__builtin_memset(pk, 0, sizeof(*pk));
	if (!base && skb->vlan_present) {
		pk->vlan_outer = skb->vlan_tci & 0x0fff;
		pk->ntags = 1;
	}
}

/* The bytes of a VLAN tag the kernel moved into metadata (veth and most NICs
 * strip the outer one). The kernel reads vlan_present as 0 or 1. */
static __always_inline __u32 meta_tag_len(struct __sk_buff *skb)
{
	return skb->vlan_present * VLAN_HLEN;
}

/*
 * Exact totals of a matching frame (base: offset of the mirrored frame;
 * vlan_meta: a tag the kernel holds in metadata; hdr_len: bytes up to the L4
 * payload, 0 = unknown). A GSO/GRO packet stands for segs frames on the wire,
 * each with its own headers (and VLAN tag).
 */
static __always_inline void count_frame(struct __sk_buff *skb, struct dir_stats *st, __u32 base,
					__u32 vlan_meta, __u32 hdr_len, __u64 *pkts, __u64 *bytes)
{
	__u32 segs = skb->gso_segs;
	__u64 b = skb->len - base + vlan_meta, n = 1;

	if (segs > 1 && segs < 65536) {
		n = segs;
		if (hdr_len > base && hdr_len - base < b)
			b += (__u64)(segs - 1) * (hdr_len - base + vlan_meta);
	}
	st->packets += n;
	st->bytes += b;
	*pkts = n;
	*bytes = b;
}

/* 1-in-rate sampling: is this matching frame the sampled one? The gaps
 * between sampled frames are drawn from cfg_gaps. */
static __always_inline int take_sample(struct dir_stats *st, __u32 rate)
{
	__u64 c;

	if (rate <= 1)
		return 1;
	c = st->countdown;
	if (c == 0)
		c = cfg_gaps[bpf_get_prandom_u32() & (GAP_SLOTS - 1)];
	if (c > 1) {
		st->countdown = c - 1;
		return 0;
	}
	st->countdown = cfg_gaps[bpf_get_prandom_u32() & (GAP_SLOTS - 1)];
	return 1;
}

/* Does an unsampled frame still go through the analysis? Handshakes are rare
 * and feed network.latency: always seen. */
static __always_inline int handshake(__u32 feat, __u32 proto, __u32 ports, __u32 tcp_flags)
{
	return (feat & FEAT_LATENCY) && (tcp_flags & TCP_SYN) && proto == IPPROTO_TCP && ports;
}

enum {
	FAST_NO = 0,	/* not a frame for the fast path: parse() decides */
	FAST_DONE = 1,	/* filtered, or counted and not analysed */
	FAST_ANALYSE = 2,	/* counted; sm is filled in for the analysis */
};

/* The fast path from the network header on, for one shape of frame: the
 * header at the constant off, IPv4 (l3 4) or IPv6 (6), with tagged frames
 * (a tag in the frame). fast_observe has a copy of this per shape, so that
 * every offset and branch on the shape is settled at compile time. */
static __always_inline int fast_l3(struct __sk_buff *skb, struct dir_stats *st, struct sample *sm,
				   const __u32 off, const __u32 l3, const int tagged)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 f = cfg_filters, l4_off = off + (l3 == 4 ? 20 : 40), l4_len, hl, proto;
	__u64 pkts, bytes;
	__u8 *p = data + off, *l4 = data + l4_off;
	int sampled;

	if ((void *)(l4 + 20) > data_end)
		return FAST_NO;
	if (l3 == 4) {
		__u32 tot;

		if (p[0] != 0x45)
			return FAST_NO;
		tot = bswap16(*(__u16 *)(p + 2));
		l4_len = tot - 20;
		/* tot in [20, what the frame holds]: one unsigned compare (the
		 * frame holds at least off + 40 bytes, so the right side does
		 * not wrap; a tot below 20 does). */
		if (l4_len > skb->len - off - 20 || (*(__u16 *)(p + 6) & bswap16(0x1fff)))
			return FAST_NO;
		proto = p[9];
	} else {
		if ((p[0] >> 4) != 6)
			return FAST_NO;
		l4_len = bswap16(*(__u16 *)(p + 4));
		if (l4_len - 1 >= skb->len - off - 40)	/* in [1, what the frame holds] */
			return FAST_NO;
		proto = p[6];
	}
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return FAST_NO;
	/* The VLAN filter (match_l2) for this shape: either tag, the one in the
	 * frame (when there is one) first, then one in metadata. */
	if ((f & F_VLAN) &&
	    !(tagged && (bswap16(*(__u16 *)(data + ETH_HLEN)) & 0x0fff) == cfg_vlan) &&
	    !(skb->vlan_present && (skb->vlan_tci & 0x0fff) == cfg_vlan))
		goto filtered;
	if (l3 == 4) {
		if (!match_l3(f, skb, 4, proto, p[1] >> 2, *(__u32 *)(p + 12), *(__u32 *)(p + 16), off))
			goto filtered;
	} else {
		if (!match_l3(f, skb, 6, proto, ((p[0] & 0x0f) << 2) | (p[1] >> 6), 0, 0, off))
			goto filtered;
	}
	if (proto == IPPROTO_TCP) {
		hl = (l4[12] >> 4) * 4;
		if (hl < 20 || hl > l4_len)	/* so l4_len >= 20 too */
			return FAST_NO;
	} else {
		hl = bswap16(*(__u16 *)(l4 + 4));
		if (hl < 8 || hl > l4_len)
			return FAST_NO;
		hl = 8;
	}
	if (!match_l4(f, 1, *(__u16 *)l4, *(__u16 *)(l4 + 2)))
		goto filtered;

	count_frame(skb, st, 0, meta_tag_len(skb), l4_off + hl, &pkts, &bytes);
	sampled = take_sample(st, cfg_sample_rate);
	if (!sampled && !handshake(cfg_features, proto, 1, proto == IPPROTO_TCP ? l4[13] : 0))
		return FAST_DONE;
	/* Analysed: now the description is written out, what parse() would. */
	pkt_init(skb, &sm->p, 0);
	if (tagged) {
		__u16 vid = bswap16(*(__u16 *)(data + ETH_HLEN)) & 0x0fff;

		if (sm->p.ntags)
			sm->p.vlan_inner = vid;
		else
			sm->p.vlan_outer = vid;
		sm->p.ntags++;
	}
	sm->p.l3_off = off;
	sm->p.l3 = l3;
	sm->p.proto = proto;
	if (l3 == 4) {
		sm->p.ihl = 20;
		sm->p.dscp = p[1] >> 2;
		sm->p.saddr4 = *(__u32 *)(p + 12);
		sm->p.daddr4 = *(__u32 *)(p + 16);
	} else {
		sm->p.dscp = ((p[0] & 0x0f) << 2) | (p[1] >> 6);
	}
	sm->p.sport = bswap16(*(__u16 *)l4);
	sm->p.dport = bswap16(*(__u16 *)(l4 + 2));
	sm->p.ports = 1;
	sm->p.hdr_len = l4_off + hl;
	if (proto == IPPROTO_TCP) {
		sm->p.seq = bswap32(*(__u32 *)(l4 + 4));
		sm->p.ack = bswap32(*(__u32 *)(l4 + 8));
		sm->p.tcp_flags = l4[13];
		sm->p.payload = l4_len - hl;
	}
	sm->sampled = sampled;
	sm->pkts = pkts;
	sm->bytes = bytes;
	return FAST_ANALYSE;

filtered:
	st->filtered++;
	return FAST_DONE;
}

/*
 * The fast path, for the frames links mostly carry: Ethernet with at most one
 * VLAN tag in the frame (another may be in metadata), then IPv4 without
 * options and not a fragment, or IPv6 without extension headers, then TCP or
 * UDP, all in the linear data and every length consistent. Such a frame is
 * parsed in registers and each filter checked as soon as its field is known;
 * an unsampled frame is counted and done with without its description ever
 * being written out (that would be most of what it costs). Anything else, and
 * anything in doubt, returns FAST_NO before it is counted, and parse() then
 * decides; for the frames taken here both decide alike (TestFastPathAgrees
 * runs every test frame both ways). A frame to analyse has its description
 * written into sm at the end.
 */
static __always_inline int fast_observe(struct __sk_buff *skb, struct dir_stats *st,
					struct sample *sm)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u16 eth_proto;

	if (data + ETH_HLEN + VLAN_HLEN > data_end)
		return FAST_NO;
	eth_proto = *(__u16 *)(data + 12);
	if (eth_proto == bswap16(ETH_P_IP))
		return fast_l3(skb, st, sm, ETH_HLEN, 4, 0);
	if (eth_proto == bswap16(ETH_P_IPV6))
		return fast_l3(skb, st, sm, ETH_HLEN, 6, 0);
	if (eth_proto != bswap16(ETH_P_8021Q) && eth_proto != bswap16(ETH_P_8021AD))
		return FAST_NO;
	/* One tag in the frame; a second one (QinQ) is the general parser's. */
	eth_proto = *(__u16 *)(data + ETH_HLEN + 2);
	if (eth_proto == bswap16(ETH_P_IP))
		return fast_l3(skb, st, sm, ETH_HLEN + VLAN_HLEN, 4, 1);
	if (eth_proto == bswap16(ETH_P_IPV6))
		return fast_l3(skb, st, sm, ETH_HLEN + VLAN_HLEN, 6, 1);
	return FAST_NO;
}

/* The rest of sm, and the analysis. */
static __always_inline void analyse(struct __sk_buff *skb, struct sample *sm, struct dir_stats *st,
				    enum direction dir, __u32 base, __u32 vlan_meta)
{
	sm->base = base;
	sm->wire_len = skb->len - base + vlan_meta;
	sm->dir = dir;
	sm->side = 0;
	__builtin_memset(sm->pad, 0, sizeof(sm->pad));
	sm->now = 0;
	tg_analyse(skb, sm, st);
}

static __always_inline void observe(struct __sk_buff *skb, enum direction dir)
{
	struct dir_stats *st;
	struct sample sm;	/* sm.p is the frame's description from the start */
	__u32 feat, base = 0, vlan_meta = 0;
	__u64 pkts, bytes;

	st = bpf_map_lookup_elem(&stats, &dir);
	if (!st)
		return;
	/* Nothing is kept across the fast path for the general one: registers
	 * are few, and what is kept is spilled to the stack on every frame. */
	if (!(cfg_features & (FEAT_ERSPAN | FEAT_NO_FAST))) {
		switch (fast_observe(skb, st, &sm)) {
		case FAST_DONE:
			return;
		case FAST_ANALYSE:
			analyse(skb, &sm, st, dir, 0, meta_tag_len(skb));
			return;
		}
	}

	feat = cfg_features;	/* loaded once: volatile reads are not merged */
	if (feat & FEAT_ERSPAN) {
		base = tg_erspan(skb);
		if (!base || base > 256) {
			st->not_erspan++;
			return;
		}
	} else {
		vlan_meta = meta_tag_len(skb);
	}

	pkt_init(skb, &sm.p, base);
	if (parse(skb, &sm.p, base) == PARSE_PULL) {
		__u32 want = skb->len < PULL_LEN ? skb->len : PULL_LEN;

		pkt_init(skb, &sm.p, base);
		if (bpf_skb_pull_data(skb, want) || tg_parse(skb, &sm.p, base) == PARSE_PULL) {
			st->unparsed++;
			pkt_init(skb, &sm.p, base);	/* counted, not analysed */
		}
	}

	if (!match(skb, &sm.p)) {
		st->filtered++;
		return;
	}
	count_frame(skb, st, base, vlan_meta, sm.p.hdr_len, &pkts, &bytes);
	if (sm.p.malformed)
		st->malformed++;
	sm.sampled = take_sample(st, cfg_sample_rate);
	if (!sm.sampled && !handshake(feat, sm.p.proto, sm.p.ports, sm.p.tcp_flags))
		return;
	sm.pkts = pkts;
	sm.bytes = bytes;
	analyse(skb, &sm, st, dir, base, vlan_meta);
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
