//go:build linux

package datapath

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// flowOf is the one-way flow a frame should be counted in; the zero value means none.
type flowOf struct {
	src, dst   netip.Addr
	sport, dpt uint16
	proto      uint8
	vlan       uint16
}

func (f flowOf) key() aggregate.FlowKey {
	return aggregate.FlowKey{Src: f.src, Dst: f.dst, SrcPort: f.sport, DstPort: f.dpt, Proto: f.proto, VLAN: f.vlan}
}

// TestParse runs every parser path on a crafted frame with BPF_PROG_TEST_RUN: each frame is
// counted exactly (frames, bytes); malformed ones are counted as such and in no flow; the
// others land in the right one-way flow, with ports only where the protocol has them and the
// frame is a first fragment.
func TestParse(t *testing.T) {
	for _, c := range parseCases() {
		t.Run(c.name, func(t *testing.T) {
			frame := c.frame()
			p := loadProg(t, Job{}, HookIngress)
			p.send(frame)
			s := p.snap(true)
			if s.Ingress.Packets != 1 || s.Ingress.Bytes != uint64(len(frame)) {
				t.Errorf("totals %+v, want 1 frame of %d bytes", s.Ingress, len(frame))
			}
			var want uint64
			if c.malformed {
				want = 1
			}
			if s.Errors.Malformed != want {
				t.Errorf("malformed = %d, want %d", s.Errors.Malformed, want)
			}
			var got []string
			for _, f := range s.TopFlows {
				got = append(got, fmt.Sprintf("%s vlan %d", f.Key, f.Key.VLAN))
				if f.Packets != 1 || f.Bytes != uint64(len(frame)) {
					t.Errorf("flow %s: %d packets %d bytes, want 1, %d", f.Key, f.Packets, f.Bytes, len(frame))
				}
			}
			var wantFlows []string
			if c.flow != (flowOf{}) {
				k := c.flow.key()
				wantFlows = []string{fmt.Sprintf("%s vlan %d", k, k.VLAN)}
			}
			if fmt.Sprint(got) != fmt.Sprint(wantFlows) {
				t.Errorf("flows %q, want %q", got, wantFlows)
			}
		})
	}
}

// parseCase is a crafted frame for a parser path and what it should be counted as.
type parseCase struct {
	name      string
	f         fb
	malformed bool
	flow      flowOf
	raw       []byte // instead of f
}

func (c parseCase) frame() []byte {
	if c.raw != nil {
		return c.raw
	}
	return c.f.build()
}

