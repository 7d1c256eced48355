package sonicdb

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
)

// testTimeout bounds every Redis round trip in these tests.
const testTimeout = 10 * time.Second

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openDB opens a database of a fresh redis-server through the database_config.json that
// testenv writes, exactly as the daemon would.
func openDB(t *testing.T, r *testenv.Redis, name string) *DB {
	t.Helper()
	cfg, err := LoadConfig(r.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := cfg.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if opt := db.Client().Options(); opt.Network != "unix" || opt.Addr != r.Socket {
		t.Fatalf("Open(%s) uses %s %s, want unix %s", name, opt.Network, opt.Addr, r.Socket)
	}
	return db
}

func TestSetEntryReplaces(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	raw := r.Client(t, 4)
	ctx := testCtx(t)

	if err := db.SetEntry(ctx, "telegen_job", "j1", map[string]string{
		"port": "Ethernet0", "ip_protos@": "6,17", "sample_rate": "100",
	}); err != nil {
		t.Fatal(err)
	}
	// The table is upper-cased and joined with CONFIG_DB's "|".
	if got := raw.HGetAll(ctx, "TELEGEN_JOB|j1").Val(); !maps.Equal(got, map[string]string{
		"port": "Ethernet0", "ip_protos@": "6,17", "sample_rate": "100",
	}) {
		t.Fatalf("raw hash = %v", got)
	}

	want := map[string]string{"port": "Ethernet4", "duration": "60"}
	if err := db.SetEntry(ctx, "TELEGEN_JOB", "j1", want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.GetEntry(ctx, "TELEGEN_JOB", "j1")
	if err != nil || !ok || !maps.Equal(got, want) {
		t.Fatalf("after replace GetEntry = %v %v %v, want %v (removed fields gone)", got, ok, err, want)
	}
	// Idempotent.
	if err := db.SetEntry(ctx, "TELEGEN_JOB", "j1", want); err != nil {
		t.Fatal(err)
	}
	if got := raw.HGetAll(ctx, "TELEGEN_JOB|j1").Val(); !maps.Equal(got, want) {
		t.Fatalf("raw hash after second set = %v", got)
	}
}

// TestSetEntryNeverVanishes checks the atomic replace from a subscriber's point of view: the key
// gets hset/hdel events, never a del, so a watcher re-reading it always finds it.
func TestSetEntryNeverVanishes(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	ctx := testCtx(t)
	if err := db.SetEntry(ctx, "T", "k", map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	ps := r.Client(t, 4).Subscribe(ctx, "__keyspace@4__:T|k")
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil { // confirmation
		t.Fatal(err)
	}
	if err := db.SetEntry(ctx, "T", "k", map[string]string{"c": "3"}); err != nil {
		t.Fatal(err)
	}
	var events []string
	for len(events) < 2 {
		msg, err := ps.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", events, err)
		}
		events = append(events, msg.Payload)
	}
	if !slices.Equal(events, []string{"hset", "hdel"}) {
		t.Errorf("events = %v, want [hset hdel]", events)
	}
}

func TestNullPlaceholder(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	raw := r.Client(t, 4)
	ctx := testCtx(t)

	if err := db.SetEntry(ctx, "VLAN", "Vlan10", nil); err != nil {
		t.Fatal(err)
	}
	if got := raw.HGetAll(ctx, "VLAN|Vlan10").Val(); !maps.Equal(got, map[string]string{"NULL": "NULL"}) {
		t.Fatalf("raw hash = %v, want NULL=NULL", got)
	}
	got, ok, err := db.GetEntry(ctx, "VLAN", "Vlan10")
	if err != nil || !ok || len(got) != 0 || got == nil {
		t.Fatalf("GetEntry = %#v %v %v, want empty non-nil map, true", got, ok, err)
	}
	// Replacing with real fields removes the placeholder ...
	if err := db.SetEntry(ctx, "VLAN", "Vlan10", map[string]string{"vlanid": "10"}); err != nil {
		t.Fatal(err)
	}
	if got := raw.HGetAll(ctx, "VLAN|Vlan10").Val(); !maps.Equal(got, map[string]string{"vlanid": "10"}) {
		t.Fatalf("raw hash = %v", got)
	}
	// ... and so does merging into a placeholder-only entry.
	if err := db.SetEntry(ctx, "VLAN", "Vlan20", map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if err := db.ModEntry(ctx, "VLAN", "Vlan20", map[string]string{"vlanid": "20"}); err != nil {
		t.Fatal(err)
	}
	if got := raw.HGetAll(ctx, "VLAN|Vlan20").Val(); !maps.Equal(got, map[string]string{"vlanid": "20"}) {
		t.Fatalf("raw hash = %v", got)
	}
	// A hash written by someone else with NULL among real fields reads without it.
	raw.HSet(ctx, "VLAN|Vlan30", "NULL", "NULL", "vlanid", "30")
	got, _, _ = db.GetEntry(ctx, "VLAN", "Vlan30")
	if !maps.Equal(got, map[string]string{"vlanid": "30"}) {
		t.Fatalf("GetEntry = %v", got)
	}
}

func TestModDelGet(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "STATE_DB")
	ctx := testCtx(t)

	if _, ok, err := db.GetEntry(ctx, "TELEGEN_JOB_TABLE", "j1"); ok || err != nil {
		t.Fatalf("missing entry: ok=%v err=%v", ok, err)
	}
	if err := db.ModEntry(ctx, "TELEGEN_JOB_TABLE", "j1", map[string]string{"status": "pending"}); err != nil {
		t.Fatal(err)
	}
	if err := db.ModEntry(ctx, "TELEGEN_JOB_TABLE", "j1", map[string]string{"status": "running", "reason": ""}); err != nil {
		t.Fatal(err)
	}
	if err := db.ModEntry(ctx, "TELEGEN_JOB_TABLE", "j1", nil); err != nil {
		t.Fatal(err)
	}
	got, ok, err := db.GetEntry(ctx, "TELEGEN_JOB_TABLE", "j1")
	if err != nil || !ok || !maps.Equal(got, map[string]string{"status": "running", "reason": ""}) {
		t.Fatalf("GetEntry = %v %v %v", got, ok, err)
	}
	if err := db.DelEntry(ctx, "TELEGEN_JOB_TABLE", "j1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DelEntry(ctx, "TELEGEN_JOB_TABLE", "j1"); err != nil {
		t.Fatalf("deleting a missing entry: %v", err)
	}
	if _, ok, err := db.GetEntry(ctx, "TELEGEN_JOB_TABLE", "j1"); ok || err != nil {
		t.Fatalf("after DelEntry: ok=%v err=%v", ok, err)
	}

	// A key of the wrong type is an error naming the key.
	r.Client(t, 6).Set(ctx, "TELEGEN_JOB_TABLE|str", "x", 0)
	_, _, err = db.GetEntry(ctx, "TELEGEN_JOB_TABLE", "str")
	if err == nil || !strings.Contains(err.Error(), `"TELEGEN_JOB_TABLE|str"`) {
		t.Fatalf("GetEntry on a string = %v", err)
	}
}

func TestKeysAndGetTable(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	cfgDB := openDB(t, r, "CONFIG_DB")
	applDB := openDB(t, r, "APPL_DB")
	ctx := testCtx(t)

	// A table name with glob characters must match only itself, not "AXB1" or "A*B[1]X".
	glob := "a*b[1]?"
	for _, w := range []struct {
		db    *DB
		table string
		key   string
	}{
		{cfgDB, glob, "k2"},
		{cfgDB, glob, "k1"},
		{cfgDB, glob, "with|sep"},
		{cfgDB, "AXB1X", "decoy"},
		{cfgDB, "A*B[1]?X", "decoy"},
		{cfgDB, "AB1?", "decoy"},
		{applDB, glob, "other-db"},
	} {
		if err := w.db.SetEntry(ctx, w.table, w.key, map[string]string{"f": w.key}); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := cfgDB.Keys(ctx, glob)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"k1", "k2", "with|sep"}; !slices.Equal(keys, want) {
		t.Errorf("Keys = %v, want %v", keys, want)
	}

	// Separators come from the config: ":" in APPL_DB.
	if applDB.Key(glob, "x") != "A*B[1]?:x" {
		t.Errorf("APPL_DB key = %q", applDB.Key(glob, "x"))
	}
	if n := r.Client(t, 0).Exists(ctx, "A*B[1]?:other-db").Val(); n != 1 {
		t.Errorf("APPL_DB raw key missing")
	}
	keys, err = applDB.Keys(ctx, glob)
	if err != nil || !slices.Equal(keys, []string{"other-db"}) {
		t.Errorf("APPL_DB Keys = %v %v", keys, err)
	}

	tbl, err := cfgDB.GetTable(ctx, glob)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl) != 3 || tbl["k1"]["f"] != "k1" || tbl["with|sep"]["f"] != "with|sep" {
		t.Errorf("GetTable = %v", tbl)
	}
	if tbl, err := cfgDB.GetTable(ctx, "EMPTY"); err != nil || len(tbl) != 0 {
		t.Errorf("empty GetTable = %v %v", tbl, err)
	}

	// Many keys exercise SCAN's cursor.
	for i := range 2500 {
		if err := cfgDB.Client().HSet(ctx, cfgDB.Key("MANY", strings.Repeat("k", 1+i%7)+strconv.Itoa(i)), "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
	}
	keys, err = cfgDB.Keys(ctx, "many")
	if err != nil || len(keys) != 2500 || !slices.IsSorted(keys) {
		t.Errorf("MANY Keys: %d keys, sorted %v, err %v", len(keys), slices.IsSorted(keys), err)
	}
}

func TestCheckKeyspaceEvents(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	db := openDB(t, r, "CONFIG_DB")
	raw := r.Client(t, 0)
	ctx := testCtx(t)

	if err := db.CheckKeyspaceEvents(ctx); err != nil {
		t.Fatalf("AKE server: %v", err)
	}
	for val, wantErr := range map[string]string{
		"Kgh":  "",
		"KA":   "",
		"":     "missing K (keyspace events), g",
		"E$gh": "missing K (keyspace events)",
		"K$":   "h (hash commands",
	} {
		if err := raw.ConfigSet(ctx, "notify-keyspace-events", val).Err(); err != nil {
			t.Fatal(err)
		}
		err := db.CheckKeyspaceEvents(ctx)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%q: %v", val, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr) ||
			!strings.Contains(err.Error(), "does not change server config")):
			t.Errorf("%q: err = %v, want it to contain %q", val, err, wantErr)
		}
	}

	// A server that forbids CONFIG: a distinguishable error.
	if err := raw.Do(ctx, "ACL", "SETUSER", "default", "-config").Err(); err != nil {
		t.Fatal(err)
	}
	err := db.CheckKeyspaceEvents(ctx)
	if !errors.Is(err, ErrCannotCheck) {
		t.Errorf("CONFIG forbidden: err = %v, want ErrCannotCheck", err)
	}
}

