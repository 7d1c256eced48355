package mirror

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// fakeOrch plays orchagent for the unit tests: it follows CONFIG_DB's keyspace events and
// answers in STATE_DB as its knobs say. The real emulator (scripts/orchemu) is tested in
// pkg/internal/vswitchtest and pkg/e2e.
type fakeOrch struct {
	cfg, state *redis.Client

	mu        sync.Mutex
	session   string // status written for a new session; "" writes nothing (rejected)
	sessionID string // erspan_session_id written with it, when not ""
	table     string // ACL_TABLE_TABLE status; "" writes nothing
	rule      string // ACL_RULE_TABLE status; "" writes nothing
	ops       []string
}

func (f *fakeOrch) set(fn func(f *fakeOrch)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// seen returns the operations on CONFIG_DB so far ("set MIRROR_SESSION|x", "del ACL_RULE|x|y").
func (f *fakeOrch) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ops)
}

func startFakeOrch(t *testing.T, r *testenv.Redis) *fakeOrch {
	f := &fakeOrch{cfg: r.Client(t, 4), state: r.Client(t, 6), session: "active", table: "Active", rule: "Active"}
	ctx, cancel := context.WithCancel(context.Background())
	ps := f.cfg.PSubscribe(ctx, "__keyspace@4__:MIRROR_SESSION|*", "__keyspace@4__:ACL_TABLE|*", "__keyspace@4__:ACL_RULE|*")
	for range 3 {
		if _, err := ps.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for msg := range ps.Channel() {
			key := strings.TrimPrefix(msg.Channel, "__keyspace@4__:")
			f.handle(ctx, key, msg.Payload)
		}
	}()
	t.Cleanup(func() {
		cancel()
		ps.Close()
		<-done
	})
	return f
}

