package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// requireTool returns the path of an external judge, skipping when it is absent but failing
// under CI=true. (It mirrors testenv.RequireTool, which Go's internal-package rule keeps out
// of reach of scripts/.)
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: this test must run, but it needs %s in PATH: %v", name, err)
		}
		t.Skipf("needs %s in PATH: %v", name, err)
	}
	return p
}

// summary is what trafgen reports on its last stdout line.
type summary struct{ frames, bytes int }

var summaryRE = regexp.MustCompile(`(?m)^frames=(\d+) bytes=(\d+)$`)

// runTrafgen runs the program in-process and parses its summary.
func runTrafgen(t *testing.T, args ...string) summary {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("trafgen %v: %v (stderr %q)", args, err, errb.String())
	}
	m := summaryRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("trafgen %v: no summary line in %q", args, out.String())
	}
	f, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	return summary{f, b}
}

// tsharkFields runs tshark on a pcap and returns one []string of the fields per frame.
func tsharkFields(t *testing.T, pcap string, fields ...string) [][]string {
	t.Helper()
	tshark := requireTool(t, "tshark")
	args := []string{"-r", pcap, "-n",
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
		"-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	cmd := exec.Command(tshark, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark: %v: %s", err, stderr.String())
	}
	var rows [][]string
	for line := range strings.Lines(string(out)) {
		rows = append(rows, strings.Split(strings.TrimSuffix(line, "\n"), "\t"))
	}
	return rows
}

// capinfos returns the packet count and data size capinfos reads from a pcap.
func capinfos(t *testing.T, pcap string) summary {
	t.Helper()
	ci := requireTool(t, "capinfos")
	out, err := exec.Command(ci, "-M", "-c", "-d", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("capinfos: %v: %s", err, out)
	}
	var s summary
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		num := strings.Fields(v)
		if len(num) == 0 {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Number of packets":
			s.frames, _ = strconv.Atoi(num[0])
		case "Data size":
			s.bytes, _ = strconv.Atoi(num[0])
		}
	}
	return s
}

