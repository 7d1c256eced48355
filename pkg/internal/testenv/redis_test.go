package testenv

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"
)

func TestRedisLifecycle(t *testing.T) {
	r := StartRedis(t)
	if len(r.Socket) > maxSocketPath {
		t.Errorf("socket path %q is %d bytes", r.Socket, len(r.Socket))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	c := r.Client(t, 4)
	if got := c.ConfigGet(ctx, "notify-keyspace-events").Val()["notify-keyspace-events"]; got != "AKE" {
		t.Errorf("notify-keyspace-events = %q, want AKE", got)
	}
	if got := c.ConfigGet(ctx, "databases").Val()["databases"]; got != "100" {
		t.Errorf("databases = %q, want 100", got)
	}
	if err := c.HSet(ctx, "T|k", "f", "1").Err(); err != nil {
		t.Fatal(err)
	}

	// Graceful restart keeps data; the same client redials.
	r.Stop(t)
	if r.Pid() != 0 {
		t.Error("Pid after Stop")
	}
	r.Start(t)
	if got := c.HGet(ctx, "T|k", "f").Val(); got != "1" {
		t.Errorf("after Stop/Start HGET = %q, want 1", got)
	}

	// A crash loses what was not saved.
	if err := c.HSet(ctx, "T|k2", "f", "2").Err(); err != nil {
		t.Fatal(err)
	}
	r.Kill(t)
	r.Start(t)
	if n := c.Exists(ctx, "T|k", "T|k2").Val(); n != 1 {
		t.Errorf("after Kill/Start %d of T|k, T|k2 exist, want 1 (T|k from dump.rdb)", n)
	}
}

func TestRedisDatabaseConfig(t *testing.T) {
	r := StartRedis(t)
	data, err := os.ReadFile(r.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Instances map[string]struct {
			Hostname       string `json:"hostname"`
			UnixSocketPath string `json:"unix_socket_path"`
		} `json:"INSTANCES"`
		Databases map[string]struct {
			ID        int    `json:"id"`
			Separator string `json:"separator"`
			Instance  string `json:"instance"`
		} `json:"DATABASES"`
		Version string `json:"VERSION"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Instances["redis"].UnixSocketPath != r.Socket || doc.Version != "1.0" {
		t.Errorf("config = %s", data)
	}
	for name, want := range map[string]struct {
		id  int
		sep string
	}{"CONFIG_DB": {4, "|"}, "STATE_DB": {6, "|"}, "APPL_DB": {0, ":"}, "APPL_STATE_DB": {14, ":"}} {
		got := doc.Databases[name]
		if got.ID != want.id || got.Separator != want.sep || got.Instance != "redis" {
			t.Errorf("%s = %+v", name, got)
		}
	}
}

func TestRedisCleanup(t *testing.T) {
	var dir string
	var pid int
	t.Run("inner", func(t *testing.T) {
		r := StartRedis(t)
		dir, pid = r.Dir, r.Pid()
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("dir %s left behind: %v", dir, err)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); !os.IsNotExist(err) {
		t.Errorf("redis-server pid %d still running", pid)
	}
}
