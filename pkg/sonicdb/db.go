package sonicdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// nullField is ConfigDBConnector's placeholder for an entry without attributes.
const nullField = "NULL"

// maxTxRetries bounds SetEntry's optimistic-locking retries under concurrent writers.
const maxTxRetries = 16

// DB is one logical SONiC database (CONFIG_DB, STATE_DB, ...) reached through its own client.
// It is safe for concurrent use.
type DB struct {
	name   string
	id     int
	sep    string
	client *redis.Client
}

// Name is the database's name in database_config.json.
func (d *DB) Name() string { return d.name }

// ID is the Redis DB number.
func (d *DB) ID() int { return d.id }

// Separator is the table/key separator from database_config.json ("|" or ":").
func (d *DB) Separator() string { return d.sep }

// Client is the underlying go-redis client, for what the codec does not cover.
func (d *DB) Client() *redis.Client { return d.client }

// Close closes the client and its connections.
func (d *DB) Close() error { return d.client.Close() }

// Key is the Redis key of an entry: the table upper-cased, as ConfigDBConnector does, then the
// separator, then key.
func (d *DB) Key(table, key string) string {
	return strings.ToUpper(table) + d.sep + key
}

// GetEntry reads an entry. It returns ok=false (and no error) when the key does not exist. Field
// names are kept raw (lists stay "name@"); the NULL placeholder is dropped.
func (d *DB) GetEntry(ctx context.Context, table, key string) (map[string]string, bool, error) {
	k := d.Key(table, key)
	m, err := d.client.HGetAll(ctx, k).Result()
	if err != nil {
		return nil, false, fmt.Errorf("%s %q: hgetall: %w", d.name, k, err)
	}
	if len(m) == 0 {
		return nil, false, nil
	}
	delete(m, nullField)
	return m, true, nil
}

// SetEntry replaces an entry with exactly fields, atomically: new values are written and fields
// no longer present are deleted in one MULTI/EXEC, so the key never disappears in between. An
// empty fields map writes the NULL=NULL placeholder. SetEntry is idempotent.
func (d *DB) SetEntry(ctx context.Context, table, key string, fields map[string]string) error {
	k := d.Key(table, key)
	if len(fields) == 0 {
		fields = map[string]string{nullField: nullField}
	}
	args := flatten(fields)
	txf := func(tx *redis.Tx) error {
		existing, err := tx.HKeys(ctx, k).Result()
		if err != nil {
			return err
		}
		var stale []string
		for _, f := range existing {
			if _, keep := fields[f]; !keep {
				stale = append(stale, f)
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, k, args...)
			if len(stale) > 0 {
				p.HDel(ctx, k, stale...)
			}
			return nil
		})
		return err
	}
	var err error
	for range maxTxRetries {
		err = d.client.Watch(ctx, txf, k)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("%s %q: set: %w", d.name, k, err)
	}
	return nil
}

// ModEntry merges fields into an entry, creating it if needed, and removes a NULL placeholder
// the entry may carry. With no fields it writes nothing.
func (d *DB) ModEntry(ctx context.Context, table, key string, fields map[string]string) error {
	if len(fields) == 0 {
		return nil
	}
	k := d.Key(table, key)
	_, err := d.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, flatten(fields)...)
		if _, ok := fields[nullField]; !ok {
			p.HDel(ctx, k, nullField)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s %q: mod: %w", d.name, k, err)
	}
	return nil
}

// DelEntry deletes an entry; deleting a missing entry is not an error.
func (d *DB) DelEntry(ctx context.Context, table, key string) error {
	k := d.Key(table, key)
	if err := d.client.Del(ctx, k).Err(); err != nil {
		return fmt.Errorf("%s %q: del: %w", d.name, k, err)
	}
	return nil
}

// Keys lists the keys of a table (without the "TABLE<sep>" prefix), sorted, using SCAN.
func (d *DB) Keys(ctx context.Context, table string) ([]string, error) {
	prefix := d.Key(table, "")
	seen := make(map[string]struct{})
	it := d.client.Scan(ctx, 0, escapeGlob(prefix)+"*", 1000).Iterator()
	for it.Next(ctx) {
		if k, ok := strings.CutPrefix(it.Val(), prefix); ok {
			seen[k] = struct{}{}
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("%s %q: scan: %w", d.name, prefix+"*", err)
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// GetTable reads every entry of a table, keyed like Keys. Entries deleted between the SCAN and
// the read are left out.
func (d *DB) GetTable(ctx context.Context, table string) (map[string]map[string]string, error) {
	keys, err := d.Keys(ctx, table)
	if err != nil {
		return nil, err
	}
	cmds := make([]*redis.MapStringStringCmd, len(keys))
	_, err = d.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.HGetAll(ctx, d.Key(table, k))
		}
		return nil
	})
	out := make(map[string]map[string]string, len(keys))
	for i, k := range keys {
		m, cerr := cmds[i].Result()
		if cerr != nil {
			return nil, fmt.Errorf("%s %q: hgetall: %w", d.name, d.Key(table, k), cerr)
		}
		if len(m) == 0 {
			continue
		}
		delete(m, nullField)
		out[k] = m
	}
	if err != nil {
		return nil, fmt.Errorf("%s table %s: %w", d.name, strings.ToUpper(table), err)
	}
	return out, nil
}

// SplitList decodes a ConfigDBConnector list value (field "name@" = "a,b,c"). An empty value is
// an empty list; items are trimmed of spaces.
func SplitList(s string) []string {
	if strings.TrimSpace(s) == "" {
		return []string{}
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}

// JoinList encodes a list as a ConfigDBConnector "name@" value.
func JoinList(items []string) string {
	return strings.Join(items, ",")
}

func flatten(fields map[string]string) []any {
	args := make([]any, 0, 2*len(fields))
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		args = append(args, f, fields[f])
	}
	return args
}

// escapeGlob escapes Redis glob metacharacters so s matches only itself in SCAN MATCH and
// PSUBSCRIBE patterns.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
