package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/pcapng"
)

// testFrame is an Ethernet/IPv4/UDP frame of n bytes with UDP destination port dport.
func testFrame(n int, dport uint16) []byte {
	f := make([]byte, n)
	copy(f[0:12], []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	f[14], f[22], f[23] = 0x45, 64, 17
	binary.BigEndian.PutUint16(f[16:], uint16(n-14))
	copy(f[26:34], []byte{192, 0, 2, 1, 192, 0, 2, 2})
	binary.BigEndian.PutUint16(f[34:], 1000)
	binary.BigEndian.PutUint16(f[36:], dport)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	return f
}

// feed sends n samples (alternating directions, sizes 60..) on an unbuffered channel, the way a
// ring-buffer reader would, then closes it. It returns when every send was taken.
func feed(n int) (<-chan pcapng.Packet, <-chan struct{}) {
	ch := make(chan pcapng.Packet)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		defer close(ch)
		t0 := time.Now()
		for i := range n {
			dir := pcapng.Inbound
			if i%2 == 1 {
				dir = pcapng.Outbound
			}
			size := 60 + i%100
			ch <- pcapng.Packet{Time: t0.Add(time.Duration(i) * time.Microsecond), Ifindex: 5, Direction: dir,
				WireLen: uint32(size), Data: testFrame(size, uint16(i))}
		}
	}()
	return ch, sent
}

// tsharkPorts returns the UDP destination ports of the capture's packets in order, and their
// directions, as tshark reads them.
func tsharkPorts(t *testing.T, path string) (ports []int, dirs []string) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", path, "-T", "fields", "-E", "separator=,",
		"-e", "udp.dstport", "-e", "frame.packet_flags_direction", "-e", "frame.interface_name").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", path, err)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) != 3 || f[2] != "Ethernet16" {
			t.Fatalf("tshark line %q", line)
		}
		p, err := strconv.Atoi(f[0])
		if err != nil {
			t.Fatalf("tshark line %q: %v", line, err)
		}
		ports = append(ports, p)
		dirs = append(dirs, f[1])
	}
	return ports, dirs
}

func ifName(int) string { return "Ethernet16" }

