package main

import (
	"encoding/binary"
	"net/netip"
)

// Header sizes and protocol numbers used to build frames by hand.
const (
	ethHeaderLen  = 14
	vlanTagLen    = 4
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	tcpHeaderLen  = 20
	udpHeaderLen  = 8
	icmpHeaderLen = 8

	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	// maxL3Len is the largest L3 packet a frame may carry: the vswitch port MTU.
	maxL3Len = 9100
)

// l4Proto is the transport a flow carries.
type l4Proto uint8

const (
	l4TCP l4Proto = iota
	l4UDP
	l4ICMP // ICMP echo request for IPv4, ICMPv6 echo request for IPv6
)

func (p l4Proto) String() string {
	switch p {
	case l4TCP:
		return "tcp"
	case l4UDP:
		return "udp"
	default:
		return "icmp"
	}
}

// flow is one 5-tuple (plus VLAN and DSCP) and the per-flow state that changes frame by frame.
type flow struct {
	proto  l4Proto
	vlan   uint16 // 0: untagged
	pcp    uint8
	dscp   uint8
	srcMAC [6]byte
	dstMAC [6]byte
	src    netip.Addr
	dst    netip.Addr
	sport  uint16 // TCP/UDP source port; ICMP echo identifier
	dport  uint16

	seq  uint32 // next TCP sequence number
	ipID uint16 // next IPv4 identification

	// A segment's own acknowledgement number and flags (segment); otherwise 1 and PSH|ACK.
	custom   bool
	ack      uint32
	tcpFlags uint8
	echo     uint16 // next ICMP echo sequence number
	fl       uint32 // IPv6 flow label
}

// headerLen is the length of a frame of this flow that carries no payload.
func (f *flow) headerLen() int {
	n := ethHeaderLen
	if f.vlan != 0 {
		n += vlanTagLen
	}
	if f.src.Is4() {
		n += ipv4HeaderLen
	} else {
		n += ipv6HeaderLen
	}
	switch f.proto {
	case l4TCP:
		n += tcpHeaderLen
	case l4UDP:
		n += udpHeaderLen
	default:
		n += icmpHeaderLen
	}
	return n
}

// maxFrameLen is the longest frame of this flow whose L3 packet still fits the port MTU.
func (f *flow) maxFrameLen() int {
	n := ethHeaderLen + maxL3Len
	if f.vlan != 0 {
		n += vlanTagLen
	}
	return n
}

