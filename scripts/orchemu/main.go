// Command orchemu plays SONiC's orchagent for mirror sessions on the virtual switch
// (scripts/vswitch): it follows CONFIG_DB MIRROR_SESSION, ACL_TABLE and ACL_RULE like
// MirrorOrch and AclOrch, validates and refuses what they refuse (SPAN to CPU, unknown ports,
// modification in place), writes STATE_DB MIRROR_SESSION_TABLE, ACL_TABLE_TABLE and
// ACL_RULE_TABLE, and realizes the sessions with eBPF tc programs: SPAN copies delivered to
// the destination port's sink netdev, ERSPAN copies encapsulated (GRE + ERSPAN type II) and
// delivered to the sink that routes dst_ip, mirror ACL rules honoured. See docs/MIRROR.md.
//
//	orchemu -db-config /run/telegen-vswitch/database_config.json \
//	    -span-sink Ethernet0=telegen-span0 -erspan-route 0.0.0.0/0=telegen-erspan0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "orchemu:", err)
		os.Exit(1)
	}
}

// defaultNextHop is the outer destination MAC of ERSPAN copies: locally administered, so that
// the sink's stack drops them as PACKET_OTHERHOST after tc has seen them and nothing is routed.
var defaultNextHop = [6]byte{0x02, 0x54, 0x47, 0x00, 0x00, 0x01}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("orchemu", flag.ContinueOnError)
	var (
		dbConfig = fs.String("db-config", "", "SONiC database_config.json (default: $DB_CONFIG_PATH, else "+sonicdb.DefaultConfigPath+")")
		pidfile  = fs.String("pidfile", "", "write the pid here once the first pass is done; removed on exit")
		acl      = fs.Bool("acl", true, "play AclOrch for ACL tables of type MIRROR and MIRRORV6 (false: an orchagent without mirror ACLs)")
		ids      = fs.Bool("session-ids", true, "publish each ERSPAN session's id as STATE_DB MIRROR_SESSION_TABLE erspan_session_id (false: as SONiC's orchagent, which publishes none)")
		level    slog.Level
		sinks    = map[string]string{}
		routes   []route
	)
	fs.TextVar(&level, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.Func("span-sink", "`PORT=NETDEV`: SPAN copies to destination port PORT surface on NETDEV (repeatable; PORT * matches any); default: the netdev named like the port",
		func(v string) error {
			port, dev, ok := strings.Cut(v, "=")
			if !ok || port == "" || dev == "" {
				return fmt.Errorf("want PORT=NETDEV, not %q", v)
			}
			sinks[port] = dev
			return nil
		})
	fs.Func("erspan-route", "`CIDR=NETDEV`: ERSPAN sessions whose dst_ip is in CIDR deliver to sink NETDEV, a veth whose peer is in this netns (repeatable; longest prefix wins); without a route a session stays inactive",
		func(v string) error {
			cidr, dev, ok := strings.Cut(v, "=")
			p, err := netip.ParsePrefix(cidr)
			if !ok || err != nil || dev == "" {
				return fmt.Errorf("want CIDR=NETDEV, not %q", v)
			}
			routes = append(routes, route{prefix: p.Masked(), sink: dev})
			return nil
		})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfgFile, err := sonicdb.LoadConfig(sonicdb.ResolveConfigPath(*dbConfig))
	if err != nil {
		return err
	}
	cfg, err := cfgFile.Open("CONFIG_DB")
	if err != nil {
		return err
	}
	defer cfg.Close()
	state, err := cfgFile.Open("STATE_DB")
	if err != nil {
		return err
	}
	defer state.Close()

	set := settings{spanSinks: sinks, routes: routes, acl: *acl, ids: *ids, nextHop: defaultNextHop}
	meta, _, err := cfg.GetEntry(ctx, "DEVICE_METADATA", "localhost")
	if err != nil {
		return err
	}
	if mac := meta["mac"]; mac != "" {
		if set.switchMAC, err = parseMAC(mac); err != nil {
			return fmt.Errorf("DEVICE_METADATA|localhost mac: %w", err)
		}
	}

	k, err := newKernel(log)
	if err != nil {
		return err
	}
	defer func() {
		if err := k.Close(); err != nil {
			log.Error("detaching failed", "err", err)
		}
	}()
	m := newEmu(log, cfg, state, newOrch(log, set), host{}, k)
	if err := m.start(ctx); err != nil {
		return err
	}
	ready := func() {
		log.Info("orchagent emulator ready", "span_sinks", sinks, "erspan_routes", len(routes), "acl", *acl)
		if *pidfile != "" {
			if err := writePidfile(*pidfile); err != nil {
				log.Error("writing pidfile failed", "err", err)
			}
		}
	}
	if *pidfile != "" {
		defer os.Remove(*pidfile)
	}
	err = m.run(ctx, ready)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("orchagent emulator stopped")
	return err
}

func writePidfile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d\n", os.Getpid()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
