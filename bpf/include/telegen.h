/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types and constants shared between the telegen tc program (bpf/telegen_tc.c)
 * and pkg/datapath. bpf2go turns the types named with -type in
 * pkg/datapath/gen.go into unexported Go types (telegenDirStats, ...).
 *
 * Compatibility: a restarted daemon adopts maps pinned by an older one, and
 * pkg/datapath refuses a pinned map whose type, key or value size differs. So
 * structs only grow at the end (a grown struct is then refused, never
 * misread); enum values are map keys and never change.
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
 * Per-direction counters, one copy per CPU (BPF_MAP_TYPE_PERCPU_ARRAY),
 * summed in user space. "Matching" frames passed the job's filters.
 */
struct dir_stats {
	/* Matching frames (a GSO/GRO packet counts its segments). Exact. */
	__u64 packets;
	/* Their wire bytes without FCS, VLAN tags included. Exact. */
	__u64 bytes;
	/* Matching frames that went through the sampled analysis. */
	__u64 sampled;
	/* Matching frames that are truncated or lie about a length. Exact. */
	__u64 malformed;
	/* Frames that failed the job's filters (diagnostics only). */
	__u64 filtered;
	/* Sampled IPv4 packets whose header checksum is wrong. */
	__u64 l3_checksum;
	/* Sampled TCP segments carrying sequence space already seen. */
	__u64 tcp_retrans;
	/* Conversations inserted into the flow tables (both families). */
	__u64 flow_inserts;
	/* New conversations not inserted: another CPU was inserting into the same set. */
	__u64 flow_errors;
	/* pcaplike: samples written to the ring buffer. */
	__u64 capture_samples;
	/* pcaplike: samples lost because the ring buffer was full. */
	__u64 capture_lost;
	/* pcaplike: samples not taken because a packet, byte or rate cap was reached. */
	__u64 capture_capped;
	/* Frames whose headers lie beyond what could be made linear (not parsed). */
	__u64 unparsed;
	/* ERSPAN jobs: frames that were not ERSPAN copies of the job's session. */
	__u64 not_erspan;
	/* Sampling state: matching frames until the next sampled one (0: draw). */
	__u64 countdown;
	/* Conversations pushed out of a full set of the flow tables by a new one. */
	__u64 flow_evictions;
	/* Clock state, not a count: the coarse clock as read at tick clock_jiffies. */
	__u64 clock_jiffies;
	__u64 clock_ns;
	/* pcaplike state: this CPU saw a capture cap reached until this time. */
	__u64 cap_closed_until;
};

/*
 * Flow tables: one per address family, each an array of sets of FLOW_WAYS
 * slots (set-associative, like a CPU cache): a conversation lives in the set
 * its key hashes to; a new one takes a free slot of its set, or else the
 * least recently sampled one (an eviction). A key is a conversation, the
 * endpoints in canonical order (the lower address, then the lower port, is
 * endpoint 0); the value keeps each direction apart: d[0] holds what
 * endpoint 0 sent to endpoint 1, d[1] the reverse. Ports are 0 for
 * protocols without them and for non-first fragments. Addresses are in
 * network byte order, ports in host byte order. used is 1 in a slot that
 * holds a conversation (and in every key looked up), 0 in a free one.
 */
struct flow4_key {
	__u32 addr[2];
	__u16 port[2];
	__u16 vlan;	/* outermost VLAN ID, 0 = untagged */
	__u8 proto;
	__u8 used;
};

struct flow6_key {
	__u8 addr[2][16];
	__u16 port[2];
	__u16 vlan;
	__u8 proto;
	__u8 used;
};

/* One direction of a conversation: a cache line of its own, so that a frame
 * touches one line of its conversation's value. */
struct flow_dir {
	__u64 packets;
	__u64 bytes;
	__u64 first_ns;	/* CLOCK_MONOTONIC, coarse (a tick) */
	__u64 last_ns;
	__u64 probe_ns;	/* tcp.rtt probe start, fine clock; 0 = none */
	__u32 seq_end;	/* TCP: highest sequence number + length seen */
	__u32 probe_ack;	/* TCP: the ACK number that answers the probe */
	__u8 tcp_flags;	/* OR of the flags seen */
	__u8 seq_valid;	/* seq_end holds a value */
	__u8 syn_dir;	/* d[0] only, the handshake: which endpoint sent the SYN */
	__u8 pad;
	__u32 syn_isn;	/* d[0] only: the SYN's sequence number */
	__u64 syn_ns;	/* d[0] only: SYN seen at (fine clock); 0 none, 1 ambiguous */
};
_Static_assert(sizeof(struct flow_dir) == 64, "flow_dir is a cache line");

