package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/restapi/restapitest"
)

// The exact answers DESIGN.md fixes.
const (
	capBody = `{"error":"concurrency_limit","message":"At most 2 concurrent jobs are allowed. Try again later."}`
	capLine = "ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)\n"
)

var jobIDRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

func jobBody(port string, durationSec int) string {
	return fmt.Sprintf(`{"port":%q,"span_method":"direct","duration_sec":%d}`, port, durationSec)
}

// TestFrontendAdmission: three front-ends and raw redis-cli race for two slots, and telegend
// alone decides. 50 simultaneous POSTs give exactly two 201 and 48 429 with DESIGN.md's body;
// while those two run, concurrent CLI starts (direct and through REST), more POSTs and raw
// redis-cli writes are all refused; then, with the slots free again, all of them race at once
// and exactly two win. A sampler reading STATE_DB and the kernel never sees more than two.
func TestFrontendAdmission(t *testing.T) {
	ports := []string{"Ethernet16", "Ethernet20", "Ethernet24"}
	s := newSwitch(t, "auto", ports...)
	s.startDaemon()
	rest := startREST(t, s)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second}
	jobsURL := rest.url + client.JobsPath
	sampler := startSampler(t, s)
	ctx := context.Background()

	// Phase 1: 50 POSTs released at the same instant.
	const n = 50
	type answer struct {
		status int
		body   string
		err    error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			st, body, err := httpDo(hc, "POST", jobsURL, jobBody(ports[i%len(ports)], 60))
			answers[i] = answer{st, body, err}
		})
	}
	close(gate)
	wg.Wait()
	var admitted []string
	count := map[int]int{}
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("POST %d: %v", i, a.err)
		}
		count[a.status]++
		switch a.status {
		case 201:
			var c client.Created
			if err := json.Unmarshal([]byte(a.body), &c); err != nil || c.Status != "running" || !jobIDRE.MatchString(c.ID) {
				t.Errorf("201 body %s", a.body)
			}
			admitted = append(admitted, c.ID)
		case 429:
			if a.body != capBody {
				t.Errorf("429 body %s\nwant %s", a.body, capBody)
			}
		default:
			t.Errorf("POST %d: %d %s", i, a.status, a.body)
		}
	}
	if count[201] != 2 || count[429] != n-2 {
		t.Fatalf("50 simultaneous POSTs: %v; want exactly two 201 and 48 429", count)
	}

	// Phase 2: while the two run, every other writer is refused.
	type outcome struct {
		who  string
		code int
		out  string
	}
	results := make(chan outcome, 64)
	gate = make(chan struct{})
	for i := range 4 {
		wg.Go(func() {
			<-gate
			_, stderr, code := runCLI(t, s, "start", "--port", ports[i%3], "--span-method", "direct", "--duration", "60")
			results <- outcome{"cli", code, stderr}
		})
		wg.Go(func() {
			<-gate
			_, stderr, code := runCLI(t, s, "start", "--api", rest.url, "--port", ports[i%3], "--span-method", "direct")
			results <- outcome{"cli --api", code, stderr}
		})
		wg.Go(func() {
			<-gate
			st, body, err := httpDo(hc, "POST", jobsURL, jobBody(ports[i%3], 60))
			if err != nil {
				body = err.Error()
			}
			results <- outcome{"rest", st, body}
		})
		wg.Go(func() {
			<-gate
			out, err := exec.Command("redis-cli", "-s", s.redis.Socket, "-n", "4", "hset", "TELEGEN_JOB|raw"+strconv.Itoa(i),
				"port", ports[i%3], "span_method", "direct", "duration_sec", "60").CombinedOutput()
			code := 0
			if err != nil {
				code = -1
			}
			results <- outcome{"redis-cli", code, string(out)}
		})
	}
	close(gate)
	wg.Wait()
	close(results)
	for r := range results {
		switch {
		case r.who == "rest" && (r.code != 429 || r.out != capBody):
			t.Errorf("POST while full: %d %s", r.code, r.out)
		case strings.HasPrefix(r.who, "cli") && (r.code != 3 || r.out != capLine):
			t.Errorf("%s while full: exit %d, stderr %q; want 3 and %q", r.who, r.code, r.out, capLine)
		case r.who == "redis-cli" && r.code != 0:
			t.Errorf("redis-cli: %s", r.out)
		}
	}
	for i := range 4 {
		rec := s.waitStatus("raw"+strconv.Itoa(i), "rejected", 5*time.Second)
		if rec["reason"] != "concurrency_limit" {
			t.Errorf("raw%d: %v", i, rec)
		}
	}
	for _, id := range admitted {
		if rec := s.job(id); rec["status"] != "running" {
			t.Errorf("admitted job %s is %v", id, rec)
		}
	}

	// Phase 3: free the slots, then all writers race at once: exactly two win.
	for _, id := range admitted {
		st, body, err := httpDo(hc, "DELETE", jobsURL+"/"+id, "")
		if err != nil || st != 200 || body != `{"job_id":"`+id+`","status":"stopped"}` {
			t.Fatalf("DELETE %s: %d %s %v", id, st, body, err)
		}
	}
	var mu sync.Mutex
	winners := map[string]int{}
	var winnerIDs []string
	win := func(who, id string) {
		mu.Lock()
		winners[who]++
		winnerIDs = append(winnerIDs, id)
		mu.Unlock()
	}
	gate = make(chan struct{})
	for i := range 3 {
		wg.Go(func() {
			<-gate
			out, stderr, code := runCLI(t, s, "start", "--port", ports[i], "--span-method", "direct", "--duration", "60")
			switch code {
			case 0:
				win("cli", jobIDRE.FindString(out))
			case 3:
			default:
				t.Errorf("cli: exit %d %s", code, stderr)
			}
		})
		wg.Go(func() {
			<-gate
			st, body, err := httpDo(hc, "POST", jobsURL, jobBody(ports[i], 60))
			switch {
			case err != nil:
				t.Errorf("POST: %v", err)
			case st == 201:
				win("rest", jobIDRE.FindString(body))
			case st != 429:
				t.Errorf("POST: %d %s", st, body)
			}
		})
		wg.Go(func() {
			<-gate
			id := "race" + strconv.Itoa(i)
			if err := s.config.HSet(ctx, "TELEGEN_JOB|"+id, "port", ports[i], "span_method", "direct", "duration_sec", "60").Err(); err != nil {
				t.Error(err)
			}
		})
	}
	close(gate)
	wg.Wait()
	for i := range 3 {
		id := "race" + strconv.Itoa(i)
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := s.job(id)["status"]
			if st == "running" {
				win("redis-cli", id)
				break
			}
			if st == "rejected" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no verdict: %v", id, s.job(id))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	total := 0
	for _, c := range winners {
		total += c
	}
	if total != 2 {
		t.Errorf("racing writers: winners %v; want exactly two admitted in all", winners)
	}
	t.Logf("racing writers: winners %v", winners)
	for _, id := range winnerIDs {
		if _, _, code := runCLI(t, s, "stop", "--job", id); code != 0 {
			t.Errorf("stop %s: exit %d", id, code)
		}
	}
	sampler.check(t, 2)
	s.assertClean()
}

