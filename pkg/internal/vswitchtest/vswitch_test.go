package vswitchtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// rig is one virtual switch made by scripts/vswitch inside a network namespace of the test's
// own ("sw"), with its hosts namespace and Redis port unique to the test, so a developer's own
// vswitch (or a real Redis) on the host is never touched.
type rig struct {
	t       *testing.T
	root    string // module root
	script  string
	trafgen string
	swNS    string
	hostsNS string
	dir     string
	port    int
	env     []string
}

func newRig(t *testing.T) *rig {
	t.Helper()
	testenv.RequireRoot(t)
	for _, tool := range []string{"redis-server", "redis-cli", "ip", "nsenter", "sysctl", "go"} {
		testenv.RequireTool(t, tool)
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	tmp := t.TempDir()
	r := &rig{
		t:       t,
		root:    root,
		script:  filepath.Join(root, "scripts", "vswitch"),
		trafgen: filepath.Join(tmp, "trafgen"),
		dir:     filepath.Join(tmp, "vs"),
		port:    freePort(t),
	}
	build := exec.Command("go", "build", "-o", r.trafgen, "./scripts/trafgen")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./scripts/trafgen: %v\n%s", err, out)
	}

	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	r.swNS, r.hostsNS = "tgtest-"+id, "tgtest-"+id+"-h"
	r.env = append(os.Environ(), "VSWITCH_DIR="+r.dir, "VSWITCH_HOSTS_NS="+r.hostsNS,
		"VSWITCH_REDIS_PORT="+strconv.Itoa(r.port))

	r.must("ip", "netns", "add", r.swNS)
	t.Cleanup(func() {
		r.run("ip", "netns", "del", r.swNS)
		if slices.Contains(netnsList(t), r.hostsNS) {
			t.Errorf("netns %s left behind", r.hostsNS)
			r.run("ip", "netns", "del", r.hostsNS)
		}
	})
	r.must("ip", "-n", r.swNS, "link", "set", "dev", "lo", "up")
	return r
}

// vswitch runs scripts/vswitch in the sw netns. nsenter, not `ip netns exec`: the latter's
// private mount namespace would hide the hosts netns the script creates.
func (r *rig) vswitch(args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + r.swNS, "--", r.script}, args...)...)
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *rig) mustVswitch(args ...string) string {
	r.t.Helper()
	out, err := r.vswitch(args...)
	if err != nil {
		r.t.Fatalf("vswitch %v: %v\n%s", args, err, out)
	}
	return out
}

func (r *rig) run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func (r *rig) must(name string, args ...string) string {
	r.t.Helper()
	out, err := r.run(name, args...)
	if err != nil {
		r.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return out
}

// link is the part of `ip -d -s -j link show` the test reads.
type link struct {
	Ifname    string `json:"ifname"`
	MTU       int    `json:"mtu"`
	Operstate string `json:"operstate"`
	Linkinfo  struct {
		InfoKind string `json:"info_kind"`
	} `json:"linkinfo"`
	Stats64 struct {
		RX struct{ Bytes, Packets uint64 } `json:"rx"`
	} `json:"stats64"`
}

// link returns the device in netns ns, or ok=false when it does not exist.
func (r *rig) link(ns, dev string) (link, bool) {
	r.t.Helper()
	out, err := exec.Command("ip", "-n", ns, "-d", "-s", "-j", "link", "show", "dev", dev).Output()
	if err != nil {
		return link{}, false
	}
	var ls []link
	if err := json.Unmarshal(out, &ls); err != nil || len(ls) != 1 {
		r.t.Fatalf("ip -j link show %s in %s: %v: %s", dev, ns, err, out)
	}
	return ls[0], true
}

func (r *rig) sysctl(ns, key string) string {
	r.t.Helper()
	return strings.TrimSpace(r.must("ip", "netns", "exec", ns, "sysctl", "-n", key))
}

func netnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// publisherPID is the running counters publisher's pid, from its pidfile; it must be alive, in
// its own process group.
func (r *rig) publisherPID() int {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "counters.pid"))
	if err != nil {
		r.t.Fatalf("counters publisher pidfile: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !alive(pid) {
		r.t.Fatalf("counters publisher pid %q (%v) is not running", b, err)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		r.t.Errorf("counters publisher %d: process group %d (%v), want its own", pid, pgid, err)
	}
	return pid
}

