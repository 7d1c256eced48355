package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/redis/go-redis/v9"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// Built once per test binary by TestMain.
var (
	telegendBin string
	trafgenBin  string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "tg-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	telegendBin = filepath.Join(dir, "telegend")
	trafgenBin = filepath.Join(dir, "trafgen")
	for bin, pkg := range map[string]string{telegendBin: "./cmd/telegend", trafgenBin: "./scripts/trafgen"} {
		args := []string{"build", "-o", bin, pkg}
		if os.Getenv("TELEGEN_E2E_RACE") != "0" {
			args = append(args[:1], append([]string{"-race"}, args[1:]...)...)
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// modes are the attach paths every datapath test runs on: TCX (this host) and the tc clsact
// path SONiC's 6.1 kernel uses, forced.
var modes = []string{"tcx", "clsact"}

var nsCounter atomic.Int64

// vswitch is a SONiC switch in miniature for one test: Redis with SONiC's DB layout, a network
// namespace holding ports EthernetN, and a second one holding their far ends vh-EthernetN.
type vswitch struct {
	t        testing.TB
	redis    *testenv.Redis
	config   *redis.Client // CONFIG_DB
	state    *redis.Client // STATE_DB
	swNS     string        // netns name of the switch side (ports, telegend)
	hostNS   string        // netns name of the far ends
	pinDir   string
	stateDir string
	ports    []string
	daemon   *daemonProc
	mode     string
}

func newSwitch(t testing.TB, mode string, ports ...string) *vswitch {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireTool(t, "redis-server")
	testenv.RequireTool(t, "redis-cli")
	testenv.RequireTool(t, "tcpreplay")
	testenv.RequireTool(t, "tshark")
	testenv.RequireTool(t, "nsenter")
	n := nsCounter.Add(1)
	s := &vswitch{
		t:        t,
		redis:    testenv.StartRedis(t),
		swNS:     fmt.Sprintf("tgsw-%d-%d", os.Getpid(), n),
		hostNS:   fmt.Sprintf("tghs-%d-%d", os.Getpid(), n),
		pinDir:   fmt.Sprintf("/sys/fs/bpf/tg-e2e-%d-%d", os.Getpid(), n),
		stateDir: t.TempDir(),
		ports:    ports,
		mode:     mode,
	}
	s.config = s.redis.Client(t, 4)
	s.state = s.redis.Client(t, 6)
	ctx := context.Background()
	for i, p := range ports {
		must(t, s.config.HSet(ctx, "PORT|"+p, "admin_status", "up", "alias", "fortyGigE0/"+strconv.Itoa(4*i),
			"index", strconv.Itoa(i), "mtu", "9100", "speed", "40000").Err())
	}
	must(t, s.config.HSet(ctx, "FEATURE|telegen", "state", "enabled", "auto_restart", "enabled").Err())
	must(t, s.config.Set(ctx, "CONFIG_DB_INITIALIZED", "1", 0).Err())

	for _, ns := range []string{s.swNS, s.hostNS} {
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
		run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	for _, p := range ports {
		run(t, "ip", "-n", s.swNS, "link", "add", p, "mtu", "9100", "type", "veth", "peer", "name", "vh-"+p, "mtu", "9100", "netns", s.hostNS)
		run(t, "ip", "netns", "exec", s.swNS, "sysctl", "-qw", "net.ipv6.conf."+p+".disable_ipv6=1")
		run(t, "ip", "netns", "exec", s.hostNS, "sysctl", "-qw", "net.ipv6.conf.vh-"+p+".disable_ipv6=1")
		run(t, "ip", "-n", s.swNS, "link", "set", p, "up")
		run(t, "ip", "-n", s.hostNS, "link", "set", "vh-"+p, "up")
	}
	t.Cleanup(func() {
		if s.daemon != nil {
			s.daemon.kill()
		}
		_ = os.RemoveAll(s.pinDir)
	})
	return s
}

// daemonProc is one telegend process running in the switch namespace.
type daemonProc struct {
	cmd  *exec.Cmd
	log  string
	done chan error
}

// startDaemon starts telegend in the switch namespace (network only: it shares the host's
// mounts, so its pins land in the host's bpffs). Tests run it with short intervals and debug
// logs; flags in override come after those and win (the last of a flag counts).
func (s *vswitch) startDaemon(override ...string) *daemonProc {
	s.t.Helper()
	logPath := filepath.Join(s.t.TempDir(), "telegend.log")
	logFile, err := os.Create(logPath)
	must(s.t, err)
	cmd := exec.Command("nsenter", "--net=/run/netns/"+s.swNS, "--",
		telegendBin, "--db-config", s.redis.ConfigPath, "--attach-mode", s.mode,
		"--pin-dir", s.pinDir, "--state-dir", s.stateDir, "--capture-dir", filepath.Join(s.stateDir, "captures"), "--log-level", "debug",
		"--stats-interval", "200ms", "--resync-interval", "2s", "--sweep-interval", "2s")
	cmd.Args = append(cmd.Args, override...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(s.t, cmd.Start())
	logFile.Close()
	d := &daemonProc{cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	s.daemon = d
	s.t.Cleanup(func() {
		if s.t.Failed() {
			// A goroutine dump of a daemon still running says where it was stuck.
			if d.cmd.ProcessState == nil && d.cmd.Process.Signal(syscall.SIGQUIT) == nil {
				select {
				case err := <-d.done:
					d.done <- err
				case <-time.After(2 * time.Second):
				}
			}
			data, _ := os.ReadFile(logPath)
			lines := strings.Split(string(data), "\n")
			s.t.Logf("telegend log (last 2000 lines):\n%s", strings.Join(lines[max(0, len(lines)-2000):], "\n"))
		}
	})
	return d
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemonProc) stop(t testing.TB) {
	t.Helper()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Errorf("telegend exited with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Error("telegend did not exit within 15 s of SIGTERM")
		d.kill()
	}
}

// kill is kill -9.
func (d *daemonProc) kill() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(5 * time.Second):
	}
}

// job reads TELEGEN_JOB_TABLE|id.
func (s *vswitch) job(id string) map[string]string {
	m, err := s.state.HGetAll(context.Background(), "TELEGEN_JOB_TABLE|"+id).Result()
	must(s.t, err)
	return m
}

func (s *vswitch) result(id string) map[string]string {
	m, err := s.state.HGetAll(context.Background(), "TELEGEN_RESULT_TABLE|"+id).Result()
	must(s.t, err)
	return m
}

// waitStatus waits until the job's status is want and returns its record.
func (s *vswitch) waitStatus(id, want string, within time.Duration) map[string]string {
	s.t.Helper()
	deadline := time.Now().Add(within)
	var rec map[string]string
	for {
		rec = s.job(id)
		if rec["status"] == want {
			return rec
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s: status never became %q within %v; last record %v", id, want, within, rec)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// keyGone waits until the job's CONFIG_DB key is gone and says whether it went. telegend
// deletes the key of an ended job after it writes the terminal status (so that a reader who
// sees the key gone finds the verdict): a reader of the status may still see the key for a
// moment.
func (s *vswitch) keyGone(id string, within time.Duration) bool {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := s.config.Exists(context.Background(), "TELEGEN_JOB|"+id).Result()
		must(s.t, err)
		if n == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitField waits until a field of the job's record equals want.
func (s *vswitch) waitField(id, field, want string, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		rec := s.job(id)
		if rec[field] == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s: %s never became %q within %v; last record %v", id, field, want, within, rec)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// putJob writes TELEGEN_JOB|id with go-redis.
func (s *vswitch) putJob(id string, fields ...string) {
	s.t.Helper()
	args := make([]any, len(fields))
	for i, f := range fields {
		args[i] = f
	}
	must(s.t, s.config.HSet(context.Background(), "TELEGEN_JOB|"+id, args...).Err())
}

func (s *vswitch) delJob(id string) {
	s.t.Helper()
	must(s.t, s.config.Del(context.Background(), "TELEGEN_JOB|"+id).Err())
}

// replay sends a pcap into port's far end, so the frames arrive on the port's ingress.
func (s *vswitch) replay(port, pcap string) {
	s.t.Helper()
	run(s.t, "nsenter", "--net=/run/netns/"+s.hostNS, "--", "tcpreplay", "-q", "-i", "vh-"+port, pcap)
}

// attachment is one program of ours the kernel has attached, as the kernel reports it.
type attachment struct {
	Iface, Hook, Mode, Prog string
}

// attachments asks the kernel what BPF programs are attached to the switch's ports, by TCX
// query and by tc filter dump: the independent view the tests judge the daemon by.
func (s *vswitch) attachments() []attachment {
	s.t.Helper()
	out, err := s.attachmentsErr()
	must(s.t, err)
	return out
}

// attachmentsErr is attachments for goroutines other than the test's.
func (s *vswitch) attachmentsErr() ([]attachment, error) {
	var out []attachment
	err := inNetNS(s.swNS, func() error {
		for _, p := range s.ports {
			l, err := netlink.LinkByName(p)
			if err != nil {
				return err
			}
			for hook, at := range map[string]ebpf.AttachType{"ingress": ebpf.AttachTCXIngress, "egress": ebpf.AttachTCXEgress} {
				res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: at})
				if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
					return fmt.Errorf("tcx query %s %s: %w", p, hook, err)
				}
				if res == nil {
					continue
				}
				for _, prog := range res.Programs {
					out = append(out, attachment{p, hook, "tcx", progName(prog.ID)})
				}
			}
			for hook, parent := range map[string]uint32{"ingress": netlink.HANDLE_MIN_INGRESS, "egress": netlink.HANDLE_MIN_EGRESS} {
				filters, err := netlink.FilterList(l, parent)
				if err != nil {
					continue // no clsact qdisc
				}
				for _, f := range filters {
					if bf, ok := f.(*netlink.BpfFilter); ok {
						out = append(out, attachment{p, hook, "clsact", bf.Name})
					}
				}
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b attachment) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out, err
}

func progName(id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return fmt.Sprintf("id=%d", id)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return fmt.Sprintf("id=%d", id)
	}
	return info.Name
}

// qdiscs lists the qdisc kinds on the switch's ports, to prove none are left behind.
func (s *vswitch) qdiscs() []string {
	var out []string
	must(s.t, inNetNS(s.swNS, func() error {
		for _, p := range s.ports {
			l, err := netlink.LinkByName(p)
			if err != nil {
				return err
			}
			qs, err := netlink.QdiscList(l)
			if err != nil {
				return err
			}
			for _, q := range qs {
				if q.Type() == "clsact" || q.Type() == "ingress" {
					out = append(out, p+" "+q.Type())
				}
			}
		}
		return nil
	}))
	return out
}

// pins lists what is left under the daemon's pin directory.
func (s *vswitch) pins() []string {
	var out []string
	_ = filepath.WalkDir(s.pinDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && path != s.pinDir {
			out = append(out, strings.TrimPrefix(path, s.pinDir+"/"))
		}
		return nil
	})
	return out
}

// assertClean fails unless nothing of telegen's is left in the kernel or bpffs.
func (s *vswitch) assertClean() {
	s.t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		a, q, p := s.attachments(), s.qdiscs(), s.pins()
		if len(a) == 0 && len(q) == 0 && len(p) == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("left behind: attachments %v, qdiscs %v, pins %v", a, q, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inNetNS runs fn on a thread switched into the named namespace.
func inNetNS(name string, fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer func() { _ = netns.Set(orig) }()
	return fn()
}

// pcapTruth is what tshark, the independent judge, says a capture holds.
type pcapTruth struct {
	Frames int
	Bytes  uint64
}

func tsharkTruth(t testing.TB, pcap string) pcapTruth {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "frame.len").Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", pcap, err)
	}
	var tr pcapTruth
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		n, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 10, 64)
		if err != nil {
			t.Fatalf("tshark frame.len %q: %v", sc.Text(), err)
		}
		tr.Frames++
		tr.Bytes += n
	}
	return tr
}

// genPcap writes a traffic mix with the project's generator.
func genPcap(t testing.TB, mix string, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), mix+".pcap")
	run(t, trafgenBin, "-o", path, "-n", strconv.Itoa(n), "-mix", mix)
	return path
}

// sharedPcap is a capture from the steering repository's pcaps/ (beside this repo in CI).
func sharedPcap(t testing.TB, name string) string {
	t.Helper()
	root, err := repoRoot()
	must(t, err)
	path := filepath.Join(root, "..", "shared", "pcaps", name)
	if _, err := os.Stat(path); err != nil {
		testenv.Skip(t, "shared capture %s not found: %v", name, err)
	}
	return path
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
