package pcapng

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// frame is an Ethernet/IPv4/UDP frame of n bytes (n >= 42) whose payload bytes all equal seq, so
// tshark decodes it and a test can tell frames apart.
func frame(n int, seq byte) []byte {
	f := make([]byte, n)
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], []byte{192, 0, 2, 1})
	copy(ip[16:20], []byte{192, 0, 2, 2})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], 1000)
	binary.BigEndian.PutUint16(udp[2:], 2000)
	binary.BigEndian.PutUint16(udp[4:], uint16(n-34))
	for i := 42; i < n; i++ {
		f[i] = seq
	}
	return f
}

type want struct {
	ifname, desc string
	ifID         int
	wire, caplen int
	dir          string // tshark frame.packet_flags_direction: 0x1 inbound, 0x2 outbound, "" none
	ts           time.Time
}

// sample is a mixed capture: two netdevs, both directions, frames shorter and longer than the
// snap length, a wire length beyond the data (the kernel sampled a prefix), and no direction.
func sample(t *testing.T, path string, snap uint32) []want {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[int]string{7: "Ethernet16", 9: "Ethernet20"}
	w, err := NewWriter(f, Options{SnapLen: snap, Application: "telegen-sonic test",
		InterfaceName: func(i int) string { return names[i] }})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	var wants []want
	ids := map[ifaceKey]int{}
	for i, c := range []struct {
		ifindex int
		dir     Direction
		n       int
		wire    uint32
	}{
		{7, Inbound, 60, 0},
		{7, Outbound, 1514, 0},
		{9, Inbound, 64, 9000},
		{7, Inbound, 61, 0},
		{9, Outbound, 42, 0},
		{7, DirectionUnknown, 100, 0},
		{11, Inbound, 43, 0},
	} {
		p := Packet{Time: base.Add(time.Duration(i) * 1001 * time.Nanosecond), Ifindex: c.ifindex,
			Direction: c.dir, WireLen: c.wire, Data: frame(c.n, byte(i))}
		before := w.Written()
		size := w.SizeOf(p)
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if got := w.Written() - before; got != size {
			t.Errorf("packet %d: SizeOf %d, WritePacket wrote %d", i, size, got)
		}
		k := ifaceKey{c.ifindex, c.dir}
		if _, ok := ids[k]; !ok {
			ids[k] = len(ids)
		}
		wire := int(c.wire)
		if wire == 0 {
			wire = c.n
		}
		name := names[c.ifindex]
		if name == "" {
			name = "if" + strconv.Itoa(c.ifindex)
		}
		desc, dir := "", ""
		if c.dir != DirectionUnknown {
			desc, dir = name+" "+c.dir.String(), fmt.Sprintf("0x%08x", int(c.dir))
		}
		wants = append(wants, want{name, desc, ids[k], wire, min(c.n, int(snap)), dir, p.Time})
	}
	if w.Interfaces() != len(ids) {
		t.Errorf("Interfaces() = %d, want %d", w.Interfaces(), len(ids))
	}
	if st, err := f.Stat(); err != nil || st.Size() != w.Written() {
		t.Errorf("file is %d bytes (%v), Written() says %d", st.Size(), err, w.Written())
	}
	return wants
}

// TestTsharkReads is the judge: tshark and capinfos read back exactly what was written.
func TestTsharkReads(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	testenv.RequireTool(t, "capinfos")
	const snap = 128
	path := filepath.Join(t.TempDir(), "t.pcapng")
	wants := sample(t, path, snap)

	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-E", "separator=/t",
		"-e", "frame.interface_id", "-e", "frame.interface_name", "-e", "frame.interface_description",
		"-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.packet_flags_direction",
		"-e", "frame.time_epoch", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, stderr(err))
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(wants) {
		t.Fatalf("tshark read %d packets, want %d:\n%s", len(lines), len(wants), out)
	}
	for i, line := range lines {
		w := wants[i]
		got := strings.Split(line, "\t")
		exp := []string{strconv.Itoa(w.ifID), w.ifname, w.desc, strconv.Itoa(w.wire), strconv.Itoa(w.caplen),
			w.dir, fmt.Sprintf("%d.%09d", w.ts.Unix(), w.ts.Nanosecond()), "2000"}
		if strings.Join(got, "|") != strings.Join(exp, "|") {
			t.Errorf("packet %d:\n got  %q\n want %q", i, got, exp)
		}
	}

	out, err = exec.Command("capinfos", "-M", "-T", "-r", "-c", "-t", "-E", path).Output()
	if err != nil {
		t.Fatalf("capinfos: %v\n%s", err, stderr(err))
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\t")
	if len(f) != 4 || f[1] != "pcapng" || f[2] != "ether" || f[3] != strconv.Itoa(len(wants)) {
		t.Errorf("capinfos = %q, want [file pcapng ether %d]", f, len(wants))
	}
	out, err = exec.Command("capinfos", "-I", path).Output()
	if err != nil {
		t.Fatalf("capinfos -I: %v\n%s", err, stderr(err))
	}
	for _, s := range []string{"Number of interfaces in file: 6", "Name = Ethernet16", "Name = Ethernet20",
		"Name = if11", "Time precision = nanoseconds (9)"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("capinfos -I lacks %q:\n%s", s, out)
		}
	}
	// The snap length is per interface in pcapng (capinfos says the file-wide one is "not set").
	if n := strings.Count(string(out), "Capture length = 128\n"); n != 6 {
		t.Errorf("capinfos -I: %d interfaces with capture length 128, want 6:\n%s", n, out)
	}
}

