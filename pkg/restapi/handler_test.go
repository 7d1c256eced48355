package restapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// fakeService is a client.Service answering from memory, for handler logic only.
type fakeService struct {
	mu      sync.Mutex
	started []client.JobRequest
	startFn func(client.JobRequest) (client.Job, error)
	jobs    map[string]client.Job
}

func (f *fakeService) Start(_ context.Context, req client.JobRequest) (client.Job, error) {
	f.mu.Lock()
	f.started = append(f.started, req)
	f.mu.Unlock()
	if f.startFn != nil {
		return f.startFn(req)
	}
	if _, err := req.Validate("fake1", jobspec.DefaultGlobals()); err != nil {
		return client.Job{}, err
	}
	return client.Job{ID: "fake1", Status: jobspec.Running, Interface: req.Port, Port: req.Port}, nil
}

func (f *fakeService) Get(_ context.Context, id string) (client.Job, error) {
	if j, ok := f.jobs[id]; ok {
		return j, nil
	}
	return client.Job{}, &client.Error{Status: 404, Code: client.CodeNotFound, Message: "job " + id + " not found"}
}

func (f *fakeService) List(context.Context) ([]client.Job, error) {
	var out []client.Job
	for _, j := range f.jobs {
		out = append(out, j)
	}
	return out, nil
}

func (f *fakeService) Result(_ context.Context, id string) (client.Result, error) {
	return client.ResultFromFields(id, map[string]string{"packets_total": "5", "totals_exact": "true"}), nil
}

func (f *fakeService) Pcap(_ context.Context, id string) (io.ReadCloser, error) {
	if id == "pl" {
		return io.NopCloser(strings.NewReader("PCAPDATA")), nil
	}
	return nil, &client.Error{Status: 409, Code: client.CodeNotReady, Message: "not pcaplike"}
}

func (f *fakeService) Stop(_ context.Context, id string) (client.Job, error) {
	return client.Job{ID: id, Status: jobspec.Stopped}, nil
}

func (f *fakeService) Close() error { return nil }

// logRecorder keeps log records as flat attribute maps.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, m)
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) find(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

func do(t *testing.T, h http.Handler, method, path, body string) (int, string, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), rec.Header()
}

func TestHandlerRoutes(t *testing.T) {
	svc := &fakeService{jobs: map[string]client.Job{"j1": {ID: "j1", Status: jobspec.Running, Port: "Ethernet16"}}}
	logs := &logRecorder{}
	h := NewHandler(svc, Options{Logger: slog.New(logs)})
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/monitor/jobs", `{"port":"Ethernet16","span_method":"direct"}`, 201,
			`{"job_id":"fake1","status":"running","interface":"Ethernet16"}`},
		{"POST", "/v1/monitor/jobs", `{"port":"Ethernet16","filters":{"dscp":[99]}}`, 400,
			`{"error":"invalid_argument","message":"filters.dscp: item \"99\": must be an integer 0-63","field":"filters.dscp"}`},
		{"POST", "/v1/monitor/jobs", `{"port":"Ethernet16","color":"red"}`, 400,
			`{"error":"invalid_argument","message":"color: unknown field","field":"color"}`},
		{"POST", "/v1/monitor/jobs", `{"port":`, 400, `"error":"invalid_argument"`},
		{"GET", "/v1/monitor/jobs/j1", "", 200, `{"job_id":"j1","status":"running","port":"Ethernet16","packets_total":0,"bytes_total":0}`},
		{"GET", "/v1/monitor/jobs/nope", "", 404, `{"error":"not_found","message":"job nope not found"}`},
		{"GET", "/v1/monitor/jobs", "", 200, `{"jobs":[{"job_id":"j1"`},
		{"DELETE", "/v1/monitor/jobs/j1", "", 200, `{"job_id":"j1","status":"stopped"}`},
		{"GET", "/v1/monitor/jobs/j1/results", "", 200, `{"job_id":"j1","packets_total":5,"totals_exact":true}`},
		{"GET", "/v1/monitor/jobs/j1/results?format=json", "", 200, `"packets_total":5`},
		{"GET", "/v1/monitor/jobs/pl/results?format=pcap", "", 200, `PCAPDATA`},
		{"GET", "/v1/monitor/jobs/j1/results?format=pcap", "", 409, `{"error":"not_ready","message":"not pcaplike"}`},
		{"GET", "/v1/monitor/jobs/j1/results?format=xml", "", 400,
			`{"error":"invalid_argument","message":"format: must be json or pcap, not \"xml\"","field":"format"}`},
		{"GET", "/v1/monitor/jobs/a%7Cb", "", 400, `"field":"job_id"`},
		{"GET", "/v1/monitor/jobs/a%0Ab", "", 400, `"field":"job_id"`},
		{"DELETE", "/v1/monitor/jobs/%2A", "", 400, `"field":"job_id"`},
		{"GET", "/v1/monitor/jobs/a%2Fb/results", "", 400, `"field":"job_id"`},
		{"PUT", "/v1/monitor/jobs/j1", "", 405, `"error":"method_not_allowed"`},
		{"PATCH", "/v1/monitor/jobs", "", 405, `"error":"method_not_allowed"`},
		{"GET", "/v2/anything", "", 404, `"error":"not_found"`},
	} {
		status, body, hdr := do(t, h, c.method, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: %d %s\nwant %d with %s", c.method, c.path, status, body, c.status, c.want)
		}
		if c.want != "PCAPDATA" && hdr.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, hdr.Get("Content-Type"))
		}
	}
	if len(svc.started) != 2 {
		t.Errorf("the service saw %d starts; malformed bodies must not reach it", len(svc.started))
	}
	access := logs.find("request")
	if len(access) == 0 || access[0]["method"] != "POST" || access[0]["status"] != "201" || access[0]["job"] != "fake1" ||
		access[0]["path"] != "/v1/monitor/jobs" || access[0]["duration_ms"] == "" || access[0]["role"] != "operate" {
		t.Errorf("access log = %v", access)
	}
}