// TestPcapJudgedByTshark writes each mix to a pcap and lets tshark and capinfos judge it:
// same frame count and byte sum as the summary, every checksum good, nothing malformed, and
// the mix's promised content (VLANs, IPv6, DSCP, runts) really there.
func TestPcapJudgedByTshark(t *testing.T) {
	for _, mix := range []string{"basic", "flows", "vlan", "ipv6", "all"} {
		t.Run(mix, func(t *testing.T) {
			pcap := filepath.Join(t.TempDir(), mix+".pcap")
			got := runTrafgen(t, "-o", pcap, "-mix", mix, "-n", "600", "-seed", "7")
			if got.frames != 600 {
				t.Fatalf("summary frames = %d, want 600", got.frames)
			}
			if ci := capinfos(t, pcap); ci != got {
				t.Errorf("capinfos %+v, trafgen summary %+v", ci, got)
			}

			rows := tsharkFields(t, pcap, "frame.len", "vlan.id", "ip.dsfield.dscp", "ipv6.tclass.dscp",
				"ip.proto", "ipv6.nxt", "ip.checksum.status", "tcp.checksum.status",
				"udp.checksum.status", "icmp.checksum.status", "icmpv6.checksum.status", "_ws.malformed",
				"eth.dst")
			if len(rows) != got.frames {
				t.Fatalf("tshark read %d frames, trafgen said %d", len(rows), got.frames)
			}
			var (
				sum, runts, tagged, v4, v6 int
				vlans, dscps, protos       = map[string]bool{}, map[string]bool{}, map[string]bool{}
			)
			for i, r := range rows {
				n, _ := strconv.Atoi(r[0])
				sum += n
				if n < 60 {
					runts++
				}
				if r[1] != "" {
					tagged++
					vlans[r[1]] = true
				}
				switch {
				case r[4] != "":
					v4++
					dscps[r[2]] = true
					protos[r[4]] = true
				case r[5] != "":
					v6++
					dscps[r[3]] = true
					protos[r[5]] = true
				default:
					t.Errorf("frame %d: neither IPv4 nor IPv6", i+1)
				}
				for j, st := range r[6:11] {
					if st != "" && st != "1" { // 1 = Good
						t.Errorf("frame %d: checksum status field %d = %q, want 1 (good)", i+1, j, st)
					}
				}
				if r[11] != "" {
					t.Errorf("frame %d: tshark says malformed", i+1)
				}
				if r[12] != "02:00:00:00:fe:01" {
					t.Errorf("frame %d: eth.dst %s, want locally administered unicast 02:00:00:00:fe:01", i+1, r[12])
				}
			}
			if sum != got.bytes {
				t.Errorf("tshark frame.len sum %d, trafgen said bytes=%d", sum, got.bytes)
			}
			if len(dscps) < 3 {
				t.Errorf("only DSCPs %v, want several", dscps)
			}
			if runts == 0 && v4 > 0 { // header-only IPv4 UDP/ICMP frames are 42 bytes; IPv6 ones 62
				t.Errorf("no frame shorter than 60 bytes with -size mixed")
			}
			switch mix {
			case "basic":
				if v6 != 0 || tagged != 0 || len(protos) != 3 {
					t.Errorf("basic: v6=%d tagged=%d protos=%v; want IPv4 TCP/UDP/ICMP untagged", v6, tagged, protos)
				}
			case "ipv6":
				if v4 != 0 || tagged != 0 || len(protos) != 3 {
					t.Errorf("ipv6: v4=%d tagged=%d protos=%v; want IPv6 TCP/UDP/ICMPv6 untagged", v4, tagged, protos)
				}
			case "vlan":
				if tagged != got.frames || len(vlans) < 2 {
					t.Errorf("vlan: %d of %d frames tagged, VLANs %v", tagged, got.frames, vlans)
				}
			case "all":
				if tagged == 0 || tagged == got.frames || v4 == 0 || v6 == 0 || len(protos) != 4 { // ICMP, ICMPv6, TCP, UDP
					t.Errorf("all: tagged=%d v4=%d v6=%d protos=%v", tagged, v4, v6, protos)
				}
			}
		})
	}
}

// TestDeterministic checks the same flags give byte-identical pcaps and a new seed does not.
func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, args ...string) []byte {
		p := filepath.Join(dir, name)
		runTrafgen(t, append([]string{"-o", p}, args...)...)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := write("a.pcap", "-n", "300", "-seed", "3")
	b := write("b.pcap", "-n", "300", "-seed", "3")
	c := write("c.pcap", "-n", "300", "-seed", "4")
	if !bytes.Equal(a, b) {
		t.Errorf("same seed gave different pcaps")
	}
	if bytes.Equal(a, c) {
		t.Errorf("different seeds gave identical pcaps")
	}
}

// TestChecksums recomputes every IPv4 header and L4 checksum in Go, so the frames are
// proven right even where tshark is missing.
func TestChecksums(t *testing.T) {
	for _, size := range []string{"mixed", "min", "61", "1-9118"} {
		all, err := frames("all", 400, 20, 9, mustSize(t, size))
		if err != nil {
			t.Fatal(err)
		}
		for i, fr := range all {
			if err := verifyFrame(fr); err != nil {
				t.Fatalf("-size %s frame %d (%d bytes): %v", size, i, len(fr), err)
			}
		}
	}
}

