// Package aggregate owns what a job has measured, in plain Go: the snapshot the datapath reads
// out of the kernel, and the result-document form STATE_DB and the front-ends show. Pure; it
// imports only the standard library.
package aggregate

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// Snapshot is everything a job has measured so far. Packet and byte totals are exact (every
// packet that matched the job's filters); the sampled parts (flows, error details, latency) are
// computed on 1 in SampleRate of those packets. Estimated names the figures that are scaled
// estimates. docs/DATAPLANE.md defines every figure.
type Snapshot struct {
	Ingress, Egress DirectionCounts

	SampleRate uint32 // 1 = every packet analysed
	Sampled    uint64 // packets that went through the sampled analysis

	Errors Errors

	// TopFlows are the largest flows by bytes, at most the job's topk_flows, largest first. Their
	// counts are of sampled packets, scaled by SampleRate when SampleRate > 1.
	TopFlows     []Flow
	FlowsSeen    uint64 // distinct flows inserted into the flow table
	FlowsEvicted uint64 // flows pushed out of a full set of the flow table by new ones

	// Latency histograms by metric name ("tcp.rtt", "network.latency"), in nanoseconds. Their
	// counts are samples taken, never scaled.
	Latency map[string]Histogram

	// Filtered counts frames on the job's hooks that failed its filters (or, for an ERSPAN
	// source, were not the job's copies): diagnostics, in no other figure.
	Filtered uint64
	// Unparsed counts matching frames whose headers could not be read (beyond what the kernel
	// could make linear); they are in the totals and nowhere else.
	Unparsed uint64
	// Capture is what a pcaplike job's kernel side did with its samples; nil without capture.
	Capture *CaptureCounts
	// Programs is what the job's eBPF programs cost, when the kernel accounts it.
	Programs ProgramStats
}

// ProgramStats is the kernel's accounting of a job's eBPF programs, summed over its hooks:
// cumulative run time and runs (frames seen). The kernel keeps it only while
// kernel.bpf_stats_enabled is 1 (the accounting costs two clock reads per run); Known says
// whether it did.
type ProgramStats struct {
	Known   bool
	RunTime time.Duration
	Runs    uint64
}

// CaptureCounts are a pcaplike job's samples as the kernel handled them.
type CaptureCounts struct {
	Samples uint64 `json:"samples"` // copied into the ring buffer for user space
	Lost    uint64 `json:"lost"`    // dropped because the ring buffer was full
	Capped  uint64 `json:"capped"`  // not taken: the job's packet, byte or rate cap was reached
}

// Estimated lists the result fields that are estimates (sampled counts scaled by SampleRate),
// in a fixed order; it is empty when every packet was analysed.
func (s Snapshot) Estimated() []string {
	if s.SampleRate <= 1 {
		return []string{}
	}
	return []string{"top_flows", "errors.l3_checksum", "errors.tcp_retrans"}
}

// DirectionCounts are the exact totals of one direction.
type DirectionCounts struct {
	Packets, Bytes uint64
}

// Packets is the exact total over both directions.
func (s Snapshot) Packets() uint64 { return s.Ingress.Packets + s.Egress.Packets }

// Bytes is the exact total over both directions.
func (s Snapshot) Bytes() uint64 { return s.Ingress.Bytes + s.Egress.Bytes }

// Errors counts problems seen. Malformed is exact (every matching packet is parsed); L3Checksum
// and TCPRetrans are found on sampled packets; L2CRC comes from the port's own counters.
type Errors struct {
	L2CRC      uint64 `json:"-"`
	L2CRCKnown bool   `json:"-"` // the port's counters could be read over the whole window
	L3Checksum uint64 `json:"l3_checksum"`
	TCPRetrans uint64 `json:"tcp_retrans"`
	Malformed  uint64 `json:"malformed"`
}

