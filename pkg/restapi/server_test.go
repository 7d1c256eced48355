package restapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/client/clienttest"
	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/restapi/restapitest"
)

// serve runs Run in the background until the test ends and returns the bound addresses.
func serve(t *testing.T, cfg Config, svc client.Service) ([]string, *logRecorder) {
	t.Helper()
	logs := &logRecorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, svc, slog.New(logs)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		if l := logs.find("listening"); len(l) == len(cfg.Listen) {
			var addrs []string
			for _, r := range l {
				addrs = append(addrs, r["addr"])
			}
			return addrs, logs
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("server did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "tgrest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(shortDir(t), "rest.sock")
	// A stale socket from a crashed run is replaced.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	svc := &fakeService{jobs: map[string]client.Job{"j1": {ID: "j1", Status: jobspec.Running}}}
	serve(t, Config{Listen: []string{"unix:" + sock}}, svc)
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v, %v; want a socket with mode 0660", sock, fi.Mode(), err)
	}
	c, err := client.NewHTTP("unix:"+sock, client.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	j, err := c.Get(context.Background(), "j1")
	if err != nil || j.Status != jobspec.Running {
		t.Fatalf("Get over the socket = %+v, %v", j, err)
	}
	// A second server on a socket in use is refused, and so is a path that is not a socket.
	err = Run(context.Background(), Config{Listen: []string{"unix:" + sock}}, svc, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second server on the socket: %v", err)
	}
	file := filepath.Join(shortDir(t), "plain")
	os.WriteFile(file, nil, 0o600)
	err = Run(context.Background(), Config{Listen: []string{"unix:" + file}}, svc, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("server on a regular file: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	ca := restapitest.NewCA(t, "ca")
	srv := ca.Server(t, "server")
	roles := NewRoleMap()
	roles.Add("CN:a=read")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{ClientCA: ca.CertPEM}, "--client-ca needs --tls-cert"},
		{Config{Roles: roles}, "role map needs mTLS"},
		{Config{TLSCert: srv.CertFile}, "go together"},
		{Config{TLSCert: srv.CertFile, TLSKey: srv.KeyFile, Roles: roles}, "needs --client-ca"},
		{Config{TLSCert: srv.CertFile, TLSKey: srv.KeyFile, ClientCA: srv.KeyFile}, "no PEM certificate"},
		{Config{TLSCert: "/nonexistent", TLSKey: srv.KeyFile}, "tls certificate"},
		{Config{Listen: []string{"localhost"}}, "want host:port or unix:/path"},
		{Config{Listen: []string{"unix:"}}, "needs a socket path"},
	} {
		err := Run(context.Background(), c.cfg, &fakeService{}, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v) = %v; want %q", c.cfg, err, c.want)
		}
	}
	if DefaultListen != "127.0.0.1:8420" {
		t.Errorf("DefaultListen = %s", DefaultListen)
	}
}

func TestMTLS(t *testing.T) {
	ca := restapitest.NewCA(t, "telegen-ca")
	other := restapitest.NewCA(t, "other-ca")
	srv := ca.Server(t, "telegen-rest")
	reader := ca.Client(t, "viewer", "noc")
	operator := ca.Client(t, "alice", "noc")
	ouOperator := ca.Client(t, "bob", "ops")
	nobody := ca.Client(t, "mallory", "guests")
	stranger := other.Client(t, "alice")

	roles := NewRoleMap()
	for _, r := range []string{"CN:alice=operate", "OU:noc=read", "OU:ops=operate"} {
		if err := roles.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	svc := &fakeService{jobs: map[string]client.Job{"j1": {ID: "j1", Status: jobspec.Running}}}
	addrs, logs := serve(t, Config{Listen: []string{"127.0.0.1:0"}, TLSCert: srv.CertFile, TLSKey: srv.KeyFile,
		ClientCA: ca.CertPEM, Roles: roles}, svc)
	api := "https://" + addrs[0]

	newClient := func(cert *restapitest.Issued) *client.HTTP {
		cfg := &tls.Config{RootCAs: ca.Pool()}
		if cert != nil {
			cfg.Certificates = []tls.Certificate{cert.TLS}
		}
		c, err := client.NewHTTP(api, client.HTTPOptions{TLS: cfg, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := context.Background()
	req := client.JobRequest{Port: "Ethernet16"}

	// No client certificate: the handshake fails, nothing is served.
	if _, err := newClient(nil).Get(ctx, "j1"); err == nil {
		t.Error("GET without a client certificate succeeded")
	}
	if _, err := newClient(&stranger).Get(ctx, "j1"); err == nil {
		t.Error("GET with a certificate of another CA succeeded")
	}
	// read: GET only.
	rc := newClient(&reader)
	if _, err := rc.Get(ctx, "j1"); err != nil {
		t.Errorf("read GET: %v", err)
	}
	if _, err := rc.List(ctx); err != nil {
		t.Errorf("read list: %v", err)
	}
	_, err := rc.Start(ctx, req)
	if e, ok := client.AsError(err); !ok || e.Status != 403 || !strings.Contains(e.Message, "role read may only GET") {
		t.Errorf("read POST = %v; want 403", err)
	}
	_, err = rc.Stop(ctx, "j1")
	if e, ok := client.AsError(err); !ok || e.Status != 403 {
		t.Errorf("read DELETE = %v; want 403", err)
	}
	// operate: by CN (which wins over its read OU) and by OU.
	for _, cert := range []*restapitest.Issued{&operator, &ouOperator} {
		if j, err := newClient(cert).Start(ctx, req); err != nil || j.Status != jobspec.Running {
			t.Errorf("operate POST as %s = %+v, %v", cert.CertFile, j, err)
		}
	}
	// A certificate the CA signed but the role map does not know.
	_, err = newClient(&nobody).Get(ctx, "j1")
	if e, ok := client.AsError(err); !ok || e.Status != 403 || !strings.Contains(e.Message, "has no role") {
		t.Errorf("unmapped GET = %v; want 403", err)
	}
	if len(svc.started) != 2 {
		t.Errorf("service saw %d starts, want 2 (the operators')", len(svc.started))
	}
	var sawRead bool
	for _, r := range logs.find("request") {
		if r["role"] == "read" && strings.Contains(r["subject"], "CN=viewer") {
			sawRead = true
		}
	}
	if !sawRead {
		t.Errorf("access log lacks role and subject: %v", logs.find("request"))
	}
}

func TestRoleForLeastPrivilege(t *testing.T) {
	ca := restapitest.NewCA(t, "ca")
	both := ca.Client(t, "carol", "ops", "noc")
	m := NewRoleMap()
	m.Add("OU:ops=operate")
	m.Add("OU:noc=read")
	cert, _ := x509.ParseCertificate(both.TLS.Certificate[0])
	if r, ok := m.RoleFor(cert); !ok || r != RoleRead {
		t.Errorf("RoleFor(OU ops+noc) = %q, %v; want read", r, ok)
	}
	m.Add("CN:carol=operate")
	if r, _ := m.RoleFor(cert); r != RoleOperate {
		t.Errorf("a CN rule must win: %q", r)
	}
}

// TestRESTOverRedis drives the real Direct backend through HTTP against a redis-server and a
// fake daemon: the wiring telegen-rest runs, minus the kernel.
func TestRESTOverRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	clienttest.StartFakeDaemon(t, r, 2)
	svc, err := client.OpenDirect(r.ConfigPath, client.DirectOptions{VerdictTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	addrs, _ := serve(t, Config{Listen: []string{"127.0.0.1:0"}}, svc)
	base := "http://" + addrs[0] + client.JobsPath
	post := func() (int, string) {
		resp, err := http.Post(base, "application/json", strings.NewReader(`{"port":"Ethernet16","span_method":"direct","duration_sec":60}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var ids []string
	for range 2 {
		status, body := post()
		if status != 201 || !strings.Contains(body, `"status":"running","interface":"Ethernet16"}`) {
			t.Fatalf("POST: %d %s", status, body)
		}
		ids = append(ids, body[len(`{"job_id":"`):len(`{"job_id":"`)+36])
	}
	status, body := post()
	if want := `{"error":"concurrency_limit","message":"At most 2 concurrent jobs are allowed. Try again later."}`; status != 429 || body != want {
		t.Errorf("third POST: %d %s\nwant 429 %s", status, body, want)
	}
	c, _ := client.NewHTTP("http://"+addrs[0], client.HTTPOptions{})
	defer c.Close()
	ctx := context.Background()
	j, err := c.Get(ctx, ids[0])
	if err != nil || j.Status != jobspec.Running || j.StartedAt.IsZero() || j.ExpiresAt.Sub(j.StartedAt) != time.Minute {
		t.Errorf("GET = %+v, %v", j, err)
	}
	_, err = c.Get(ctx, "00000000-0000-4000-8000-000000000000")
	if e, ok := client.AsError(err); !ok || e.Status != 404 {
		t.Errorf("GET unknown = %v", err)
	}
	_, err = c.Start(ctx, client.JobRequest{Port: "Ethernet16", Filters: client.Filters{DSCP: client.List{"99"}}})
	if e, ok := client.AsError(err); !ok || e.Status != 400 || e.Field != "filters.dscp" {
		t.Errorf("dscp 99 = %#v", err)
	}
	s, err := c.Stop(ctx, ids[0])
	if err != nil || s.Status != jobspec.Stopped {
		t.Errorf("DELETE = %+v, %v", s, err)
	}
	res, err := c.Result(ctx, ids[0])
	if err != nil || res["totals_exact"] != true || res.Uint("packets_total") != 0 {
		t.Errorf("results = %v, %v", res, err)
	}
	jobs, err := c.List(ctx)
	if err != nil || len(jobs) != 3 {
		t.Errorf("list = %v, %v", jobs, err)
	}
	_, err = c.Pcap(ctx, ids[0])
	if e, ok := client.AsError(err); !ok || e.Status != 409 {
		t.Errorf("pcap of a summary job = %v", err)
	}
	// A pcaplike job's capture, as telegend names it in the result.
	capture := filepath.Join(t.TempDir(), "cap1.pcapng")
	os.WriteFile(capture, []byte("\x0a\x0d\x0d\x0aPCAPNG"), 0o640)
	r.Client(t, clienttest.StateDB).HSet(ctx, "TELEGEN_RESULT_TABLE|cap1", "status", "done", "pcap_file", capture)
	resp, err := http.Get(base + "/cap1/results?format=pcap")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "\x0a\x0d\x0d\x0aPCAPNG" || resp.Header.Get("Content-Type") != "application/x-pcapng" {
		t.Errorf("pcap: %d %q %v", resp.StatusCode, b, resp.Header)
	}
}

func TestHTTPClientUnavailable(t *testing.T) {
	sock := filepath.Join(shortDir(t), "none.sock")
	c, err := client.NewHTTP("unix:"+sock, client.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.List(context.Background())
	if e, ok := client.AsError(err); !ok || e.Code != client.CodeUnavailable {
		t.Errorf("List with no server = %v; want unavailable", err)
	}
	for _, bad := range []string{"ftp://x", "localhost:8420", "unix:", "http://"} {
		if _, err := client.NewHTTP(bad, client.HTTPOptions{}); err == nil {
			t.Errorf("NewHTTP(%q) accepted", bad)
		}
	}
}