func verifyFrame(b []byte) error {
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	if et == etherTypeVLAN {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	l3 := off + 2
	var (
		l4     int
		proto  uint8
		pseudo uint32
	)
	switch et {
	case etherTypeIPv4:
		h := b[l3 : l3+ipv4HeaderLen]
		if fold(sum(h, 0)) != 0xffff {
			return fmt.Errorf("bad IPv4 header checksum")
		}
		if tl := int(binary.BigEndian.Uint16(h[2:])); tl != len(b)-l3 {
			return fmt.Errorf("IPv4 total length %d, frame carries %d", tl, len(b)-l3)
		}
		l4, proto = l3+ipv4HeaderLen, h[9]
		if proto != protoICMP {
			pseudo = sum(h[12:20], uint32(proto)+uint32(len(b)-l4))
		}
	case etherTypeIPv6:
		h := b[l3 : l3+ipv6HeaderLen]
		if pl := int(binary.BigEndian.Uint16(h[4:])); pl != len(b)-l3-ipv6HeaderLen {
			return fmt.Errorf("IPv6 payload length %d, frame carries %d", pl, len(b)-l3-ipv6HeaderLen)
		}
		l4, proto = l3+ipv6HeaderLen, h[6]
		pseudo = sum(h[8:40], uint32(proto)+uint32(len(b)-l4))
	default:
		return fmt.Errorf("ethertype %#x", et)
	}
	if fold(sum(b[l4:], pseudo)) != 0xffff {
		return fmt.Errorf("bad L4 checksum (proto %d)", proto)
	}
	return nil
}

func mustSize(t *testing.T, s string) sizeDist {
	t.Helper()
	d, err := parseSize(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSizes checks fixed and ranged sizes are honoured (raised to the header length only).
func TestSizes(t *testing.T) {
	all, err := frames("all", 200, 9, 1, mustSize(t, "128"))
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range all {
		if len(fr) != 128 {
			t.Fatalf("frame %d is %d bytes, want 128", i, len(fr))
		}
	}
	all, err = frames("basic", 500, 3, 1, mustSize(t, "100-200"))
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range all {
		if len(fr) < 100 || len(fr) > 200 {
			t.Fatalf("frame %d is %d bytes, want 100-200", i, len(fr))
		}
	}
	all, err = frames("all", 90, 9, 1, mustSize(t, "min"))
	if err != nil {
		t.Fatal(err)
	}
	lens := map[int]bool{}
	for _, fr := range all {
		lens[len(fr)] = true
	}
	// Header-only frames: IPv4 ICMP/UDP 42, IPv4 TCP 54, IPv6 ICMPv6/UDP 62, IPv6 TCP 74, VLAN +4.
	want := []int{42, 46, 54, 58, 62, 66, 74}
	got := slices.Sorted(func(yield func(int) bool) {
		for l := range lens {
			if !yield(l) {
				return
			}
		}
	})
	if !slices.Equal(got, want) {
		t.Errorf("header-only lengths %v, want %v", got, want)
	}
}

// TestFlowsSchedule checks the "flows" mix gives flows strictly ranked shares and the others
// equal shares, always n frames in total.
func TestFlowsSchedule(t *testing.T) {
	count := func(mix string, n, k int) []int {
		c := make([]int, k)
		for _, i := range schedule(mix, n, k, 5) {
			c[i]++
		}
		return c
	}
	c := count("flows", 1000, 8)
	total := 0
	for i, v := range c {
		total += v
		if i > 0 && v >= c[i-1] {
			t.Errorf("flows mix: flow %d has %d frames, flow %d has %d; want strictly fewer", i, v, i-1, c[i-1])
		}
	}
	if total != 1000 {
		t.Errorf("flows mix: %d frames, want 1000", total)
	}
	c = count("basic", 1000, 6)
	for i, v := range c {
		if v < 166 || v > 167 {
			t.Errorf("basic mix: flow %d has %d frames, want 166-167", i, v)
		}
	}
	if len(schedule("flows", 3, 8, 1)) != 3 {
		t.Errorf("flows mix with fewer frames than flows")
	}
}

// TestFlagErrors checks bad flags fail and the message names the flag.
func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(dir, "x.pcap")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "nothing to do"},
		{[]string{"-o", pcap, "-mix", "nope"}, "-mix"},
		{[]string{"-o", pcap, "-flows", "0"}, "-flows"},
		{[]string{"-o", pcap, "-n", "-1"}, "-n"},
		{[]string{"-o", pcap, "-size", "big"}, "-size"},
		{[]string{"-o", pcap, "-size", "200-100"}, "-size"},
		{[]string{"-o", pcap, "-size", "99999"}, "-size"},
		{[]string{"-o", pcap, "-pps", "-3"}, "-pps"},
		{[]string{"-send", "no-such-if0"}, "-send"},
		{[]string{"-o", filepath.Join(dir, "missing", "x.pcap")}, "-o"},
		{[]string{"-o", pcap, "extra"}, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("trafgen %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestRetransMix: tshark finds the retrans mix's retransmissions (one frame in eight) and
// keep-alives, and nothing it calls out-of-order, spurious or malformed; every frame is TCP
// with good checksums.
func TestRetransMix(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "retrans.pcap")
	got := runTrafgen(t, "-o", pcap, "-mix", "retrans", "-n", "1600", "-seed", "3")
	rows := tsharkFields(t, pcap, "tcp.analysis.retransmission", "tcp.analysis.keep_alive",
		"tcp.analysis.out_of_order", "tcp.analysis.spurious_retransmission", "_ws.malformed",
		"tcp.checksum.status", "ip.checksum.status", "vlan.id", "ipv6.src")
	if len(rows) != got.frames || got.frames != 1600 {
		t.Fatalf("tshark read %d frames, trafgen said %d", len(rows), got.frames)
	}
	var retrans, keepalive, tagged, v6 int
	for i, r := range rows {
		if r[0] != "" {
			retrans++
		}
		if r[1] != "" {
			keepalive++
		}
		if r[2] != "" || r[3] != "" || r[4] != "" {
			t.Errorf("frame %d: out-of-order %q spurious %q malformed %q", i+1, r[2], r[3], r[4])
		}
		if r[5] != "1" || (r[6] != "" && r[6] != "1") {
			t.Errorf("frame %d: checksum status tcp %q ip %q", i+1, r[5], r[6])
		}
		if r[7] != "" {
			tagged++
		}
		if r[8] != "" {
			v6++
		}
	}
	if retrans < 1600/8-20 || retrans > 1600/8 || keepalive < 1600/8-20 || tagged == 0 || v6 == 0 {
		t.Errorf("retransmissions %d keep-alives %d tagged %d IPv6 %d of 1600", retrans, keepalive, tagged, v6)
	}
}

// TestBadCsumMix: about one IPv4 frame in eight has a bad header checksum, tshark agrees, and
// nothing else is wrong with any frame.
func TestBadCsumMix(t *testing.T) {
	pcap := filepath.Join(t.TempDir(), "badcsum.pcap")
	got := runTrafgen(t, "-o", pcap, "-mix", "badcsum", "-n", "2000", "-seed", "4")
	rows := tsharkFields(t, pcap, "ip.checksum.status", "tcp.checksum.status", "udp.checksum.status",
		"icmp.checksum.status", "icmpv6.checksum.status", "_ws.malformed")
	if len(rows) != got.frames {
		t.Fatalf("tshark read %d frames, trafgen said %d", len(rows), got.frames)
	}
	var v4, bad int
	for i, r := range rows {
		switch r[0] {
		case "":
		case "0": // Bad
			v4++
			bad++
		case "1":
			v4++
		default:
			t.Errorf("frame %d: ip.checksum.status %q", i+1, r[0])
		}
		for j, st := range r[1:5] {
			if st != "" && st != "1" {
				t.Errorf("frame %d: checksum status field %d = %q", i+1, j+1, st)
			}
		}
		if r[5] != "" {
			t.Errorf("frame %d: malformed", i+1)
		}
	}
	if share := float64(bad) / float64(v4); share < 0.08 || share > 0.18 {
		t.Errorf("%d of %d IPv4 frames with a bad checksum, want about one in %d", bad, v4, badCsumShare)
	}
}
