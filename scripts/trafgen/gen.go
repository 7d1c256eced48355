package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// flowKind is the shape of a flow within a mix: IP version, transport and whether it is tagged.
type flowKind struct {
	v6     bool
	proto  l4Proto
	tagged bool
}

// mixes lists, per mix, the flow kinds that flows cycle through (flow i has kind i mod len).
var mixes = map[string][]flowKind{
	"basic": {{false, l4TCP, false}, {false, l4UDP, false}, {false, l4ICMP, false}},
	"flows": {{false, l4TCP, false}, {false, l4UDP, false}, {true, l4TCP, false}, {true, l4UDP, false}},
	"vlan":  {{false, l4TCP, true}, {false, l4UDP, true}, {true, l4TCP, true}, {true, l4UDP, true}, {false, l4ICMP, true}},
	"ipv6":  {{true, l4TCP, false}, {true, l4UDP, false}, {true, l4ICMP, false}},
	"all": {
		{false, l4TCP, false}, {false, l4UDP, false}, {false, l4ICMP, false},
		{true, l4TCP, false}, {true, l4UDP, false}, {true, l4ICMP, false},
		{false, l4TCP, true}, {true, l4UDP, true}, {false, l4ICMP, true},
	},
	// retrans: TCP conversations in both directions with retransmissions (retransFrames).
	"retrans": {{false, l4TCP, false}, {true, l4TCP, false}, {false, l4TCP, true}, {true, l4TCP, true}},
	// badcsum: the "all" mix with corrupt IPv4 header checksums (badChecksums).
	"badcsum": nil,
}

// mixNames is the -mix help text, in a fixed order.
const mixNames = "basic|flows|vlan|ipv6|all|retrans|badcsum"

// Per-flow attributes cycle through these lists, so every mix carries several values of each.
var (
	dscps    = []uint8{0, 46, 10, 26, 34, 0, 18, 48}
	vlanIDs  = []uint16{10, 20, 30, 100}
	tcpPorts = []uint16{443, 80, 8443, 5201}
	udpPorts = []uint16{5001, 9000, 7777, 33434}
	dstMAC   = [6]byte{0x02, 0x00, 0x00, 0x00, 0xfe, 0x01}
)

// newFlows builds k flows of the given mix, deterministically from seed.
func newFlows(mix string, k int, seed uint64) ([]*flow, error) {
	kinds, ok := mixes[mix]
	if !ok {
		return nil, fmt.Errorf("-mix: unknown mix %q (want %s)", mix, mixNames)
	}
	if k < 1 || k > 65535 {
		return nil, fmt.Errorf("-flows: %d is out of range 1-65535", k)
	}
	rng := newRand(seed ^ 0x666c6f7773)
	flows := make([]*flow, k)
	for i := range flows {
		kind := kinds[i%len(kinds)]
		n := i + 1
		f := &flow{
			proto:  kind.proto,
			dscp:   dscps[i%len(dscps)],
			srcMAC: [6]byte{0x02, 0x00, 0x00, 0x01, byte(n >> 8), byte(n)},
			dstMAC: dstMAC,
			seq:    uint32(rng.next()),
			ipID:   uint16(rng.next()),
			fl:     uint32(rng.next()) & 0xfffff,
		}
		if kind.tagged {
			f.vlan = vlanIDs[i%len(vlanIDs)]
			f.pcp = f.dscp >> 3
		}
		if kind.v6 {
			f.src = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 14: byte(n >> 8), 15: byte(n)})
			f.dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 15: byte(1 + i%8)})
		} else {
			f.src = netip.AddrFrom4([4]byte{10, 1, byte(n >> 8), byte(n)})
			f.dst = netip.AddrFrom4([4]byte{10, 2, 0, byte(1 + i%8)})
		}
		switch kind.proto {
		case l4TCP:
			f.sport, f.dport = uint16(32768+i%28000), tcpPorts[i%len(tcpPorts)]
		case l4UDP:
			f.sport, f.dport = uint16(32768+i%28000), udpPorts[i%len(udpPorts)]
		default:
			f.sport = uint16(0x1000 + i) // echo identifier
		}
		flows[i] = f
	}
	return flows, nil
}

