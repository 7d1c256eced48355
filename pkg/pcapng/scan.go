package pcapng

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Contents is what Scan found in a capture file.
type Contents struct {
	// End is the offset just past the last complete block: what is beyond it (a block a
	// writer was killed in the middle of) is not part of the capture.
	End int64
	// Packets and Bytes count the Enhanced Packet Blocks up to End and their captured bytes.
	Packets, Bytes uint64
}

// Scan reads a little-endian pcapng file, as Writer writes it, block by block and reports
// what its complete blocks hold. It is for carrying on a capture another process left: cut
// the file at End, then write a new section after it (NewWriter: a file may hold several
// sections, each with its own interfaces). A file that does not start with a section header
// block is an error.
func Scan(r io.Reader) (Contents, error) {
	var (
		c    Contents
		head [8]byte
		body []byte
	)
	for {
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return c, nil // the end, or a block cut in its header
		}
		typ := binary.LittleEndian.Uint32(head[0:])
		n := binary.LittleEndian.Uint32(head[4:])
		if n < 12 || n%4 != 0 || n > 1<<26 {
			return finish(c, fmt.Errorf("pcapng: block at %d: length %d", c.End, n))
		}
		if cap(body) < int(n-8) {
			body = make([]byte, n-8)
		}
		body = body[:n-8]
		if _, err := io.ReadFull(r, body); err != nil {
			return finish(c, nil) // a block cut short: the capture ends before it
		}
		if binary.LittleEndian.Uint32(body[len(body)-4:]) != n {
			return finish(c, nil) // the trailing length does not match: not a complete block
		}
		switch {
		case c.End == 0 && (typ != blockSHB || len(body) < 8 || binary.LittleEndian.Uint32(body) != byteOrderMagic):
			return c, errors.New("pcapng: not a little-endian pcapng file")
		case typ == blockEPB:
			if len(body) < 24 {
				return finish(c, fmt.Errorf("pcapng: packet block at %d too short", c.End))
			}
			c.Packets++
			c.Bytes += uint64(binary.LittleEndian.Uint32(body[12:]))
		}
		c.End += int64(n)
	}
}

// finish ends a scan: a damaged block ends the capture where the last good one ended, and is
// an error only before any block was read.
func finish(c Contents, err error) (Contents, error) {
	if c.End == 0 && err != nil {
		return c, err
	}
	return c, nil
}