func (f *fakeOrch) handle(ctx context.Context, key, event string) {
	table, k, _ := strings.Cut(key, "|")
	stateKey := map[string]string{"MIRROR_SESSION": "MIRROR_SESSION_TABLE|", "ACL_TABLE": "ACL_TABLE_TABLE|",
		"ACL_RULE": "ACL_RULE_TABLE|"}[table] + k
	f.mu.Lock()
	defer f.mu.Unlock()
	if event == "del" {
		f.ops = append(f.ops, "del "+key)
		f.state.Del(ctx, stateKey)
		return
	}
	// A key already gone again makes no state; a failed check (a loaded CI machine) is taken
	// as "still there" rather than silently dropping orchagent's answer.
	if n, err := f.cfg.Exists(ctx, key).Result(); err == nil && n == 0 {
		return
	}
	if len(f.ops) > 0 && f.ops[len(f.ops)-1] == "set "+key {
		return // one write of several fields is one set
	}
	f.ops = append(f.ops, "set "+key)
	status := map[string]string{"MIRROR_SESSION": f.session, "ACL_TABLE": f.table, "ACL_RULE": f.rule}[table]
	if status == "" {
		return
	}
	fields := []any{"status", status}
	if table == "MIRROR_SESSION" && f.sessionID != "" {
		fields = append(fields, "erspan_session_id", f.sessionID)
	}
	for try := 0; try < 5 && f.state.HSet(ctx, stateKey, fields...).Err() != nil && ctx.Err() == nil; try++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// rig is a Mirror on a private Redis with a fake orchagent.
type rig struct {
	t     *testing.T
	r     *testenv.Redis
	orch  *fakeOrch
	m     *Mirror
	cfg   *redis.Client
	state *redis.Client

	mu sync.Mutex
	g  jobspec.Globals
}

func newRig(t *testing.T) *rig {
	testenv.RequireTool(t, "redis-server")
	r := testenv.StartRedis(t)
	c, err := sonicdb.LoadConfig(r.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Open("CONFIG_DB")
	if err != nil {
		t.Fatal(err)
	}
	state, err := c.Open("STATE_DB")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close(); state.Close() })
	x := &rig{t: t, r: r, orch: startFakeOrch(t, r), cfg: r.Client(t, 4), state: r.Client(t, 6), g: testGlobals()}
	x.g.MirrorTimeoutSec = 3 // generous: CI runs packages side by side on two cores
	settings := func(context.Context) (jobspec.Globals, error) {
		x.mu.Lock()
		defer x.mu.Unlock()
		return x.g, nil
	}
	x.m = New(cfg, state, settings, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return x
}

func (x *rig) globals(fn func(*jobspec.Globals)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	fn(&x.g)
}

// dump renders every CONFIG_DB and STATE_DB hash (except PORT) as sorted lines.
func (x *rig) dump() string {
	var lines []string
	for _, c := range []struct {
		db  string
		cli *redis.Client
	}{{"CONFIG_DB", x.cfg}, {"STATE_DB", x.state}} {
		keys, err := c.cli.Keys(context.Background(), "*").Result()
		if err != nil {
			x.t.Fatal(err)
		}
		for _, k := range keys {
			f, err := c.cli.HGetAll(context.Background(), k).Result()
			if err != nil {
				x.t.Fatal(err)
			}
			var kv []string
			for _, n := range slices.Sorted(maps.Keys(f)) {
				kv = append(kv, n+"="+f[n])
			}
			lines = append(lines, c.db+" "+k+" "+strings.Join(kv, " "))
		}
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func (x *rig) wantDump(want string) {
	x.t.Helper()
	want = strings.TrimSpace(want)
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := x.dump()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("databases:\n%s\nwant:\n%s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (x *rig) create(id string, fields ...string) (Session, error) {
	x.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return x.m.Create(ctx, mustSpec(x.t, id, fields...))
}

func (x *rig) mustCreate(id string, fields ...string) Session {
	x.t.Helper()
	s, err := x.create(id, fields...)
	if err != nil {
		x.t.Fatalf("Create %s: %v", id, err)
	}
	return s
}

func (x *rig) delete(id string) {
	x.t.Helper()
	if err := x.m.Delete(context.Background(), id); err != nil {
		x.t.Fatalf("Delete %s: %v", id, err)
	}
}

func TestCreateSPAN(t *testing.T) {
	x := newRig(t)
	s := x.mustCreate("j1", "port", "Ethernet20")
	if want := (Session{Name: "telegen_j1", Type: "SPAN", Sink: "telegen-span0", SessionID: -1}); s != want {
		t.Errorf("Create = %+v, want %+v", s, want)
	}
	x.wantDump(`
CONFIG_DB MIRROR_SESSION|telegen_j1 direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
STATE_DB MIRROR_SESSION_TABLE|telegen_j1 status=active
STATE_DB TELEGEN_MIRROR_TABLE|telegen_j1 erspan_session_id= job_id=j1 prefilter=port prefilter_note= sink=telegen-span0 type=SPAN`)
	x.delete("j1")
	x.wantDump("")
	x.delete("j1") // idempotent
}

func TestCreateERSPANSessionID(t *testing.T) {
	x := newRig(t)
	x.orch.set(func(f *fakeOrch) { f.sessionID = "7" })
	s := x.mustCreate("e1", "port", "Ethernet16", "span_method", "erspan", "direction", "both")
	if want := (Session{Name: "telegen_e1", Type: "ERSPAN", Sink: "telegen-erspan0", SessionID: 7}); s != want {
		t.Errorf("Create = %+v, want %+v", s, want)
	}
	x.wantDump(`
CONFIG_DB MIRROR_SESSION|telegen_e1 direction=BOTH dscp=8 dst_ip=10.1.0.2 gre_type=0x88be queue=1 src_ip=10.1.0.1 src_port=Ethernet16 ttl=32 type=ERSPAN
STATE_DB MIRROR_SESSION_TABLE|telegen_e1 erspan_session_id=7 status=active
STATE_DB TELEGEN_MIRROR_TABLE|telegen_e1 erspan_session_id=7 job_id=e1 prefilter=port prefilter_note= sink=telegen-erspan0 type=ERSPAN`)
	x.delete("e1")

	// An orchagent that publishes no id: the platform's from the settings, else any.
	x.orch.set(func(f *fakeOrch) { f.sessionID = "" })
	if s := x.mustCreate("e2", "port", "Ethernet16", "span_method", "erspan"); s.SessionID != jobspec.AnySessionID {
		t.Errorf("no published id: SessionID %d, want any", s.SessionID)
	}
	x.delete("e2")
	x.globals(func(g *jobspec.Globals) { g.ERSPANPlatformSessionID = 5 })
	if s := x.mustCreate("e3", "port", "Ethernet16", "span_method", "erspan"); s.SessionID != 5 {
		t.Errorf("platform id 5: SessionID %d", s.SessionID)
	}
}

func TestCreateWithACL(t *testing.T) {
	x := newRig(t)
	s := x.mustCreate("f1", "port", "Ethernet20", "direction", "both", "ip_proto", "udp", "dst_cidr", "10.2.0.0/16")
	if !s.Prefilter || s.Note != "" {
		t.Errorf("Create = %+v, want the ACL pre-filter in force", s)
	}
	x.wantDump(`
CONFIG_DB ACL_RULE|telegen_f1_egress|RULE_1 DST_IP=10.2.0.0/16 IP_PROTOCOL=17 MIRROR_EGRESS_ACTION=telegen_f1 PRIORITY=9999
CONFIG_DB ACL_RULE|telegen_f1|RULE_1 DST_IP=10.2.0.0/16 IP_PROTOCOL=17 MIRROR_INGRESS_ACTION=telegen_f1 PRIORITY=9999
CONFIG_DB ACL_TABLE|telegen_f1 policy_desc=telegen:f1 ports@=Ethernet20 stage=ingress type=MIRROR
CONFIG_DB ACL_TABLE|telegen_f1_egress policy_desc=telegen:f1 ports@=Ethernet20 stage=egress type=MIRROR
CONFIG_DB MIRROR_SESSION|telegen_f1 dst_port=Ethernet64 type=SPAN
STATE_DB ACL_RULE_TABLE|telegen_f1_egress|RULE_1 status=Active
STATE_DB ACL_RULE_TABLE|telegen_f1|RULE_1 status=Active
STATE_DB ACL_TABLE_TABLE|telegen_f1 status=Active
STATE_DB ACL_TABLE_TABLE|telegen_f1_egress status=Active
STATE_DB MIRROR_SESSION_TABLE|telegen_f1 status=active
STATE_DB TELEGEN_MIRROR_TABLE|telegen_f1 acl_tables@=telegen_f1,telegen_f1_egress erspan_session_id= job_id=f1 prefilter=acl prefilter_note= sink=telegen-span0 type=SPAN`)
	// The session goes after its rules, as orchagent needs.
	x.delete("f1")
	x.wantDump("")
	ops := x.orch.seen()
	last := slices.Index(ops, "del MIRROR_SESSION|telegen_f1")
	for _, r := range []string{"del ACL_RULE|telegen_f1|RULE_1", "del ACL_RULE|telegen_f1_egress|RULE_1"} {
		if i := slices.Index(ops, r); i < 0 || i > last {
			t.Errorf("operations %v: %s not before the session's delete", ops, r)
		}
	}
}

func TestACLFallback(t *testing.T) {
	for _, c := range []struct {
		name        string
		table, rule string
		note        string
	}{
		{"no mirror ACL support", "", "Active", "orchagent reported no status for ACL table telegen_f within 750ms (no mirror ACL support?)"},
		{"another mirror table", "Pending creation", "Active", `orchagent reported ACL table telegen_f as "Pending creation" (another mirror ACL table exists at this stage)`},
		{"invalid table", "Inactive", "Active", `orchagent reported ACL table telegen_f as "Inactive"`},
		{"rule refused", "Active", "Inactive", `orchagent reported ACL rule telegen_f|RULE_1 as "Inactive"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newRig(t)
			x.orch.set(func(f *fakeOrch) { f.table, f.rule = c.table, c.rule })
			s := x.mustCreate("f", "port", "Ethernet20", "ip_proto", "udp")
			if s.Prefilter || s.Note != c.note {
				t.Errorf("Create = %+v, want port mirroring with note %q", s, c.note)
			}
			x.wantDump(`
CONFIG_DB MIRROR_SESSION|telegen_f direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
STATE_DB MIRROR_SESSION_TABLE|telegen_f status=active
STATE_DB TELEGEN_MIRROR_TABLE|telegen_f erspan_session_id= job_id=f prefilter=port prefilter_note=` + c.note + ` sink=telegen-span0 type=SPAN`)
		})
	}
}

func TestCreateFailsCleanly(t *testing.T) {
	for _, c := range []struct {
		name    string
		session string
		fields  []string
		global  func(*jobspec.Globals)
		want    string
	}{
		{"SPAN to CPU rejected", "", []string{"port", "Ethernet20"}, func(g *jobspec.Globals) { g.SpanDstPort = "CPU" },
			"orchagent rejected telegen_j: no STATE_DB MIRROR_SESSION_TABLE entry within 3s; orchagent does not support SPAN to CPU (span_dst_port must be a front-panel port; or use span_method erspan)"},
		{"rejected", "", []string{"port", "Ethernet20", "ip_proto", "tcp"}, nil,
			"orchagent rejected telegen_j: no STATE_DB MIRROR_SESSION_TABLE entry within 3s; see orchagent's log"},
		{"never active", "inactive", []string{"port", "Ethernet16", "span_method", "erspan"}, nil,
			"orchagent did not activate telegen_j within 3s (status inactive); is there a route and neighbour to erspan_dst_ip 10.1.0.2?"},
		{"settings missing", "active", []string{"port", "Ethernet16", "span_method", "erspan"},
			func(g *jobspec.Globals) { g.ERSPANSinkNetdev = "" },
			"TELEGEN|global erspan_sink_netdev is not set: erspan jobs need the netdev where the copies arrive (docs/MIRROR.md)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newRig(t)
			x.orch.set(func(f *fakeOrch) { f.session = c.session })
			if c.global != nil {
				x.globals(c.global)
			}
			start := time.Now()
			_, err := x.create("j", c.fields...)
			if err == nil || err.Error() != c.want {
				t.Fatalf("Create: %v\nwant: %s", err, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Create took %v with mirror_timeout_sec 3", d)
			}
			x.wantDump("")
		})
	}
}

// The caller's deadline bounds the wait, leaving room to clean up.
func TestCreateHonoursDeadline(t *testing.T) {
	x := newRig(t)
	x.globals(func(g *jobspec.Globals) { g.MirrorTimeoutSec = 60 })
	x.orch.set(func(f *fakeOrch) { f.session = "" })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, err := x.m.Create(ctx, mustSpec(t, "j", "port", "Ethernet20"))
	if err == nil || !strings.Contains(err.Error(), "orchagent rejected telegen_j") || ctx.Err() != nil {
		t.Fatalf("Create: %v (ctx %v)", err, ctx.Err())
	}
	x.wantDump("")
}

// A session of the same name left by an earlier run is deleted, and re-created only once
// orchagent has removed it: it cannot be modified in place.
func TestLeftoverRecreated(t *testing.T) {
	x := newRig(t)
	ctx := context.Background()
	x.cfg.HSet(ctx, "MIRROR_SESSION|telegen_j", "type", "SPAN", "dst_port", "Ethernet4", "src_port", "Ethernet20", "direction", "TX")
	x.cfg.HSet(ctx, "ACL_RULE|telegen_j|RULE_9", "PRIORITY", "1", "MIRROR_INGRESS_ACTION", "telegen_j")
	x.wantDump(`
CONFIG_DB ACL_RULE|telegen_j|RULE_9 MIRROR_INGRESS_ACTION=telegen_j PRIORITY=1
CONFIG_DB MIRROR_SESSION|telegen_j direction=TX dst_port=Ethernet4 src_port=Ethernet20 type=SPAN
STATE_DB ACL_RULE_TABLE|telegen_j|RULE_9 status=Active
STATE_DB MIRROR_SESSION_TABLE|telegen_j status=active`)
	x.mustCreate("j", "port", "Ethernet20")
	x.wantDump(`
CONFIG_DB MIRROR_SESSION|telegen_j direction=RX dst_port=Ethernet64 src_port=Ethernet20 type=SPAN
STATE_DB MIRROR_SESSION_TABLE|telegen_j status=active
STATE_DB TELEGEN_MIRROR_TABLE|telegen_j erspan_session_id= job_id=j prefilter=port prefilter_note= sink=telegen-span0 type=SPAN`)
	ops := x.orch.seen()
	want := []string{"set MIRROR_SESSION|telegen_j", "set ACL_RULE|telegen_j|RULE_9", "del ACL_RULE|telegen_j|RULE_9",
		"del MIRROR_SESSION|telegen_j", "set MIRROR_SESSION|telegen_j"}
	if !slices.Equal(ops, want) {
		t.Errorf("operations %v\nwant %v", ops, want)
	}
}

func TestSinksAreNotShared(t *testing.T) {
	x := newRig(t)
	x.mustCreate("a", "port", "Ethernet20")
	_, err := x.create("b", "port", "Ethernet16")
	if err == nil || !strings.Contains(err.Error(), "sink telegen-span0 already receives the copies of job a") {
		t.Fatalf("second span job on one sink: %v", err)
	}
	x.delete("a")
	x.mustCreate("b", "port", "Ethernet16")
	x.delete("b")

	// ERSPAN jobs share a sink when their session ids tell them apart.
	x.orch.set(func(f *fakeOrch) { f.sessionID = "3" })
	x.mustCreate("e1", "port", "Ethernet16", "span_method", "erspan")
	_, err = x.create("e2", "port", "Ethernet20", "span_method", "erspan")
	if err == nil || !strings.Contains(err.Error(), "the ERSPAN copies of job e1 on sink telegen-erspan0 carry session id 3, and this job's 3") {
		t.Fatalf("two erspan jobs with one id: %v", err)
	}
	x.orch.set(func(f *fakeOrch) { f.sessionID = "4" })
	if s := x.mustCreate("e2", "port", "Ethernet20", "span_method", "erspan"); s.SessionID != 4 {
		t.Errorf("e2: %+v", s)
	}
	x.orch.set(func(f *fakeOrch) { f.sessionID = "" }) // any: indistinguishable
	if _, err := x.create("e3", "port", "Ethernet0", "span_method", "erspan"); err == nil {
		t.Error("an erspan job of unknown session id shares a sink")
	}
	if _, err := x.create("s", "port", "Ethernet0"); err != nil {
		t.Errorf("a span job on its own sink: %v", err)
	}
}

func TestCleanUp(t *testing.T) {
	x := newRig(t)
	ctx := context.Background()
	x.orch.set(func(f *fakeOrch) { f.session, f.table, f.rule = "", "", "" })
	hashed := jobspec.MirrorSessionName("a-very-long-job-id-of-forty-characters-xx")
	for _, row := range [][]string{
		{"MIRROR_SESSION|telegen_a", "type", "SPAN"},
		{"MIRROR_SESSION|telegen_b", "type", "SPAN"},
		{"MIRROR_SESSION|telegen_c", "type", "SPAN"},        // no record: the name says job c
		{"MIRROR_SESSION|" + hashed, "type", "SPAN"},        // no record, hashed name: nobody's
		{"MIRROR_SESSION|everflow", "type", "ERSPAN"},       // not ours
		{"ACL_TABLE|telegen_a", "policy_desc", "telegen:a"}, // kept
		{"ACL_TABLE|telegen_b_egress", "policy_desc", "telegen:b"},
		{"ACL_TABLE|telegen_zz", "type", "MIRROR"}, // no description: job zz
		{"ACL_TABLE|EVERFLOW", "type", "MIRROR"},
		{"ACL_RULE|telegen_a|RULE_1", "PRIORITY", "1"},
		{"ACL_RULE|telegen_b_egress|RULE_1", "PRIORITY", "1"},
		{"ACL_RULE|telegen_gone|RULE_1", "PRIORITY", "1"}, // its table is gone
		{"ACL_RULE|EVERFLOW|RULE_1", "PRIORITY", "1"},
	} {
		x.cfg.HSet(ctx, row[0], row[1], row[2])
	}
	for name, job := range map[string]string{"telegen_a": "a", "telegen_b": "b", "telegen_d": "d"} {
		x.state.HSet(ctx, "TELEGEN_MIRROR_TABLE|"+name, "job_id", job)
	}
	keep := func(id string) bool { return id == "a" || id == "zz" }
	if err := x.m.CleanUp(ctx, keep); err != nil {
		t.Fatal(err)
	}
	x.wantDump(`
CONFIG_DB ACL_RULE|EVERFLOW|RULE_1 PRIORITY=1
CONFIG_DB ACL_RULE|telegen_a|RULE_1 PRIORITY=1
CONFIG_DB ACL_TABLE|EVERFLOW type=MIRROR
CONFIG_DB ACL_TABLE|telegen_a policy_desc=telegen:a
CONFIG_DB ACL_TABLE|telegen_zz type=MIRROR
CONFIG_DB MIRROR_SESSION|everflow type=ERSPAN
CONFIG_DB MIRROR_SESSION|telegen_a type=SPAN
STATE_DB TELEGEN_MIRROR_TABLE|telegen_a job_id=a`)
	if err := x.m.CleanUp(ctx, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	x.wantDump(`
CONFIG_DB ACL_RULE|EVERFLOW|RULE_1 PRIORITY=1
CONFIG_DB ACL_TABLE|EVERFLOW type=MIRROR
CONFIG_DB MIRROR_SESSION|everflow type=ERSPAN`)
}

func TestConcurrentCreates(t *testing.T) {
	x := newRig(t)
	// Two span jobs race for one sink: exactly one wins.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, id := range []string{"r1", "r2"} {
		wg.Go(func() { _, errs[i] = x.create(id, "port", fmt.Sprintf("Ethernet%d", 16+4*i)) })
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two span jobs on one sink at once: %v, %v; want exactly one to fail", errs[0], errs[1])
	}
	// Two erspan jobs whose copies carry one id race: exactly one wins.
	x.orch.set(func(f *fakeOrch) { f.sessionID = "3" })
	for i, id := range []string{"e1", "e2"} {
		wg.Go(func() {
			_, errs[i] = x.create(id, "port", fmt.Sprintf("Ethernet%d", 16+4*i), "span_method", "erspan")
		})
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Errorf("two erspan jobs of one session id at once: %v, %v; want exactly one to fail", errs[0], errs[1])
	}
}
