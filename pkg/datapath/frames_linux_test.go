//go:build linux

package datapath

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// Hand-made test frames (no FCS) and a pcap file of them, judged by tshark.

var (
	macA = []byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01}
	macB = []byte{0x02, 0x00, 0x5e, 0x00, 0x00, 0x02}
)

const (
	etherIPv4  = 0x0800
	etherARP   = 0x0806
	ether8021Q = 0x8100
	ether8021A = 0x88a8
)

// udp4Frame is an Ethernet/[tags]/IPv4/UDP frame of exactly size bytes. tags are (TPID, VID)
// pairs, outermost first.
func udp4Frame(size int, tags ...[2]uint16) []byte {
	var b bytes.Buffer
	b.Write(macB)
	b.Write(macA)
	for _, tag := range tags {
		binary.Write(&b, binary.BigEndian, tag[0])
		binary.Write(&b, binary.BigEndian, tag[1]&0x0fff)
	}
	binary.Write(&b, binary.BigEndian, uint16(etherIPv4))
	ipLen := size - b.Len()
	ip := make([]byte, ipLen)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	copy(ip[12:], []byte{192, 0, 2, 1})
	copy(ip[16:], []byte{198, 51, 100, 2})
	binary.BigEndian.PutUint16(ip[10:], ipChecksum(ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 4739)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	for i := 8; i < len(udp); i++ {
		udp[i] = byte(i)
	}
	b.Write(ip)
	return b.Bytes()
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// arpFrame is a 42-byte (unpadded) ARP request.
func arpFrame() []byte {
	var b bytes.Buffer
	b.Write([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	b.Write(macA)
	binary.Write(&b, binary.BigEndian, uint16(etherARP))
	binary.Write(&b, binary.BigEndian, []uint16{1, etherIPv4})
	b.Write([]byte{6, 4, 0, 1})
	b.Write(macA)
	b.Write([]byte{192, 0, 2, 1})
	b.Write(make([]byte, 6))
	b.Write([]byte{192, 0, 2, 2})
	return b.Bytes()
}

// testFrames mixes sizes from the 42-byte ARP to full-size frames, 802.1Q-tagged frames (the
// receiving kernel moves the tag into metadata) and one 802.1ad+802.1Q (QinQ) frame.
func testFrames() [][]byte {
	q := func(vid uint16) [2]uint16 { return [2]uint16{ether8021Q, vid} }
	return [][]byte{
		arpFrame(),
		udp4Frame(60),
		udp4Frame(64),
		udp4Frame(99),
		udp4Frame(512),
		udp4Frame(1514),
		udp4Frame(64, q(100)),
		udp4Frame(333, q(100)),
		udp4Frame(1518, q(4094)),
		udp4Frame(68, [2]uint16{ether8021A, 200}, q(100)),
		udp4Frame(60),
		udp4Frame(1000, q(7)),
	}
}

// writePcap writes frames as a classic pcap (LINKTYPE_ETHERNET).
func writePcap(path string, frames [][]byte) error {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, struct {
		Magic        uint32
		Major, Minor uint16
		Zone, Sig    int32
		SnapLen      uint32
		LinkType     uint32
	}{0xa1b2c3d4, 2, 4, 0, 0, 65535, 1})
	for i, f := range frames {
		binary.Write(&b, binary.LittleEndian, [4]uint32{1700000000, uint32(i), uint32(len(f)), uint32(len(f))})
		b.Write(f)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// testPcap is the pcap every attach test replays, with its totals as tshark counts them.
type testPcap struct {
	path           string
	packets, bytes uint64
}

var (
	pcapOnce sync.Once
	pcapVal  testPcap
	pcapErr  string
)

func pcapFile(t *testing.T) testPcap {
	t.Helper()
	tshark := testenv.RequireTool(t, "tshark")
	pcapOnce.Do(func() {
		path := filepath.Join(testTmp, "frames.pcap")
		if err := writePcap(path, testFrames()); err != nil {
			pcapErr = err.Error()
			return
		}
		out, err := exec.Command(tshark, "-r", path, "-T", "fields", "-e", "frame.len").Output()
		if err != nil {
			pcapErr = "tshark: " + err.Error()
			return
		}
		v := testPcap{path: path}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			n, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 64)
			if err != nil {
				pcapErr = "tshark output: " + err.Error()
				return
			}
			v.packets++
			v.bytes += n
		}
		pcapVal = v
	})
	if pcapErr != "" {
		t.Fatal(pcapErr)
	}
	if n := uint64(len(testFrames())); pcapVal.packets != n {
		t.Fatalf("tshark sees %d frames in %s, want %d", pcapVal.packets, pcapVal.path, n)
	}
	return pcapVal
}
