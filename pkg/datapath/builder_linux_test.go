//go:build linux

package datapath

import (
	"encoding/binary"
	"net/netip"
)

// fb builds one test frame: Ethernet, tags, IPv4 or IPv6 (with options or extension
// headers), a transport header and payload. Zero values give a minimal valid frame; the
// fields named "bad*" and "trunc" make it lie or end early.
type fb struct {
	tags      [][2]uint16 // (TPID, VID), outermost first
	etype     uint16      // 0: from src (IPv4 or IPv6)
	src, dst  netip.Addr
	dscp      uint8
	proto     uint8
	ipOpts    int    // IPv4 option bytes (NOPs), a multiple of 4
	ext       []byte // IPv6 extension header types, in order (0, 43, 60, 44, 51)
	fragOff   uint16 // fragment offset in 8-byte units (IPv4 or IPv6 fragment header)
	more      bool   // more fragments
	sport     uint16
	dport     uint16
	seq, ack  uint32
	flags     uint8 // TCP flags
	doff      int   // TCP header bytes (0: 20)
	claimDoff int   // TCP data offset to claim instead (bytes)
	payload   int
	udpLen    int // 0: right

	badVersion  bool
	badIHL      bool // IHL 4
	badTotLen   int  // IPv4 total length / IPv6 payload length added to the right one
	badChecksum bool // IPv4 header checksum off by one
	trunc       int  // cut this many bytes off the end
	pad         int  // Ethernet padding after the packet
}

var (
	a4  = netip.MustParseAddr("192.0.2.1")
	b4  = netip.MustParseAddr("198.51.100.2")
	a6  = netip.MustParseAddr("2001:db8::1")
	b6  = netip.MustParseAddr("2001:db8:1::2")
	tcp = uint8(6)
	udp = uint8(17)
)

func be16(b []byte, v uint16) { binary.BigEndian.PutUint16(b, v) }
func be32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }

func (f fb) build() []byte {
	if !f.src.IsValid() {
		f.src, f.dst = a4, b4
	}
	var l4 []byte
	switch f.proto {
	case 6:
		hl := f.doff
		if hl == 0 {
			hl = 20
		}
		l4 = make([]byte, max(hl, 20)+f.payload)
		be16(l4[0:], f.sport)
		be16(l4[2:], f.dport)
		be32(l4[4:], f.seq)
		be32(l4[8:], f.ack)
		l4[12] = byte(hl/4) << 4
		if f.claimDoff != 0 {
			l4[12] = byte(f.claimDoff/4) << 4
		}
		l4[13] = f.flags
		be16(l4[14:], 65535)
	case 17:
		l4 = make([]byte, 8+f.payload)
		be16(l4[0:], f.sport)
		be16(l4[2:], f.dport)
		n := len(l4)
		if f.udpLen != 0 {
			n = f.udpLen
		}
		be16(l4[4:], uint16(n))
	case 132:
		l4 = make([]byte, 12+f.payload)
		be16(l4[0:], f.sport)
		be16(l4[2:], f.dport)
	default:
		l4 = make([]byte, 8+f.payload)
		l4[0] = 8
	}
	for i := range f.payload {
		l4[len(l4)-f.payload+i] = byte(i)
	}

	var l3 []byte
	if f.src.Is4() {
		hl := 20 + f.ipOpts
		l3 = make([]byte, hl)
		l3[0] = 0x40 | byte(hl/4)
		if f.badVersion {
			l3[0] = 0x60 | byte(hl/4)
		}
		if f.badIHL {
			l3[0] = 0x44
		}
		l3[1] = f.dscp << 2
		be16(l3[2:], uint16(hl+len(l4)+f.badTotLen))
		fo := f.fragOff
		if f.more {
			fo |= 0x2000
		}
		be16(l3[6:], fo)
		l3[8] = 64
		l3[9] = f.proto
		s, d := f.src.As4(), f.dst.As4()
		copy(l3[12:], s[:])
		copy(l3[16:], d[:])
		for i := 20; i < hl; i++ {
			l3[i] = 1 // NOP
		}
		ck := ipChecksum(l3)
		if f.badChecksum {
			ck++
		}
		be16(l3[10:], ck)
	} else {
		var ext []byte
		next := f.proto
		for i := len(f.ext) - 1; i >= 0; i-- {
			var h []byte
			switch f.ext[i] {
			case 44:
				h = make([]byte, 8)
				fo := f.fragOff << 3
				if f.more {
					fo |= 1
				}
				be16(h[2:], fo)
			case 51:
				h = make([]byte, 16) // payload length 2: (2+2)*4
				h[1] = 2
			default:
				h = make([]byte, 16) // length 1: 16 bytes, PadN
				h[1] = 1
				h[2], h[3] = 1, 12
			}
			h[0] = next
			next = f.ext[i]
			ext = append(h, ext...)
		}
		l3 = make([]byte, 40, 40+len(ext))
		v := uint32(6)
		if f.badVersion {
			v = 4
		}
		be32(l3[0:], v<<28|uint32(f.dscp)<<22|0x12345)
		be16(l3[4:], uint16(len(ext)+len(l4)+f.badTotLen))
		l3[6] = next
		l3[7] = 64
		s, d := f.src.As16(), f.dst.As16()
		copy(l3[8:], s[:])
		copy(l3[24:], d[:])
		l3 = append(l3, ext...)
	}

	b := make([]byte, 0, 64+len(l3)+len(l4))
	b = append(b, macB...)
	b = append(b, macA...)
	for _, tag := range f.tags {
		b = binary.BigEndian.AppendUint16(b, tag[0])
		b = binary.BigEndian.AppendUint16(b, tag[1])
	}
	et := f.etype
	if et == 0 {
		et = 0x0800
		if f.src.Is6() {
			et = 0x86dd
		}
	}
	b = binary.BigEndian.AppendUint16(b, et)
	b = append(b, l3...)
	b = append(b, l4...)
	b = append(b, make([]byte, f.pad)...)
	return b[:len(b)-f.trunc]
}
