package daemon

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// configStore is CONFIG_DB as the reconciler needs it.
type configStore struct{ db *sonicdb.DB }

func (c configStore) Job(ctx context.Context, id string) (map[string]string, bool, error) {
	return c.db.GetEntry(ctx, jobspec.TableJob, id)
}

func (c configStore) JobIDs(ctx context.Context) ([]string, error) {
	return c.db.Keys(ctx, jobspec.TableJob)
}

func (c configStore) DeleteJob(ctx context.Context, id string) error {
	return c.db.DelEntry(ctx, jobspec.TableJob, id)
}

// StampJob merges fields only while the key exists: a stamp must never resurrect a key that a
// user deleted a moment ago.
func (c configStore) StampJob(ctx context.Context, id string, fields map[string]string) error {
	key := c.db.Key(jobspec.TableJob, id)
	return stampScript.Run(ctx, c.db.Client(), []string{key}, flatten(fields)...).Err()
}

func (c configStore) Globals(ctx context.Context) (jobspec.Globals, error) {
	fields, _, err := c.db.GetEntry(ctx, jobspec.TableGlobal, jobspec.KeyGlobal)
	if err != nil {
		return jobspec.Globals{}, err
	}
	g, err := jobspec.GlobalsFromFields(fields)
	if err != nil {
		return jobspec.Globals{}, fmt.Errorf("CONFIG_DB %s|%s: %w", jobspec.TableGlobal, jobspec.KeyGlobal, err)
	}
	return g, nil
}

// FeatureEnabled follows FEATURE|telegen state. A missing entry (a host without SONiC's feature
// table) means enabled; only an explicit disabled state stops jobs.
func (c configStore) FeatureEnabled(ctx context.Context) (bool, error) {
	fields, _, err := c.db.GetEntry(ctx, jobspec.TableFeature, jobspec.FeatureName)
	if err != nil {
		return false, err
	}
	switch fields["state"] {
	case "disabled", "always_disabled":
		return false, nil
	}
	return true, nil
}

func (c configStore) PortExists(ctx context.Context, port string) (bool, error) {
	n, err := c.db.Client().Exists(ctx, c.db.Key(jobspec.TablePort, port)).Result()
	return n == 1, err
}

// stateStore is STATE_DB: TELEGEN_JOB_TABLE and TELEGEN_RESULT_TABLE.
type stateStore struct{ db *sonicdb.DB }

func (s stateStore) Records(ctx context.Context) (map[string]map[string]string, error) {
	return s.db.GetTable(ctx, jobspec.TableJobState)
}

func (s stateStore) BeginRun(ctx context.Context, id string, fields map[string]string) error {
	_, err := s.db.Client().TxPipelined(ctx, func(p redisPipeliner) error {
		p.Del(ctx, s.db.Key(jobspec.TableResult, id))
		p.Del(ctx, s.db.Key(jobspec.TableJobState, id))
		p.HSet(ctx, s.db.Key(jobspec.TableJobState, id), flatten(fields)...)
		return nil
	})
	return err
}

func (s stateStore) UpdateRun(ctx context.Context, id string, fields map[string]string) error {
	return s.db.ModEntry(ctx, jobspec.TableJobState, id, fields)
}

func (s stateStore) PutResult(ctx context.Context, id string, fields map[string]string) error {
	return s.db.SetEntry(ctx, jobspec.TableResult, id, fields)
}

// Prune keeps the newest keep finished jobs' records and results and deletes the rest.
func (s stateStore) Prune(ctx context.Context, keep int) error {
	records, err := s.db.GetTable(ctx, jobspec.TableJobState)
	if err != nil {
		return err
	}
	type finished struct{ id, at string }
	var done []finished
	for id, f := range records {
		if jobspec.Status(f[jobspec.FieldStatus]).Terminal() {
			done = append(done, finished{id, f[jobspec.FieldFinishedAt]})
		}
	}
	if len(done) <= keep {
		return nil
	}
	// Timestamps share one fixed-width UTC format, so they sort as strings.
	slices.SortFunc(done, func(a, b finished) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.id, b.id)) })
	var keys []string
	for _, f := range done[:len(done)-keep] {
		keys = append(keys, s.db.Key(jobspec.TableJobState, f.id), s.db.Key(jobspec.TableResult, f.id))
	}
	return s.db.Client().Del(ctx, keys...).Err()
}

func flatten(fields map[string]string) []any {
	out := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		out = append(out, k, v)
	}
	return out
}

func (s stateStore) PatchResult(ctx context.Context, id string, fields map[string]string) error {
	key := s.db.Key(jobspec.TableResult, id)
	return stampScript.Run(ctx, s.db.Client(), []string{key}, flatten(fields)...).Err()
}