// TestMultiInstance points two DBs of one database_config.json at two different servers.
func TestMultiInstance(t *testing.T) {
	t.Parallel()
	r1 := testenv.StartRedis(t)
	r2 := testenv.StartRedis(t)
	cfgJSON := `{
  "INSTANCES": {
    "redis":  {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": "` + r1.Socket + `"},
    "redis3": {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": "` + r2.Socket + `"}
  },
  "DATABASES": {
    "CONFIG_DB": {"id": 4, "separator": "|", "instance": "redis"},
    "STATE_DB":  {"id": 6, "separator": "|", "instance": "redis3"}
  },
  "VERSION": "1.0"
}`
	path := filepath.Join(t.TempDir(), "database_config.json")
	if err := os.WriteFile(path, []byte(cfgJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	for _, name := range []string{"CONFIG_DB", "STATE_DB"} {
		db, err := cfg.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.SetEntry(ctx, "T", "k", map[string]string{"db": name}); err != nil {
			t.Fatal(err)
		}
	}
	if got := r1.Client(t, 4).HGet(ctx, "T|k", "db").Val(); got != "CONFIG_DB" {
		t.Errorf("server 1 db 4 = %q", got)
	}
	if got := r2.Client(t, 6).HGet(ctx, "T|k", "db").Val(); got != "STATE_DB" {
		t.Errorf("server 2 db 6 = %q", got)
	}
	if n := r1.Client(t, 6).Exists(ctx, "T|k").Val(); n != 0 {
		t.Errorf("STATE_DB write landed on server 1")
	}
}
