// Package daemon wires telegend together: SONiC's databases, the eBPF datapath and the
// reconciler, their watches, and the order in which they start and stop.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/datapath"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

type redisPipeliner = redis.Pipeliner

// stampScript sets fields on a hash only if it still exists.
var stampScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0`)

// Config is everything telegend is told at start-up.
type Config struct {
	DBConfigPath   string // database_config.json; "" resolves as sonicdb.ResolveConfigPath does
	AttachMode     string // auto, tcx or clsact
	PinDir         string // bpffs directory for per-job pins
	StateDir       string // directory for markers bpffs cannot hold
	CaptureDir     string // where pcaplike jobs' pcapng files are kept
	StatsInterval  time.Duration
	ResyncInterval time.Duration
	SweepInterval  time.Duration
}

// Run runs telegend until ctx ends, then stops every job it runs and returns.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	path := sonicdb.ResolveConfigPath(cfg.DBConfigPath)
	dbcfg, err := sonicdb.LoadConfig(path)
	if err != nil {
		return err
	}
	configDB, err := dbcfg.Open("CONFIG_DB")
	if err != nil {
		return err
	}
	defer configDB.Close()
	stateDB, err := dbcfg.Open("STATE_DB")
	if err != nil {
		return err
	}
	defer stateDB.Close()
	checkCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := configDB.CheckKeyspaceEvents(checkCtx); err != nil {
		// Reported, never fixed by us: the server's configuration is SONiC's.
		logger.Warn("redis keyspace notifications look insufficient; changes are seen only at periodic resync", "err", err)
	}
	cancel()

	mode, err := datapath.ParseAttachMode(cfg.AttachMode)
	if err != nil {
		return fmt.Errorf("attach mode: %w", err)
	}
	dp, err := datapath.New(datapath.Config{Mode: mode, PinDir: cfg.PinDir, StateDir: cfg.StateDir}, logger.With("component", "datapath"))
	if err != nil {
		return err
	}

	exp := newExporter(ctx, configDB, logger)
	countersDB, err := dbcfg.Open("COUNTERS_DB")
	if err != nil {
		return err
	}
	defer countersDB.Close()
	dpa := datapathAdapter{
		m: dp, config: configStore{configDB}, ports: newPortErrors(countersDB),
		captureDir: cfg.CaptureDir, log: logger.With("component", "datapath"),
	}
	rec := reconciler.New(configStore{configDB}, stateStore{stateDB}, dpa, newMirror(configDB, stateDB, logger), logger, reconciler.Options{
		StatsInterval:  cfg.StatsInterval,
		ResyncInterval: cfg.ResyncInterval,
		SweepInterval:  cfg.SweepInterval,
		Exporter:       exp,
	})

	watchCtx, stopWatches := context.WithCancel(ctx)
	var wg sync.WaitGroup
	watch := func(table string, h sonicdb.WatchHandler) {
		wg.Go(func() {
			if err := configDB.Watch(watchCtx, table, h); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("watch ended", "table", table, "err", err)
			}
		})
	}
	onError := func(table string) func(error) {
		return func(err error) { logger.Warn("watch lost; resubscribing", "table", table, "err", err) }
	}
	watch(jobspec.TableJob, sonicdb.WatchFuncs{
		OnSynced:  func([]string) { rec.Resync() },
		OnChanged: rec.Enqueue,
		OnError:   onError(jobspec.TableJob),
	})
	settings := sonicdb.WatchFuncs{
		OnSynced:  func([]string) { rec.SettingsChanged() },
		OnChanged: func(string) { rec.SettingsChanged() },
	}
	watch(jobspec.TableGlobal, settings)
	watch(jobspec.TableFeature, sonicdb.WatchFuncs{
		OnSynced: func([]string) { rec.SettingsChanged() },
		OnChanged: func(key string) {
			if key == jobspec.FeatureName {
				rec.SettingsChanged()
			}
		},
	})

	logger.Info("telegend started", "db_config", path, "attach_mode", cfg.AttachMode)
	err = rec.Run(ctx)
	stopWatches()
	wg.Wait()
	closeExporter(exp, logger)
	logger.Info("telegend stopped")
	return err
}