// TestFrontendREST walks the REST contract against the real daemon: 201, GET of a running job
// with its window, 404, 400 naming filters.dscp, DELETE with the kernel state gone, results,
// the feature switch and a daemon that does not answer.
func TestFrontendREST(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	d := s.startDaemon()
	sock := filepath.Join(s.redis.Dir, "rest.sock")
	rest := startREST(t, s, "--verdict-timeout", "1500ms", "--listen", "unix:"+sock)
	hc := &http.Client{Timeout: 30 * time.Second}
	jobs := rest.url + client.JobsPath

	st, body, err := httpDo(hc, "POST", jobs, jobBody("Ethernet16", 30))
	must(t, err)
	id := jobIDRE.FindString(body)
	if st != 201 || body != `{"job_id":"`+id+`","status":"running","interface":"Ethernet16"}` {
		t.Fatalf("POST: %d %s", st, body)
	}
	if att := s.attachments(); len(att) != 1 || att[0].Iface != "Ethernet16" {
		t.Errorf("attachments after 201: %v", att)
	}

	st, body, err = httpDo(hc, "GET", jobs+"/"+id, "")
	must(t, err)
	var j client.Job
	if st != 200 || json.Unmarshal([]byte(body), &j) != nil {
		t.Fatalf("GET: %d %s", st, body)
	}
	if j.Status != "running" || j.StartedAt.IsZero() || j.ExpiresAt.Sub(j.StartedAt) != 30*time.Second || j.Port != "Ethernet16" ||
		j.Interface != "Ethernet16" || j.Slot == nil || !strings.Contains(body, `"started_at":"`) || !strings.Contains(body, `"expires_at":"`) {
		t.Errorf("GET running job: %s", body)
	}

	for _, c := range []struct{ method, path, body string }{
		{"GET", "/00000000-0000-4000-8000-000000000000", ""},
		{"GET", "/nope/results", ""},
		{"DELETE", "/nope", ""},
	} {
		st, body, _ := httpDo(hc, c.method, jobs+c.path, c.body)
		if st != 404 || !strings.Contains(body, `"error":"not_found"`) {
			t.Errorf("%s %s: %d %s; want 404", c.method, c.path, st, body)
		}
	}
	st, body, _ = httpDo(hc, "POST", jobs, `{"port":"Ethernet16","span_method":"direct","filters":{"dscp":[99]}}`)
	if want := `{"error":"invalid_argument","message":"filters.dscp: item \"99\": must be an integer 0-63","field":"filters.dscp"}`; st != 400 || body != want {
		t.Errorf("dscp 99: %d %s\nwant 400 %s", st, body, want)
	}
	// Port existence is telegend's to judge: its verdict comes back as a 400 naming the field.
	st, body, _ = httpDo(hc, "POST", jobs, jobBody("Ethernet99", 30))
	if st != 400 || !strings.Contains(body, `"field":"port"`) || !strings.Contains(body, `is not a port of CONFIG_DB PORT`) {
		t.Errorf("unknown port: %d %s", st, body)
	}
	for path, want := range map[string]int{"/results": 409, "/results?format=json": 409, "/results?format=pcap": 409, "/results?format=xml": 400} {
		if st, body, _ := httpDo(hc, "GET", jobs+"/"+id+path, ""); st != want {
			t.Errorf("GET %s of a running job: %d %s; want %d", path, st, body, want)
		}
	}
	st, body, _ = httpDo(hc, "GET", jobs, "")
	if st != 200 || !strings.Contains(body, `"job_id":"`+id+`","status":"running"`) {
		t.Errorf("list: %d %s", st, body)
	}

	// Over the unix socket too, with the CLI.
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("unix socket %s: %v %v; want mode 0660", sock, fi, err)
	}
	out, stderr, code := runCLI(t, s, "status", "--api", "unix:"+sock, "--job", id)
	if code != 0 || !strings.Contains(out, "running") {
		t.Errorf("status over the socket: %d %s %s", code, out, stderr)
	}

	st, body, _ = httpDo(hc, "DELETE", jobs+"/"+id, "")
	if st != 200 || body != `{"job_id":"`+id+`","status":"stopped"}` {
		t.Fatalf("DELETE: %d %s", st, body)
	}
	s.assertClean()
	if !s.keyGone(id, time.Second) {
		t.Error("DELETE left the key")
	}
	st, body, _ = httpDo(hc, "GET", jobs+"/"+id+"/results?format=json", "")
	var res map[string]any
	if st != 200 || json.Unmarshal([]byte(body), &res) != nil || res["status"] != "stopped" || res["totals_exact"] != true ||
		res["port"] != "Ethernet16" {
		t.Errorf("results: %d %s", st, body)
	}
	if _, ok := res["packets_total"].(float64); !ok {
		t.Errorf("packets_total is not a number: %s", body)
	}
	st, body, _ = httpDo(hc, "DELETE", jobs+"/"+id, "")
	if st != 200 || body != `{"job_id":"`+id+`","status":"stopped"}` {
		t.Errorf("second DELETE: %d %s", st, body)
	}

	// Feature disabled: refused up front, nothing written.
	ctx := context.Background()
	must(t, s.config.HSet(ctx, "FEATURE|telegen", "state", "disabled").Err())
	st, body, _ = httpDo(hc, "POST", jobs, jobBody("Ethernet16", 30))
	if st != 503 || !strings.Contains(body, `"error":"feature_disabled"`) {
		t.Errorf("POST while disabled: %d %s", st, body)
	}
	_, stderr, code = runCLI(t, s, "start", "--port", "Ethernet16", "--span-method", "direct")
	if code != 4 || !strings.HasPrefix(stderr, "ERROR: telegen is disabled") {
		t.Errorf("CLI while disabled: exit %d %q", code, stderr)
	}
	must(t, s.config.HSet(ctx, "FEATURE|telegen", "state", "enabled").Err())

	// No daemon: 503 after the verdict timeout, and the key written is gone again.
	d.stop(t)
	begin := time.Now()
	st, body, _ = httpDo(hc, "POST", jobs, jobBody("Ethernet16", 30))
	if st != 503 || !strings.Contains(body, `"error":"unavailable"`) || !strings.Contains(body, "no verdict") {
		t.Errorf("POST without telegend: %d %s", st, body)
	}
	if el := time.Since(begin); el < 1500*time.Millisecond || el > 5*time.Second {
		t.Errorf("503 after %v; want about the 1.5 s verdict timeout", el)
	}
	if keys, _ := s.config.Keys(ctx, "TELEGEN_JOB|*").Result(); len(keys) != 0 {
		t.Errorf("keys left after 503: %v", keys)
	}
	var sawPost bool
	for _, r := range rest.accessLog() {
		if r["method"] == "POST" && r["status"] == float64(201) && r["job"] == id && r["duration_ms"] != nil {
			sawPost = true
		}
	}
	if !sawPost {
		t.Errorf("access log has no structured line for the 201 of %s", id)
	}
}

