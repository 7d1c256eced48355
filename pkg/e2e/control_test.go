// Package e2e proves telegend end to end: a real redis-server with SONiC's DB layout, the real
// daemon binary in a network namespace, real eBPF on veth ports, tcpreplay as the traffic and
// tshark as the judge. Every test runs on both attach paths (TCX and forced tc clsact).
package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestDirectJobExactCounts is the core promise: a job written with plain redis-cli runs within
// a second, counts exactly what crossed the port, and ends on time with a result.
func TestDirectJobExactCounts(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16", "Ethernet20")
			pcaps := []string{genPcap(t, "all", 500), sharedPcap(t, "802.1ad_QinQ.pcap")}
			var want pcapTruth
			for _, p := range pcaps {
				tr := tsharkTruth(t, p)
				want.Frames += tr.Frames
				want.Bytes += tr.Bytes
			}
			s.startDaemon()

			written := time.Now()
			run(t, "redis-cli", "-s", s.redis.Socket, "-n", "4", "hset", "TELEGEN_JOB|j1",
				"port", "Ethernet16", "span_method", "direct", "duration_sec", "4")
			rec := s.waitStatus("j1", "running", time.Second)
			t.Logf("hset -> running in %v", time.Since(written))
			if rec["interface"] != "Ethernet16" || rec["slot"] != "0" {
				t.Errorf("record = %v, want interface Ethernet16 slot 0", rec)
			}
			if got := len(s.attachments()); got != 1 {
				t.Errorf("%d attachments while running, want 1: %v", got, s.attachments())
			}

			for _, p := range pcaps {
				s.replay("Ethernet16", p)
			}
			// Traffic on another port must not count.
			s.replay("Ethernet20", pcaps[0])
			s.waitField("j1", "packets_total", strconv.Itoa(want.Frames), 2*time.Second)
			s.waitField("j1", "bytes_total", strconv.FormatUint(want.Bytes, 10), time.Second)

			expires := parseTime(t, rec["expires_at"])
			rec = s.waitStatus("j1", "done", time.Until(expires)+time.Second)
			started := parseTime(t, rec["started_at"])
			finished := parseTime(t, rec["finished_at"])
			if d := finished.Sub(started); d < 3*time.Second || d > 5*time.Second {
				t.Errorf("ran %v, want 4 s ± 1 s", d)
			}
			res := s.result("j1")
			if res["packets_total"] != strconv.Itoa(want.Frames) || res["bytes_total"] != strconv.FormatUint(want.Bytes, 10) {
				t.Errorf("result %v, want packets_total %d bytes_total %d", res, want.Frames, want.Bytes)
			}
			if res["totals_exact"] != "true" || res["ingress_packets"] != strconv.Itoa(want.Frames) || res["egress_packets"] != "0" {
				t.Errorf("result %v: want exact ingress-only totals", res)
			}
			if !s.keyGone("j1", time.Second) {
				t.Error("CONFIG_DB key of a finished job was not deleted")
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestBothDirections counts the port's egress too: frames sent out of the port from the switch
// side reach its TC egress hook.
func TestBothDirections(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16")
			pcap := genPcap(t, "vlan", 300)
			want := tsharkTruth(t, pcap)
			s.startDaemon()
			s.putJob("both", "port", "Ethernet16", "span_method", "direct", "direction", "both", "duration_sec", "30")
			s.waitStatus("both", "running", time.Second)
			if got := len(s.attachments()); got != 2 {
				t.Fatalf("want ingress and egress attached, got %v", s.attachments())
			}
			s.replay("Ethernet16", pcap)                                                                     // ingress
			run(t, "nsenter", "--net=/run/netns/"+s.swNS, "--", "tcpreplay", "-q", "-i", "Ethernet16", pcap) // egress
			s.waitField("both", "packets_total", strconv.Itoa(2*want.Frames), 2*time.Second)
			s.waitField("both", "bytes_total", strconv.FormatUint(2*want.Bytes, 10), time.Second)
			s.delJob("both")
			s.waitStatus("both", "stopped", time.Second)
			res := s.result("both")
			if res["ingress_packets"] != strconv.Itoa(want.Frames) || res["egress_packets"] != strconv.Itoa(want.Frames) {
				t.Errorf("per-direction result %v, want %d each way", res, want.Frames)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestThreeAtOnce writes three jobs in one transaction: two run, one is refused; with a queue
// the third waits and runs when a slot frees.
func TestThreeAtOnce(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet0", "Ethernet4", "Ethernet8")
			s.startDaemon()
			ctx := context.Background()
			writeThree := func(prefix string) {
				_, err := s.config.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for i, port := range s.ports {
						p.HSet(ctx, fmt.Sprintf("TELEGEN_JOB|%s%d", prefix, i), "port", port, "span_method", "direct", "duration_sec", "60")
					}
					return nil
				})
				must(t, err)
			}
			writeThree("a")
			statuses := s.waitSettled("a", 3)
			if statuses["running"] != 2 || statuses["rejected concurrency_limit"] != 1 {
				t.Fatalf("statuses %v, want 2 running and 1 rejected concurrency_limit", statuses)
			}
			if got := len(s.attachments()); got != 2 {
				t.Errorf("%d attachments, want 2", got)
			}
			for i := range 3 {
				s.delJob(fmt.Sprintf("a%d", i))
			}
			s.assertClean()

			must(t, s.config.HSet(ctx, "TELEGEN|global", "max_jobs_queue", "1").Err())
			time.Sleep(200 * time.Millisecond) // settings are read live, on their own keyspace event
			writeThree("b")
			statuses = s.waitSettled("b", 3)
			if statuses["running"] != 2 || statuses["pending"] != 1 {
				t.Fatalf("statuses %v, want 2 running and 1 pending", statuses)
			}
			var queued, running string
			for i := range 3 {
				id := fmt.Sprintf("b%d", i)
				switch s.job(id)["status"] {
				case "pending":
					queued = id
				case "running":
					running = id
				}
			}
			s.delJob(running)
			s.waitStatus(running, "stopped", time.Second)
			s.waitStatus(queued, "running", time.Second)
			if got := len(s.attachments()); got != 2 {
				t.Errorf("%d attachments after the queued job started, want 2", got)
			}
			s.daemon.stop(t)
			s.assertClean()
		})
	}
}

