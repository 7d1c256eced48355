package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Redis timing for tests.
const (
	redisReadyTimeout = 5 * time.Second
	redisStopTimeout  = 10 * time.Second
	redisLogTail      = 40 // lines shown when a test fails
	maxSocketPath     = 100
)

// Redis is a private redis-server configured like SONiC's (notify-keyspace-events AKE,
// databases 100, unix socket, no TCP), listening in its own temporary directory.
type Redis struct {
	// Dir holds the config, the socket, the log and dump.rdb.
	Dir string
	// Socket is the unix socket path.
	Socket string
	// ConfigPath is a SONiC database_config.json pointing every DB at Socket.
	ConfigPath string
	// LogPath is where the server's stdout and stderr go.
	LogPath string

	bin      string
	confPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// sonicDatabases is SONiC's single-instance DATABASES layout (database_config.json.j2).
var sonicDatabases = []struct {
	name string
	id   int
	sep  string
}{
	{"APPL_DB", 0, ":"},
	{"ASIC_DB", 1, ":"},
	{"COUNTERS_DB", 2, ":"},
	{"LOGLEVEL_DB", 3, ":"},
	{"CONFIG_DB", 4, "|"},
	{"PFC_WD_DB", 5, ":"},
	{"FLEX_COUNTER_DB", 5, ":"},
	{"STATE_DB", 6, "|"},
	{"SNMP_OVERLAY_DB", 7, "|"},
	{"RESTAPI_DB", 8, "|"},
	{"GB_ASIC_DB", 9, ":"},
	{"GB_COUNTERS_DB", 10, ":"},
	{"GB_FLEX_COUNTER_DB", 11, ":"},
	{"APPL_STATE_DB", 14, ":"},
}

// StartRedis starts a redis-server for the test and stops it (and removes its directory) in
// t.Cleanup. It skips (fails under CI) without redis-server.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin := RequireTool(t, "redis-server")

	dir, err := shortTempDir()
	if err != nil {
		t.Fatalf("redis temp dir: %v", err)
	}
	r := &Redis{
		Dir:        dir,
		Socket:     filepath.Join(dir, "redis.sock"),
		ConfigPath: filepath.Join(dir, "database_config.json"),
		LogPath:    filepath.Join(dir, "redis.log"),
		bin:        bin,
		confPath:   filepath.Join(dir, "redis.conf"),
	}
	t.Cleanup(func() {
		if t.Failed() {
			r.logTail(t)
		}
		r.kill()
		_ = os.RemoveAll(dir)
	})
	if err := r.writeConfigs(); err != nil {
		t.Fatalf("redis config: %v", err)
	}
	r.Start(t)
	return r
}

// shortTempDir makes a temporary directory whose socket path fits a sockaddr_un.
func shortTempDir() (string, error) {
	dir, err := os.MkdirTemp("", "tgr")
	if err != nil {
		return "", err
	}
	if len(dir)+len("/redis.sock") <= maxSocketPath {
		return dir, nil
	}
	_ = os.RemoveAll(dir)
	return os.MkdirTemp("/tmp", "tgr")
}

