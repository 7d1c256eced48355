// Package pcapng writes packet captures in the pcapng format (draft-ietf-opsawg-pcapng): one
// section, one Interface Description Block per (ifindex, direction) seen, and an Enhanced Packet
// Block per packet with nanosecond timestamps, captured and original lengths and its direction.
// Pure Go, standard library only.
package pcapng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Block types and option codes used here (draft-ietf-opsawg-pcapng, sections 4 and 3.5).
const (
	blockSHB = 0x0A0D0D0A // Section Header Block
	blockIDB = 0x00000001 // Interface Description Block
	blockEPB = 0x00000006 // Enhanced Packet Block

	byteOrderMagic = 0x1A2B3C4D

	optEndOfOpt    = 0
	optSHBUserAppl = 4
	optIfName      = 2
	optIfDesc      = 3
	optIfTsresol   = 9
	optEPBFlags    = 2

	// LinkTypeEthernet is LINKTYPE_ETHERNET: frames start with the Ethernet header.
	LinkTypeEthernet = 1

	// DefaultSnapLen is the snap length when Options.SnapLen is 0 (libpcap's maximum).
	DefaultSnapLen = 262144

	tsresolNanoseconds = 9 // if_tsresol: 10^-9 s per timestamp unit

	epbFixedLen = 32 // type, length, interface id, ts high, ts low, captured len, original len, trailing length
)

// Direction is where a packet went relative to the interface, as epb_flags records it.
type Direction uint8

const (
	// DirectionUnknown writes no epb_flags option.
	DirectionUnknown Direction = 0
	// Inbound is a packet received on the interface (TC ingress).
	Inbound Direction = 1
	// Outbound is a packet sent out of the interface (TC egress).
	Outbound Direction = 2
)

// String is the direction as the project names it elsewhere: ingress, egress or "".
func (d Direction) String() string {
	switch d {
	case Inbound:
		return "ingress"
	case Outbound:
		return "egress"
	case DirectionUnknown:
		return ""
	}
	return "direction(" + strconv.Itoa(int(d)) + ")"
}

// ParseDirection accepts ingress/inbound, egress/outbound, or "" for unknown.
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "ingress", "inbound":
		return Inbound, nil
	case "egress", "outbound":
		return Outbound, nil
	case "":
		return DirectionUnknown, nil
	}
	return 0, fmt.Errorf("direction: must be ingress or egress, not %q", s)
}

// Packet is one captured packet.
type Packet struct {
	Time      time.Time
	Ifindex   int
	Direction Direction
	// WireLen is the frame's length on the wire; 0 means len(Data). A WireLen shorter than the
	// captured length is raised to it, since pcapng requires original >= captured.
	WireLen uint32
	// Data is the frame from its Ethernet header on, at most the snap length (longer data is
	// cut to it). The writer does not keep it.
	Data []byte
}

// Options shape the file.
type Options struct {
	// SnapLen is the most bytes kept of each packet, recorded in every interface block.
	// 0 means DefaultSnapLen.
	SnapLen uint32
	// Application goes into the section header's shb_userappl option when not empty.
	Application string
	// InterfaceName names an interface for its if_name option; nil, or "" returned, gives
	// "if<ifindex>".
	InterfaceName func(ifindex int) string
}

type ifaceKey struct {
	ifindex int
	dir     Direction
}

// Writer writes one pcapng section to an io.Writer. Every block goes out in a single Write call,
// so the output is a valid capture after every WritePacket (given the io.Writer keeps what it was
// given). Not safe for concurrent use.
type Writer struct {
	w       io.Writer
	opts    Options
	ifaces  map[ifaceKey]uint32
	written int64
	buf     []byte
}

// NewWriter writes the Section Header Block and returns a Writer for the packets.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	if opts.SnapLen == 0 {
		opts.SnapLen = DefaultSnapLen
	}
	pw := &Writer{w: w, opts: opts, ifaces: map[ifaceKey]uint32{}}
	b := pw.begin(blockSHB)
	b = le32(b, byteOrderMagic)
	b = le16(b, 1) // major version
	b = le16(b, 0) // minor version
	b = le64(b, ^uint64(0))
	if opts.Application != "" {
		b = option(b, optSHBUserAppl, []byte(cut(opts.Application)))
		b = option(b, optEndOfOpt, nil)
	}
	if err := pw.end(b); err != nil {
		return nil, fmt.Errorf("pcapng: section header: %w", err)
	}
	return pw, nil
}

// Written is the number of bytes written so far, the section header included.
func (w *Writer) Written() int64 { return w.written }

// SnapLen is the snap length in force.
func (w *Writer) SnapLen() uint32 { return w.opts.SnapLen }

// Interfaces is the number of interface blocks written so far.
func (w *Writer) Interfaces() int { return len(w.ifaces) }

// SizeOf is how many bytes WritePacket(p) would write, including the interface block that a
// packet of a new (ifindex, direction) brings.
func (w *Writer) SizeOf(p Packet) int64 {
	n := int64(epbLen(w.capLen(p), p.Direction))
	if _, ok := w.ifaces[ifaceKey{p.Ifindex, p.Direction}]; !ok {
		n += int64(w.idbLen(p.Ifindex, p.Direction))
	}
	return n
}

