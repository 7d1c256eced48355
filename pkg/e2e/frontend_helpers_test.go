package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The front-end binaries, built once per test binary next to telegend (TestMain's directory
// removes them).
var (
	frontendOnce sync.Once
	frontendErr  error
	restBin      string
	cliBin       string
)

func buildFrontends(t testing.TB) {
	t.Helper()
	frontendOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			frontendErr = err
			return
		}
		dir := filepath.Dir(telegendBin)
		restBin, cliBin = filepath.Join(dir, "telegen-rest"), filepath.Join(dir, "telegen-sonic")
		for bin, pkg := range map[string]string{restBin: "./cmd/telegen-rest", cliBin: "./cmd/telegen-sonic"} {
			args := []string{"build", "-o", bin, pkg}
			if os.Getenv("TELEGEN_E2E_RACE") != "0" {
				args = []string{"build", "-race", "-o", bin, pkg}
			}
			cmd := exec.Command("go", args...)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				frontendErr = fmt.Errorf("building %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if frontendErr != nil {
		t.Fatal(frontendErr)
	}
}

// restProc is one telegen-rest process.
type restProc struct {
	cmd   *exec.Cmd
	url   string // http(s)://127.0.0.1:port of the first TCP listener
	addrs []string
	done  chan error

	mu  sync.Mutex
	log bytes.Buffer
}

// startREST runs telegen-rest against the switch's Redis on 127.0.0.1 (an ephemeral port)
// plus whatever extra flags say, and stops it with SIGTERM when the test ends.
func startREST(t testing.TB, s *vswitch, extra ...string) *restProc {
	t.Helper()
	buildFrontends(t)
	scheme := "http"
	for _, a := range extra {
		if a == "--tls-cert" {
			scheme = "https"
		}
	}
	args := append([]string{"--db-config", s.redis.ConfigPath, "--listen", "127.0.0.1:0", "--log-format", "json"}, extra...)
	cmd := exec.Command(restBin, args...)
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	p := &restProc{cmd: cmd, done: make(chan error, 1)}
	listening := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "listening" {
				listening <- fmt.Sprint(rec["addr"])
			}
		}
		p.done <- cmd.Wait()
	}()
	want := 1 + strings.Count(strings.Join(extra, " "), "--listen ")
	timeout := time.After(10 * time.Second)
	for len(p.addrs) < want {
		select {
		case a := <-listening:
			p.addrs = append(p.addrs, a)
		case err := <-p.done:
			t.Fatalf("telegen-rest exited: %v\n%s", err, p.logText())
		case <-timeout:
			t.Fatalf("telegen-rest did not listen within 10 s\n%s", p.logText())
		}
	}
	p.url = scheme + "://" + p.addrs[0]
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("telegen-rest exited with %v", err)
			}
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("telegen-rest did not exit within 10 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("telegen-rest log:\n%s", p.logText())
		}
	})
	return p
}

func (p *restProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// accessLog returns the access-log records of telegen-rest so far.
func (p *restProc) accessLog() []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(p.logText(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" {
			out = append(out, rec)
		}
	}
	return out
}

// runCLI runs telegen-sonic with the switch's database_config.json and returns stdout, stderr
// and the exit code.
func runCLI(t testing.TB, s *vswitch, args ...string) (string, string, int) {
	t.Helper()
	buildFrontends(t)
	cmd := exec.Command(cliBin, args...)
	cmd.Env = append(os.Environ(), "DB_CONFIG_PATH="+s.redis.ConfigPath)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("telegen-sonic %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// httpDo sends one request and returns the status and the whole body.
func httpDo(hc *http.Client, method, url, body string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		return 0, "", err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// liveSampler watches the switch while a test runs: the number of live jobs STATE_DB shows and
// the number of programs the kernel has attached, keeping the maxima.
type liveSampler struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	maxLive  int
	maxAtt   int
	samples  int
	firstErr error
}

func startSampler(t testing.TB, s *vswitch) *liveSampler {
	ls := &liveSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(ls.done)
		ctx := context.Background()
		for {
			select {
			case <-ls.stop:
				return
			default:
			}
			live := 0
			keys, err := s.state.Keys(ctx, "TELEGEN_JOB_TABLE|*").Result()
			if err == nil && len(keys) > 0 {
				cmds, _ := s.state.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range keys {
						p.HGet(ctx, k, "status")
					}
					return nil
				})
				for _, c := range cmds {
					switch c.(*redis.StringCmd).Val() {
					case "starting", "running", "stopping":
						live++
					}
				}
			}
			att, aerr := s.attachmentsErr()
			ls.mu.Lock()
			ls.samples++
			ls.maxLive = max(ls.maxLive, live)
			ls.maxAtt = max(ls.maxAtt, len(att))
			if ls.firstErr == nil {
				ls.firstErr = cmpErr(err, aerr)
			}
			ls.mu.Unlock()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	t.Cleanup(ls.finish)
	return ls
}

func cmpErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (ls *liveSampler) finish() {
	select {
	case <-ls.stop:
	default:
		close(ls.stop)
	}
	<-ls.done
}

// check stops the sampler and fails if it ever saw more than limit live jobs or attachments.
func (ls *liveSampler) check(t testing.TB, limit int) {
	t.Helper()
	ls.finish()
	ls.mu.Lock()
	defer ls.mu.Unlock()
	t.Logf("sampler: %d samples, max live %d, max attached %d", ls.samples, ls.maxLive, ls.maxAtt)
	if ls.firstErr != nil {
		t.Errorf("sampler: %v", ls.firstErr)
	}
	if ls.samples < 10 {
		t.Errorf("sampler took only %d samples", ls.samples)
	}
	if ls.maxLive > limit || ls.maxAtt > limit {
		t.Errorf("sampler saw %d live jobs and %d attached programs; the limit is %d", ls.maxLive, ls.maxAtt, limit)
	}
}