func (r *Redis) writeConfigs() error {
	conf := strings.Join([]string{
		"port 0",
		"unixsocket " + r.Socket,
		"unixsocketperm 700",
		"daemonize no",
		"notify-keyspace-events AKE",
		"databases 100",
		`save ""`,
		"appendonly no",
		"dir " + r.Dir,
		"dbfilename dump.rdb",
		"client-output-buffer-limit pubsub 0 0 0",
		`logfile ""`,
	}, "\n") + "\n"
	if err := os.WriteFile(r.confPath, []byte(conf), 0o600); err != nil {
		return err
	}

	type instance struct {
		Hostname       string `json:"hostname"`
		Port           int    `json:"port"`
		UnixSocketPath string `json:"unix_socket_path"`
	}
	type database struct {
		ID        int    `json:"id"`
		Separator string `json:"separator"`
		Instance  string `json:"instance"`
	}
	dbs := make(map[string]database, len(sonicDatabases))
	for _, d := range sonicDatabases {
		dbs[d.name] = database{ID: d.id, Separator: d.sep, Instance: "redis"}
	}
	doc := struct {
		Instances map[string]instance `json:"INSTANCES"`
		Databases map[string]database `json:"DATABASES"`
		Version   string              `json:"VERSION"`
	}{
		Instances: map[string]instance{
			"redis": {Hostname: "127.0.0.1", Port: 0, UnixSocketPath: r.Socket},
		},
		Databases: dbs,
		Version:   "1.0",
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(r.ConfigPath, append(data, '\n'), 0o644)
}

// Start (re)starts the server on the same directory and socket, loading dump.rdb if a previous
// Stop saved one, and waits until it answers PING.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		t.Fatalf("redis-server already running (pid %d)", r.cmd.Process.Pid)
	}
	logf, err := os.OpenFile(r.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("redis log: %v", err)
	}
	cmd := exec.Command(r.bin, r.confPath)
	cmd.Dir = r.Dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	err = cmd.Start()
	_ = logf.Close() // the child has its own copy
	if err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	r.cmd, r.done = cmd, done

	if err := r.waitReady(done); err != nil {
		r.killLocked()
		r.logTail(t)
		t.Fatalf("redis-server: %v", err)
	}
}

func (r *Redis) waitReady(exited <-chan struct{}) error {
	c := r.newClient(0, 0)
	defer c.Close()
	deadline := time.Now().Add(redisReadyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during start")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		lastErr = c.Ping(ctx).Err()
		cancel()
		if lastErr == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("no PING answer on %s within %v: %v", r.Socket, redisReadyTimeout, lastErr)
}

// Stop shuts the server down gracefully with SHUTDOWN SAVE, so its data is in dump.rdb for
// the next Start.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		t.Fatalf("redis-server not running")
	}
	c := r.newClient(0, -1) // a retried SHUTDOWN would dial a socket that is gone
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), redisStopTimeout)
	defer cancel()
	// A successful SHUTDOWN closes the connection instead of answering, so the reply error
	// means something only if the server stays up.
	shutdownErr := c.Do(ctx, "SHUTDOWN", "SAVE").Err()
	select {
	case <-r.done:
	case <-time.After(redisStopTimeout):
		r.killLocked()
		t.Fatalf("redis-server did not exit within %v of SHUTDOWN SAVE (reply: %v)", redisStopTimeout, shutdownErr)
	}
	r.cmd, r.done = nil, nil
	if _, err := os.Stat(filepath.Join(r.Dir, "dump.rdb")); err != nil {
		t.Fatalf("redis SHUTDOWN SAVE wrote no dump.rdb: %v", err)
	}
}

// Pid is the running server's process id, e.g. to SIGSTOP it and simulate a hung server; 0 when
// it is not running.
func (r *Redis) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// Kill stops the server with SIGKILL: nothing is saved.
func (r *Redis) Kill(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		t.Fatalf("redis-server not running")
	}
	r.killLocked()
}

func (r *Redis) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killLocked()
}

func (r *Redis) killLocked() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	r.cmd, r.done = nil, nil
}

// Client returns a go-redis client on the server's socket for DB db, closed in t.Cleanup. It
// keeps working across Stop/Start (it redials).
func (r *Redis) Client(t testing.TB, db int) *redis.Client {
	t.Helper()
	c := r.newClient(db, 0)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// newClient makes a client; maxRetries 0 is go-redis's default, -1 disables retries.
func (r *Redis) newClient(db, maxRetries int) *redis.Client {
	return redis.NewClient(&redis.Options{
		MaxRetries:      maxRetries,
		Network:         "unix",
		Addr:            r.Socket,
		DB:              db,
		Protocol:        2,
		DisableIdentity: true,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		PoolSize:        4,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

func (r *Redis) logTail(t testing.TB) {
	t.Helper()
	data, err := os.ReadFile(r.LogPath)
	if err != nil {
		t.Logf("redis log %s: %v", r.LogPath, err)
		return
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > redisLogTail {
		lines = lines[len(lines)-redisLogTail:]
	}
	t.Logf("redis-server log (last %d lines of %s):\n%s", len(lines), r.LogPath, strings.Join(lines, "\n"))
}
