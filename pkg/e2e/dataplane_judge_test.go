package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// This file is the data-plane tests' dpJudge: tshark's view of a capture under a display filter,
// in the terms of a job's result (totals, one-way flows, errors), and the pcap handling that
// makes a capture dpReplayable.

// dpPortMTU is the vswitch ports' MTU: the largest L3 packet a veth takes.
const dpPortMTU = 9100

// dpMalformedFilter is what tshark calls a frame that is truncated or lies about a length in the
// layers the kernel parses (docs/DATAPLANE.md, "malformed").
const dpMalformedFilter = "ip.bogus_ip_version || ip.bogus_header_length || ip.bogus_ip_length || " +
	"ipv6.bogus_ipv6_version || ipv6.plen_exceeds_framing || tcp.bogus_header_length || " +
	"tcp.short_segment || udp.length.bad || udp.length.bad_zero"

// dpVerdict is what a job should report for a capture.
type dpVerdict struct {
	Frames     int
	Bytes      uint64
	Flows      map[string]dpFlowCount // "5tuple vlan N"
	Malformed  int
	L3Checksum int
	TCPRetrans int
}

// dpFlowCount is a one-way flow's frames and bytes (and the sum of its frames' squared lengths,
// for the variance of sampled estimates).
type dpFlowCount struct {
	Pkts, Bytes uint64
	SqBytes     float64
}

// dpJudgeCache keeps verdicts across attach modes: tshark is slow.
var dpJudgeCache sync.Map

// dpJudge asks tshark about the frames of pcap that pass filter ("" = all). retrans also runs
// TCP sequence analysis (slow on big captures).
func dpJudge(t testing.TB, pcap, filter string, retrans bool) dpVerdict {
	t.Helper()
	key := fmt.Sprint(pcap, "\x00", filter, "\x00", retrans)
	if v, ok := dpJudgeCache.Load(key); ok {
		return v.(dpVerdict)
	}
	malformed := make(map[string]bool)
	mf := dpMalformedFilter
	if filter != "" {
		mf = "(" + filter + ") && (" + dpMalformedFilter + ")"
	}
	for _, r := range dpTsharkRows(t, pcap, mf, false, "frame.number") {
		malformed[r[0]] = true
	}
	fields := []string{"frame.number", "frame.len", "frame.protocols", "vlan.id", "ieee8021ad.id",
		"ip.src", "ip.dst", "ip.proto", "ipv6.src", "ipv6.dst", "ipv6.nxt",
		"tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "sctp.srcport", "sctp.dstport",
		"ip.checksum.status", "tcp.analysis.retransmission"}
	v := dpVerdict{Flows: make(map[string]dpFlowCount)}
	for _, r := range dpTsharkRows(t, pcap, filter, retrans, fields...) {
		f := func(name string) []string {
			i := slices.Index(fields, name)
			if r[i] == "" {
				return nil
			}
			return strings.Split(r[i], "|")
		}
		n, err := strconv.Atoi(r[1])
		if err != nil {
			t.Fatalf("%s: frame.len %q", pcap, r[1])
		}
		v.Frames++
		v.Bytes += uint64(n)
		if malformed[r[0]] {
			v.Malformed++
			if st := f("ip.checksum.status"); len(st) > 0 && st[0] == "0" {
				v.L3Checksum++
			}
			continue
		}
		key, upper, ok := dpOuterFlow(t, pcap, r[0], strings.Split(r[2], ":"), f)
		if st := f("ip.checksum.status"); len(st) > 0 && st[0] == "0" {
			v.L3Checksum++
		}
		if upper == "tcp" && len(f("tcp.analysis.retransmission")) > 0 {
			v.TCPRetrans++
		}
		if ok {
			c := v.Flows[key]
			c.Pkts++
			c.Bytes += uint64(n)
			c.SqBytes += float64(n) * float64(n)
			v.Flows[key] = c
		}
	}
	dpJudgeCache.Store(key, v)
	return v
}

