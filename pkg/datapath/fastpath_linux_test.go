//go:build linux

package datapath

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// agreementFrame is a frame for two instances of a job to agree on.
type agreementFrame struct {
	frame []byte
	segs  uint32 // a GSO packet of segs segments, when > 1
}

// agreementFrames are every crafted parser case, the benchmark frames, a TCP handshake and
// retransmission, GSO packets, frames of the fast path's shape that lie about a length, and
// every frame of the shared Ethernet captures.
func agreementFrames(t *testing.T) []agreementFrame {
	var frames []agreementFrame
	add := func(f []byte, segs uint32) { frames = append(frames, agreementFrame{f, segs}) }
	for _, c := range parseCases() {
		add(c.frame(), 0)
	}
	for _, bf := range benchFrames {
		add(bf.frame.build(), 0)
		add(bf.frame.build(), 4) // a GSO packet of 4 segments
	}
	syn := fb{proto: 6, sport: 40000, dport: 80, seq: 100, flags: 0x02}
	synAck := fb{src: b4, dst: a4, proto: 6, sport: 80, dport: 40000, seq: 900, ack: 101, flags: 0x12}
	data := fb{proto: 6, sport: 40000, dport: 80, seq: 101, ack: 901, flags: 0x18, payload: 100}
	ack := fb{src: b4, dst: a4, proto: 6, sport: 80, dport: 40000, seq: 901, ack: 201, flags: 0x10}
	for _, f := range []fb{syn, synAck, data, ack, data, data} { // the last two: retransmissions
		add(f.build(), 0)
	}
	// Frames of the fast path's shape that lie about a length: the general parser's malformed.
	for _, f := range []fb{
		{proto: 17, sport: 1, dport: 2, payload: 40, badTotLen: 1},
		{proto: 6, sport: 1, dport: 2, payload: 40, badTotLen: 4},
		{proto: 6, sport: 1, dport: 2, payload: 40, badTotLen: -45},  // below IP + TCP headers
		{proto: 17, sport: 1, dport: 2, payload: 40, badTotLen: -41}, // below IP + UDP headers
		{proto: 17, sport: 1, dport: 2, payload: 40, udpLen: 49},
		{proto: 17, sport: 1, dport: 2, payload: 40, udpLen: 7},
		{proto: 6, sport: 1, dport: 2, payload: 40, doff: 16},
		fb{proto: 6, sport: 1, dport: 2, doff: 20, payload: 40}.setDoff(64),
		{src: a6, dst: b6, proto: 17, sport: 1, dport: 2, payload: 40, badTotLen: 1},
		{src: a6, dst: b6, proto: 6, sport: 1, dport: 2, payload: 40, badTotLen: -45},
		{proto: 6, sport: 1, dport: 2, payload: 40, fragOff: 3},
		{proto: 6, sport: 1, dport: 2, payload: 40, more: true},
		{proto: 6, sport: 1, dport: 2, payload: 40, pad: 20},
		{proto: 6, sport: 1, dport: 2, payload: 40, ipOpts: 4},
	} {
		add(f.build(), 0)
	}
	syn6 := fb{src: a6, dst: b6, tags: [][2]uint16{{ether8021Q, 100}}, proto: 6, sport: 1, dport: 443, seq: 7, flags: 0x02}
	add(syn6.build(), 0)
	pcaps, _ := filepath.Glob(filepath.Join(repoRoot(t), "..", "shared", "pcaps", "*.pcap"))
	for _, file := range pcaps {
		for _, f := range ethernetFrames(t, file) {
			add(f, 0)
		}
	}
	if len(pcaps) == 0 {
		t.Error("no shared pcaps: the programs are compared on crafted frames only")
	}
	return frames
}

