package pcapng

import (
	"bytes"
	"testing"
)

// TestScan: Scan counts the complete packet blocks and ends the capture before a block cut
// short or damaged; a file that does not open with a little-endian section header is refused.
func TestScan(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{SnapLen: 64})
	if err != nil {
		t.Fatal(err)
	}
	header := int64(buf.Len())
	var ends []int64
	var bytesKept uint64
	for i := range 4 {
		p := Packet{Ifindex: 3, Direction: Inbound, WireLen: uint32(100 + i), Data: make([]byte, 40+i)}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		bytesKept += uint64(40 + i)
		ends = append(ends, int64(buf.Len()))
	}
	full := buf.Bytes()
	for _, c := range []struct {
		name    string
		data    []byte
		packets uint64
		end     int64
	}{
		{"whole", full, 4, ends[3]},
		{"last block cut", full[:ends[3]-5], 3, ends[2]},
		{"last block's length word cut", full[:ends[2]+6], 3, ends[2]},
		{"trailing length wrong", append(append([]byte(nil), full[:ends[3]-4]...), 0, 0, 0, 0), 3, ends[2]},
		{"header only", full[:header], 0, header},
		{"empty", nil, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Scan(bytes.NewReader(c.data))
			if err != nil {
				t.Fatal(err)
			}
			if got.Packets != c.packets || got.End != c.end {
				t.Errorf("Scan = %+v, want %d packets ending at %d", got, c.packets, c.end)
			}
		})
	}
	if got, _ := Scan(bytes.NewReader(full)); got.Bytes != bytesKept {
		t.Errorf("bytes %d, want %d", got.Bytes, bytesKept)
	}
	if _, err := Scan(bytes.NewReader([]byte("GET / HTTP/1.1\r\n\r\n........"))); err == nil {
		t.Error("a file that is not pcapng: no error")
	}
}
