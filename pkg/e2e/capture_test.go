package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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

// TestKill9Pcaplike: telegend killed with -9 during a pcaplike job. Restarted, it adopts the job
// and carries on the capture file the dead daemon was writing: the result's pcapng holds the
// frames from before the kill and after it (tshark counts them). A pcaplike job deleted while
// no daemon runs leaves no unfinished file behind once a daemon starts again. A job killed
// with samples still on their way to its file accounts for every one: the file's packets and
// pcap_dropped add up to the samples the kernel took.
func TestKill9Pcaplike(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16", "Ethernet20", "Ethernet24")
	before, after := genPcap(t, "all", 200), genPcap(t, "flows", 150)
	nBefore, nAfter := len(tsharkFields(t, before, "frame.len")), len(tsharkFields(t, after, "frame.len"))
	d := s.startDaemon()
	for _, id := range []string{"kept", "gone"} {
		port := map[string]string{"kept": "Ethernet16", "gone": "Ethernet20"}[id]
		s.putJob(id, "port", port, "span_method", "direct", "duration_sec", "30",
			"sample_rate", "1", "result_detail", "pcaplike")
		s.waitStatus(id, "running", 2*time.Second)
	}
	s.replay("Ethernet16", before)
	s.replay("Ethernet20", before)
	s.waitField("kept", "packets_total", strconv.Itoa(nBefore), 2*time.Second)
	time.Sleep(time.Second) // the writers flush what they hold at least every 500 ms
	d.kill()
	captures := filepath.Join(s.stateDir, "captures")
	for _, id := range []string{"kept", "gone"} {
		if _, err := os.Stat(filepath.Join(captures, id+".pcapng.tmp")); err != nil {
			t.Fatalf("%s: no unfinished capture after kill -9: %v", id, err)
		}
	}
	s.delJob("gone") // while no daemon runs

	s.startDaemon()
	s.waitStatus("kept", "running", 2*time.Second)
	s.waitStatus("gone", "stopped", 2*time.Second)
	if _, err := os.Stat(filepath.Join(captures, "gone.pcapng.tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("gone: unfinished capture left after restart: %v", err)
	}
	s.replay("Ethernet16", after)
	s.waitField("kept", "packets_total", strconv.Itoa(nBefore+nAfter), 2*time.Second)
	time.Sleep(300 * time.Millisecond) // the samples reach the writer
	s.delJob("kept")
	s.waitStatus("kept", "stopped", 5*time.Second)
	res := s.result("kept")
	file := res["pcap_file"]
	if file == "" {
		t.Fatalf("no pcap_file in %v", res)
	}
	if got := len(tsharkFields(t, file, "frame.len")); got != nBefore+nAfter || res["pcap_packets"] != strconv.Itoa(got) {
		t.Errorf("capture holds %d frames (result says %s), want %d before the kill + %d after", got, res["pcap_packets"], nBefore, nAfter)
	}

	// Killed again, this time with samples on their way to the file.
	s.putJob("lossy", "port", "Ethernet24", "span_method", "direct", "duration_sec", "30",
		"sample_rate", "1", "result_detail", "pcaplike")
	s.waitStatus("lossy", "running", 2*time.Second)
	s.replay("Ethernet24", before)
	time.Sleep(100 * time.Millisecond) // read from the ring, most likely not written yet
	s.daemon.kill()
	s.startDaemon()
	s.waitStatus("lossy", "running", 2*time.Second)
	s.delJob("lossy")
	s.waitStatus("lossy", "stopped", 5*time.Second)
	lossy := s.result("lossy")
	var kernel struct {
		Samples uint64 `json:"samples"`
	}
	if err := json.Unmarshal([]byte(lossy["capture"]), &kernel); err != nil {
		t.Fatalf("lossy: capture %q: %v", lossy["capture"], err)
	}
	packets, _ := strconv.ParseUint(lossy["pcap_packets"], 10, 64)
	dropped, _ := strconv.ParseUint(lossy["pcap_dropped"], 10, 64)
	if kernel.Samples != uint64(nBefore) || packets+dropped != kernel.Samples {
		t.Errorf("lossy: %d packets in the file + %d dropped, kernel took %d samples of %d frames", packets, dropped, kernel.Samples, nBefore)
	}
	t.Logf("lossy: %d of %d samples in the file, %d lost with the killed daemon", packets, kernel.Samples, dropped)
	s.assertClean()
	s.daemon.stop(t)
}
