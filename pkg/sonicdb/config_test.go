package sonicdb

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadConfigSingleInstance(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "database_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != "1.0" {
		t.Errorf("Version = %q, want 1.0", cfg.Version)
	}
	want := map[string]Database{
		"APPL_DB":          {ID: 0, Separator: ":", Instance: "redis"},
		"CONFIG_DB":        {ID: 4, Separator: "|", Instance: "redis"},
		"FLEX_COUNTER_DB":  {ID: 5, Separator: ":", Instance: "redis"},
		"STATE_DB":         {ID: 6, Separator: "|", Instance: "redis"},
		"APPL_STATE_DB":    {ID: 14, Separator: ":", Instance: "redis"},
		"CHASSIS_STATE_DB": {ID: 13, Separator: "|", Instance: "redis_chassis"},
		"BMP_STATE_DB":     {ID: 20, Separator: "|", Instance: "redis_bmp"},
	}
	for name, w := range want {
		if got := cfg.Databases[name]; got != w {
			t.Errorf("Databases[%s] = %+v, want %+v", name, got, w)
		}
	}
	if n := len(cfg.Databases); n != 17 {
		t.Errorf("%d databases, want 17", n)
	}
	redis := cfg.Instances["redis"]
	if redis.Hostname != "127.0.0.1" || redis.Port != 6379 ||
		redis.UnixSocketPath != "/var/run/redis/redis.sock" || redis.Password != "" {
		t.Errorf("Instances[redis] = %+v", redis)
	}

	db, err := cfg.Open("STATE_DB")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Name() != "STATE_DB" || db.ID() != 6 || db.Separator() != "|" {
		t.Errorf("Open(STATE_DB) = %s/%d/%q", db.Name(), db.ID(), db.Separator())
	}
	if got := db.Key("telegen_job_table", "j1"); got != "TELEGEN_JOB_TABLE|j1" {
		t.Errorf("Key = %q", got)
	}
	if opt := db.Client().Options(); opt.DB != 6 {
		t.Errorf("client DB = %d, want 6", opt.DB)
	}
}

func TestLoadConfigMultiInstance(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "multi_database_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// No socket exists on this host, so every DB resolves to its own instance's TCP port.
	for name, wantAddr := range map[string]string{
		"APPL_DB":         "127.0.0.1:6379",
		"COUNTERS_DB":     "127.0.0.1:6375",
		"FLEX_COUNTER_DB": "127.0.0.1:6376",
		"STATE_DB":        "127.0.0.1:6377",
		"RESTAPI_DB":      "127.0.0.1:6378",
	} {
		db, err := cfg.Open(name)
		if err != nil {
			t.Fatalf("Open(%s): %v", name, err)
		}
		opt := db.Client().Options()
		if opt.Network != "tcp" || opt.Addr != wantAddr || opt.DB != cfg.Databases[name].ID {
			t.Errorf("Open(%s) = %s %s db %d, want tcp %s db %d",
				name, opt.Network, opt.Addr, opt.DB, wantAddr, cfg.Databases[name].ID)
		}
		_ = db.Close()
	}
}

func TestLoadConfigPassword(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "password.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Instances["redis"].Password; got != "s3cret" {
		t.Errorf("password = %q, want s3cret (read relative to the config, trimmed)", got)
	}
	db, err := cfg.Open("CONFIG_DB")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Client().Options().Password; got != "s3cret" {
		t.Errorf("client password = %q", got)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for file, want := range map[string]string{
		"bad_instance_undefined.json": `DATABASES.CONFIG_DB: instance "redis9" not defined`,
		"bad_separator_empty.json":    "DATABASES.STATE_DB: separator: missing or empty",
		"bad_id_negative.json":        "DATABASES.APPL_DB: id: -1 is negative",
		"bad_port_type.json":          "INSTANCES.redis: port: string is not a valid int",
		"bad_no_address.json":         "INSTANCES.redis_bmp: needs unix_socket_path or hostname and port",
		"bad_no_instances.json":       "INSTANCES: missing or empty",
		"bad_password_missing.json":   "INSTANCES.redis: password_path: open ",
		"database_global.json":        "INSTANCES: missing (this looks like database_global.json",
		"bad_syntax.json":             "unexpected end of JSON input",
		"no_such_file.json":           "no such file or directory",
	} {
		t.Run(file, func(t *testing.T) {
			path := filepath.Join("testdata", file)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig(%s) succeeded, want error containing %q", file, want)
			}
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
				t.Errorf("LoadConfig(%s) = %q, want %q and the path", file, err, want)
			}
		})
	}
}

