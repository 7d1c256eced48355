// Command telegen-rest is telegen's REST shim: it validates job requests, writes them to
// CONFIG_DB and answers with telegend's verdict from STATE_DB. It needs no privileges beyond
// Redis access.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/restapi"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var (
		cfg      restapi.Config
		listen   multi
		roles    multi
		roleMap  string
		dbConfig string
		opt      client.DirectOptions
		level    slog.Level
		format   string
	)
	flag.Var(&listen, "listen", "address to serve: host:port or unix:/path (repeatable; default "+restapi.DefaultListen+")")
	flag.StringVar(&dbConfig, "db-config", "", "SONiC database_config.json (default: $DB_CONFIG_PATH, else /var/run/redis/sonic-db/database_config.json)")
	flag.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate (PEM); turns on TLS for TCP addresses")
	flag.StringVar(&cfg.TLSKey, "tls-key", "", "server private key (PEM)")
	flag.StringVar(&cfg.ClientCA, "client-ca", "", "CA bundle (PEM) that client certificates must chain to (mTLS)")
	flag.StringVar(&roleMap, "role-map", "", "file of role rules, one per line: CN:<name>=read|operate or OU:<name>=read|operate")
	flag.Var(&roles, "role", "a role rule CN:<name>=read|operate or OU:<name>=read|operate (repeatable)")
	flag.DurationVar(&opt.VerdictTimeout, "verdict-timeout", client.DefaultVerdictTimeout, "how long to wait for telegend's verdict before answering 503")
	flag.StringVar(&opt.CaptureDir, "capture-dir", "", "serve pcap captures only from this directory (default: any <dir>/<job>.pcapng telegend names)")
	flag.Int64Var(&cfg.MaxBodyBytes, "max-body", restapi.DefaultMaxBodyBytes, "largest request body in bytes")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	flag.StringVar(&format, "log-format", "text", "text or json")
	flag.Parse()

	var handler slog.Handler = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	if format == "json" {
		handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	}
	logger := slog.New(handler)
	cfg.Listen = listen
	if err := run(cfg, roleMap, roles, dbConfig, opt, logger); err != nil {
		fmt.Fprintln(os.Stderr, "telegen-rest:", err)
		os.Exit(1)
	}
}

func run(cfg restapi.Config, roleMap string, roles []string, dbConfig string, opt client.DirectOptions, logger *slog.Logger) error {
	if roleMap != "" || len(roles) > 0 {
		m := restapi.NewRoleMap()
		if roleMap != "" {
			var err error
			if m, err = restapi.LoadRoleMap(roleMap); err != nil {
				return err
			}
		}
		for _, r := range roles {
			if err := m.Add(r); err != nil {
				return err
			}
		}
		cfg.Roles = m
	}
	svc, err := client.OpenDirect(dbConfig, opt)
	if err != nil {
		return err
	}
	defer svc.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return restapi.Run(ctx, cfg, svc, logger)
}