// TestFrontendCLI: the CLI at the cap, the watch view in a pseudo-terminal with live traffic,
// and the CLI through the REST shim.
func TestFrontendCLI(t *testing.T) {
	testenv.RequireTool(t, "script")
	s := newSwitch(t, "auto", "Ethernet16", "Ethernet20", "Ethernet24")
	s.startDaemon()
	rest := startREST(t, s)
	pcap := genPcap(t, "all", 300)

	out, stderr, code := runCLI(t, s, "start", "--api", rest.url, "--port", "Ethernet20", "--span-method", "direct", "--duration", "60", "-o", "json")
	var created client.Created
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created.Status != "running" || created.Interface != "Ethernet20" {
		t.Fatalf("start --api -o json: exit %d, %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, s, "start", "--port", "Ethernet16", "--span-method", "direct", "--duration", "8s")
	watched := jobIDRE.FindString(out)
	if code != 0 || out != "job "+watched+" running on Ethernet16\n" {
		t.Fatalf("start: exit %d, %q %q", code, out, stderr)
	}

	// watch runs in a pseudo-terminal while traffic flows into the watched port.
	stopTraffic := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for {
			select {
			case <-stopTraffic:
				return
			default:
			}
			_ = exec.Command("nsenter", "--net=/run/netns/"+s.hostNS, "--", "tcpreplay", "-q", "--pps", "2000", "-i", "vh-Ethernet16", pcap).Run()
		}
	}()
	type watchResult struct {
		screen []byte
		err    error
	}
	watchDone := make(chan watchResult, 1)
	go func() {
		cmdline := fmt.Sprintf("%s watch --db-config %s --job %s", cliBin, s.redis.ConfigPath, watched)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		screen, err := exec.CommandContext(ctx, "script", "-qfec", cmdline, "/dev/null").Output()
		watchDone <- watchResult{screen, err}
	}()

	// Meanwhile, both slots are taken: the CLI refuses with the seed's error, directly and via REST.
	for _, args := range [][]string{
		{"start", "--port", "Ethernet24", "--span-method", "direct"},
		{"start", "--api", rest.url, "--port", "Ethernet24", "--span-method", "direct"},
	} {
		out, stderr, code := runCLI(t, s, args...)
		if code != 3 || out != "" || stderr != capLine {
			t.Errorf("%v at the cap: exit %d, stdout %q, stderr %q; want 3 and %q", args, code, out, stderr, capLine)
		}
	}
	out, _, code = runCLI(t, s, "list")
	if code != 0 || strings.Count(out, " running ") != 2 || strings.Count(out, "concurrency_limit") != 2 {
		t.Errorf("list: exit %d\n%s", code, out)
	}

	w := <-watchDone
	close(stopTraffic)
	<-trafficDone
	if w.err != nil {
		t.Fatalf("watch in a pty: %v\n%s", w.err, w.screen)
	}
	if !strings.Contains(string(w.screen), "\x1b[H") {
		t.Errorf("watch did not redraw in place on a terminal")
	}
	ansi := regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]`)
	var frames []string
	for _, f := range strings.Split(strings.ReplaceAll(string(w.screen), "\r", ""), "\x1b[H") {
		frames = append(frames, ansi.ReplaceAllString(f, ""))
	}
	bar := regexp.MustCompile(`\[(#*)(\.*)\]\s+(\d+)%\s+(\d+)s left of 8s`)
	rate := regexp.MustCompile(`packets\s+(\d+)\s+(\d+) pps`)
	bytesRate := regexp.MustCompile(`bytes\s+.*\s+([0-9.]+) (k|M|G)?bit/s`)
	var bars, rates, byteRates int
	lastPct := -1
	for _, f := range frames {
		if m := bar.FindStringSubmatch(f); m != nil && len(m[1])+len(m[2]) == 30 {
			pct, _ := strconv.Atoi(m[3])
			if pct < lastPct {
				t.Errorf("progress went back from %d%% to %d%%", lastPct, pct)
			}
			lastPct = pct
			bars++
		}
		if m := rate.FindStringSubmatch(f); m != nil && m[2] != "0" {
			rates++
		}
		if bytesRate.MatchString(f) {
			byteRates++
		}
	}
	text := ansi.ReplaceAllString(string(w.screen), "")
	if bars < 4 || rates < 2 || byteRates < 2 || !strings.Contains(text, "ended done") {
		t.Errorf("watch screen: %d frames with a progress bar, %d with a live pps, %d with a bit rate; want ≥4, ≥2, ≥2 and the end:\n%s",
			bars, rates, byteRates, text)
	}
	if lastPct != 100 {
		t.Errorf("last progress %d%%, want 100%%", lastPct)
	}

	out, _, code = runCLI(t, s, "results", "--job", watched, "--format", "json")
	var res map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res["status"] != "done" {
		t.Errorf("results: exit %d %s", code, out)
	} else if p, _ := res["packets_total"].(float64); p == 0 {
		t.Errorf("the watched job counted nothing: %s", out)
	}
	out, _, code = runCLI(t, s, "stop", "--api", rest.url, created.ID)
	if code != 0 || out != "job "+created.ID+" stopped\n" {
		t.Errorf("stop --api: exit %d %q", code, out)
	}
	s.assertClean()
}

// TestFrontendMTLS: telegen-rest with client certificates and a role map.
func TestFrontendMTLS(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	s.startDaemon()
	ca := restapitest.NewCA(t, "telegen-test-ca")
	srv := ca.Server(t, "telegen-rest")
	reader := ca.Client(t, "viewer", "noc")
	operator := ca.Client(t, "alice", "netops")
	roleMap := filepath.Join(t.TempDir(), "roles")
	must(t, os.WriteFile(roleMap, []byte("# who may do what\nCN:alice=operate\nOU:noc=read\n"), 0o600))
	rest := startREST(t, s, "--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--client-ca", ca.CertPEM, "--role-map", roleMap)
	jobs := rest.url + client.JobsPath

	newHC := func(cert *restapitest.Issued) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLS}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 30 * time.Second}
	}
	if st, body, err := httpDo(newHC(nil), "GET", jobs, ""); err == nil {
		t.Errorf("no client certificate: %d %s; want the handshake refused", st, body)
	}
	if st, _, err := httpDo(&http.Client{Timeout: 5 * time.Second}, "GET", strings.Replace(jobs, "https:", "http:", 1), ""); err == nil && st < 400 {
		t.Errorf("plain HTTP to the TLS port answered %d", st)
	}
	rc := newHC(&reader)
	if st, body, err := httpDo(rc, "GET", jobs, ""); err != nil || st != 200 {
		t.Errorf("read GET: %d %s %v", st, body, err)
	}
	if st, body, _ := httpDo(rc, "POST", jobs, jobBody("Ethernet16", 30)); st != 403 || !strings.Contains(body, `"error":"forbidden"`) {
		t.Errorf("read POST: %d %s; want 403", st, body)
	}
	if keys, _ := s.config.Keys(context.Background(), "TELEGEN_JOB|*").Result(); len(keys) != 0 {
		t.Errorf("a read POST wrote %v", keys)
	}
	oc := newHC(&operator)
	st, body, err := httpDo(oc, "POST", jobs, jobBody("Ethernet16", 30))
	id := jobIDRE.FindString(body)
	if err != nil || st != 201 || !strings.Contains(body, `"status":"running"`) {
		t.Fatalf("operate POST: %d %s %v", st, body, err)
	}
	if st, _, _ := httpDo(rc, "DELETE", jobs+"/"+id, ""); st != 403 {
		t.Errorf("read DELETE: %d; want 403", st)
	}
	// The CLI speaks mTLS too.
	out, stderr, code := runCLI(t, s, "status", "--api", rest.url, "--api-ca", ca.CertPEM, "--api-cert", reader.CertFile, "--api-key", reader.KeyFile, id)
	if code != 0 || !strings.Contains(out, "running") {
		t.Errorf("CLI status over mTLS: exit %d %q %q", code, out, stderr)
	}
	out, stderr, code = runCLI(t, s, "stop", "--api", rest.url, "--api-ca", ca.CertPEM, "--api-cert", operator.CertFile, "--api-key", operator.KeyFile, id)
	if code != 0 || out != "job "+id+" stopped\n" {
		t.Errorf("CLI stop over mTLS: exit %d %q %q", code, out, stderr)
	}
	s.assertClean()
}

