// Package sonicdb owns telegen's access to SONiC's Redis databases: the typed
// database_config.json, one go-redis client per DB, the ConfigDBConnector table/key/field codec and
// keyspace-notification watches.
package sonicdb

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultConfigPath is where SONiC's database container renders database_config.json.
const DefaultConfigPath = "/var/run/redis/sonic-db/database_config.json"

// ConfigPathEnv is the environment variable that overrides DefaultConfigPath, as in
// sonic-mgmt-common.
const ConfigPathEnv = "DB_CONFIG_PATH"

// Client timeouts. A SONiC Redis is local, so anything slower than this is a failure.
const (
	dialTimeout  = 2 * time.Second
	ioTimeout    = 2 * time.Second
	poolSize     = 4
	dialAttempts = 2
)

// ResolveConfigPath returns the database_config.json to use: flagValue when set, else
// $DB_CONFIG_PATH when set, else DefaultConfigPath.
func ResolveConfigPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv(ConfigPathEnv); p != "" {
		return p
	}
	return DefaultConfigPath
}

// Config is a decoded and validated database_config.json.
type Config struct {
	// Path is the file the config was loaded from.
	Path string
	// Instances are the Redis servers, by name ("redis", "redis_chassis", ...).
	Instances map[string]Instance
	// Databases are the logical DBs, by name ("CONFIG_DB", "STATE_DB", ...).
	Databases map[string]Database
	// Version is the file's VERSION string.
	Version string
}

// Instance is one entry of INSTANCES.
type Instance struct {
	Hostname       string `json:"hostname"`
	Port           int    `json:"port"`
	UnixSocketPath string `json:"unix_socket_path"`
	// PasswordPath names a file holding the instance password. A relative path is taken
	// relative to the directory of database_config.json.
	PasswordPath string `json:"password_path"`
	// Password is read from PasswordPath by LoadConfig; it is never part of the file itself.
	Password string `json:"-"`
}

// Database is one entry of DATABASES.
type Database struct {
	ID        int    `json:"id"`
	Separator string `json:"separator"`
	Instance  string `json:"instance"`
}

// LoadConfig reads and validates a SONiC database_config.json (single- or multi-instance
// layout). Every error names the offending key, e.g.
// "…/database_config.json: DATABASES.CONFIG_DB: instance "redis9" not defined".
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := parseConfig(path, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(path string, data []byte) (*Config, error) {
	var raw struct {
		Instances map[string]json.RawMessage `json:"INSTANCES"`
		Databases map[string]json.RawMessage `json:"DATABASES"`
		Version   string                     `json:"VERSION"`
		Includes  json.RawMessage            `json:"INCLUDES"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw.Instances == nil && raw.Includes != nil {
		return nil, errors.New("INSTANCES: missing (this looks like database_global.json; " +
			"pass the per-namespace database_config.json instead)")
	}
	if len(raw.Instances) == 0 {
		return nil, errors.New("INSTANCES: missing or empty")
	}
	if len(raw.Databases) == 0 {
		return nil, errors.New("DATABASES: missing or empty")
	}
	cfg := &Config{
		Path:      path,
		Instances: make(map[string]Instance, len(raw.Instances)),
		Databases: make(map[string]Database, len(raw.Databases)),
		Version:   raw.Version,
	}
	for _, name := range slices.Sorted(maps.Keys(raw.Instances)) {
		inst, err := parseInstance(filepath.Dir(path), raw.Instances[name])
		if err != nil {
			return nil, fmt.Errorf("INSTANCES.%s: %w", name, err)
		}
		cfg.Instances[name] = inst
	}
	for _, name := range slices.Sorted(maps.Keys(raw.Databases)) {
		db, err := parseDatabase(raw.Databases[name], cfg.Instances)
		if err != nil {
			return nil, fmt.Errorf("DATABASES.%s: %w", name, err)
		}
		cfg.Databases[name] = db
	}
	return cfg, nil
}

func parseInstance(dir string, raw json.RawMessage) (Instance, error) {
	var inst Instance
	if err := decodeObject(raw, &inst); err != nil {
		return Instance{}, err
	}
	if inst.Port < 0 || inst.Port > 65535 {
		return Instance{}, fmt.Errorf("port: %d out of range 0..65535", inst.Port)
	}
	if inst.UnixSocketPath == "" && (inst.Hostname == "" || inst.Port == 0) {
		return Instance{}, errors.New("needs unix_socket_path or hostname and port")
	}
	if inst.PasswordPath != "" {
		p := inst.PasswordPath
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		pw, err := os.ReadFile(p)
		if err != nil {
			return Instance{}, fmt.Errorf("password_path: %w", err)
		}
		inst.Password = strings.TrimSpace(string(pw))
	}
	return inst, nil
}

func parseDatabase(raw json.RawMessage, instances map[string]Instance) (Database, error) {
	var db Database
	if err := decodeObject(raw, &db); err != nil {
		return Database{}, err
	}
	switch {
	case db.ID < 0:
		return Database{}, fmt.Errorf("id: %d is negative", db.ID)
	case db.Separator == "":
		return Database{}, errors.New("separator: missing or empty")
	case db.Instance == "":
		return Database{}, errors.New("instance: missing or empty")
	}
	if _, ok := instances[db.Instance]; !ok {
		return Database{}, fmt.Errorf("instance %q not defined", db.Instance)
	}
	return db, nil
}

// decodeObject decodes one JSON object, tolerating unknown fields (SONiC adds some, e.g.
// persistence_for_warm_boot, database_type) but reporting wrong types by field name.
func decodeObject(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("%s: %s is not a valid %s", te.Field, te.Value, te.Type)
		}
		return err
	}
	return nil
}

// Open returns a client for the named database: over the instance's unix socket when it has one
// and it exists (or when it has no TCP address), else over TCP hostname:port. Nothing is dialled
// until the first command.
func (c *Config) Open(dbName string) (*DB, error) {
	db, ok := c.Databases[dbName]
	if !ok {
		return nil, fmt.Errorf("%s: database %q not defined in DATABASES", c.Path, dbName)
	}
	inst := c.Instances[db.Instance]
	network, addr := instanceAddr(inst, socketExists)
	client := redis.NewClient(&redis.Options{
		Network:         network,
		Addr:            addr,
		DB:              db.ID,
		Password:        inst.Password,
		Protocol:        2, // plain RESP2 pub/sub frames; SONiC's Redis may predate RESP3
		DisableIdentity: true,
		DialTimeout:     dialTimeout,
		DialerRetries:   dialAttempts,
		ReadTimeout:     ioTimeout,
		WriteTimeout:    ioTimeout,
		PoolSize:        poolSize,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	return &DB{name: dbName, id: db.ID, sep: db.Separator, client: client}, nil
}

func socketExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// instanceAddr chooses how to reach an instance: the unix socket when it exists, else TCP, and
// the socket anyway when the instance has no TCP address.
func instanceAddr(inst Instance, exists func(string) bool) (network, addr string) {
	hasTCP := inst.Hostname != "" && inst.Port != 0
	if inst.UnixSocketPath != "" && (!hasTCP || exists(inst.UnixSocketPath)) {
		return "unix", inst.UnixSocketPath
	}
	return "tcp", fmt.Sprintf("%s:%d", bracketV6(inst.Hostname), inst.Port)
}

func bracketV6(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}