// dpUpperProtos numbers the protocols tshark may name right after IPv6 extension headers.
var dpUpperProtos = map[string]uint8{"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50,
	"icmpv6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132}

// dpOuterFlow is the one-way flow of a frame by its outermost IP header, keyed as the result
// writes it, and the name of the protocol above that header.
func dpOuterFlow(t testing.TB, pcap, num string, protos []string, f func(string) []string) (string, string, bool) {
	ipAt := slices.IndexFunc(protos, func(p string) bool { return p == "ip" || p == "ipv6" })
	if ipAt < 0 {
		return "", "", false
	}
	var vlan uint16
	before := protos[:ipAt]
	first := func(name string) string { return f(name)[0] }
	if slices.Contains(before, "ieee8021ad") {
		vlan = uint16(dpAtoi(t, first("ieee8021ad.id")))
	} else if slices.Contains(before, "vlan") {
		vlan = uint16(dpAtoi(t, first("vlan.id")))
	}
	var (
		k     aggregate.FlowKey
		upper string
		ext   int
	)
	for _, p := range protos[ipAt+1:] {
		if !strings.HasPrefix(p, "ipv6.") {
			upper = p
			break
		}
		ext++
	}
	if protos[ipAt] == "ip" {
		k.Src, k.Dst = netip.MustParseAddr(first("ip.src")), netip.MustParseAddr(first("ip.dst"))
		k.Proto = uint8(dpAtoi(t, first("ip.proto")))
	} else {
		k.Src, k.Dst = netip.MustParseAddr(first("ipv6.src")), netip.MustParseAddr(first("ipv6.dst"))
		if ext == 0 {
			k.Proto = uint8(dpAtoi(t, first("ipv6.nxt")))
		} else if p, ok := dpUpperProtos[upper]; ok {
			k.Proto = p
		} else {
			t.Fatalf("%s frame %s: no protocol number for %q after IPv6 extension headers", pcap, num, upper)
		}
	}
	if upper == "tcp" || upper == "udp" || upper == "sctp" {
		k.SrcPort = uint16(dpAtoi(t, first(upper+".srcport")))
		k.DstPort = uint16(dpAtoi(t, first(upper+".dstport")))
	}
	k.VLAN = vlan
	return dpFlowID(k.String(), vlan), upper, true
}

func dpFlowID(fiveTuple string, vlan uint16) string {
	return fmt.Sprintf("%s vlan %d", fiveTuple, vlan)
}

func dpAtoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("tshark field %q: %v", s, err)
	}
	return n
}