// alive reports whether pid names a live (non-zombie) process.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

var summaryRE = regexp.MustCompile(`(?m)^frames=(\d+) bytes=(\d+)$`)

func TestVswitch(t *testing.T) {
	r := newRig(t)
	ctx := context.Background()

	var redisPID, pubPID int
	t.Cleanup(func() {
		out, err := r.vswitch("down")
		if err != nil {
			t.Errorf("cleanup: vswitch down: %v\n%s", err, out)
		}
		if redisPID != 0 && alive(redisPID) {
			t.Errorf("redis-server %d left running", redisPID)
			syscall.Kill(redisPID, syscall.SIGKILL)
		}
		if pubPID != 0 && alive(pubPID) {
			t.Errorf("counters publisher %d left running", pubPID)
			syscall.Kill(pubPID, syscall.SIGKILL)
		}
	})
	r.mustVswitch("up", "--ports", "Ethernet16,Ethernet20")
	pubPID = r.publisherPID()

	pidb, err := os.ReadFile(filepath.Join(r.dir, "redis.pid"))
	if err != nil {
		t.Fatalf("redis pidfile: %v", err)
	}
	redisPID, _ = strconv.Atoi(strings.TrimSpace(string(pidb)))
	sock := filepath.Join(r.dir, "redis.sock")
	client := func(db int) *redis.Client {
		c := redis.NewClient(&redis.Options{Network: "unix", Addr: sock, DB: db})
		t.Cleanup(func() { c.Close() })
		return c
	}
	cfg, counters := client(4), client(2)

	t.Run("redis", func(t *testing.T) {
		for k, want := range map[string]string{"databases": "100", "save": "", "unixsocketperm": "770",
			"port": strconv.Itoa(r.port), "bind": "127.0.0.1"} {
			got, err := cfg.ConfigGet(ctx, k).Result()
			if err != nil || got[k] != want {
				t.Errorf("CONFIG GET %s = %q (%v), want %q", k, got[k], err, want)
			}
		}
		ev, _ := cfg.ConfigGet(ctx, "notify-keyspace-events").Result()
		for _, f := range []string{"A", "K", "E"} {
			if !strings.Contains(ev["notify-keyspace-events"], f) {
				t.Errorf("notify-keyspace-events = %q, lacks %s", ev["notify-keyspace-events"], f)
			}
		}
		cobl, _ := cfg.ConfigGet(ctx, "client-output-buffer-limit").Result()
		if !strings.Contains(cobl["client-output-buffer-limit"], "pubsub 0 0 0") {
			t.Errorf("client-output-buffer-limit = %q, want pubsub 0 0 0", cobl["client-output-buffer-limit"])
		}

		// A keyspace notification really arrives, as SONiC subscribers expect.
		ps := cfg.PSubscribe(ctx, "__keyspace@4__:TGTEST|*")
		defer ps.Close()
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatalf("psubscribe: %v", err)
		}
		if err := cfg.HSet(ctx, "TGTEST|probe", "a", "1").Err(); err != nil {
			t.Fatal(err)
		}
		defer cfg.Del(ctx, "TGTEST|probe")
		msg, err := ps.ReceiveTimeout(ctx, 2*time.Second)
		if m, ok := msg.(*redis.Message); err != nil || !ok || m.Channel != "__keyspace@4__:TGTEST|probe" || m.Payload != "hset" {
			t.Errorf("keyspace event: %#v, %v; want hset on __keyspace@4__:TGTEST|probe", msg, err)
		}

		// TCP answers on 127.0.0.1 inside the switch's netns.
		out := r.must("nsenter", "--net=/run/netns/"+r.swNS, "--", "redis-cli", "-h", "127.0.0.1",
			"-p", strconv.Itoa(r.port), "-n", "4", "hget", "FEATURE|telegen", "state")
		if strings.TrimSpace(out) != "enabled" {
			t.Errorf("redis over TCP: FEATURE|telegen state = %q", out)
		}
	})

	t.Run("database_config.json", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(r.dir, "database_config.json"))
		if err != nil {
			t.Fatal(err)
		}
		var dc struct {
			Instances map[string]struct {
				Hostname       string `json:"hostname"`
				Port           int    `json:"port"`
				UnixSocketPath string `json:"unix_socket_path"`
			} `json:"INSTANCES"`
			Databases map[string]struct {
				ID        int    `json:"id"`
				Separator string `json:"separator"`
				Instance  string `json:"instance"`
			} `json:"DATABASES"`
			Version string `json:"VERSION"`
		}
		if err := json.Unmarshal(b, &dc); err != nil {
			t.Fatalf("database_config.json: %v", err)
		}
		in := dc.Instances["redis"]
		if in.Hostname != "127.0.0.1" || in.Port != r.port || in.UnixSocketPath != sock || dc.Version != "1.0" {
			t.Errorf("INSTANCES.redis = %+v, VERSION %q", in, dc.Version)
		}
		for name, want := range map[string]struct {
			id  int
			sep string
		}{"APPL_DB": {0, ":"}, "ASIC_DB": {1, ":"}, "COUNTERS_DB": {2, ":"}, "LOGLEVEL_DB": {3, ":"},
			"CONFIG_DB": {4, "|"}, "FLEX_COUNTER_DB": {5, ":"}, "STATE_DB": {6, "|"},
			"SNMP_OVERLAY_DB": {7, "|"}, "RESTAPI_DB": {8, "|"}, "APPL_STATE_DB": {14, ":"}} {
			got, ok := dc.Databases[name]
			if !ok || got.ID != want.id || got.Separator != want.sep || got.Instance != "redis" {
				t.Errorf("DATABASES.%s = %+v (present %v), want id %d separator %q", name, got, ok, want.id, want.sep)
			}
		}
		out := r.mustVswitch("env")
		if want := "export DB_CONFIG_PATH=" + filepath.Join(r.dir, "database_config.json") + "\n"; out != want {
			t.Errorf("vswitch env = %q, want %q", out, want)
		}
	})

	t.Run("CONFIG_DB", func(t *testing.T) {
		wantHash := func(key string, want map[string]string) {
			t.Helper()
			got, err := cfg.HGetAll(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s %s = %q, want %q", key, k, got[k], v)
				}
			}
		}
		wantHash("PORT|Ethernet16", map[string]string{"admin_status": "up", "alias": "fortyGigE0/16",
			"index": "4", "lanes": "45,46,47,48", "mtu": "9100", "speed": "40000"})
		wantHash("PORT|Ethernet20", map[string]string{"admin_status": "up", "alias": "fortyGigE0/20",
			"index": "5", "mtu": "9100", "speed": "40000"})
		wantHash("FEATURE|telegen", map[string]string{"state": "enabled", "auto_restart": "enabled",
			"delayed": "False", "has_global_scope": "True", "has_per_asic_scope": "False"})
		wantHash("DEVICE_METADATA|localhost", map[string]string{"hostname": "vswitch", "hwsku": "Force10-S6000",
			"platform": "x86_64-kvm_x86_64-r0", "type": "LeafRouter"})
		keys, _ := cfg.Keys(ctx, "PORT|*").Result()
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"PORT|Ethernet16", "PORT|Ethernet20"}) {
			t.Errorf("PORT keys %v", keys)
		}
		if v, _ := cfg.Get(ctx, "CONFIG_DB_INITIALIZED").Result(); v != "1" {
			t.Errorf("CONFIG_DB_INITIALIZED = %q", v)
		}
		oid, err := counters.HGet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet16").Result()
		if err != nil || !strings.HasPrefix(oid, "oid:0x") {
			t.Fatalf("COUNTERS_PORT_NAME_MAP Ethernet16 = %q, %v", oid, err)
		}
		if v, err := counters.HGet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS").Result(); err != nil || v != "0" {
			t.Errorf("COUNTERS:%s SAI_PORT_STAT_IF_IN_ERRORS = %q, %v", oid, v, err)
		}
	})

	t.Run("ports", func(t *testing.T) {
		for _, p := range []string{"Ethernet16", "Ethernet20"} {
			for _, end := range []struct{ ns, dev string }{{r.swNS, p}, {r.hostsNS, "vh-" + p}} {
				l, ok := r.link(end.ns, end.dev)
				if !ok {
					t.Errorf("%s missing in netns %s", end.dev, end.ns)
					continue
				}
				if l.Linkinfo.InfoKind != "veth" || l.Operstate != "UP" || l.MTU != 9100 {
					t.Errorf("%s in %s: kind %q operstate %q mtu %d; want veth UP 9100",
						end.dev, end.ns, l.Linkinfo.InfoKind, l.Operstate, l.MTU)
				}
				if v := r.sysctl(end.ns, "net.ipv6.conf."+end.dev+".disable_ipv6"); v != "1" {
					t.Errorf("%s in %s: disable_ipv6 = %s", end.dev, end.ns, v)
				}
				if out := r.must("ip", "-n", end.ns, "addr", "show", "dev", end.dev); strings.Contains(out, "inet") {
					t.Errorf("%s in %s has addresses:\n%s", end.dev, end.ns, out)
				}
			}
			if _, ok := r.link(r.swNS, "vh-"+p); ok {
				t.Errorf("vh-%s is in the switch netns, want it only in %s", p, r.hostsNS)
			}
		}
		out := r.mustVswitch("status")
		if !regexp.MustCompile(`Ethernet16\s+UP\s+vh-Ethernet16`).MatchString(out) ||
			!strings.Contains(out, fmt.Sprintf("counters: publisher pid %d, every 1s", pubPID)) {
			t.Errorf("vswitch status:\n%s", out)
		}
	})

	t.Run("trafgen counts exactly", func(t *testing.T) {
		time.Sleep(200 * time.Millisecond) // any stray kernel frame would show up now
		before16, _ := r.link(r.swNS, "Ethernet16")
		before20, _ := r.link(r.swNS, "Ethernet20")
		if before16.Stats64.RX.Packets != 0 {
			t.Errorf("Ethernet16 received %d frames before any traffic; the port is not quiet",
				before16.Stats64.RX.Packets)
		}
		out := r.must("ip", "netns", "exec", r.hostsNS, r.trafgen, "-send", "vh-Ethernet16",
			"-n", "500", "-mix", "all", "-seed", "11")
		m := summaryRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("trafgen output has no summary: %q", out)
		}
		frames, _ := strconv.ParseUint(m[1], 10, 64)
		bytes, _ := strconv.ParseUint(m[2], 10, 64)
		if frames != 500 {
			t.Fatalf("trafgen sent %d frames, want 500", frames)
		}
		var after16 link
		for range 50 {
			after16, _ = r.link(r.swNS, "Ethernet16")
			if after16.Stats64.RX.Packets-before16.Stats64.RX.Packets >= frames {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if d := after16.Stats64.RX.Packets - before16.Stats64.RX.Packets; d != frames {
			t.Errorf("Ethernet16 rx_packets grew by %d, trafgen sent %d", d, frames)
		}
		if d := after16.Stats64.RX.Bytes - before16.Stats64.RX.Bytes; d != bytes {
			t.Errorf("Ethernet16 rx_bytes grew by %d, trafgen sent %d", d, bytes)
		}
		after20, _ := r.link(r.swNS, "Ethernet20")
		if after20.Stats64.RX.Packets != before20.Stats64.RX.Packets {
			t.Errorf("Ethernet20 received %d frames; want none", after20.Stats64.RX.Packets-before20.Stats64.RX.Packets)
		}

		// The background publisher catches up within its 1 s period, as syncd's flex counter
		// poll would; then `counters` refreshes once on demand and agrees.
		oid, _ := counters.HGet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet16").Result()
		want := fmt.Sprintf("[%d %d]", after16.Stats64.RX.Packets, after16.Stats64.RX.Bytes)
		var got []any
		deadline := time.Now().Add(3 * time.Second)
		for {
			got, _ = counters.HMGet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_UCAST_PKTS", "SAI_PORT_STAT_IF_IN_OCTETS").Result()
			if fmt.Sprint(got) == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if fmt.Sprint(got) != want {
			t.Errorf("publisher: COUNTERS:%s in ucast pkts/octets = %v after 3 s, kernel says %s", oid, got, want)
		}
		r.mustVswitch("counters")
		got, _ = counters.HMGet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_UCAST_PKTS", "SAI_PORT_STAT_IF_IN_OCTETS").Result()
		if fmt.Sprint(got) != want {
			t.Errorf("counters: COUNTERS:%s in ucast pkts/octets = %v, kernel says %s", oid, got, want)
		}
	})

	t.Run("up again adds ports and keeps redis and config", func(t *testing.T) {
		if err := cfg.HSet(ctx, "FEATURE|telegen", "state", "disabled").Err(); err != nil {
			t.Fatal(err)
		}
		r.mustVswitch("up", "--ports", "Ethernet16,Ethernet24")
		pidb, _ := os.ReadFile(filepath.Join(r.dir, "redis.pid"))
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(pidb))); pid != redisPID {
			t.Errorf("redis pid changed from %d to %d", redisPID, pid)
		}
		if pid := r.publisherPID(); pid != pubPID {
			t.Errorf("counters publisher pid changed from %d to %d", pubPID, pid)
		}
		// The running publisher picks up the added port.
		deadline := time.Now().Add(3 * time.Second)
		for {
			oid, err := counters.HGet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet24").Result()
			if err == nil && oid == "oid:0x1000000000007" {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("COUNTERS_PORT_NAME_MAP Ethernet24 = %q, %v", oid, err)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if v, _ := cfg.HGet(ctx, "FEATURE|telegen", "state").Result(); v != "disabled" {
			t.Errorf("up overwrote FEATURE|telegen state: %q", v)
		}
		for _, p := range []string{"Ethernet16", "Ethernet20", "Ethernet24"} {
			if n, _ := cfg.Exists(ctx, "PORT|"+p).Result(); n != 1 {
				t.Errorf("PORT|%s missing after second up", p)
			}
			if l, ok := r.link(r.swNS, p); !ok || l.Operstate != "UP" {
				t.Errorf("%s after second up: %+v (exists %v)", p, l, ok)
			}
		}
	})

	t.Run("refuses a port that is not a veth", func(t *testing.T) {
		if out, err := r.run("ip", "-n", r.swNS, "link", "add", "Ethernet28", "type", "ifb"); err != nil {
			t.Skipf("cannot make a non-veth device to collide with (ifb): %v %s", err, out)
		}
		defer r.run("ip", "-n", r.swNS, "link", "del", "Ethernet28")
		out, err := r.vswitch("up", "--ports", "Ethernet28")
		if err == nil || !strings.Contains(out, "Ethernet28 already exists and is not a veth") {
			t.Errorf("vswitch up over an ifb named Ethernet28: %v\n%s", err, out)
		}
		if l, ok := r.link(r.swNS, "Ethernet28"); !ok || l.Linkinfo.InfoKind != "ifb" {
			t.Errorf("Ethernet28 was touched: %+v", l)
		}
		if n, _ := cfg.Exists(ctx, "PORT|Ethernet28").Result(); n != 0 {
			t.Errorf("PORT|Ethernet28 written although up failed")
		}
	})

	t.Run("down removes everything, twice", func(t *testing.T) {
		r.mustVswitch("down")
		if slices.Contains(netnsList(t), r.hostsNS) {
			t.Errorf("netns %s still exists", r.hostsNS)
		}
		for _, p := range []string{"Ethernet16", "Ethernet20", "Ethernet24"} {
			if _, ok := r.link(r.swNS, p); ok {
				t.Errorf("%s still exists", p)
			}
		}
		deadline := time.Now().Add(2 * time.Second)
		for alive(redisPID) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(redisPID) {
			t.Errorf("redis-server %d still running", redisPID)
		}
		if alive(pubPID) {
			t.Errorf("counters publisher %d still running", pubPID)
		}
		if _, err := os.Stat(r.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("VSWITCH_DIR %s still exists (%v)", r.dir, err)
		}
		r.mustVswitch("down")
		if out, err := r.vswitch("status"); err == nil {
			t.Errorf("status after down succeeded:\n%s", out)
		}
	})
}
