package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestKill9Adopt: telegend is killed with SIGKILL mid-job and restarted. The job's kernel state
// survives in bpffs, the new instance adopts it with its counts intact, the slot count is right,
// and when the job ends nothing is left behind.
func TestKill9Adopt(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16", "Ethernet20", "Ethernet24")
			pcap := genPcap(t, "flows", 400)
			want := tsharkTruth(t, pcap)
			d := s.startDaemon()
			s.putJob("k", "port", "Ethernet16", "span_method", "direct", "duration_sec", "30")
			before := s.waitStatus("k", "running", time.Second)
			s.replay("Ethernet16", pcap)
			s.waitField("k", "packets_total", strconv.Itoa(want.Frames), 2*time.Second)

			d.kill()
			if got := len(s.attachments()); got != 1 {
				t.Fatalf("after kill -9, %d attachments, want the job's 1 still in place", got)
			}
			s.startDaemon()
			time.Sleep(300 * time.Millisecond)
			after := s.waitStatus("k", "running", 2*time.Second)
			if after["slot"] != before["slot"] || after["started_at"] != before["started_at"] || after["expires_at"] != before["expires_at"] {
				t.Errorf("adopted record %v differs from the original %v", after, before)
			}
			s.replay("Ethernet16", pcap)
			s.waitField("k", "packets_total", strconv.Itoa(2*want.Frames), 2*time.Second)
			s.waitField("k", "bytes_total", strconv.FormatUint(2*want.Bytes, 10), time.Second)
			if got := len(s.attachments()); got != 1 {
				t.Errorf("after adoption, %d attachments, want 1", got)
			}

			// One slot is taken by the adopted job: of two new jobs, one runs.
			s.putJob("x", "port", "Ethernet20", "span_method", "direct", "duration_sec", "30")
			s.waitStatus("x", "running", time.Second)
			s.putJob("y", "port", "Ethernet24", "span_method", "direct", "duration_sec", "30")
			if rec := s.waitStatus("y", "rejected", time.Second); rec["reason"] != "concurrency_limit" {
				t.Errorf("y: reason %q, want concurrency_limit", rec["reason"])
			}

			s.delJob("k")
			s.waitStatus("k", "stopped", time.Second)
			if res := s.result("k"); res["packets_total"] != strconv.Itoa(2*want.Frames) || res["totals_exact"] != "true" {
				t.Errorf("result %v, want exact packets_total %d", res, 2*want.Frames)
			}
			s.delJob("x")
			s.waitStatus("x", "stopped", time.Second)
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestKill9Orphans: what happened while no daemon ran is settled at start-up. A job whose key
// was deleted meanwhile is stopped; a job whose pins vanished cannot be adopted, is ended as
// daemon_restart and its attachment is removed.
func TestKill9Orphans(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet0", "Ethernet4")
			d := s.startDaemon()
			s.putJob("gone", "port", "Ethernet0", "span_method", "direct", "duration_sec", "30")
			s.putJob("lost", "port", "Ethernet4", "span_method", "direct", "duration_sec", "30")
			s.waitStatus("gone", "running", time.Second)
			s.waitStatus("lost", "running", time.Second)

			d.kill()
			s.delJob("gone")
			// Losing the pins of "lost" (as a bpffs remount would) leaves its attachment
			// unowned: on clsact the filter stays in the kernel by itself.
			must(t, os.RemoveAll(filepath.Join(s.pinDir, "lost")))

			s.startDaemon()
			if rec := s.waitStatus("gone", "stopped", 2*time.Second); rec["reason"] != "" {
				t.Errorf("gone: reason %q, want none", rec["reason"])
			}
			if rec := s.waitStatus("lost", "failed", 2*time.Second); rec["reason"] != "daemon_restart" {
				t.Errorf("lost: reason %q, want daemon_restart", rec["reason"])
			}
			if !s.keyGone("lost", time.Second) {
				t.Error("key of the job ended at restart was not deleted")
			}
			s.assertClean()
			// Both slots are free again.
			s.putJob("n1", "port", "Ethernet0", "span_method", "direct", "duration_sec", "30")
			s.putJob("n2", "port", "Ethernet4", "span_method", "direct", "duration_sec", "30")
			s.waitStatus("n1", "running", time.Second)
			s.waitStatus("n2", "running", time.Second)
			s.daemon.stop(t)
			s.assertClean()
		})
	}
}

// TestRedisRestart: Redis goes away mid-job and comes back with its data; the daemon
// reconnects, resyncs, keeps counting and ends the job on time.
func TestRedisRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			pcap := genPcap(t, "basic", 300)
			want := tsharkTruth(t, pcap)
			s.startDaemon()
			s.putJob("r", "port", "Ethernet16", "span_method", "direct", "duration_sec", "5")
			rec := s.waitStatus("r", "running", time.Second)
			expires := parseTime(t, rec["expires_at"])

			s.redis.Stop(t)
			s.replay("Ethernet16", pcap) // counted while Redis is away
			time.Sleep(time.Second)
			s.redis.Start(t)

			s.waitField("r", "packets_total", strconv.Itoa(want.Frames), 3*time.Second)
			// A job written after the restart is seen: the watch resubscribed.
			s.putJob("after", "port", "Ethernet16", "span_method", "direct", "duration_sec", "30")
			s.waitStatus("after", "running", 2*time.Second)

			rec = s.waitStatus("r", "done", time.Until(expires)+2*time.Second)
			if fin := parseTime(t, rec["finished_at"]); fin.Sub(expires) > time.Second || expires.Sub(fin) > time.Second {
				t.Errorf("finished at %v, want %v ± 1 s", fin, expires)
			}
			if res := s.result("r"); res["packets_total"] != strconv.Itoa(want.Frames) || res["bytes_total"] != strconv.FormatUint(want.Bytes, 10) {
				t.Errorf("result %v, want %d packets %d bytes", res, want.Frames, want.Bytes)
			}
			s.delJob("after")
			s.waitStatus("after", "stopped", time.Second)
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}