// parseCases are the frames of TestParse: every path through the parser.
func parseCases() []parseCase {
	q := func(vid uint16) [2]uint16 { return [2]uint16{ether8021Q, vid} }
	ad := func(vid uint16) [2]uint16 { return [2]uint16{ether8021A, vid} }
	tcp4 := flowOf{a4, b4, 40000, 80, 6, 0}
	return []parseCase{
		{name: "ipv4 tcp", f: fb{proto: 6, sport: 40000, dport: 80, flags: 0x18, payload: 10}, flow: tcp4},
		{name: "ipv4 tcp padded", f: fb{proto: 6, sport: 40000, dport: 80, flags: 0x10, pad: 6}, flow: tcp4},
		{name: "ipv4 options", f: fb{proto: 6, sport: 40000, dport: 80, ipOpts: 12, payload: 3}, flow: tcp4},
		{name: "ipv4 max options", f: fb{proto: 17, sport: 5, dport: 6, ipOpts: 40}, flow: flowOf{a4, b4, 5, 6, 17, 0}},
		{name: "ipv4 tcp options", f: fb{proto: 6, sport: 40000, dport: 80, doff: 40, payload: 1}, flow: tcp4},
		{name: "ipv4 udp", f: fb{proto: 17, sport: 53, dport: 33000, payload: 100}, flow: flowOf{a4, b4, 53, 33000, 17, 0}},
		{name: "ipv4 icmp", f: fb{proto: 1, payload: 56}, flow: flowOf{a4, b4, 0, 0, 1, 0}},
		{name: "ipv4 sctp", f: fb{proto: 132, sport: 2905, dport: 2906, payload: 16}, flow: flowOf{a4, b4, 2905, 2906, 132, 0}},
		{name: "ipv4 gre", f: fb{proto: 47, payload: 40}, flow: flowOf{a4, b4, 0, 0, 47, 0}},
		{name: "ipv4 first fragment", f: fb{proto: 17, sport: 7, dport: 8, more: true, payload: 64}, flow: flowOf{a4, b4, 7, 8, 17, 0}},
		{name: "ipv4 later fragment", f: fb{proto: 17, sport: 7, dport: 8, fragOff: 10, payload: 64}, flow: flowOf{a4, b4, 0, 0, 17, 0}},
		{name: "ipv4 last fragment", f: fb{proto: 6, sport: 7, dport: 8, fragOff: 185, payload: 3}, flow: flowOf{a4, b4, 0, 0, 6, 0}},
		{name: "ipv4 total length 0 (TSO)", f: fb{proto: 6, sport: 40000, dport: 80, payload: 30, badTotLen: -(20 + 20 + 30)}, flow: tcp4},
		{name: "802.1Q", f: fb{tags: [][2]uint16{q(100)}, proto: 6, sport: 40000, dport: 80}, flow: flowOf{a4, b4, 40000, 80, 6, 100}},
		{name: "QinQ 802.1ad", f: fb{tags: [][2]uint16{ad(200), q(100)}, proto: 6, sport: 40000, dport: 80}, flow: flowOf{a4, b4, 40000, 80, 6, 200}},
		{name: "QinQ 802.1Q twice", f: fb{tags: [][2]uint16{q(300), q(7)}, proto: 17, sport: 1, dport: 2}, flow: flowOf{a4, b4, 1, 2, 17, 300}},
		{name: "three tags: not parsed", f: fb{tags: [][2]uint16{ad(1), q(2), q(3)}, proto: 17, sport: 1, dport: 2}},
		{name: "arp", raw: arpFrame()},
		{name: "ipv6 tcp", f: fb{src: a6, dst: b6, proto: 6, sport: 40000, dport: 443, payload: 20}, flow: flowOf{a6, b6, 40000, 443, 6, 0}},
		{name: "ipv6 hop-by-hop dstopts routing", f: fb{src: a6, dst: b6, ext: []byte{0, 60, 43}, proto: 17, sport: 9, dport: 10}, flow: flowOf{a6, b6, 9, 10, 17, 0}},
		{name: "ipv6 ah", f: fb{src: a6, dst: b6, ext: []byte{51}, proto: 6, sport: 9, dport: 10}, flow: flowOf{a6, b6, 9, 10, 6, 0}},
		{name: "ipv6 first fragment", f: fb{src: a6, dst: b6, ext: []byte{0, 44}, more: true, proto: 17, sport: 9, dport: 10, payload: 100}, flow: flowOf{a6, b6, 9, 10, 17, 0}},
		{name: "ipv6 later fragment", f: fb{src: a6, dst: b6, ext: []byte{44}, fragOff: 100, proto: 17, sport: 9, dport: 10, payload: 100}, flow: flowOf{a6, b6, 0, 0, 17, 0}},
		{name: "ipv6 six extension headers", f: fb{src: a6, dst: b6, ext: []byte{0, 60, 43, 51, 44, 60}, proto: 6, sport: 9, dport: 10}, flow: flowOf{a6, b6, 9, 10, 6, 0}},
		{name: "ipv6 seven extension headers: no ports", f: fb{src: a6, dst: b6, ext: []byte{0, 60, 43, 51, 44, 60, 60}, proto: 6, sport: 9, dport: 10}, flow: flowOf{a6, b6, 0, 0, 60, 0}},
		{name: "ipv6 icmpv6", f: fb{src: a6, dst: b6, proto: 58, payload: 8}, flow: flowOf{a6, b6, 0, 0, 58, 0}},
		{name: "ipv6 no next header", f: fb{src: a6, dst: b6, proto: 59}, flow: flowOf{a6, b6, 0, 0, 59, 0}},
		{name: "ipv6 in 802.1Q", f: fb{tags: [][2]uint16{q(42)}, src: a6, dst: b6, proto: 17, sport: 1, dport: 2}, flow: flowOf{a6, b6, 1, 2, 17, 42}},

		{name: "ipv4 version 6", f: fb{proto: 6, sport: 1, dport: 2, badVersion: true}, malformed: true},
		{name: "ipv4 ihl 4", f: fb{proto: 6, sport: 1, dport: 2, badIHL: true}, malformed: true},
		{name: "ipv4 total length beyond frame", f: fb{proto: 17, sport: 1, dport: 2, badTotLen: 1}, malformed: true},
		{name: "ipv4 total length below header", f: fb{proto: 17, sport: 1, dport: 2, badTotLen: -(20 + 8) + 10}, malformed: true},
		{name: "ipv4 header cut", f: fb{proto: 17, sport: 1, dport: 2, ipOpts: 20, trunc: 8 + 12}, malformed: true},
		// BPF_PROG_TEST_RUN refuses a frame whose Ethernet type is IP and whose IP header it
		// cannot pull, or one shorter than Ethernet's: a tag in front gets them past it.
		{name: "ipv4 header cut at 10", f: fb{tags: [][2]uint16{q(9)}, proto: 6}.cut(18 + 10), malformed: true},
		{name: "ethernet cut", raw: fb{tags: [][2]uint16{q(9)}, proto: 6}.cut(17).build(), malformed: true},
		{name: "tcp cut", f: fb{proto: 6, sport: 1, dport: 2, trunc: 5}, malformed: true},
		{name: "tcp data offset 4", f: fb{proto: 6, sport: 1, dport: 2, doff: 16}, malformed: true},
		{name: "tcp data offset beyond segment", f: fb{proto: 6, sport: 1, dport: 2, doff: 20, payload: 4}.setDoff(60), malformed: true},
		{name: "udp length beyond payload", f: fb{proto: 17, sport: 1, dport: 2, payload: 4, udpLen: 20}, malformed: true},
		{name: "udp length below header", f: fb{proto: 17, sport: 1, dport: 2, payload: 4, udpLen: 7}, malformed: true},
		{name: "sctp too short", f: fb{proto: 132, sport: 1, dport: 2}.cut(14 + 20 + 10).fixLen(), malformed: true},
		{name: "ipv6 version 4", f: fb{src: a6, dst: b6, proto: 17, sport: 1, dport: 2, badVersion: true}, malformed: true},
		{name: "ipv6 payload beyond frame", f: fb{src: a6, dst: b6, proto: 17, sport: 1, dport: 2, badTotLen: 1}, malformed: true},
		{name: "ipv6 header cut", f: fb{tags: [][2]uint16{q(9)}, src: a6, dst: b6, proto: 17}.cut(18 + 30), malformed: true},
		{name: "ipv6 extension overruns payload", f: fb{src: a6, dst: b6, ext: []byte{0}, proto: 17, sport: 1, dport: 2, badTotLen: -(8 + 12)}, malformed: true},
		{name: "vlan tag cut", raw: fb{tags: [][2]uint16{q(5)}, proto: 17}.cut(15).build(), malformed: true},
	}
}