// dpTsharkRows runs tshark on pcap with a display filter and returns the fields of each frame
// (every occurrence, joined by "|"). Reassembly is off: the kernel sees frames, not streams.
func dpTsharkRows(t testing.TB, pcap, filter string, seqAnalysis bool, fields ...string) [][]string {
	t.Helper()
	args := []string{"-n", "-r", pcap,
		"-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE", "-o", "tcp.desegment_tcp_streams:FALSE",
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.analyze_sequence_numbers:" + strings.ToUpper(strconv.FormatBool(seqAnalysis)),
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command("tshark", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	var rows [][]string
	for line := range strings.Lines(string(out)) {
		r := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
		if len(r) != len(fields) {
			t.Fatalf("tshark row %q: %d fields, want %d", line, len(r), len(fields))
		}
		rows = append(rows, r)
	}
	return rows
}

// dpReplayable copies a classic pcap so that it replays as tshark judges it: each frame's
// original length becomes its captured length (a truncated capture puts only what it has on
// the wire), and frames longer than the port's MTU allows are left out, each logged. It
// returns "" (and why) when the capture is not Ethernet or nothing is left.
func dpReplayable(t testing.TB, src string) (string, string) {
	t.Helper()
	data, err := os.ReadFile(src)
	must(t, err)
	if len(data) < 24 {
		return "", "not a pcap"
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return "", "not a classic pcap"
	}
	if lt := bo.Uint32(data[20:]) & 0x0fffffff; lt != 1 {
		return "", fmt.Sprintf("link type %d is not Ethernet: it cannot be replayed into an Ethernet port", lt)
	}
	out := append([]byte(nil), data[:24]...)
	kept := 0
	for off, i := 24, 1; off+16 <= len(data); i++ {
		incl := int(bo.Uint32(data[off+8:]))
		if off+16+incl > len(data) {
			return "", fmt.Sprintf("frame %d runs past the end of the file", i)
		}
		frame := data[off+16 : off+16+incl]
		hdr := append([]byte(nil), data[off:off+16]...)
		bo.PutUint32(hdr[12:], uint32(incl))
		off += 16 + incl
		if maxLen := 14 + dpPortMTU + 4*dpTags(frame); incl > maxLen {
			t.Logf("%s: frame %d left out: %d bytes exceed what a port with MTU %d takes (%d); a GSO/BIG TCP capture, not a wire frame",
				filepath.Base(src), i, incl, dpPortMTU, maxLen)
			continue
		}
		if incl < 14 {
			t.Logf("%s: frame %d left out: %d bytes are not an Ethernet header", filepath.Base(src), i, incl)
			continue
		}
		out = append(out, hdr...)
		out = append(out, frame...)
		kept++
	}
	if kept == 0 {
		return "", "no frame is left to replay"
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	must(t, os.WriteFile(dst, out, 0o644))
	return dst, ""
}

// dpTags counts a frame's inline VLAN dpTags.
func dpTags(frame []byte) int {
	n := 0
	for off := 12; off+4 <= len(frame) && n < 2; off += 4 {
		et := binary.BigEndian.Uint16(frame[off:])
		if et != 0x8100 && et != 0x88a8 {
			break
		}
		n++
	}
	return n
}

// dpReplay sends a capture into port's far end as fast as the veth takes it.
func (s *vswitch) dpReplay(port, pcap string) {
	s.t.Helper()
	run(s.t, "nsenter", "--net=/run/netns/"+s.hostNS, "--", "tcpreplay", "--topspeed", "-q", "-i", "vh-"+port, pcap)
}

// dpJob starts a direct job on port that analyses every frame, and waits until it runs.
func (s *vswitch) dpJob(id, port string, fields ...string) {
	s.t.Helper()
	s.putJob(id, append([]string{"port", port, "span_method", "direct", "duration_sec", "900", "sample_rate", "1"}, fields...)...)
	s.waitStatus(id, "running", 3*time.Second)
}

// dpResult stops a job (it must still be running: nothing aborted it) and returns its result.
func (s *vswitch) dpResult(id string) map[string]string {
	s.t.Helper()
	if st := s.job(id)["status"]; st != "running" {
		s.t.Fatalf("job %s is %q before it was stopped, want running: %v", id, st, s.job(id))
	}
	s.delJob(id)
	s.waitStatus(id, "stopped", 5*time.Second)
	return s.result(id)
}

// dpResultFlow is one top_flows entry of a result.
type dpResultFlow struct {
	FiveTuple string `json:"5tuple"`
	Pkts      uint64 `json:"pkts"`
	Bytes     uint64 `json:"bytes"`
	VLAN      uint16 `json:"vlan"`
}

func dpFlows(t testing.TB, res map[string]string) []dpResultFlow {
	t.Helper()
	var fl []dpResultFlow
	if err := json.Unmarshal([]byte(res["top_flows"]), &fl); err != nil {
		t.Fatalf("top_flows %q: %v", res["top_flows"], err)
	}
	return fl
}

func dpErrors(t testing.TB, res map[string]string) aggregate.Errors {
	t.Helper()
	var e aggregate.Errors
	if err := json.Unmarshal([]byte(res["errors"]), &e); err != nil {
		t.Fatalf("errors %q: %v", res["errors"], err)
	}
	return e
}

// dpCheckExact compares a rate-1 job's result with tshark's dpVerdict: totals, malformed and every
// flow exactly (the result keeps the top 1024; the captures here have fewer), the top 10 in
// order of bytes, and the checksum and retransmission counts within 2 %.
func dpCheckExact(t testing.TB, what string, res map[string]string, want dpVerdict) {
	t.Helper()
	if res["packets_total"] != strconv.Itoa(want.Frames) || res["bytes_total"] != strconv.FormatUint(want.Bytes, 10) {
		t.Errorf("%s: packets_total %s bytes_total %s, tshark %d and %d", what, res["packets_total"], res["bytes_total"], want.Frames, want.Bytes)
	}
	errs := dpErrors(t, res)
	if errs.Malformed != uint64(want.Malformed) {
		t.Errorf("%s: malformed %d, tshark %d", what, errs.Malformed, want.Malformed)
	}
	within2 := func(name string, got uint64, truth int) {
		if d := float64(got) - float64(truth); d > 0.02*float64(truth)+0.5 || -d > 0.02*float64(truth)+0.5 {
			t.Errorf("%s: %s %d, tshark %d (more than 2%% apart)", what, name, got, truth)
		}
	}
	within2("l3_checksum", errs.L3Checksum, want.L3Checksum)
	within2("tcp_retrans", errs.TCPRetrans, want.TCPRetrans)

	got := make(map[string]dpFlowCount)
	flows := dpFlows(t, res)
	for _, f := range flows {
		got[dpFlowID(f.FiveTuple, f.VLAN)] = dpFlowCount{Pkts: f.Pkts, Bytes: f.Bytes}
	}
	if len(want.Flows) > 1024 {
		t.Fatalf("%s: %d flows: too many to compare whole", what, len(want.Flows))
	}
	for k, w := range want.Flows {
		if g, ok := got[k]; !ok || g.Pkts != w.Pkts || g.Bytes != w.Bytes {
			t.Errorf("%s: flow %s: got %+v (present %v), tshark %+v", what, k, g, ok, w)
		}
	}
	for k, g := range got {
		if _, ok := want.Flows[k]; !ok {
			t.Errorf("%s: flow %s %+v is not in tshark's view", what, k, g)
		}
	}
	// The top 10 by bytes: the result's first ten are the ten largest (ties in any order).
	var sizes []uint64
	for _, w := range want.Flows {
		sizes = append(sizes, w.Bytes)
	}
	slices.Sort(sizes)
	slices.Reverse(sizes)
	for i := 0; i < min(10, len(flows), len(sizes)); i++ {
		if flows[i].Bytes != sizes[i] {
			t.Errorf("%s: top flow %d has %d bytes, tshark's %d-th largest %d", what, i+1, flows[i].Bytes, i+1, sizes[i])
		}
	}
}