// waitSettled waits until jobs prefix0..prefix{n-1} all have a status other than starting and
// returns how many have each "status reason".
func (s *vswitch) waitSettled(prefix string, n int) map[string]int {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		counts := map[string]int{}
		settled := 0
		for i := range n {
			rec := s.job(fmt.Sprintf("%s%d", prefix, i))
			if st := rec["status"]; st != "" && st != "starting" {
				settled++
				counts[strings.TrimSpace(st+" "+rec["reason"])]++
			}
		}
		if settled == n {
			return counts
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("jobs %s* did not settle: %v", prefix, counts)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// liveScript counts live jobs in STATE_DB in one atomic step.
const liveScript = `
local n = 0
for _, k in ipairs(redis.call('KEYS', 'TELEGEN_JOB_TABLE|*')) do
  local s = redis.call('HGET', k, 'status')
  if s == 'starting' or s == 'running' or s == 'stopping' then n = n + 1 end
end
return n`

// TestStress hammers the daemon with concurrent creates and deletes while a sampler watches
// STATE_DB and the kernel: never more than two live jobs, and nothing left at the end.
func TestStress(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			ports := []string{"Ethernet0", "Ethernet4", "Ethernet8", "Ethernet12"}
			s := newSwitch(t, mode, ports...)
			s.startDaemon()
			ctx := context.Background()

			stop := make(chan struct{})
			var maxState, maxKernel, samples int
			var sampler sync.WaitGroup
			sampler.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					n, err := s.state.Eval(ctx, liveScript, nil).Int()
					if err != nil {
						t.Errorf("sampling STATE_DB: %v", err)
						return
					}
					maxState = max(maxState, n)
					a, err := s.attachmentsErr()
					if err != nil {
						t.Errorf("sampling the kernel: %v", err)
						return
					}
					maxKernel = max(maxKernel, len(a))
					samples++
					time.Sleep(2 * time.Millisecond)
				}
			})

			const writers, opsPerWriter = 4, 50
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(w), 42))
					for op := range opsPerWriter {
						id := fmt.Sprintf("w%d-%d", w, rng.IntN(4))
						var err error
						if op%2 == 0 {
							err = s.config.HSet(ctx, "TELEGEN_JOB|"+id, "port", ports[rng.IntN(len(ports))],
								"span_method", "direct", "duration_sec", strconv.Itoa(1+rng.IntN(3))).Err()
						} else {
							err = s.config.Del(ctx, "TELEGEN_JOB|"+id).Err()
						}
						if err != nil {
							t.Errorf("writer %d: %v", w, err)
							return
						}
						time.Sleep(time.Duration(rng.IntN(15)) * time.Millisecond)
					}
				})
			}
			wg.Wait()
			// Whatever is still configured ends by deletion or by its short duration.
			keys, err := s.config.Keys(ctx, "TELEGEN_JOB|*").Result()
			must(t, err)
			for _, k := range keys {
				must(t, s.config.Del(ctx, k).Err())
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				n, err := s.state.Eval(ctx, liveScript, nil).Int()
				must(t, err)
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d jobs still live after every key was deleted", n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			close(stop)
			sampler.Wait()
			t.Logf("%d samples: at most %d live in STATE_DB, %d attached in the kernel", samples, maxState, maxKernel)
			if maxState > 2 || maxKernel > 2 {
				t.Errorf("more than two live jobs seen: STATE_DB %d, kernel %d", maxState, maxKernel)
			}
			if samples < 50 {
				t.Errorf("only %d samples taken; the sampler proves little", samples)
			}
			s.assertClean()
			s.daemon.stop(t)
		})
	}
}