func TestWriteCapture(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	dir := filepath.Join(t.TempDir(), "results")
	path := capturePath(dir, "job-1")
	samples, sent := feed(300)
	st, err := writeCapture(context.Background(), path, samples, captureLimits{SnapLen: 96}, ifName)
	<-sent
	if err != nil {
		t.Fatal(err)
	}
	var bytes uint64
	for i := range 300 {
		bytes += uint64(min(60+i%100, 96))
	}
	if st != (captureStats{File: path, Packets: 300, Bytes: bytes}) {
		t.Errorf("stats %+v, want file %s, 300 packets, %d bytes", st, path, bytes)
	}
	f := st.Fields()
	if f["pcap_file"] != path || f["pcap_packets"] != "300" || f["pcap_bytes"] != strconv.FormatUint(bytes, 10) || f["pcap_dropped"] != "0" {
		t.Errorf("Fields() = %v", f)
	}
	ports, dirs := tsharkPorts(t, path)
	if len(ports) != 300 {
		t.Fatalf("tshark read %d packets, want 300", len(ports))
	}
	for i, p := range ports {
		want := "0x00000001"
		if i%2 == 1 {
			want = "0x00000002"
		}
		if p != i || dirs[i] != want {
			t.Fatalf("packet %d: port %d direction %s, want %d %s", i, p, dirs[i], i, want)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != captureFileMode {
		t.Errorf("capture file: %v, %v", fi, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestWriteCaptureLimits(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	// Sizes run 60, 61, ...; with snap 64 the captured lengths are 60, 61, 62, 63, 64, 64, ...
	for _, c := range []struct {
		name string
		lim  captureLimits
		keep int
	}{
		{"packets", captureLimits{SnapLen: 64, MaxPackets: 7}, 7},
		{"bytes", captureLimits{SnapLen: 64, MaxBytes: 60 + 61 + 62 + 63 + 64 + 10}, 5},
		// Section header 52 B (with shb_userappl), an interface block per direction 72 B; each
		// packet block 32 + padded length + 12 (epb_flags) = 104, 108, 108, 108 ... B.
		{"file size", captureLimits{SnapLen: 64, MaxFileSize: 52 + 72 + 104 + 72 + 108 + 108 + 107}, 3},
		{"file size exact", captureLimits{SnapLen: 64, MaxFileSize: 52 + 72 + 104 + 72 + 108 + 108 + 108}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := capturePath(t.TempDir(), "j")
			samples, sent := feed(40)
			st, err := writeCapture(context.Background(), path, samples, c.lim, ifName)
			<-sent
			if err != nil {
				t.Fatal(err)
			}
			if st.Packets != uint64(c.keep) || st.Dropped != uint64(40-c.keep) {
				t.Errorf("stats %+v, want %d packets and %d dropped", st, c.keep, 40-c.keep)
			}
			ports, _ := tsharkPorts(t, path)
			if len(ports) != c.keep || (c.keep > 0 && ports[c.keep-1] != c.keep-1) {
				t.Errorf("file holds ports %v, want the first %d samples", ports, c.keep)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if c.lim.MaxFileSize > 0 && fi.Size() > c.lim.MaxFileSize {
				t.Errorf("file is %d bytes, cap %d", fi.Size(), c.lim.MaxFileSize)
			}
		})
	}
}

// TestWriteCaptureCancel: when the context ends, no file appears and a previous one stays.
func TestWriteCaptureCancel(t *testing.T) {
	path := capturePath(t.TempDir(), "j")
	if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan pcapng.Packet)
	type res struct {
		st  captureStats
		err error
	}
	done := make(chan res, 1)
	go func() {
		st, err := writeCapture(ctx, path, ch, captureLimits{}, ifName)
		done <- res{st, err}
	}()
	for i := range 5 {
		ch <- pcapng.Packet{Ifindex: 1, Data: testFrame(60, uint16(i))}
	}
	cancel()
	var r res
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("writeCapture did not return after cancel")
	}
	if !errors.Is(r.err, context.Canceled) || r.st.File != "" || r.st.Packets != 0 || r.st.Dropped != 5 {
		t.Errorf("after cancel: %+v, %v; want no file, 5 dropped, context.Canceled", r.st, r.err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "previous" {
		t.Errorf("previous file: %q, %v", b, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestWriteCaptureFailureDrains: a capture that cannot be written still takes every sample,
// so the producer never blocks, and counts them as dropped.
func TestWriteCaptureFailureDrains(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	samples, sent := feed(50)
	st, err := writeCapture(context.Background(), capturePath(filepath.Join(blocker, "dir"), "j"), samples, captureLimits{}, ifName)
	select {
	case <-sent:
	case <-time.After(5 * time.Second):
		t.Fatal("producer blocked")
	}
	if err == nil || !strings.Contains(err.Error(), "j.pcapng") || st.Dropped != 50 || st.File != "" {
		t.Errorf("got %+v, %v; want 50 dropped and an error naming the file", st, err)
	}
}

func TestStartCapture(t *testing.T) {
	path := capturePath(t.TempDir(), "j")
	samples, _ := feed(10)
	c := startCapture(context.Background(), path, samples, captureLimits{}, nil)
	for range 2 {
		st, err := c.Wait()
		if err != nil || st.Packets != 10 || st.File != path {
			t.Errorf("Wait() = %+v, %v", st, err)
		}
	}
}

// TestWriteCaptureResume: an adopted job carries on the file a killed daemon left at
// path.tmp: its complete blocks stay (and count), a block cut short is dropped, the new samples
// follow in a second section. tshark reads all of them, in order.
func TestWriteCaptureResume(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	path := capturePath(t.TempDir(), "j")
	// What the killed daemon left: 300 packets, the last block cut in half.
	first, sent := feed(300)
	st, err := writeCapture(context.Background(), path, first, captureLimits{SnapLen: 96}, ifName)
	<-sent
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Remove(path))
	must(os.WriteFile(path+".tmp", data[:len(data)-50], captureFileMode))
	lastLen := uint64(min(60+299%100, 96))

	// The new daemon's samples: ports 0..9 again, after the 299 packets kept.
	more, sent := feed(10)
	st2, err := writeCapture(context.Background(), path, more, captureLimits{SnapLen: 96, Resume: true}, ifName)
	<-sent
	if err != nil {
		t.Fatal(err)
	}
	var newBytes uint64
	for i := range 10 {
		newBytes += uint64(min(60+i, 96))
	}
	if want := (captureStats{File: path, Packets: 309, Bytes: st.Bytes - lastLen + newBytes}); st2 != want {
		t.Errorf("stats %+v, want %+v", st2, want)
	}
	ports, _ := tsharkPorts(t, path)
	if len(ports) != 309 {
		t.Fatalf("tshark read %d packets, want 309", len(ports))
	}
	for i, p := range ports {
		want := i
		if i >= 299 {
			want = i - 299
		}
		if p != want {
			t.Fatalf("packet %d: port %d, want %d", i, p, want)
		}
	}

	// A file that is not a capture is not kept: the job's file starts afresh.
	must(os.WriteFile(path+".tmp", []byte("not a capture at all"), captureFileMode))
	more, sent = feed(3)
	st3, err := writeCapture(context.Background(), path, more, captureLimits{SnapLen: 96, Resume: true}, ifName)
	<-sent
	if err != nil || st3.Packets != 3 {
		t.Errorf("over garbage: %+v, %v; want 3 packets", st3, err)
	}
	if ports, _ := tsharkPorts(t, path); len(ports) != 3 {
		t.Errorf("over garbage: tshark read %d packets, want 3", len(ports))
	}
}
