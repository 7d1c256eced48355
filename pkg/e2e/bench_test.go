package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkControlPlane measures what an operator waits for: the time from the HSET of a job
// to STATE_DB saying running, over 200 sequential jobs, and telegend's resident memory when
// idle. `make bench-control` runs it (with a daemon built without -race) and records the figures
// in docs/BENCHMARKS.md.
func BenchmarkControlPlane(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode, func(b *testing.B) { benchControl(b, mode) })
	}
}

func benchControl(b *testing.B, mode string) {
	const jobs = 200
	for b.Loop() {
		s := newSwitch(b, mode, "Ethernet16")
		d := s.startDaemon()
		ctx := context.Background()
		time.Sleep(time.Second)
		rssStart := rssKiB(b, d.cmd.Process.Pid)

		// Keyspace events of STATE_DB tell the moment the status changes, without polling.
		sub := s.state.PSubscribe(ctx, "__keyspace@6__:TELEGEN_JOB_TABLE|*")
		defer sub.Close()
		if _, err := sub.Receive(ctx); err != nil {
			b.Fatal(err)
		}
		events := sub.Channel()
		var lat []time.Duration
		for i := range jobs {
			id := fmt.Sprintf("bench%d", i)
			begin := time.Now()
			s.putJob(id, "port", "Ethernet16", "span_method", "direct", "duration_sec", "60")
			s.waitEvent(events, id, "running", begin)
			lat = append(lat, time.Since(begin))
			s.delJob(id)
			s.waitEvent(events, id, "stopped", begin)
		}
		time.Sleep(2 * time.Second) // let the daemon settle into idle
		rssIdle := rssKiB(b, d.cmd.Process.Pid)
		d.stop(b)

		slices.Sort(lat)
		p50, p99 := lat[len(lat)*50/100], lat[len(lat)*99/100]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(rssStart)/1024, "rss-start-MiB")
		b.ReportMetric(float64(rssIdle)/1024, "rss-idle-MiB")
		b.Logf("hset->running over %d jobs: p50 %v p99 %v max %v; RSS at start %d KiB, idle after jobs %d KiB",
			jobs, p50, p99, lat[len(lat)-1], rssStart, rssIdle)
	}
}

// waitEvent consumes STATE_DB keyspace events until job id's status is want.
func (s *vswitch) waitEvent(events <-chan *redis.Message, id, want string, since time.Time) {
	s.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		if s.job(id)["status"] == want {
			return
		}
		select {
		case <-events:
		case <-timeout:
			s.t.Fatalf("job %s: no %q within 5 s of %v", id, want, since)
		}
	}
}

// rssKiB reads VmRSS of a process.
func rssKiB(tb testing.TB, pid int) int {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must(tb, err)
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			must(tb, err)
			return n
		}
	}
	tb.Fatalf("no VmRSS for pid %d", pid)
	return 0
}
