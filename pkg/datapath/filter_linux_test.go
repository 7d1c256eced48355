//go:build linux

package datapath

import (
	"net/netip"
	"testing"
)

// TestFilters runs each filter kind on frames that pass and frames that fail it. A frame that
// fails counts nowhere but in Filtered; one that passes is counted and analysed.
func TestFilters(t *testing.T) {
	q := func(vid uint16) [2]uint16 { return [2]uint16{ether8021Q, vid} }
	ad := func(vid uint16) [2]uint16 { return [2]uint16{ether8021A, vid} }
	pfx := netip.MustParsePrefix
	tcp := func(sport, dport uint16) fb { return fb{proto: 6, sport: sport, dport: dport} }
	type frame struct {
		f    fb
		raw  []byte
		pass bool
	}
	for _, c := range []struct {
		name   string
		filter Filter
		frames []frame
	}{
		{"none", Filter{}, []frame{{f: tcp(1, 2), pass: true}, {raw: arpFrame(), pass: true}}},
		{"vlan", Filter{VLAN: 100}, []frame{
			{f: fb{tags: [][2]uint16{q(100)}, proto: 17}, pass: true},
			{f: fb{tags: [][2]uint16{ad(100), q(5)}, proto: 17}, pass: true},
			{f: fb{tags: [][2]uint16{ad(5), q(100)}, proto: 17}, pass: true}, // the inner tag
			{f: fb{tags: [][2]uint16{q(101)}, proto: 17}},
			{f: fb{proto: 17}},
			{raw: udp4Frame(64, [2]uint16{ether8021Q, 100}), pass: true},
		}},
		{"ip_proto", Filter{IPProtos: []uint8{6, 58, 132}}, []frame{
			{f: tcp(1, 2), pass: true},
			{f: fb{src: a6, dst: b6, proto: 58}, pass: true},
			{f: fb{src: a6, dst: b6, ext: []byte{0, 60}, proto: 58}, pass: true}, // after extension headers
			{f: fb{proto: 132, sport: 1, dport: 2}, pass: true},
			{f: fb{proto: 17}},
			{f: fb{proto: 1}},
			{f: fb{proto: 6, fragOff: 20}, pass: true}, // a later fragment keeps its protocol
			{raw: arpFrame()},
		}},
		{"l4_sport", Filter{SrcPorts: []PortRange{{80, 80}, {1000, 2000}}}, []frame{
			{f: tcp(80, 9), pass: true},
			{f: tcp(1000, 9), pass: true},
			{f: tcp(2000, 9), pass: true},
			{f: fb{proto: 17, sport: 1500, dport: 9}, pass: true},
			{f: fb{proto: 132, sport: 1500, dport: 9}, pass: true},
			{f: tcp(81, 9)},
			{f: tcp(999, 80)},
			{f: tcp(2001, 1000)},
			{f: fb{proto: 1}},
			{f: fb{proto: 17, sport: 80, dport: 9, fragOff: 3}}, // no ports in a later fragment
		}},
		{"l4_dport", Filter{DstPorts: []PortRange{{0, 0}, {443, 443}, {65535, 65535}}}, []frame{
			{f: tcp(1, 443), pass: true},
			{f: tcp(1, 0), pass: true},
			{f: tcp(1, 65535), pass: true},
			{f: fb{src: a6, dst: b6, proto: 6, sport: 443, dport: 443}, pass: true},
			{f: tcp(443, 444)},
			{f: fb{proto: 1}},
		}},
		{"src_cidr v4", Filter{SrcCIDR: pfx("192.0.2.0/24")}, []frame{
			{f: tcp(1, 2), pass: true},
			{f: fb{src: netip.MustParseAddr("192.0.3.1"), dst: b4, proto: 6}},
			{f: fb{src: b4, dst: a4, proto: 6}},
			{f: fb{src: a6, dst: b6, proto: 6}},
			{raw: arpFrame()},
		}},
		{"dst_cidr v4 host", Filter{DstCIDR: pfx("198.51.100.2/32")}, []frame{
			{f: tcp(1, 2), pass: true},
			{f: fb{src: a4, dst: netip.MustParseAddr("198.51.100.3"), proto: 6}},
		}},
		{"dst_cidr v4 any", Filter{DstCIDR: pfx("0.0.0.0/0")}, []frame{
			{f: tcp(1, 2), pass: true},
			{f: fb{src: a6, dst: b6, proto: 6}},
		}},
		{"src_cidr v6", Filter{SrcCIDR: pfx("2001:db8::/48")}, []frame{
			{f: fb{src: a6, dst: b6, proto: 17}, pass: true},
			{f: fb{src: netip.MustParseAddr("2001:db8:0:ffff::1"), dst: a6, proto: 17}, pass: true},
			{f: fb{src: b6, dst: a6, proto: 17}}, // 2001:db8:1::2 is not in 2001:db8::/48
			{f: fb{src: netip.MustParseAddr("2001:db9::1"), dst: a6, proto: 17}},
			{f: tcp(1, 2)},
		}},
		{"dst_cidr v6 /127", Filter{DstCIDR: pfx("2001:db8:1::2/127")}, []frame{
			{f: fb{src: a6, dst: b6, proto: 17}, pass: true},
			{f: fb{src: a6, dst: netip.MustParseAddr("2001:db8:1::3"), proto: 17}, pass: true},
			{f: fb{src: a6, dst: netip.MustParseAddr("2001:db8:1::4"), proto: 17}},
		}},
		{"dscp", Filter{DSCPs: []uint8{0, 46, 63}}, []frame{
			{f: fb{proto: 17, dscp: 46}, pass: true},
			{f: fb{proto: 17}, pass: true},
			{f: fb{src: a6, dst: b6, proto: 17, dscp: 63}, pass: true},
			{f: fb{proto: 17, dscp: 10}},
			{f: fb{src: a6, dst: b6, proto: 17, dscp: 34}},
			{raw: arpFrame()},
		}},
		{"all together", Filter{VLAN: 10, IPProtos: []uint8{17}, SrcPorts: []PortRange{{5000, 6000}}, DstPorts: []PortRange{{53, 53}},
			SrcCIDR: pfx("192.0.2.0/28"), DstCIDR: pfx("198.51.100.0/24"), DSCPs: []uint8{26}}, []frame{
			{f: fb{tags: [][2]uint16{q(10)}, proto: 17, sport: 5353, dport: 53, dscp: 26}, pass: true},
			{f: fb{tags: [][2]uint16{q(11)}, proto: 17, sport: 5353, dport: 53, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, proto: 6, sport: 5353, dport: 53, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, proto: 17, sport: 4999, dport: 53, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, proto: 17, sport: 5353, dport: 54, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, src: netip.MustParseAddr("192.0.2.16"), dst: b4, proto: 17, sport: 5353, dport: 53, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, src: a4, dst: netip.MustParseAddr("198.51.101.1"), proto: 17, sport: 5353, dport: 53, dscp: 26}},
			{f: fb{tags: [][2]uint16{q(10)}, proto: 17, sport: 5353, dport: 53, dscp: 27}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, dir := range []string{HookIngress, HookEgress} {
				p := loadProg(t, Job{Filter: c.filter}, dir)
				var passed, bytes uint64
				for i, fr := range c.frames {
					data := fr.raw
					if data == nil {
						data = fr.f.build()
					}
					before := p.stats()
					p.send(data)
					after := p.stats()
					got := after.Packets > before.Packets
					if got != fr.pass || after.Filtered-before.Filtered != b2u(!fr.pass) {
						t.Errorf("%s frame %d: passed %v (filtered %d), want %v", dir, i, got, after.Filtered-before.Filtered, fr.pass)
					}
					if fr.pass {
						passed++
						bytes += uint64(len(data))
					}
				}
				s := p.snap(true)
				counts := s.Ingress
				if dir == HookEgress {
					counts = s.Egress
				}
				if counts.Packets != passed || counts.Bytes != bytes || s.Filtered != uint64(len(c.frames))-passed {
					t.Errorf("%s: counts %+v filtered %d, want %d packets %d bytes, %d filtered", dir, counts, s.Filtered, passed, bytes, uint64(len(c.frames))-passed)
				}
			}
		})
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