// TestFrontendPlugins runs the SONiC click plugins' pytest suite: its unit tests against their
// own redis-server, and test_telegend.py against this switch's Redis and the real telegend.
func TestFrontendPlugins(t *testing.T) {
	python := findPython(t)
	s := newSwitch(t, "auto", "Ethernet16", "Ethernet20")
	s.startDaemon()
	root, err := repoRoot()
	must(t, err)
	cmd := exec.Command(python, "-m", "pytest", "-v", "-p", "no:cacheprovider", "docker-telegen-sonic/cli/tests")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "TELEGEN_E2E_DB_CONFIG="+s.redis.ConfigPath, "TELEGEN_E2E_PORTS=Ethernet16,Ethernet20",
		"PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pytest: %v\n%s", err, out)
	}
	for _, want := range []string{"test_telegend.py::test_telegend_lifecycle PASSED", "test_telegend.py::test_telegend_invalid PASSED"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pytest output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "SKIPPED") {
		t.Errorf("pytest skipped tests:\n%s", out)
	}
	s.assertClean()
}

// findPython returns a python3 that has click, redis and pytest (Debian's python3-click,
// python3-redis, python3-pytest), preferring the system one.
func findPython(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import click, redis, pytest").Run() == nil {
			return p
		}
	}
	testenv.Skip(t, "needs python3 with click, redis and pytest (apt-get install python3-click python3-redis python3-pytest)")
	return ""
}