// TestInvalidFields: each bad field fails the job with a reason naming it; nothing attaches.
func TestInvalidFields(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	s.startDaemon()
	cases := []struct {
		id, field, value, wantPrefix string
	}{
		{"badport", "port", "Ethernet99", "invalid: port: "},
		{"baddscp", "dscp@", "64", "invalid: dscp@: "},
		{"badcidr", "src_cidr", "10.0.0.0/33", "invalid: src_cidr: "},
		{"unknown", "colour", "blue", "invalid: colour: unknown field"},
	}
	for _, c := range cases {
		fields := []string{"port", "Ethernet16", "span_method", "direct", c.field, c.value}
		if c.field == "port" {
			fields = []string{"port", c.value, "span_method", "direct"}
		}
		run(t, "redis-cli", append([]string{"-s", s.redis.Socket, "-n", "4", "hset", "TELEGEN_JOB|" + c.id}, fields...)...)
	}
	for _, c := range cases {
		rec := s.waitStatus(c.id, "failed", time.Second)
		if !strings.HasPrefix(rec["reason"], c.wantPrefix) {
			t.Errorf("%s: reason %q, want prefix %q", c.id, rec["reason"], c.wantPrefix)
		}
		if !s.keyGone(c.id, time.Second) {
			t.Errorf("%s: failed job's key not deleted", c.id)
		}
	}
	s.assertClean()
	s.daemon.stop(t)
}

// TestFeatureToggle: disabling FEATURE|telegen stops every job within a second and refuses
// new ones; enabling lets them in again.
func TestFeatureToggle(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet0", "Ethernet4")
			s.startDaemon()
			ctx := context.Background()
			s.putJob("a", "port", "Ethernet0", "span_method", "direct", "duration_sec", "60")
			s.putJob("b", "port", "Ethernet4", "span_method", "direct", "duration_sec", "60")
			s.waitStatus("a", "running", time.Second)
			s.waitStatus("b", "running", time.Second)

			must(t, s.config.HSet(ctx, "FEATURE|telegen", "state", "disabled").Err())
			for _, id := range []string{"a", "b"} {
				rec := s.waitStatus(id, "stopped", time.Second)
				if rec["reason"] != "feature_disabled" {
					t.Errorf("%s: reason %q, want feature_disabled", id, rec["reason"])
				}
			}
			s.assertClean()
			s.putJob("c", "port", "Ethernet0", "span_method", "direct")
			if rec := s.waitStatus("c", "rejected", time.Second); rec["reason"] != "feature_disabled" {
				t.Errorf("c: reason %q, want feature_disabled", rec["reason"])
			}

			must(t, s.config.HSet(ctx, "FEATURE|telegen", "state", "enabled").Err())
			time.Sleep(100 * time.Millisecond)
			s.putJob("d", "port", "Ethernet0", "span_method", "direct", "duration_sec", "60")
			s.waitStatus("d", "running", time.Second)
			s.daemon.stop(t)
			s.assertClean()
		})
	}
}

func parseTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("time %q: %v", s, err)
	}
	return v
}