func TestOpenUnknownDB(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "database_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cfg.Open("TELEGEN_DB")
	if err == nil || !strings.Contains(err.Error(), `"TELEGEN_DB"`) {
		t.Errorf("Open(TELEGEN_DB) = %v, want an error naming it", err)
	}
}

func TestInstanceAddr(t *testing.T) {
	exists := func(string) bool { return true }
	missing := func(string) bool { return false }
	for _, tc := range []struct {
		name          string
		inst          Instance
		exists        func(string) bool
		network, addr string
	}{
		{"socket present", Instance{Hostname: "127.0.0.1", Port: 6379, UnixSocketPath: "/s"}, exists, "unix", "/s"},
		{"socket absent", Instance{Hostname: "127.0.0.1", Port: 6379, UnixSocketPath: "/s"}, missing, "tcp", "127.0.0.1:6379"},
		{"no socket", Instance{Hostname: "10.0.0.1", Port: 6380}, exists, "tcp", "10.0.0.1:6380"},
		{"socket only", Instance{Hostname: "127.0.0.1", UnixSocketPath: "/s"}, missing, "unix", "/s"},
		{"v6", Instance{Hostname: "::1", Port: 6379}, exists, "tcp", "[::1]:6379"},
	} {
		n, a := instanceAddr(tc.inst, tc.exists)
		if n != tc.network || a != tc.addr {
			t.Errorf("%s: instanceAddr = %s %s, want %s %s", tc.name, n, a, tc.network, tc.addr)
		}
	}
}

func TestResolveConfigPath(t *testing.T) {
	t.Setenv(ConfigPathEnv, "")
	if got := ResolveConfigPath(""); got != DefaultConfigPath {
		t.Errorf("default = %q", got)
	}
	t.Setenv(ConfigPathEnv, "/env/db.json")
	if got := ResolveConfigPath(""); got != "/env/db.json" {
		t.Errorf("env = %q", got)
	}
	if got := ResolveConfigPath("/flag/db.json"); got != "/flag/db.json" {
		t.Errorf("flag = %q", got)
	}
}

func TestSplitJoinList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                    {},
		"  ":                  {},
		"Ethernet0":           {"Ethernet0"},
		"Ethernet0,Ethernet4": {"Ethernet0", "Ethernet4"},
		" 6 , 17 ":            {"6", "17"},
	} {
		got := SplitList(in)
		if got == nil || !slices.Equal(got, want) {
			t.Errorf("SplitList(%q) = %#v, want %#v", in, got, want)
		}
	}
	if got := JoinList([]string{"6", "17"}); got != "6,17" {
		t.Errorf("JoinList = %q", got)
	}
	if got := JoinList(nil); got != "" {
		t.Errorf("JoinList(nil) = %q", got)
	}
	if got := SplitList(JoinList([]string{"a", "b"})); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("round trip = %v", got)
	}
}

func TestMissingEventFlags(t *testing.T) {
	for val, want := range map[string]string{
		"AKE":  "",
		"KA":   "",
		"gKh":  "",
		"gh$K": "",
		"":     "K (keyspace events), g (generic commands: del, rename), h (hash commands: hset, hdel)",
		"AE":   "K (keyspace events)",
		"K$lx": "g (generic commands: del, rename), h (hash commands: hset, hdel)",
		"Kg":   "h (hash commands: hset, hdel)",
	} {
		if got := strings.Join(missingEventFlags(val), ", "); got != want {
			t.Errorf("missingEventFlags(%q) = %q, want %q", val, got, want)
		}
	}
}

func TestEscapeGlob(t *testing.T) {
	if got := escapeGlob(`A*B?[C]\|`); got != `A\*B\?\[C\]\\|` {
		t.Errorf("escapeGlob = %q", got)
	}
}