// next builds the flow's next frame, target bytes long (clamped to the flow's header length
// and to the MTU), and advances the flow's sequence state. The payload is a byte pattern.
func (f *flow) next(target int) []byte {
	target = max(target, f.headerLen())
	target = min(target, f.maxFrameLen())
	b := make([]byte, target)

	// Ethernet (and 802.1Q).
	copy(b[0:6], f.dstMAC[:])
	copy(b[6:12], f.srcMAC[:])
	off := 12
	if f.vlan != 0 {
		binary.BigEndian.PutUint16(b[off:], etherTypeVLAN)
		binary.BigEndian.PutUint16(b[off+2:], uint16(f.pcp)<<13|f.vlan&0x0fff)
		off += 4
	}
	l3 := off + 2
	var l4 int
	if f.src.Is4() {
		binary.BigEndian.PutUint16(b[off:], etherTypeIPv4)
		l4 = l3 + ipv4HeaderLen
	} else {
		binary.BigEndian.PutUint16(b[off:], etherTypeIPv6)
		l4 = l3 + ipv6HeaderLen
	}
	l4Len := target - l4

	// Transport header and payload.
	var proto uint8
	pay := l4
	switch f.proto {
	case l4TCP:
		proto = protoTCP
		pay += tcpHeaderLen
		h := b[l4:]
		binary.BigEndian.PutUint16(h[0:], f.sport)
		binary.BigEndian.PutUint16(h[2:], f.dport)
		binary.BigEndian.PutUint32(h[4:], f.seq)
		binary.BigEndian.PutUint32(h[8:], 1) // ack
		h[12] = (tcpHeaderLen / 4) << 4      // data offset
		h[13] = 0x18                         // PSH|ACK
		if f.custom {
			binary.BigEndian.PutUint32(h[8:], f.ack)
			h[13] = f.tcpFlags
		}
		binary.BigEndian.PutUint16(h[14:], 502) // window
		f.seq += uint32(target - pay)
	case l4UDP:
		proto = protoUDP
		pay += udpHeaderLen
		h := b[l4:]
		binary.BigEndian.PutUint16(h[0:], f.sport)
		binary.BigEndian.PutUint16(h[2:], f.dport)
		binary.BigEndian.PutUint16(h[4:], uint16(l4Len))
	default:
		pay += icmpHeaderLen
		h := b[l4:]
		if f.src.Is4() {
			proto = protoICMP
			h[0] = 8 // echo request
		} else {
			proto = protoICMPv6
			h[0] = 128 // echo request
		}
		binary.BigEndian.PutUint16(h[4:], f.sport)
		binary.BigEndian.PutUint16(h[6:], f.echo)
		f.echo++
	}
	for i := pay; i < target; i++ {
		b[i] = byte(i - pay)
	}

	// Network header.
	if f.src.Is4() {
		h := b[l3:]
		h[0] = 0x45
		h[1] = f.dscp << 2
		binary.BigEndian.PutUint16(h[2:], uint16(target-l3))
		binary.BigEndian.PutUint16(h[4:], f.ipID)
		binary.BigEndian.PutUint16(h[6:], 0x4000) // DF
		h[8] = 64
		h[9] = proto
		s, d := f.src.As4(), f.dst.As4()
		copy(h[12:16], s[:])
		copy(h[16:20], d[:])
		binary.BigEndian.PutUint16(h[10:], ^fold(sum(h[:ipv4HeaderLen], 0)))
		f.ipID++
	} else {
		h := b[l3:]
		binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(f.dscp)<<22|f.fl&0xfffff)
		binary.BigEndian.PutUint16(h[4:], uint16(l4Len))
		h[6] = proto
		h[7] = 64
		s, d := f.src.As16(), f.dst.As16()
		copy(h[8:24], s[:])
		copy(h[24:40], d[:])
	}

	// Transport checksum (ICMPv4 has no pseudo-header).
	var ck int
	switch proto {
	case protoTCP:
		ck = l4 + 16
	case protoUDP:
		ck = l4 + 6
	default:
		ck = l4 + 2
	}
	var acc uint32
	if proto != protoICMP {
		acc = pseudoHeaderSum(f.src, f.dst, proto, l4Len)
	}
	c := ^fold(sum(b[l4:], acc))
	if c == 0 && proto == protoUDP {
		c = 0xffff // 0 means "no checksum" for UDP
	}
	binary.BigEndian.PutUint16(b[ck:], c)
	return b
}

// segment builds a TCP frame of this flow with the given sequence and acknowledgement numbers,
// flags and payload length, leaving the flow's own sequence state as it was.
func (f *flow) segment(seq, ack uint32, flags uint8, payload int) []byte {
	saved := f.seq
	f.seq, f.ack, f.tcpFlags, f.custom = seq, ack, flags, true
	b := f.next(f.headerLen() + payload)
	f.seq, f.custom = saved, false
	return b
}

// reverse is the flow of the other direction: addresses, ports and MACs swapped.
func (f *flow) reverse() *flow {
	r := *f
	r.src, r.dst = f.dst, f.src
	r.sport, r.dport = f.dport, f.sport
	r.srcMAC, r.dstMAC = f.dstMAC, f.srcMAC
	return &r
}

// pseudoHeaderSum is the un-folded ones'-complement sum of the TCP/UDP/ICMPv6 pseudo-header.
func pseudoHeaderSum(src, dst netip.Addr, proto uint8, l4Len int) uint32 {
	var acc uint32
	s, d := src.AsSlice(), dst.AsSlice()
	acc = sum(s, acc)
	acc = sum(d, acc)
	acc += uint32(proto)
	acc += uint32(l4Len)
	return acc
}

// sum adds b to acc as big-endian 16-bit words (odd length padded with zero).
func sum(b []byte, acc uint32) uint32 {
	n := len(b) &^ 1
	for i := 0; i < n; i += 2 {
		acc += uint32(b[i])<<8 | uint32(b[i+1])
		if acc > 0xffff0000 {
			acc = acc&0xffff + acc>>16
		}
	}
	if len(b)&1 == 1 {
		acc += uint32(b[len(b)-1]) << 8
	}
	return acc
}

// fold reduces a 32-bit ones'-complement accumulator to 16 bits.
func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}
