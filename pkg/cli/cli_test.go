package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/client/clienttest"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/restapi"
)

// run runs the app in-process and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := App()
	app.Writer, app.ErrWriter = &out, &errb
	err := app.RunContext(context.Background(), append([]string{"telegen-sonic"}, args...))
	return out.String(), errb.String(), ExitCode(err)
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}`)

const capLine = "ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)\n"

func TestCLIDirect(t *testing.T) {
	r := testenv.StartRedis(t)
	clienttest.StartFakeDaemon(t, r, 2)
	db := "--db-config=" + r.ConfigPath
	testCLI(t, r, db)
}

// TestCLIThroughREST runs the same commands with --api against telegen-rest's handler.
func TestCLIThroughREST(t *testing.T) {
	r := testenv.StartRedis(t)
	clienttest.StartFakeDaemon(t, r, 2)
	svc, err := client.OpenDirect(r.ConfigPath, client.DirectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	srv := httptest.NewServer(restapi.NewHandler(svc, restapi.Options{}))
	defer srv.Close()
	testCLI(t, r, "--api="+srv.URL)
}

func testCLI(t *testing.T, r *testenv.Redis, conn string) {
	out, errOut, code := run(t, "start", conn, "--port", "Ethernet16", "--span-method", "direct", "--duration", "2m",
		"--filter", "dscp=10;46,ip_proto=tcp", "--filter", "l4_dport=80,443")
	if code != 0 || errOut != "" || !regexp.MustCompile(`^job `+uuidRE.String()+` running on Ethernet16\n$`).MatchString(out) {
		t.Fatalf("start: code %d, out %q, err %q", code, out, errOut)
	}
	id := uuidRE.FindString(out)
	fields, _ := r.Client(t, clienttest.ConfigDB).HGetAll(context.Background(), "TELEGEN_JOB|"+id).Result()
	if fields["dscp@"] != "10,46" || fields["ip_proto@"] != "tcp" || fields["l4_dport@"] != "80,443" || fields["duration_sec"] != "120" {
		t.Errorf("TELEGEN_JOB|%s = %v", id, fields)
	}
	out, _, code = run(t, "start", conn, "--port", "Ethernet20", "-o", "json")
	var created map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || created["status"] != "running" || len(created) != 3 {
		t.Fatalf("start -o json: %d %q", code, out)
	}
	out, errOut, code = run(t, "start", conn, "--port", "Ethernet24")
	if code != ExitCap || out != "" || errOut != capLine {
		t.Errorf("start at the cap: code %d, out %q, stderr %q\nwant 3 and %q", code, out, errOut, capLine)
	}

	out, _, code = run(t, "status", conn, "--job", id)
	if code != 0 || !strings.Contains(out, "Status     running") || !strings.Contains(out, "Port       Ethernet16") ||
		!strings.Contains(out, "Expires") {
		t.Errorf("status: %d\n%s", code, out)
	}
	out, _, code = run(t, "status", conn, "-o", "json", id)
	var j client.Job
	if code != 0 || json.Unmarshal([]byte(out), &j) != nil || j.ID != id || j.Status != jobspec.Running {
		t.Errorf("status -o json: %d %s", code, out)
	}
	out, _, code = run(t, "list", conn)
	if code != 0 || !strings.HasPrefix(out, "JOB ") || strings.Count(out, "running") != 2 || !strings.Contains(out, "concurrency_limit") {
		t.Errorf("list: %d\n%s", code, out)
	}
	out, _, code = run(t, "list", conn, "--output=json")
	var l client.JobList
	if code != 0 || json.Unmarshal([]byte(out), &l) != nil || len(l.Jobs) != 3 {
		t.Errorf("list json: %d %s", code, out)
	}
	_, errOut, code = run(t, "results", conn, "--job", id)
	if code != ExitOther || !strings.Contains(errOut, "is running; its result is written when it ends (HTTP 409)") {
		t.Errorf("results of a running job: %d %q", code, errOut)
	}
	out, _, code = run(t, "stop", conn, "--job", id)
	if code != 0 || out != "job "+id+" stopped\n" {
		t.Errorf("stop: %d %q", code, out)
	}
	out, _, code = run(t, "results", conn, "--job", id, "--format", "json")
	var res map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res["status"] != "stopped" || res["totals_exact"] != true {
		t.Errorf("results json: %d %s", code, out)
	}
	out, _, code = run(t, "results", conn, id)
	if code != 0 || !strings.Contains(out, "job_id") || !strings.Contains(out, "window_sec") {
		t.Errorf("results table: %d\n%s", code, out)
	}
	out, _, code = run(t, "watch", conn, "--job", id)
	if code != 0 || !strings.Contains(out, "STOPPED") || !strings.Contains(out, "ended stopped") {
		t.Errorf("watch of an ended job: %d\n%s", code, out)
	}

	for _, c := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"start", "--port", "Ethernet16", "--filter", "dscp=99"}, ExitInvalid,
			"ERROR: --filter dscp: item \"99\": must be an integer 0-63 (HTTP 400)\n"},
		{[]string{"start", "--port", "Ethernet16", "--vlan", "5000"}, ExitInvalid, "ERROR: --vlan: must be an integer 1-4094"},
		{[]string{"start", "--port", "Ethernet16", "--duration", "1.5s"}, ExitInvalid, "ERROR: --duration: must be an integer"},
		{[]string{"start", "--port", "Ethernet16", "--filter", "color=red"}, ExitInvalid, `ERROR: --filter: unknown key "color"`},
		{[]string{"start"}, ExitInvalid, "ERROR: --port is required\n"},
		{[]string{"start", "--port", "E0", "--bogus"}, ExitInvalid, "ERROR: flag provided but not defined: -bogus"},
		{[]string{"list", "-o", "xml"}, ExitInvalid, `ERROR: --output must be table or json, not "xml"`},
		{[]string{"status"}, ExitInvalid, "ERROR: --job is required"},
		{[]string{"status", "--job", "a|b"}, ExitInvalid, "ERROR: --job: must be 1-64 characters"},
		{[]string{"status", "--job", "nope"}, ExitOther, "ERROR: job nope not found (HTTP 404)"},
		{[]string{"results", "--job", id, "--format", "pcap"}, ExitOther, "ERROR: job " + id + " has result_detail summary; only result_detail pcaplike jobs keep a pcap (HTTP 409)"},
		{[]string{"results", "--job", id, "--format", "xml"}, ExitInvalid, `ERROR: --format must be json, table or pcap`},
	} {
		out, errOut, code := run(t, append(c.args, conn)...)
		if code != c.code || !strings.HasPrefix(errOut, c.err) || out != "" {
			t.Errorf("%v: code %d, stdout %q, stderr %q\nwant %d and %q", c.args, code, out, errOut, c.code, c.err)
		}
	}
}

func TestCLIUsage(t *testing.T) {
	_, errOut, code := run(t, "frobnicate")
	if code != ExitInvalid || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
	out, _, code := run(t, "--help")
	if code != 0 || !strings.Contains(out, "watch") || !strings.Contains(out, "3 concurrency cap reached") {
		t.Errorf("--help: %d\n%s", code, out)
	}
	out, _, code = run(t, "start", "--help")
	if code != 0 || !strings.Contains(out, "--filter") || !strings.Contains(out, "by ';'") {
		t.Errorf("start --help: %d\n%s", code, out)
	}
}

func TestCLIUnavailable(t *testing.T) {
	r := testenv.StartRedis(t)
	ctx := context.Background()
	r.Client(t, clienttest.ConfigDB).HSet(ctx, "FEATURE|telegen", "state", "disabled")
	_, errOut, code := run(t, "start", "--db-config", r.ConfigPath, "--port", "Ethernet16")
	if code != ExitUnavailable || !strings.HasPrefix(errOut, "ERROR: telegen is disabled") {
		t.Errorf("feature disabled: %d %q", code, errOut)
	}
	r.Client(t, clienttest.ConfigDB).Del(ctx, "FEATURE|telegen")
	_, errOut, code = run(t, "start", "--db-config", r.ConfigPath, "--port", "Ethernet16", "--timeout", "300ms")
	if code != ExitUnavailable || !strings.Contains(errOut, "no verdict") || !strings.HasSuffix(errOut, "(HTTP 503)\n") {
		t.Errorf("no daemon: %d %q", code, errOut)
	}
	if n, _ := r.Client(t, clienttest.ConfigDB).Keys(ctx, "TELEGEN_JOB|*").Result(); len(n) != 0 {
		t.Errorf("keys left after no verdict: %v", n)
	}
	r.Kill(t)
	_, errOut, code = run(t, "list", "--db-config", r.ConfigPath)
	if code != ExitUnavailable || !strings.Contains(errOut, "redis unavailable") {
		t.Errorf("redis down: %d %q", code, errOut)
	}
	_, errOut, code = run(t, "list", "--api", "unix:"+r.Dir+"/nothing.sock")
	if code != ExitUnavailable || !strings.Contains(errOut, "telegen-rest unavailable") {
		t.Errorf("rest down: %d %q", code, errOut)
	}
}

func TestParseFilters(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want client.Filters
	}{
		{nil, client.Filters{}},
		{[]string{"dscp=46"}, client.Filters{DSCP: client.List{"46"}}},
		{[]string{"dscp=10;46", "dscp=0"}, client.Filters{DSCP: client.List{"10", "46", "0"}}},
		{[]string{"dscp=10,46,ip_proto=tcp;udp,l4_dport=80-90"}, client.Filters{DSCP: client.List{"10", "46"},
			IPProto: client.List{"tcp", "udp"}, L4DstPort: client.List{"80-90"}}},
		{[]string{"src_cidr=10.0.0.0/8,dst_cidr=2001:db8::/32", "l4_sport=1"}, client.Filters{SrcCIDR: "10.0.0.0/8",
			DstCIDR: "2001:db8::/32", L4SrcPort: client.List{"1"}}},
		{[]string{" dscp = 1 ,"}, client.Filters{DSCP: client.List{"1"}}},
	} {
		got, err := ParseFilters(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseFilters(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"46"}, {"dscp"}, {"src_cidr=10.0.0.0/8,10.1.0.0/16"}, {"src_cidr=a", "src_cidr=b"},
		{"dscp=1;;2"}, {"dscp="}, {"port=Ethernet0"}} {
		if _, err := ParseFilters(bad); err == nil || codeFor(err) != ExitInvalid || !strings.HasPrefix(err.Error(), "--filter") {
			t.Errorf("ParseFilters(%q) = %v; want a --filter usage error", bad, err)
		}
	}
}

func TestFormatError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
		code int
	}{
		{&client.Error{Status: 429, Code: client.CodeConcurrencyLimit, Message: client.CapMessage(2)},
			"ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)", ExitCap},
		{&client.Error{Code: client.CodeInvalidArgument, Field: "filters.l4_dport", Message: "filters.l4_dport: range start exceeds its end"},
			"ERROR: --filter l4_dport: range start exceeds its end (HTTP 400)", ExitInvalid},
		{&client.Error{Code: client.CodeInvalidArgument, Field: "duration_sec", Message: "duration_sec: too long"},
			"ERROR: --duration: too long (HTTP 400)", ExitInvalid},
		{&client.Error{Status: 503, Code: client.CodeUnavailable, Message: "no verdict"}, "ERROR: no verdict (HTTP 503)", ExitUnavailable},
		{&client.Error{Status: 503, Code: client.CodeFeatureDisabled, Message: "off"}, "ERROR: off (HTTP 503)", ExitUnavailable},
		{&client.Error{Status: 502, Code: client.CodeJobFailed, Message: "attach_failed"}, "ERROR: attach_failed (HTTP 502)", ExitOther},
		{&client.Error{Status: 403, Code: client.CodeForbidden, Message: "no"}, "ERROR: no (HTTP 403)", ExitOther},
		{usagef("bad"), "ERROR: bad", ExitInvalid},
		{context.Canceled, "ERROR: context canceled", ExitOther},
	} {
		if got := FormatError(c.err); got != c.want {
			t.Errorf("FormatError(%v) = %q, want %q", c.err, got, c.want)
		}
		if got := codeFor(c.err); got != c.code {
			t.Errorf("exit code for %v = %d, want %d", c.err, got, c.code)
		}
	}
	if ExitCode(nil) != 0 {
		t.Error("ExitCode(nil) != 0")
	}
}

func TestDurationSec(t *testing.T) {
	for in, want := range map[string]string{"": "", "30": "30", "90s": "90", "2m": "120", "1h": "3600", "1.5s": "1.5s", "x": "x", "-5s": "-5s"} {
		if got := durationSec(in); got != want {
			t.Errorf("durationSec(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderWatch(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	j := client.Job{ID: "j1", Status: jobspec.Running, Port: "Ethernet16", Interface: "Ethernet16",
		StartedAt: start, ExpiresAt: start.Add(30 * time.Second), UpdatedAt: start.Add(10 * time.Second), PacketsTotal: 1000, BytesTotal: 1_000_000}
	var m meter
	m.add(j, start.Add(10*time.Second))
	j2 := j
	j2.UpdatedAt, j2.PacketsTotal, j2.BytesTotal = start.Add(12*time.Second), 2000, 3_000_000
	m.add(j2, start.Add(12*time.Second))
	j2.TopFlows = []client.Flow{{FiveTuple: "10.0.0.1:1000->10.0.0.2:80/TCP", Pkts: 10, Bytes: 1500}}
	frame := renderWatch(j2, m, nil, start.Add(10*time.Second))
	for _, want := range []string{
		"telegen job j1  RUNNING  Ethernet16\n",
		"[##########....................]  33%  20s left of 30s\n",
		"packets  2000             500 pps\n",
		"bytes    3.0 MB           8.0 Mbit/s\n",
		"10.0.0.1:1000->10.0.0.2:80/TCP",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	pend := client.Job{ID: "j2", Status: jobspec.Pending}
	if f := renderWatch(pend, meter{}, nil, start); !strings.Contains(f, "waiting for a free slot") {
		t.Errorf("pending frame:\n%s", f)
	}
	done := j
	done.Status, done.FinishedAt = jobspec.Done, start.Add(30*time.Second)
	res := client.ResultFromFields("j1", map[string]string{"window_sec": "30.000", "packets_total": "5", "bytes_total": "300",
		"top_flows": `[{"5tuple":"a->b/UDP","pkts":5,"bytes":300}]`})
	f := renderWatch(done, m, res, start.Add(40*time.Second))
	for _, want := range []string{"[##############################] 100%  0s left of 30s", "ended done: window 30.000s, 5 packets, 300 bytes", "a->b/UDP"} {
		if !strings.Contains(f, want) {
			t.Errorf("done frame lacks %q:\n%s", want, f)
		}
	}
	if strings.Contains(f, "pps") {
		t.Errorf("an ended job shows rates:\n%s", f)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 1_234_567: "1.2 MB", 5e12: "5.0 TB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if got := humanBits(4.1e6); got != "4.1 Mbit/s" {
		t.Errorf("humanBits = %q", got)
	}
}

func TestCLIStartWait(t *testing.T) {
	r := testenv.StartRedis(t)
	fd := clienttest.StartFakeDaemon(t, r, 2)
	state := r.Client(t, clienttest.StateDB)
	fd.Decide = func(id string, f map[string]string) map[string]string {
		go func() {
			time.Sleep(1500 * time.Millisecond)
			ctx := context.Background()
			state.HSet(ctx, "TELEGEN_RESULT_TABLE|"+id, "status", "done", "window_sec", "1.500", "packets_total", "42",
				"top_flows", `[{"5tuple":"10.0.0.1:1->10.0.0.2:2/UDP","pkts":42,"bytes":4200}]`)
			state.HSet(ctx, "TELEGEN_JOB_TABLE|"+id, "status", "done", "finished_at", jobspec.FormatTime(time.Now()))
		}()
		return map[string]string{"status": "running", "interface": f["port"]}
	}
	out, errOut, code := run(t, "start", "--db-config", r.ConfigPath, "--port", "Ethernet16", "--wait")
	if code != 0 || !strings.Contains(out, " running on Ethernet16\n") || !strings.Contains(out, "packets_total") ||
		!strings.Contains(out, "10.0.0.1:1->10.0.0.2:2/UDP") {
		t.Errorf("start --wait: %d\n%s\n%s", code, out, errOut)
	}
}