// TestEmptyAndDefaults: a file with no packets is still a capture tshark opens; defaults apply.
func TestEmptyAndDefaults(t *testing.T) {
	testenv.RequireTool(t, "capinfos")
	path := filepath.Join(t.TempDir(), "empty.pcapng")
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if w.SnapLen() != DefaultSnapLen || w.Written() != int64(buf.Len()) || buf.Len() != 28 {
		t.Errorf("snap %d, written %d, buffer %d; want %d, 28, 28", w.SnapLen(), w.Written(), buf.Len(), DefaultSnapLen)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("capinfos", "-M", "-T", "-r", "-c", "-t", path).Output()
	if err != nil || strings.TrimSpace(string(out)) != path+"\tpcapng\t0" {
		t.Errorf("capinfos on an empty capture: %v %q", err, out)
	}
}

// TestLayout checks the bytes against the spec without any external tool: block framing,
// lengths at both ends, 32-bit alignment, and the option values.
func TestLayout(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Options{SnapLen: 16, InterfaceName: func(int) string { return "Ethernet0" }})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1, 5)
	if err := w.WritePacket(Packet{Time: ts, Ifindex: 3, Direction: Outbound, WireLen: 99, Data: frame(42, 1)}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	var blocks []uint32
	for off := 0; off < len(b); {
		typ := binary.LittleEndian.Uint32(b[off:])
		n := int(binary.LittleEndian.Uint32(b[off+4:]))
		if n%4 != 0 || off+n > len(b) || binary.LittleEndian.Uint32(b[off+n-4:]) != uint32(n) {
			t.Fatalf("block %#x at %d: bad length %d", typ, off, n)
		}
		body := b[off+8 : off+n-4]
		switch typ {
		case blockSHB:
			if binary.LittleEndian.Uint32(body) != byteOrderMagic || binary.LittleEndian.Uint16(body[4:]) != 1 {
				t.Errorf("SHB body % x", body)
			}
		case blockIDB:
			if binary.LittleEndian.Uint16(body) != LinkTypeEthernet || binary.LittleEndian.Uint32(body[4:]) != 16 {
				t.Errorf("IDB link type/snaplen: % x", body[:8])
			}
			opts := options(t, body[8:])
			if string(opts[optIfName]) != "Ethernet0" || string(opts[optIfDesc]) != "Ethernet0 egress" ||
				!bytes.Equal(opts[optIfTsresol], []byte{9}) {
				t.Errorf("IDB options %v", opts)
			}
		case blockEPB:
			hi, lo := binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint32(body[8:])
			capLen, orig := binary.LittleEndian.Uint32(body[12:]), binary.LittleEndian.Uint32(body[16:])
			if got := uint64(hi)<<32 | uint64(lo); got != uint64(ts.UnixNano()) {
				t.Errorf("EPB timestamp %d, want %d", got, ts.UnixNano())
			}
			if capLen != 16 || orig != 99 {
				t.Errorf("EPB lengths captured %d original %d, want 16 99", capLen, orig)
			}
			opts := options(t, body[20+16:])
			if binary.LittleEndian.Uint32(opts[optEPBFlags]) != 2 {
				t.Errorf("epb_flags % x, want outbound", opts[optEPBFlags])
			}
		default:
			t.Errorf("unexpected block type %#x", typ)
		}
		blocks = append(blocks, typ)
		off += n
	}
	if fmt.Sprint(blocks) != fmt.Sprint([]uint32{blockSHB, blockIDB, blockEPB}) {
		t.Errorf("blocks %x", blocks)
	}
}

// stderr is what a failed command said (tshark also warns on stderr when run as root, so
// stdout alone is parsed).
func stderr(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}

func options(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	m := map[uint16][]byte{}
	for len(b) >= 4 {
		code, n := binary.LittleEndian.Uint16(b), int(binary.LittleEndian.Uint16(b[2:]))
		if code == optEndOfOpt {
			return m
		}
		if 4+padded(n) > len(b) {
			t.Fatalf("option %d overruns its block", code)
		}
		m[code] = b[4 : 4+n]
		b = b[4+padded(n):]
	}
	t.Fatal("options without opt_endofopt")
	return nil
}

type failWriter struct{ after int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestErrors(t *testing.T) {
	if _, err := NewWriter(&failWriter{}, Options{}); err == nil || !strings.Contains(err.Error(), "section header: disk full") {
		t.Errorf("NewWriter on a failing writer: %v", err)
	}
	w, err := NewWriter(&failWriter{after: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(Packet{Ifindex: 1, Data: frame(60, 0)}); err == nil || !strings.Contains(err.Error(), "interface if1") {
		t.Errorf("WritePacket when the interface block fails: %v", err)
	}
	w, _ = NewWriter(&bytes.Buffer{}, Options{})
	if err := w.WritePacket(Packet{Ifindex: -1}); err == nil || !strings.Contains(err.Error(), "ifindex -1") {
		t.Errorf("negative ifindex: %v", err)
	}
	if err := w.WritePacket(Packet{Direction: 3}); err == nil {
		t.Error("direction 3 accepted")
	}
	for s, want := range map[string]Direction{"ingress": Inbound, "inbound": Inbound, "egress": Outbound, "outbound": Outbound, "": DirectionUnknown} {
		if d, err := ParseDirection(s); err != nil || d != want {
			t.Errorf("ParseDirection(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDirection("both"); err == nil || !strings.Contains(err.Error(), `"both"`) {
		t.Errorf("ParseDirection(both): %v", err)
	}
}
