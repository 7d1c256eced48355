package main

import (
	"bufio"
	"encoding/binary"
	"io"
	"time"
)

// pcapWriter writes the classic libpcap format (microsecond timestamps, LINKTYPE_ETHERNET).
type pcapWriter struct {
	w *bufio.Writer
}

const (
	pcapMagic       = 0xa1b2c3d4
	pcapSnapLen     = 262144
	linkTypeEther   = 1
	pcapFileHdrLen  = 24
	pcapFrameHdrLen = 16
)

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	p := &pcapWriter{w: bufio.NewWriter(w)}
	var h [pcapFileHdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], pcapMagic)
	binary.LittleEndian.PutUint16(h[4:], 2) // version 2.4
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], pcapSnapLen)
	binary.LittleEndian.PutUint32(h[20:], linkTypeEther)
	_, err := p.w.Write(h[:])
	return p, err
}

// writeFrame appends one whole frame captured at ts.
func (p *pcapWriter) writeFrame(ts time.Time, frame []byte) error {
	var h [pcapFrameHdrLen]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(ts.Unix()))
	binary.LittleEndian.PutUint32(h[4:], uint32(ts.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(h[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(h[12:], uint32(len(frame)))
	if _, err := p.w.Write(h[:]); err != nil {
		return err
	}
	_, err := p.w.Write(frame)
	return err
}

func (p *pcapWriter) flush() error { return p.w.Flush() }