// cut returns a builder whose frame ends after n bytes.
func (f fb) cut(n int) fb {
	f.trunc = len(f.build()) - n
	return f
}

// setDoff claims a TCP header of doff bytes without providing it.
func (f fb) setDoff(doff int) fb {
	f.claimDoff = doff
	return f
}

// fixLen makes the IP length fields agree with a cut frame.
func (f fb) fixLen() fb {
	f.badTotLen = -f.trunc
	return f
}

// TestGSO: a GSO/GRO packet counts as the frames it stands for, each with its own headers.
func TestGSO(t *testing.T) {
	p := loadProg(t, Job{}, HookIngress)
	frame := fb{proto: 6, sport: 40000, dport: 80, flags: 0x10, payload: 4 * 700}.build()
	p.sendCtx(frame, skbCtx{gsoSegs: 4}, 1)
	s := p.snap(true)
	hdr := 14 + 20 + 20
	want := aggregate.DirectionCounts{Packets: 4, Bytes: uint64(len(frame) + 3*hdr)}
	if s.Ingress != want {
		t.Errorf("totals %+v, want %+v", s.Ingress, want)
	}
	if len(s.TopFlows) != 1 || s.TopFlows[0].Packets != 4 || s.TopFlows[0].Bytes != want.Bytes {
		t.Errorf("flows %+v, want one of %+v", s.TopFlows, want)
	}
}
