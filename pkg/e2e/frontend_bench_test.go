package e2e

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
)

// BenchmarkREST measures telegen-rest on loopback against the real telegend: the latency of
// POST→201 (validate, write, telegend attaches, verdict back) over sequential jobs each deleted
// again, of POST→429 with both slots taken, and the throughput of GET /v1/monitor/jobs/{id}
// from a Go load loop of concurrent keep-alive clients. Run it with binaries built without
// -race:
//
//	TELEGEN_E2E_RACE=0 go test ./pkg/e2e -run '^$' -bench BenchmarkREST -benchtime 1x
func BenchmarkREST(b *testing.B) {
	const (
		created   = 100 // POST→201 samples
		capped    = 300 // POST→429 samples
		getters   = 8   // concurrent GET clients
		getPeriod = 3 * time.Second
	)
	for b.Loop() {
		s := newSwitch(b, "auto", "Ethernet16", "Ethernet20", "Ethernet24")
		s.startDaemon()
		rest := startREST(b, s)
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * getters}, Timeout: 30 * time.Second}
		jobs := rest.url + client.JobsPath
		time.Sleep(500 * time.Millisecond) // let telegend settle

		post := func(port string, want int) (time.Duration, string) {
			begin := time.Now()
			st, body, err := httpDo(hc, "POST", jobs, jobBody(port, 600))
			lat := time.Since(begin)
			if err != nil || st != want {
				b.Fatalf("POST: %d %s %v; want %d", st, body, err, want)
			}
			return lat, jobIDRE.FindString(body)
		}
		del := func(id string) {
			if st, body, err := httpDo(hc, "DELETE", jobs+"/"+id, ""); err != nil || st != 200 {
				b.Fatalf("DELETE %s: %d %s %v", id, st, body, err)
			}
		}

		var lat201 []time.Duration
		for range created {
			lat, id := post("Ethernet16", 201)
			lat201 = append(lat201, lat)
			del(id)
		}

		_, keep1 := post("Ethernet16", 201)
		_, keep2 := post("Ethernet20", 201)
		var lat429 []time.Duration
		for range capped {
			lat, _ := post("Ethernet24", 429)
			lat429 = append(lat429, lat)
		}

		var gets, failures atomic.Int64
		deadline := time.Now().Add(getPeriod)
		var wg sync.WaitGroup
		for range getters {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					st, body, err := httpDo(hc, "GET", jobs+"/"+keep1, "")
					if err != nil || st != 200 || !strings.Contains(body, `"status":"running"`) {
						failures.Add(1)
						continue
					}
					gets.Add(1)
				}
			})
		}
		wg.Wait()
		if failures.Load() > 0 {
			b.Errorf("%d GETs failed", failures.Load())
		}
		del(keep1)
		del(keep2)
		s.assertClean()

		p := func(l []time.Duration, q int) float64 {
			slices.Sort(l)
			return float64(l[len(l)*q/100].Microseconds()) / 1000
		}
		rps := float64(gets.Load()) / getPeriod.Seconds()
		b.ReportMetric(p(lat201, 50), "post201-p50-ms")
		b.ReportMetric(p(lat201, 99), "post201-p99-ms")
		b.ReportMetric(p(lat429, 50), "post429-p50-ms")
		b.ReportMetric(p(lat429, 99), "post429-p99-ms")
		b.ReportMetric(rps, "get-req/s")
		b.Logf("POST→201 over %d jobs: p50 %.2f ms p99 %.2f ms; POST→429 over %d: p50 %.2f ms p99 %.2f ms; GET %d clients: %.0f req/s",
			created, p(lat201, 50), p(lat201, 99), capped, p(lat429, 50), p(lat429, 99), getters, rps)
	}
}
