// ERSPAN jobs end to end: the emulator encapsulates copies, telegend decapsulates them
// (bpf/telegen_tc.c) and attributes them to jobs by session id (docs/MIRROR.md).

package e2e

import (
	"strconv"
	"testing"
	"time"
)

// TestMirrorERSPANAndSPAN: an erspan job on Ethernet16 and a span job on Ethernet20 run at
// once; each counts exactly the frames sent into its own port (the erspan job its copies'
// inner frames), not the other's, and both sessions are gone when the jobs end.
func TestMirrorERSPANAndSPAN(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrors()
	p16, p20 := genPcap(t, "all", 300), genPcap(t, "flows", 200)
	w16, w20 := tsharkTruth(t, p16), tsharkTruth(t, p20)
	s.startDaemon()
	s.putJob("er", "port", "Ethernet16", "span_method", "erspan", "duration_sec", "30")
	s.putJob("sp", "port", "Ethernet20", "span_method", "span", "duration_sec", "30")
	if rec := s.waitStatus("er", "running", 5*time.Second); rec["interface"] != erspanSink {
		t.Errorf("erspan job record %v: want interface %s", rec, erspanSink)
	}
	s.waitStatus("sp", "running", 5*time.Second)

	s.replay("Ethernet16", p16)
	s.replay("Ethernet20", p20)
	s.waitField("er", "packets_total", strconv.Itoa(w16.Frames), 3*time.Second)
	s.waitField("er", "bytes_total", strconv.FormatUint(w16.Bytes, 10), time.Second)
	s.waitField("sp", "packets_total", strconv.Itoa(w20.Frames), 3*time.Second)
	s.waitField("sp", "bytes_total", strconv.FormatUint(w20.Bytes, 10), time.Second)
	time.Sleep(300 * time.Millisecond)
	if er, sp := s.job("er"), s.job("sp"); er["packets_total"] != strconv.Itoa(w16.Frames) || sp["packets_total"] != strconv.Itoa(w20.Frames) {
		t.Errorf("counts moved on: erspan job %s (want %d), span job %s (want %d)",
			er["packets_total"], w16.Frames, sp["packets_total"], w20.Frames)
	}

	s.delJob("er")
	s.delJob("sp")
	s.waitStatus("er", "stopped", 3*time.Second)
	s.waitStatus("sp", "stopped", 3*time.Second)
	s.assertMirrorClean()
	s.daemon.stop(t)
}

// TestMirrorTwoERSPANJobsOneSink: two erspan jobs share telegen-erspan0; the session id of each
// copy attributes it to its own job.
func TestMirrorTwoERSPANJobsOneSink(t *testing.T) {
	s := newSwitch(t, "tcx", "Ethernet16", "Ethernet20", spanPort)
	s.withMirrors()
	p16, p20 := genPcap(t, "all", 250), genPcap(t, "vlan", 150)
	w16, w20 := tsharkTruth(t, p16), tsharkTruth(t, p20)
	s.startDaemon()
	s.putJob("a", "port", "Ethernet16", "span_method", "erspan", "duration_sec", "30")
	s.putJob("b", "port", "Ethernet20", "span_method", "erspan", "direction", "both", "duration_sec", "30")
	s.waitStatus("a", "running", 5*time.Second)
	s.waitStatus("b", "running", 5*time.Second)

	s.replay("Ethernet16", p16)
	s.replay("Ethernet20", p20)
	s.waitField("a", "packets_total", strconv.Itoa(w16.Frames), 3*time.Second)
	s.waitField("b", "packets_total", strconv.Itoa(w20.Frames), 3*time.Second)
	s.waitField("a", "bytes_total", strconv.FormatUint(w16.Bytes, 10), time.Second)
	s.waitField("b", "bytes_total", strconv.FormatUint(w20.Bytes, 10), time.Second)

	s.delJob("a")
	s.delJob("b")
	s.waitStatus("a", "stopped", 3*time.Second)
	s.waitStatus("b", "stopped", 3*time.Second)
	s.assertMirrorClean()
	s.daemon.stop(t)
}