// schedule returns, for n frames over k flows, the flow index of each frame. The "flows" mix
// gives flow i a share proportional to 1/(i+1) (so top-K order is known); the others share
// equally. The order is shuffled deterministically from seed.
func schedule(mix string, n, k int, seed uint64) []int {
	counts := make([]int, k)
	if mix == "flows" {
		var total float64
		for i := range k {
			total += 1 / float64(i+1)
		}
		given := 0
		for i := range k {
			counts[i] = int(float64(n) / float64(i+1) / total)
			given += counts[i]
		}
		for i := 0; given < n; i = (i + 1) % k {
			counts[i]++
			given++
		}
	} else {
		for i := range k {
			counts[i] = n / k
			if i < n%k {
				counts[i]++
			}
		}
	}
	order := make([]int, 0, n)
	for i, c := range counts {
		for range c {
			order = append(order, i)
		}
	}
	rng := newRand(seed ^ 0x6f72646572)
	for i := len(order) - 1; i > 0; i-- {
		j := int(rng.next() % uint64(i+1))
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// sizeDist picks target frame lengths. A target below a flow's header length yields a
// header-only frame (42 bytes for ICMP or UDP over IPv4: below Ethernet's 60-byte minimum).
type sizeDist struct {
	name    string
	sizes   []int // weighted choices (0 = header only); empty for a uniform range
	weights []int
	lo, hi  int // uniform range, inclusive
}

// maxFrameLen is the largest frame -size accepts: a full 9100-byte L3 packet with a VLAN tag.
const maxFrameLen = ethHeaderLen + vlanTagLen + maxL3Len

const sizeHelp = "frame length distribution: mixed (imix plus header-only runts), imix (60:7 590:4 1514:1), " +
	"min (header only), N (fixed), or A-B (uniform)"

// parseSize reads the -size value.
func parseSize(s string) (sizeDist, error) {
	switch s {
	case "mixed":
		return sizeDist{name: s, sizes: []int{0, 60, 590, 1514}, weights: []int{1, 6, 4, 1}}, nil
	case "imix":
		return sizeDist{name: s, sizes: []int{60, 590, 1514}, weights: []int{7, 4, 1}}, nil
	case "min":
		return sizeDist{name: s, sizes: []int{0}, weights: []int{1}}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return sizeDist{}, fmt.Errorf("-size: %q is not mixed, imix, min, N or A-B", s)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil {
			return sizeDist{}, fmt.Errorf("-size: %q is not mixed, imix, min, N or A-B", s)
		}
	}
	if a < 0 || b < a || b > maxFrameLen {
		return sizeDist{}, fmt.Errorf("-size: %q must satisfy 0 <= A <= B <= %d", s, maxFrameLen)
	}
	return sizeDist{name: s, lo: a, hi: b}, nil
}

// pick draws one target length.
func (d sizeDist) pick(rng *splitmix) int {
	if len(d.sizes) == 0 {
		return d.lo + int(rng.next()%uint64(d.hi-d.lo+1))
	}
	total := 0
	for _, w := range d.weights {
		total += w
	}
	r := int(rng.next() % uint64(total))
	for i, w := range d.weights {
		if r < w {
			return d.sizes[i]
		}
		r -= w
	}
	return d.sizes[len(d.sizes)-1]
}

// frames builds the whole traffic mix: n frames, deterministic for the same arguments.
func frames(mix string, n, k int, seed uint64, size sizeDist) ([][]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("-n: %d is negative", n)
	}
	switch mix {
	case "retrans":
		return retransFrames(n, k, seed, size)
	case "badcsum":
		all, err := frames("all", n, k, seed, size)
		if err != nil {
			return nil, err
		}
		badChecksums(all, seed)
		return all, nil
	}
	flows, err := newFlows(mix, k, seed)
	if err != nil {
		return nil, err
	}
	rng := newRand(seed ^ 0x73697a65)
	out := make([][]byte, 0, n)
	for _, i := range schedule(mix, n, k, seed) {
		out = append(out, flows[i].next(size.pick(rng)))
	}
	return out, nil
}

// splitmix is SplitMix64: a tiny PRNG whose output is fixed by its definition, so a seed gives
// the same traffic on every Go version.
type splitmix struct{ s uint64 }

func newRand(seed uint64) *splitmix { return &splitmix{s: seed} }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// badCsumShare is the share of IPv4 frames whose header checksum badChecksums corrupts.
const badCsumShare = 8 // one in 8

// badChecksums corrupts the IPv4 header checksum of about one IPv4 frame in badCsumShare
// (chosen from seed), leaving everything else, the L4 checksum included, as it was.
func badChecksums(frames [][]byte, seed uint64) {
	rng := newRand(seed ^ 0x6373756d)
	for _, b := range frames {
		off := ethHeaderLen - 2
		if binary.BigEndian.Uint16(b[off:]) == etherTypeVLAN {
			off += vlanTagLen
		}
		if binary.BigEndian.Uint16(b[off:]) != etherTypeIPv4 || rng.next()%badCsumShare != 0 {
			continue
		}
		b[off+2+10] ^= 0x5a // the checksum's high byte: never right again
	}
}

// conversation is one TCP connection of the retrans mix: a client (a) and a server (b).
type conversation struct {
	a, b         *flow
	aNext, bNext uint32      // next sequence number of each side
	segs         [][2]uint32 // the client's segments not yet acknowledged: seq, length
	step         int
}

// retransCycle is what a conversation does after its handshake, turn by turn: three new data
// segments from the client; the server acknowledges the first; a keep-alive; the client
// retransmits the oldest unacknowledged segment (then at least two frames of this conversation
// after its newest data, so tshark calls it a retransmission, not out-of-order); the server
// sends data acknowledging everything; the client acknowledges it.
var retransCycle = []string{"data", "data", "data", "ack1", "keepalive", "retrans", "serverdata", "clientack"}

// retransFrames builds the retrans mix: k TCP conversations (IPv4, IPv6, tagged or not),
// interleaved at random, each opening with a handshake (three frames in a row) and then
// repeating retransCycle. One frame in eight is a retransmission.
func retransFrames(n, k int, seed uint64, size sizeDist) ([][]byte, error) {
	flows, err := newFlows("retrans", k, seed)
	if err != nil {
		return nil, err
	}
	rng := newRand(seed ^ 0x72657472)
	convs := make([]*conversation, k)
	for i, f := range flows {
		convs[i] = &conversation{a: f, b: f.reverse(), aNext: f.seq, bNext: uint32(rng.next())}
	}
	payload := func(f *flow) int {
		return max(1, min(size.pick(rng), f.maxFrameLen())-f.headerLen())
	}
	out := make([][]byte, 0, n)
	for len(out) < n {
		c := convs[rng.next()%uint64(k)]
		if c.step == 0 {
			syn := c.a.segment(c.aNext, 0, 0x02, 0)
			synack := c.b.segment(c.bNext, c.aNext+1, 0x12, 0)
			c.aNext++
			c.bNext++
			ack := c.a.segment(c.aNext, c.bNext, 0x10, 0)
			out = append(out, syn, synack, ack)
			c.step++
			continue
		}
		var fr []byte
		switch retransCycle[(c.step-1)%len(retransCycle)] {
		case "data":
			l := payload(c.a)
			fr = c.a.segment(c.aNext, c.bNext, 0x18, l)
			c.segs = append(c.segs, [2]uint32{c.aNext, uint32(l)})
			c.aNext += uint32(l)
		case "ack1":
			s := c.segs[0]
			c.segs = c.segs[1:]
			fr = c.b.segment(c.bNext, s[0]+s[1], 0x10, 0)
		case "keepalive":
			fr = c.a.segment(c.aNext-1, c.bNext, 0x10, 0)
		case "retrans":
			s := c.segs[0]
			fr = c.a.segment(s[0], c.bNext, 0x18, int(s[1]))
		case "serverdata":
			l := payload(c.b)
			fr = c.b.segment(c.bNext, c.aNext, 0x18, l)
			c.bNext += uint32(l)
			c.segs = c.segs[:0]
		case "clientack":
			fr = c.a.segment(c.aNext, c.bNext, 0x10, 0)
		}
		out = append(out, fr)
		c.step++
	}
	return out[:n], nil
}
