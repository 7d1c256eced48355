package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// TestPcaplikeCapture: a result_detail=pcaplike job with every packet sampled keeps a pcapng
// file with its result, and tshark opens it with exactly the packets that crossed the port:
// the same count, the same wire lengths and the same addresses as the replayed pcap, each
// marked inbound on the port's interface.
func TestPcaplikeCapture(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			testenv.RequireTool(t, "capinfos")
			s := newSwitch(t, mode, "Ethernet16")
			pcap := genPcap(t, "all", 300)
			want := tsharkFields(t, pcap, "frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst")
			s.startDaemon()

			id := fmt.Sprintf("cap-%s-%d", mode, os.Getpid())
			s.putJob(id, "port", "Ethernet16", "span_method", "direct", "duration_sec", "3",
				"sample_rate", "1", "result_detail", "pcaplike")
			s.waitStatus(id, "running", 2*time.Second)
			s.replay("Ethernet16", pcap)
			s.waitStatus(id, "done", 5*time.Second)

			res := s.result(id)
			file := res["pcap_file"]
			if file == "" || !filepath.IsAbs(file) {
				t.Fatalf("result pcap_file %q, want an absolute path (result %v)", file, res)
			}
			t.Cleanup(func() { _ = os.Remove(file) })
			if _, err := os.Stat(file + ".tmp"); err == nil {
				t.Errorf("%s.tmp left next to the capture", file)
			}
			if res["pcap_packets"] != strconv.Itoa(len(want)) || res["pcap_dropped"] != "0" {
				t.Errorf("result pcap_packets %q pcap_dropped %q, want %d and 0", res["pcap_packets"], res["pcap_dropped"], len(want))
			}

			got := tsharkFields(t, file, "frame.len", "ip.src", "ip.dst", "ipv6.src", "ipv6.dst")
			if len(got) != len(want) {
				t.Fatalf("tshark reads %d packets in %s, want %d", len(got), file, len(want))
			}
			// The ring buffer may reorder samples of different CPUs: compare as multisets.
			slices.Sort(got)
			slices.Sort(want)
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("capture differs from the replayed pcap (sorted line %d): got %q, want %q", i, got[i], want[i])
					break
				}
			}
			meta := tsharkFields(t, file, "frame.interface_name", "frame.packet_flags_direction")
			for _, m := range meta {
				if m != "Ethernet16\t0x00000001" {
					t.Errorf("packet on interface/direction %q, want Ethernet16 inbound", m)
					break
				}
			}
			out, err := exec.Command("capinfos", "-M", "-T", "-r", "-t", "-c", file).Output()
			if err != nil || strings.TrimSpace(string(out)) != fmt.Sprintf("%s\tpcapng\t%d", file, len(want)) {
				t.Errorf("capinfos: %v %q", err, out)
			}
			s.daemon.stop(t)
		})
	}
}

// tsharkFields prints the given fields of every packet, tab-separated, one line per packet.
func tsharkFields(t *testing.T, pcap string, fields ...string) []string {
	t.Helper()
	args := []string{"-r", pcap, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", pcap, err)
	}
	var lines []string
	for l := range strings.Lines(string(out)) {
		lines = append(lines, strings.TrimRight(l, "\n"))
	}
	return lines
}
