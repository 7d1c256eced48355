package datapath

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// TestERSPANCaptures replays the real ERSPAN captures of the shared pcaps (types I, II and III,
// from tcpdump's test suite) into a sink and checks, per ERSPAN session id, that the inner frames
// a job counts are the ones tshark decodes: frames whose protocol stack goes on past erspan with
// an inner Ethernet frame. A job for any session (-1) takes type I too, which has no session id.
func TestERSPANCaptures(t *testing.T) {
	testenv.RequireTool(t, "tshark")
	dir := filepath.Join(repoRoot(t), "..", "shared", "pcaps")
	files, _ := filepath.Glob(filepath.Join(dir, "erspan-type-*.pcap"))
	if len(files) == 0 {
		testenv.Skip(t, "no erspan-type-*.pcap in %s", dir)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			truth, ethernet := erspanTruth(t, file)
			if !ethernet {
				t.Skipf("%s is not an Ethernet capture (tcpreplay cannot send it on a veth)", filepath.Base(file))
			}
			e := newEnv(t)
			m := e.manager(t, AttachClsact)
			runs := map[int]*Run{}
			for sid := range truth {
				runs[sid] = e.start(t, m, Job{ID: "s" + strconv.Itoa(sid+1), Interface: port, Ingress: true, ERSPAN: &ERSPAN{SessionID: sid}})
			}
			e.peerNS.Run(t, testenv.RequireTool(t, "tcpreplay"), "-q", "-t", "-i", peer, file)
			for sid, want := range truth {
				deadline := time.Now().Add(2 * time.Second)
				for {
					s, err := runs[sid].Snapshot(false)
					if err != nil {
						t.Fatal(err)
					}
					if s.Ingress.Packets == want {
						break
					}
					if time.Now().After(deadline) {
						t.Errorf("session %d: %d inner frames counted, tshark decodes %d", sid, s.Ingress.Packets, want)
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			t.Logf("inner frames per session (-1 = any): %v", truth)
		})
	}
}

// erspanTruth is tshark's count of ERSPAN frames carrying an inner Ethernet frame, per session
// id, with -1 counting every one of them; ethernet is false for captures of another link type.
func erspanTruth(t *testing.T, file string) (map[int]uint64, bool) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-E", "separator=;",
		"-e", "frame.protocols", "-e", "erspan.spanid").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	truth := map[int]uint64{-1: 0}
	ethernet := true
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		protos, sid, _ := strings.Cut(line, ";")
		if !strings.HasPrefix(protos, "eth:") {
			ethernet = false
		}
		if !strings.Contains(protos, ":erspan:eth") {
			continue
		}
		truth[-1]++
		if n, err := strconv.Atoi(sid); err == nil {
			truth[n]++
		}
	}
	return truth, ethernet
}

func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}