// MarshalJSON writes l2_crc only when it is known: a port without SONiC counters has no figure,
// which is not the same as zero errors.
func (e Errors) MarshalJSON() ([]byte, error) {
	type plain Errors
	v := struct {
		L2CRC *uint64 `json:"l2_crc,omitempty"`
		plain
	}{plain: plain(e)}
	if e.L2CRCKnown {
		v.L2CRC = &e.L2CRC
	}
	return json.Marshal(v)
}

// FlowKey identifies a flow. Ports are 0 for protocols without them.
type FlowKey struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	VLAN             uint16 // 0 = untagged
}

var protoNames = map[uint8]string{1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPV6", 132: "SCTP"}

// ProtoName is the protocol as the result document writes it: TCP, UDP, ICMP, ICMPV6, SCTP or
// the number.
func ProtoName(p uint8) string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return strconv.Itoa(int(p))
}

// String is the result document's "5tuple": src:sport->dst:dport/PROTO, IPv6 in brackets.
func (k FlowKey) String() string {
	return fmt.Sprintf("%s->%s/%s",
		netip.AddrPortFrom(k.Src, k.SrcPort), netip.AddrPortFrom(k.Dst, k.DstPort), ProtoName(k.Proto))
}

// Flow is one flow's figures.
type Flow struct {
	Key                 FlowKey
	Packets, Bytes      uint64
	FirstSeen, LastSeen time.Time
	TCPFlags            uint8 // OR of every flag seen
}

// Histogram is a fixed-bucket histogram: Counts[i] counts values <= Bounds[i] (and above the
// previous bound); the last count, at index len(Bounds), counts values above every bound.
type Histogram struct {
	Bounds []uint64 `json:"bounds"`
	Counts []uint64 `json:"counts"`
	Sum    uint64   `json:"sum"`
	Count  uint64   `json:"count"`
}

// resultFlow is one entry of the result document's top_flows.
type resultFlow struct {
	FiveTuple string `json:"5tuple"`
	Pkts      uint64 `json:"pkts"`
	Bytes     uint64 `json:"bytes"`
	VLAN      uint16 `json:"vlan,omitempty"`
}

// Fields is the measured part of the result document as STATE_DB hash fields: scalars plain,
// nested parts as JSON strings.
func (s Snapshot) Fields() map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	f := map[string]string{
		"packets_total":    u(s.Packets()),
		"bytes_total":      u(s.Bytes()),
		"ingress_packets":  u(s.Ingress.Packets),
		"ingress_bytes":    u(s.Ingress.Bytes),
		"egress_packets":   u(s.Egress.Packets),
		"egress_bytes":     u(s.Egress.Bytes),
		"sample_rate":      u(uint64(max(s.SampleRate, 1))),
		"sampled_packets":  u(s.Sampled),
		"flows_seen":       u(s.FlowsSeen),
		"flows_evicted":    u(s.FlowsEvicted),
		"filtered_packets": u(s.Filtered),
	}
	f["estimated"] = mustJSON(s.Estimated())
	if s.Unparsed > 0 {
		f["unparsed_packets"] = u(s.Unparsed)
	}
	if s.Capture != nil {
		f["capture"] = mustJSON(s.Capture)
	}
	f["errors"] = mustJSON(s.Errors)
	flows := make([]resultFlow, 0, len(s.TopFlows))
	for _, fl := range s.TopFlows {
		flows = append(flows, resultFlow{FiveTuple: fl.Key.String(), Pkts: fl.Packets, Bytes: fl.Bytes, VLAN: fl.Key.VLAN})
	}
	f["top_flows"] = mustJSON(flows)
	if h, ok := s.Latency["network.latency"]; ok {
		f["latency_histogram_ns"] = mustJSON(h)
	}
	if h, ok := s.Latency["tcp.rtt"]; ok {
		f["tcp_rtt_histogram_ns"] = mustJSON(h)
	}
	return f
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs of numbers and strings reach here
	}
	return string(b)
}