// CapturedLen is how many bytes of p the file keeps: len(p.Data) cut to the snap length.
func (w *Writer) CapturedLen(p Packet) uint32 { return w.capLen(p) }

// WritePacket writes p as an Enhanced Packet Block, preceded by an Interface Description Block
// the first time p's (ifindex, direction) is seen.
func (w *Writer) WritePacket(p Packet) error {
	if p.Ifindex < 0 || int64(p.Ifindex) > int64(^uint32(0)) {
		return fmt.Errorf("pcapng: ifindex %d out of range", p.Ifindex)
	}
	if p.Direction > Outbound {
		return fmt.Errorf("pcapng: %v is not a direction", p.Direction)
	}
	id, err := w.iface(p.Ifindex, p.Direction)
	if err != nil {
		return err
	}
	capLen := w.capLen(p)
	orig := p.WireLen
	if orig == 0 {
		orig = uint32(min(uint64(len(p.Data)), uint64(^uint32(0))))
	}
	orig = max(orig, capLen)
	var ts uint64
	if ns := p.Time.UnixNano(); !p.Time.IsZero() && ns > 0 {
		ts = uint64(ns)
	}
	b := w.begin(blockEPB)
	b = le32(b, id)
	b = le32(b, uint32(ts>>32))
	b = le32(b, uint32(ts))
	b = le32(b, capLen)
	b = le32(b, orig)
	b = append(b, p.Data[:capLen]...)
	b = pad(b)
	if p.Direction != DirectionUnknown {
		var flags [4]byte
		binary.LittleEndian.PutUint32(flags[:], uint32(p.Direction)) // bits 0-1: 01 inbound, 10 outbound
		b = option(b, optEPBFlags, flags[:])
		b = option(b, optEndOfOpt, nil)
	}
	if err := w.end(b); err != nil {
		return fmt.Errorf("pcapng: packet: %w", err)
	}
	return nil
}

func (w *Writer) capLen(p Packet) uint32 {
	return uint32(min(uint64(len(p.Data)), uint64(w.opts.SnapLen)))
}

// iface returns the interface id of (ifindex, dir), writing its block when it is new.
func (w *Writer) iface(ifindex int, dir Direction) (uint32, error) {
	k := ifaceKey{ifindex, dir}
	if id, ok := w.ifaces[k]; ok {
		return id, nil
	}
	id := uint32(len(w.ifaces))
	name, desc := w.names(ifindex, dir)
	b := w.begin(blockIDB)
	b = le16(b, LinkTypeEthernet)
	b = le16(b, 0) // reserved
	b = le32(b, w.opts.SnapLen)
	b = option(b, optIfName, []byte(name))
	if desc != "" {
		b = option(b, optIfDesc, []byte(desc))
	}
	b = option(b, optIfTsresol, []byte{tsresolNanoseconds})
	b = option(b, optEndOfOpt, nil)
	if err := w.end(b); err != nil {
		return 0, fmt.Errorf("pcapng: interface %s: %w", name, err)
	}
	w.ifaces[k] = id
	return id, nil
}

// names are an interface's if_name and if_description: the netdev name, and the name with the
// direction, since one netdev gets one interface block per direction.
func (w *Writer) names(ifindex int, dir Direction) (name, desc string) {
	if w.opts.InterfaceName != nil {
		name = w.opts.InterfaceName(ifindex)
	}
	if name == "" {
		name = "if" + strconv.Itoa(ifindex)
	}
	name = cut(name)
	if dir != DirectionUnknown {
		desc = name + " " + dir.String()
	}
	return name, desc
}

// maxStringOpt bounds string options (an option's length field is 16 bits).
const maxStringOpt = 255

func cut(s string) string {
	if len(s) > maxStringOpt {
		return s[:maxStringOpt]
	}
	return s
}

func (w *Writer) idbLen(ifindex int, dir Direction) int {
	name, desc := w.names(ifindex, dir)
	n := 8 + 8 + optLen(len(name)) + optLen(1) + 4 + 4
	if desc != "" {
		n += optLen(len(desc))
	}
	return n
}

func epbLen(capLen uint32, dir Direction) int {
	n := epbFixedLen + padded(int(capLen))
	if dir != DirectionUnknown {
		n += optLen(4) + 4
	}
	return n
}

// begin starts a block in the scratch buffer: type and a length placeholder.
func (w *Writer) begin(blockType uint32) []byte {
	b := w.buf[:0]
	b = le32(b, blockType)
	return le32(b, 0)
}

// end fills in both length fields and writes the block.
func (w *Writer) end(b []byte) error {
	total := len(b) + 4
	if total > int(^uint32(0)>>1) {
		return errors.New("block too large")
	}
	b = le32(b, uint32(total))
	binary.LittleEndian.PutUint32(b[4:], uint32(total))
	w.buf = b
	n, err := w.w.Write(b)
	w.written += int64(n)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

func option(b []byte, code uint16, value []byte) []byte {
	b = le16(b, code)
	b = le16(b, uint16(len(value)))
	b = append(b, value...)
	return pad(b)
}

func optLen(valueLen int) int { return 4 + padded(valueLen) }

func padded(n int) int { return (n + 3) &^ 3 }

func pad(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func le16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }
func le32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }
func le64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }
