// Command telegend is the telegen-sonic agent: it runs the telemetry jobs CONFIG_DB asks for.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/telegen-sonic/telegen-sonic/pkg/daemon"
)

func main() {
	var cfg daemon.Config
	var level slog.Level
	flag.StringVar(&cfg.DBConfigPath, "db-config", "", "SONiC database_config.json (default: $DB_CONFIG_PATH, else /var/run/redis/sonic-db/database_config.json)")
	flag.StringVar(&cfg.AttachMode, "attach-mode", envOr("TELEGEN_ATTACH_MODE", "auto"), "how programs attach: auto (TCX, else tc clsact), tcx or clsact ($TELEGEN_ATTACH_MODE)")
	flag.StringVar(&cfg.PinDir, "pin-dir", "/sys/fs/bpf/telegen", "bpffs directory for per-job pins, so a restarted telegend can adopt running jobs")
	flag.StringVar(&cfg.StateDir, "state-dir", "/run/telegen", "directory for state bpffs cannot hold")
	flag.StringVar(&cfg.CaptureDir, "capture-dir", "/var/lib/telegen/captures", "where pcaplike jobs' pcapng files are kept (<dir>/<job>.pcapng)")
	flag.DurationVar(&cfg.StatsInterval, "stats-interval", 0, "how often live counters are written to STATE_DB (default 1s)")
	flag.DurationVar(&cfg.ResyncInterval, "resync-interval", 0, "full reconcile pass interval (default 10s)")
	flag.DurationVar(&cfg.SweepInterval, "sweep-interval", 0, "orphaned-attachment sweep interval (default 30s)")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Run(ctx, cfg, logger); err != nil {
		fmt.Fprintln(os.Stderr, "telegend:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