// agreementJobs cover each filter kind, passing and failing.
func agreementJobs() map[string]Job {
	v6 := benchFrames[3].frame
	return map[string]Job{
		"no filter":             {},
		"every filter (ipv4)":   benchJob(benchFrames[0].frame, 1, noCapture, false),
		"every filter, failing": benchJob(benchFrames[0].frame, 1, noCapture, true),
		"every filter (ipv6)":   benchJob(v6, 1, noCapture, false),
		"vlan 100":              {Filter: Filter{VLAN: 100}},
		"dst port 80":           {Filter: Filter{DstPorts: []PortRange{{80, 80}}}},
		"udp, dscp 46":          {Filter: Filter{IPProtos: []uint8{17}, DSCPs: []uint8{46}}},
		"src 10.0.0.0/8":        {Filter: Filter{SrcCIDR: netip.MustParsePrefix("10.0.0.0/8")}},
	}
}

// requireAgreement gives the same frames to two instances of each job, one loaded with
// tweakB applied to its settings, and requires every counter, flow, error and latency
// sample of the two to agree.
func requireAgreement(t *testing.T, frames []agreementFrame, jobs map[string]Job, nameA, nameB string, tweakB func(*settings)) {
	for name, job := range jobs {
		t.Run(name, func(t *testing.T) {
			a := loadProg(t, job, HookIngress)
			b := loadProgWith(t, job, HookIngress, tweakB)
			ran := 0
			for _, s := range frames {
				errA := runFrame(a.prog, s.frame, s.segs)
				errB := runFrame(b.prog, s.frame, s.segs)
				if (errA == nil) != (errB == nil) {
					t.Fatalf("frame of %d bytes: %s %v, %s %v", len(s.frame), nameA, errA, nameB, errB)
				}
				if errA == nil {
					ran++
				}
			}
			if got, want := a.stats(), b.stats(); got != want {
				t.Errorf("counters differ:\n%-8s %+v\n%-8s %+v", nameA, got, nameB, want)
			}
			sa, sb := a.snap(true), b.snap(true)
			if sa.Errors != sb.Errors {
				t.Errorf("errors: %s %+v, %s %+v", nameA, sa.Errors, nameB, sb.Errors)
			}
			if x, y := flowLines(sa.TopFlows), flowLines(sb.TopFlows); !slices.Equal(x, y) {
				t.Errorf("flows:\n%-8s %q\n%-8s %q", nameA, x, nameB, y)
			}
			for m, h := range sb.Latency {
				if sa.Latency[m].Count != h.Count {
					t.Errorf("%s: %d samples %s, %d %s", m, sa.Latency[m].Count, nameA, h.Count, nameB)
				}
			}
			t.Logf("%d frames run, %d counted, %d filtered, %d flows", ran, sa.Ingress.Packets, sa.Filtered, len(sa.TopFlows))
		})
	}
}

// TestFastPathAgrees holds the program's fast path (common frames parsed, filtered and counted
// in registers) to the general parser it stands in for: an instance of each job without the
// fast path (featNoFast) must measure what the one with it does, frame for frame.
func TestFastPathAgrees(t *testing.T) {
	requireAgreement(t, agreementFrames(t), agreementJobs(), "fast", "general", func(s *settings) { s.features |= featNoFast })
}

// runFrame runs prog once on frame, as a GSO packet of segs segments when segs > 1.
func runFrame(prog *ebpf.Program, frame []byte, segs uint32) error {
	opts := &ebpf.RunOptions{Data: frame}
	if segs > 1 {
		opts.Context = skbCtx{gsoSegs: segs}.bytes()
	}
	_, err := prog.Run(opts)
	return err
}

// flowLines are flows as sorted lines, timestamps left out.
func flowLines(flows []aggregate.Flow) []string {
	var out []string
	for _, f := range flows {
		out = append(out, fmt.Sprintf("%s vlan %d: %d pkts %d bytes flags %#x", f.Key, f.Key.VLAN, f.Packets, f.Bytes, f.TCPFlags))
	}
	slices.Sort(out)
	return out
}

// ethernetFrames reads the frames of a classic pcap file of Ethernet frames; another link type
// or format gives none.
func ethernetFrames(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		return nil
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d: // microsecond, nanosecond timestamps
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil
	}
	if bo.Uint32(b[20:]) != 1 { // LINKTYPE_ETHERNET
		return nil
	}
	var frames [][]byte
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if n > len(b)-off {
			break
		}
		frames = append(frames, b[off:off+n])
		off += n
	}
	return frames
}
