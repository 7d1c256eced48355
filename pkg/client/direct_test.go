package client

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/client/clienttest"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

type fixture struct {
	redis  *testenv.Redis
	d      *Direct
	config *redis.Client
	state  *redis.Client
}

func newFixture(t *testing.T, opt DirectOptions) *fixture {
	t.Helper()
	r := testenv.StartRedis(t)
	if opt.VerdictTimeout == 0 {
		opt.VerdictTimeout = 2 * time.Second
	}
	d, err := OpenDirect(r.ConfigPath, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return &fixture{redis: r, d: d, config: r.Client(t, clienttest.ConfigDB), state: r.Client(t, clienttest.StateDB)}
}

func wantError(t *testing.T, err error, code string, status int, msg string) *Error {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Code != code || e.Status != status || !strings.Contains(e.Message, msg) {
		t.Fatalf("error = %#v (%v); want %s %d containing %q", err, err, code, status, msg)
	}
	return e
}

func TestDirectStartAdmitted(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	clienttest.StartFakeDaemon(t, f.redis, 2)
	ctx := context.Background()
	req := JobRequest{Port: "Ethernet16", SpanMethod: "direct", DurationSec: "30", Filters: Filters{DSCP: List{"46", "10", "46"}}}
	job, err := f.d.Start(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != jobspec.Running || job.Interface != "Ethernet16" || job.Port != "Ethernet16" || job.StartedAt.IsZero() {
		t.Errorf("Start = %+v", job)
	}
	if err := jobspec.ValidJobID(job.ID); err != nil || len(job.ID) != 36 {
		t.Errorf("job id %q is not a generated UUID", job.ID)
	}
	// The key holds the canonical form of the spec.
	got, _ := f.config.HGetAll(ctx, "TELEGEN_JOB|"+job.ID).Result()
	want := map[string]string{"port": "Ethernet16", "direction": "ingress", "span_method": "direct", "sample_rate": "100",
		"duration_sec": "30", "otlp_export": "true", "result_detail": "summary", "dscp@": "10,46"}
	if !maps.Equal(got, want) {
		t.Errorf("TELEGEN_JOB|%s = %v\nwant %v", job.ID, got, want)
	}

	got2, err := f.d.Get(ctx, job.ID)
	if err != nil || got2.Status != jobspec.Running || got2.Port != "Ethernet16" || got2.ExpiresAt.IsZero() {
		t.Errorf("Get = %+v, %v", got2, err)
	}
	_, err = f.d.Result(ctx, job.ID)
	wantError(t, err, CodeNotReady, 409, "is running; its result is written when it ends")

	stopped, err := f.d.Stop(ctx, job.ID)
	if err != nil || stopped.Status != jobspec.Stopped || stopped.Port != "Ethernet16" {
		t.Fatalf("Stop = %+v, %v", stopped, err)
	}
	if n, _ := f.config.Exists(ctx, "TELEGEN_JOB|"+job.ID).Result(); n != 0 {
		t.Error("Stop left the key")
	}
	res, err := f.d.Result(ctx, job.ID)
	if err != nil || res.String("status") != "stopped" || res["totals_exact"] != true || res["job_id"] != job.ID {
		t.Errorf("Result = %v, %v", res, err)
	}
	// Stopping again answers with how it ended.
	again, err := f.d.Stop(ctx, job.ID)
	if err != nil || again.Status != jobspec.Stopped {
		t.Errorf("second Stop = %+v, %v", again, err)
	}
}

func TestDirectStartCap(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	clienttest.StartFakeDaemon(t, f.redis, 3)
	ctx := context.Background()
	f.config.HSet(ctx, "TELEGEN|global", "max_concurrent_jobs", "3")
	req := JobRequest{Port: "Ethernet16"}
	for range 3 {
		if _, err := f.d.Start(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.d.Start(ctx, req)
	e := wantError(t, err, CodeConcurrencyLimit, 429, "")
	if e.Message != "At most 3 concurrent jobs are allowed. Try again later." || e.JobID != "" || e.Field != "" {
		t.Errorf("429 = %#v", e)
	}
	jobs, err := f.d.List(ctx)
	if err != nil || len(jobs) != 4 {
		t.Fatalf("List = %v, %v", jobs, err)
	}
	count := map[jobspec.Status]int{}
	rejected := ""
	for i, j := range jobs {
		count[j.Status]++
		if j.Status == jobspec.Rejected {
			rejected = j.ID
		} else if j.Port != "Ethernet16" {
			t.Errorf("List[%d] = %+v; want port Ethernet16", i, j)
		}
		if i > 0 && j.CreatedAt.Before(jobs[i-1].CreatedAt) {
			t.Errorf("List not in created_at order: %v", jobs)
		}
	}
	if count[jobspec.Running] != 3 || count[jobspec.Rejected] != 1 {
		t.Errorf("List statuses %v", count)
	}
	_, err = f.d.Result(ctx, rejected)
	wantError(t, err, CodeNotFound, 404, "ended rejected (concurrency_limit) without a result")
}

func TestDirectVerdicts(t *testing.T) {
	for _, c := range []struct {
		name   string
		rec    map[string]string
		code   string
		status int
		field  string
		msg    string
	}{
		{"invalid port", map[string]string{"status": "failed", "reason": `invalid: port: "Ethernet99" is not a port of CONFIG_DB PORT`},
			CodeInvalidArgument, 400, "port", `port: "Ethernet99" is not a port of CONFIG_DB PORT`},
		{"invalid filter", map[string]string{"status": "failed", "reason": `invalid: dscp@: item "64": must be an integer 0-63`},
			CodeInvalidArgument, 400, "filters.dscp", `filters.dscp: item "64"`},
		{"attach failed", map[string]string{"status": "failed", "reason": "attach_failed: no such device"},
			CodeJobFailed, 502, "", "failed: attach_failed: no such device"},
		{"feature disabled", map[string]string{"status": "rejected", "reason": "feature_disabled"},
			CodeFeatureDisabled, 503, "", "telegen is disabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, DirectOptions{})
			fd := clienttest.StartFakeDaemon(t, f.redis, 2)
			fd.Decide = func(string, map[string]string) map[string]string { return maps.Clone(c.rec) }
			_, err := f.d.Start(context.Background(), JobRequest{Port: "Ethernet99"})
			e := wantError(t, err, c.code, c.status, c.msg)
			if e.Field != c.field || e.JobID == "" {
				t.Errorf("error %#v: want field %q and the job id", e, c.field)
			}
		})
	}
}

func TestDirectStartingThenRunning(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	fd := clienttest.StartFakeDaemon(t, f.redis, 2)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	fd.Decide = func(id string, _ map[string]string) map[string]string {
		wg.Go(func() {
			time.Sleep(300 * time.Millisecond)
			f.state.HSet(context.Background(), "TELEGEN_JOB_TABLE|"+id, "status", "running", "interface", "Ethernet16")
		})
		return map[string]string{"status": "starting"}
	}
	begin := time.Now()
	job, err := f.d.Start(context.Background(), JobRequest{Port: "Ethernet16"})
	if err != nil || job.Status != jobspec.Running || job.Interface != "Ethernet16" {
		t.Fatalf("Start = %+v, %v; want running", job, err)
	}
	if d := time.Since(begin); d < 300*time.Millisecond || d > 1500*time.Millisecond {
		t.Errorf("Start took %v; want it to return when running was written", d)
	}
}

func TestDirectStartingAtTimeout(t *testing.T) {
	f := newFixture(t, DirectOptions{VerdictTimeout: 500 * time.Millisecond})
	fd := clienttest.StartFakeDaemon(t, f.redis, 2)
	fd.Decide = func(string, map[string]string) map[string]string { return map[string]string{"status": "starting"} }
	job, err := f.d.Start(context.Background(), JobRequest{Port: "Ethernet16"})
	if err != nil || job.Status != jobspec.Starting {
		t.Fatalf("Start = %+v, %v; want admitted, starting", job, err)
	}
	if n, _ := f.config.Exists(context.Background(), "TELEGEN_JOB|"+job.ID).Result(); n != 1 {
		t.Error("the key of an admitted job was removed")
	}
}

func TestDirectNoVerdict(t *testing.T) {
	f := newFixture(t, DirectOptions{VerdictTimeout: 400 * time.Millisecond})
	ctx := context.Background()
	// Watch the key from outside: it must be written, then removed again.
	ps := f.config.Subscribe(ctx, "__keyspace@4__:TELEGEN_JOB|nov1")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	_, err := f.d.start(ctx, "nov1", JobRequest{Port: "Ethernet16"})
	wantError(t, err, CodeUnavailable, 503, "telegend recorded no verdict for job nov1 within 400ms")
	if d := time.Since(begin); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v", d)
	}
	var events []string
	for range 2 {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			t.Fatalf("events so far %v: %v", events, err)
		}
		events = append(events, msg.(*redis.Message).Payload)
	}
	if strings.Join(events, " ") != "hset del" {
		t.Errorf("key events = %v; want hset then del", events)
	}
}

func TestDirectIgnoresOldRecord(t *testing.T) {
	f := newFixture(t, DirectOptions{VerdictTimeout: 3 * time.Second})
	ctx := context.Background()
	// A record of an earlier run under the same id says running; it is not the answer.
	old := jobspec.FormatTime(time.Now().Add(-time.Minute))
	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|again", "status", "running", "created_at", old)
	fd := clienttest.StartFakeDaemon(t, f.redis, 2)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	fd.Decide = func(id string, _ map[string]string) map[string]string {
		wg.Go(func() {
			time.Sleep(300 * time.Millisecond)
			f.state.HSet(ctx, "TELEGEN_JOB_TABLE|"+id, "status", "rejected", "reason", "concurrency_limit",
				"created_at", jobspec.FormatTime(time.Now()))
		})
		return nil // answer late, by hand
	}
	_, err := f.d.start(ctx, "again", JobRequest{Port: "Ethernet16"})
	wantError(t, err, CodeConcurrencyLimit, 429, "At most 2 concurrent jobs")
}

func TestDirectFeatureDisabled(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	ctx := context.Background()
	f.config.HSet(ctx, "FEATURE|telegen", "state", "disabled")
	fd := clienttest.StartFakeDaemon(t, f.redis, 2)
	_, err := f.d.Start(ctx, JobRequest{Port: "Ethernet16"})
	wantError(t, err, CodeFeatureDisabled, 503, "telegen is disabled")
	if keys, _ := f.config.Keys(ctx, "TELEGEN_JOB|*").Result(); len(keys) != 0 || len(fd.Seen()) != 0 {
		t.Errorf("a key was written while the feature is disabled: %v", keys)
	}
}

func TestDirectInvalidBeforeWrite(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	ctx := context.Background()
	f.config.HSet(ctx, "TELEGEN|global", "max_duration_sec", "60", "default_duration_sec", "30")
	_, err := f.d.Start(ctx, JobRequest{Port: "Ethernet16", DurationSec: "61"})
	e := wantError(t, err, CodeInvalidArgument, 400, "duration_sec: must be an integer 1-60")
	if e.Field != "duration_sec" {
		t.Errorf("field = %q", e.Field)
	}
	if keys, _ := f.config.Keys(ctx, "TELEGEN_JOB|*").Result(); len(keys) != 0 {
		t.Errorf("an invalid request was written: %v", keys)
	}
	f.config.HSet(ctx, "TELEGEN|global", "max_concurrent_jobs", "0")
	_, err = f.d.Start(ctx, JobRequest{Port: "Ethernet16"})
	wantError(t, err, CodeInternal, 500, "CONFIG_DB TELEGEN|global: max_concurrent_jobs")
}

func TestDirectKeyInjection(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	ctx := context.Background()
	for _, id := range []string{"a|b", "*", "a\nb", "", "-x", "a b", strings.Repeat("a", 65), "TELEGEN_JOB|x"} {
		_, err := f.d.Get(ctx, id)
		wantError(t, err, CodeInvalidArgument, 400, "job_id: ")
		_, err = f.d.Stop(ctx, id)
		wantError(t, err, CodeInvalidArgument, 400, "job_id: ")
		_, err = f.d.Result(ctx, id)
		wantError(t, err, CodeInvalidArgument, 400, "job_id: ")
		_, err = f.d.Pcap(ctx, id)
		wantError(t, err, CodeInvalidArgument, 400, "job_id: ")
	}
	if n, _ := f.config.DBSize(ctx).Result(); n != 0 {
		t.Errorf("CONFIG_DB has %d keys after refused ids", n)
	}
}

func TestDirectNotFound(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	ctx := context.Background()
	_, err := f.d.Get(ctx, "nope")
	wantError(t, err, CodeNotFound, 404, "job nope not found")
	_, err = f.d.Stop(ctx, "nope")
	wantError(t, err, CodeNotFound, 404, "job nope not found")
	_, err = f.d.Result(ctx, "nope")
	wantError(t, err, CodeNotFound, 404, "job nope not found")
	_, err = f.d.Pcap(ctx, "nope")
	wantError(t, err, CodeNotFound, 404, "job nope not found")
	// A key without a verdict is not a job yet.
	f.config.HSet(ctx, "TELEGEN_JOB|pending1", "port", "Ethernet16")
	_, err = f.d.Get(ctx, "pending1")
	wantError(t, err, CodeNotFound, 404, "has no verdict yet")
}

func TestDirectStopNeverAdmitted(t *testing.T) {
	f := newFixture(t, DirectOptions{StopGrace: 300 * time.Millisecond})
	ctx := context.Background()
	f.config.HSet(ctx, "TELEGEN_JOB|orphan", "port", "Ethernet16")
	job, err := f.d.Stop(ctx, "orphan")
	if err != nil || job.Status != jobspec.Stopped {
		t.Fatalf("Stop = %+v, %v", job, err)
	}
	if n, _ := f.config.Exists(ctx, "TELEGEN_JOB|orphan").Result(); n != 0 {
		t.Error("key left")
	}
}

func TestDirectStopNoDaemon(t *testing.T) {
	f := newFixture(t, DirectOptions{VerdictTimeout: 500 * time.Millisecond})
	ctx := context.Background()
	f.config.HSet(ctx, "TELEGEN_JOB|j", "port", "Ethernet16")
	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|j", "status", "running", "created_at", jobspec.FormatTime(time.Now()))
	_, err := f.d.Stop(ctx, "j")
	wantError(t, err, CodeUnavailable, 503, "recorded no end of the job within 500ms")
}

func TestDirectStopEnded(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	ctx := context.Background()
	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|j", "status", "done", "created_at", jobspec.FormatTime(time.Now()))
	f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|j", "port", "Ethernet20")
	job, err := f.d.Stop(ctx, "j")
	if err != nil || job.Status != jobspec.Done || job.Port != "Ethernet20" {
		t.Fatalf("Stop of a done job = %+v, %v", job, err)
	}
}

func TestDirectPcap(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, DirectOptions{CaptureDir: dir})
	ctx := context.Background()
	read := func(id string) (string, error) {
		rc, err := f.d.Pcap(ctx, id)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|sum", "status", "done")
	f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|sum", "status", "done")
	_, err := read("sum")
	wantError(t, err, CodeNotReady, 409, "has result_detail summary; only result_detail pcaplike jobs keep a pcap")

	f.config.HSet(ctx, "TELEGEN_JOB|live", "port", "Ethernet16", "result_detail", "pcaplike")
	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|live", "status", "running")
	_, err = read("live")
	wantError(t, err, CodeNotReady, 409, "job live is running; its capture is kept when it ends")

	f.state.HSet(ctx, "TELEGEN_JOB_TABLE|lost", "status", "done")
	f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|lost", "status", "done", "pcap_file", "", "pcap_dropped", "7")
	_, err = read("lost")
	wantError(t, err, CodeNotFound, 404, "ended without a capture file")

	good := filepath.Join(dir, "good.pcapng")
	if err := os.WriteFile(good, []byte("PCAPNG"), 0o640); err != nil {
		t.Fatal(err)
	}
	f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|good", "status", "done", "pcap_file", good)
	if got, err := read("good"); err != nil || got != "PCAPNG" {
		t.Errorf("Pcap(good) = %q, %v", got, err)
	}
	for id, path := range map[string]string{
		"evil":  "/etc/passwd",
		"evil2": filepath.Join(dir, "..", "evil2.pcapng"),
		"evil3": "relative/evil3.pcapng",
		"evil4": "/tmp/evil4.pcapng", // not the capture directory
		"evil5": dir,
	} {
		f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|"+id, "status", "done", "pcap_file", path)
		_, err = read(id)
		wantError(t, err, CodeInternal, 500, "refusing pcap_file")
	}
	f.state.HSet(ctx, "TELEGEN_RESULT_TABLE|gone", "status", "done", "pcap_file", filepath.Join(dir, "gone.pcapng"))
	_, err = read("gone")
	wantError(t, err, CodeNotFound, 404, "is gone")
}

func TestDirectRedisDown(t *testing.T) {
	f := newFixture(t, DirectOptions{})
	f.redis.Kill(t)
	ctx := context.Background()
	_, err := f.d.Start(ctx, JobRequest{Port: "Ethernet16"})
	wantError(t, err, CodeUnavailable, 503, "redis unavailable")
	_, err = f.d.List(ctx)
	wantError(t, err, CodeUnavailable, 503, "redis unavailable")
	_, err = OpenDirect(f.redis.Dir+"/missing.json", DirectOptions{})
	wantError(t, err, CodeUnavailable, 503, "cannot find Redis")
}

// TestDirectConcurrentStarts races many Starts through one Direct against a fake daemon with
// two slots: exactly two are admitted and every other one gets the 429.
func TestDirectConcurrentStarts(t *testing.T) {
	f := newFixture(t, DirectOptions{VerdictTimeout: 5 * time.Second})
	clienttest.StartFakeDaemon(t, f.redis, 2)
	const n = 30
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := f.d.Start(context.Background(), JobRequest{Port: fmt.Sprintf("Ethernet%d", 4*i)})
			results <- err
		})
	}
	wg.Wait()
	close(results)
	admitted, capped := 0, 0
	for err := range results {
		switch e, _ := AsError(err); {
		case err == nil:
			admitted++
		case e != nil && e.Status == 429:
			capped++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if admitted != 2 || capped != n-2 {
		t.Errorf("admitted %d, capped %d; want 2 and %d", admitted, capped, n-2)
	}
}