struct flow_val {
	struct flow_dir d[2];
};

#define FLOW_WAYS 16

/* One set: claim is 1 while a CPU inserts into it (cmpxchg), else 0. The
 * keys come together, ahead of the values, so that finding one reads a
 * cache line or two rather than one per slot; the header fills a line and
 * every part is a whole number of lines, so in a page-aligned (mmapable)
 * array each value's directions sit on lines of their own. */
struct flow4_set {
	__u32 claim;
	__u32 pad[15];
	struct flow4_key key[FLOW_WAYS];
	struct flow_val val[FLOW_WAYS];
};
_Static_assert(sizeof(struct flow4_set) % 64 == 0, "flow4_set is whole lines");
_Static_assert(__builtin_offsetof(struct flow4_set, val) % 64 == 0, "flow4_set values on lines");

struct flow6_set {
	__u32 claim;
	__u32 pad[15];
	struct flow6_key key[FLOW_WAYS];
	struct flow_val val[FLOW_WAYS];
};
_Static_assert(sizeof(struct flow6_set) % 64 == 0, "flow6_set is whole lines");
_Static_assert(__builtin_offsetof(struct flow6_set, val) % 64 == 0, "flow6_set values on lines");

/* Latency histograms (BPF_MAP_TYPE_PERCPU_ARRAY keys). */
enum hist_id {
	HIST_TCP_RTT = 0,
	HIST_NET_LATENCY = 1,
	HIST_MAX = 2,
};

/* Upper bounds per histogram: the real ones, then padding of 2^62. */
#define LAT_SLOTS 32

struct hist {
	/* counts[i]: values <= bound i and > bound i-1 */
	__u64 counts[LAT_SLOTS];
	__u64 sum;
};

/* pcaplike: one ring-buffer record is this header and cfg_snaplen bytes.
 * pkg/datapath decodes it by hand (ring records carry no BTF): the layout is
 * fixed by the assertions below. */
struct sample_hdr {
	__u64 ktime_ns;	/* CLOCK_MONOTONIC */
	__u32 wire_len;	/* length of the frame on the wire */
	__u32 cap_len;	/* bytes of it that follow */
	__u32 ifindex;
	__u8 dir;	/* enum direction */
	__u8 pad[3];
};
_Static_assert(sizeof(struct sample_hdr) == 24, "sample_hdr layout");
_Static_assert(__builtin_offsetof(struct sample_hdr, wire_len) == 8, "sample_hdr layout");
_Static_assert(__builtin_offsetof(struct sample_hdr, cap_len) == 12, "sample_hdr layout");
_Static_assert(__builtin_offsetof(struct sample_hdr, ifindex) == 16, "sample_hdr layout");
_Static_assert(__builtin_offsetof(struct sample_hdr, dir) == 20, "sample_hdr layout");

/* pcaplike: caps shared by all CPUs (one entry, BPF_MAP_TYPE_ARRAY). */
struct capture_state {
	__u64 packets;	/* samples taken */
	__u64 bytes;	/* bytes captured */
	__u64 win_start;	/* rate window start, coarse clock */
	__u64 win_count;	/* samples in the window */
};

/* cfg_filters bits: the filters a job uses. */
#define F_VLAN (1u << 0)
#define F_PROTO (1u << 1)
#define F_SPORT (1u << 2)
#define F_DPORT (1u << 3)
#define F_SRC4 (1u << 4)
#define F_DST4 (1u << 5)
#define F_SRC6 (1u << 6)
#define F_DST6 (1u << 7)
#define F_DSCP (1u << 8)

/* cfg_features bits. */
#define FEAT_FLOWS (1u << 0)	/* flow tables */
#define FEAT_TCP (1u << 1)	/* retransmissions (needs FEAT_FLOWS) */
#define FEAT_LATENCY (1u << 2)	/* tcp.rtt, network.latency (needs FEAT_TCP) */
#define FEAT_CAPTURE (1u << 3)	/* pcaplike ring buffer */
#define FEAT_CHECKSUM (1u << 4)	/* IPv4 header checksum */
#define FEAT_ERSPAN (1u << 5)	/* frames are ERSPAN copies: decapsulate */
#define FEAT_NO_FAST (1u << 6)	/* tests: every frame the general way (parse) */

/* Largest snap length a pcaplike job may ask for. */
#define MAX_SNAPLEN 9216

/* Size of the gap table that drives 1-in-N sampling. */
#define GAP_SLOTS 256

#endif /* TELEGEN_H */