func TestHandlerCapBodyExact(t *testing.T) {
	svc := &fakeService{startFn: func(client.JobRequest) (client.Job, error) {
		return client.Job{}, &client.Error{Status: 429, Code: client.CodeConcurrencyLimit, Message: client.CapMessage(2)}
	}}
	status, body, hdr := do(t, NewHandler(svc, Options{}), "POST", "/v1/monitor/jobs", `{"port":"Ethernet16"}`)
	if want := `{"error":"concurrency_limit","message":"At most 2 concurrent jobs are allowed. Try again later."}`; status != 429 || body != want {
		t.Errorf("got %d %s\nwant 429 %s", status, body, want)
	}
	if hdr.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
}

func TestHandlerErrors(t *testing.T) {
	svc := &fakeService{startFn: func(client.JobRequest) (client.Job, error) { return client.Job{}, fmt.Errorf("boom") }}
	status, body, _ := do(t, NewHandler(svc, Options{}), "POST", "/v1/monitor/jobs", `{"port":"Ethernet16"}`)
	if status != 500 || body != `{"error":"internal","message":"boom"}` {
		t.Errorf("plain error: %d %s", status, body)
	}
	h := NewHandler(&fakeService{}, Options{MaxBodyBytes: 100})
	status, body, _ = do(t, h, "POST", "/v1/monitor/jobs", `{"port":"`+strings.Repeat("x", 200)+`"}`)
	if status != 413 || !strings.Contains(body, `"error":"request_too_large"`) {
		t.Errorf("large body: %d %s", status, body)
	}
}

func TestRoleMap(t *testing.T) {
	m := NewRoleMap()
	rules := "# roles\n\nCN:alice=operate\nOU:noc=read\nOU:ops=operate\ncn:weird=name=read\n"
	if err := m.read(strings.NewReader(rules), "roles.txt"); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 4 {
		t.Errorf("Len = %d", m.Len())
	}
	for _, bad := range []string{"alice=operate", "CN:alice=admin", "XX:alice=read", "CN:=read", "CN:alice"} {
		if err := NewRoleMap().read(strings.NewReader("\n"+bad), "roles.txt"); err == nil || !strings.HasPrefix(err.Error(), "roles.txt:2: ") {
			t.Errorf("rule %q: error %v; want one naming roles.txt:2", bad, err)
		}
	}
}
