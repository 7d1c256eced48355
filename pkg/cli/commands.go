package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// filterKeys are the keys --filter takes; the lists among them take several values.
var (
	filterKeys = []string{
		jobspec.FieldIPProto, jobspec.FieldL4SrcPort, jobspec.FieldL4DstPort,
		jobspec.FieldSrcCIDR, jobspec.FieldDstCIDR, jobspec.FieldDSCP,
	}
	filterLists = []string{jobspec.FieldIPProto, jobspec.FieldL4SrcPort, jobspec.FieldL4DstPort, jobspec.FieldDSCP}
)

func startCommand() *cli.Command {
	return &cli.Command{
		Name:  "start",
		Usage: "start a job and wait for telegend's verdict",
		Description: "Writes TELEGEN_JOB|<generated UUID> and waits until telegend admits it (running or pending),\n" +
			"refuses it, or gives no verdict in --timeout. Filters: --filter key=value[,key=value...], keys\n" +
			"ip_proto, l4_sport, l4_dport, src_cidr, dst_cidr, dscp. A list takes several values separated\n" +
			"by ';' (--filter 'dscp=10;46'), by repeating the flag (--filter dscp=10 --filter dscp=46), or\n" +
			"after a comma (--filter dscp=10,46,ip_proto=tcp). Ports take lo-hi ranges (l4_dport=8000-8080).",
		OnUsageError: usageError,
		Flags: withConn(
			&cli.StringFlag{Name: "port", Aliases: []string{"p"}, Usage: "the SONiC `PORT` to watch (a key of CONFIG_DB PORT), e.g. Ethernet16"},
			&cli.StringFlag{Name: "dir", Usage: "`DIRECTION`: ingress, egress or both (default ingress)"},
			&cli.StringFlag{Name: "span-method", Usage: "how copies reach the CPU: span, erspan or direct (default span)"},
			&cli.StringFlag{Name: "vlan", Usage: "only this VLAN `ID` (1-4094)"},
			&cli.StringFlag{Name: "sample-rate", Usage: "sample 1 in `N` packets for per-flow work (1 = every packet)"},
			&cli.StringSliceFlag{Name: "filter", Aliases: []string{"f"}, Usage: "`KEY=VALUE`[,KEY=VALUE...] (repeatable; see the description)"},
			&cli.StringFlag{Name: "duration", Aliases: []string{"d"}, Usage: "how long the job runs: seconds, or e.g. 90s, 2m (default: TELEGEN|global default_duration_sec)"},
			&cli.BoolFlag{Name: "otlp-export", DisableDefaultText: true, Usage: "export OpenTelemetry metrics (default true; --otlp-export=false to turn off)"},
			&cli.StringFlag{Name: "result-detail", Usage: "`DETAIL` kept in the result: summary, flows or pcaplike"},
			&cli.BoolFlag{Name: "wait", Aliases: []string{"w"}, Usage: "after the start, wait for the job to end and print its result"},
		),
		Action: action(func(e *env) error {
			if err := noArgs(e.c); err != nil {
				return err
			}
			req, err := requestFromFlags(e.c)
			if err != nil {
				return err
			}
			job, err := e.svc.Start(e.c.Context, req)
			if err != nil {
				return err
			}
			if !e.c.Bool("wait") {
				return e.printStarted(job)
			}
			if e.output == "table" {
				if err := e.printStarted(job); err != nil {
					return err
				}
			}
			return e.waitAndReport(job.ID)
		}),
	}
}

func requestFromFlags(c *cli.Context) (client.JobRequest, error) {
	req := client.JobRequest{
		Port:         c.String("port"),
		Direction:    c.String("dir"),
		SpanMethod:   c.String("span-method"),
		VLAN:         client.Number(c.String("vlan")),
		SampleRate:   client.Number(c.String("sample-rate")),
		DurationSec:  client.Number(durationSec(c.String("duration"))),
		ResultDetail: c.String("result-detail"),
	}
	if req.Port == "" {
		return req, usagef("--port is required")
	}
	if c.IsSet("otlp-export") {
		v := c.Bool("otlp-export")
		req.OTLPExport = &v
	}
	f, err := ParseFilters(c.StringSlice("filter"))
	if err != nil {
		return req, err
	}
	req.Filters = f
	return req, nil
}

// ParseFilters reads --filter values: key=value pairs separated by ',', list values separated
// by ';', and items without '=' continuing the list of the key before them.
func ParseFilters(values []string) (client.Filters, error) {
	var f client.Filters
	lists := map[string]*client.List{
		jobspec.FieldIPProto: &f.IPProto, jobspec.FieldL4SrcPort: &f.L4SrcPort,
		jobspec.FieldL4DstPort: &f.L4DstPort, jobspec.FieldDSCP: &f.DSCP,
	}
	scalars := map[string]*string{jobspec.FieldSrcCIDR: &f.SrcCIDR, jobspec.FieldDstCIDR: &f.DstCIDR}
	add := func(key, val string) error {
		val = strings.TrimSpace(val)
		if l, ok := lists[key]; ok {
			for item := range strings.SplitSeq(val, ";") {
				item = strings.TrimSpace(item)
				if item == "" {
					return usagef("--filter %s: empty value", key)
				}
				*l = append(*l, item)
			}
			return nil
		}
		if *scalars[key] != "" {
			return usagef("--filter %s: given twice; it takes one prefix", key)
		}
		if val == "" {
			return usagef("--filter %s: empty value", key)
		}
		*scalars[key] = val
		return nil
	}
	for _, v := range values {
		cur := ""
		for item := range strings.SplitSeq(v, ",") {
			key, val, hasEq := strings.Cut(item, "=")
			key = strings.TrimSpace(key)
			switch {
			case hasEq:
				if !slices.Contains(filterKeys, key) {
					return client.Filters{}, usagef("--filter: unknown key %q (keys: %s)", key, strings.Join(filterKeys, ", "))
				}
				cur = key
			case strings.TrimSpace(item) == "":
				continue
			case cur != "" && slices.Contains(filterLists, cur):
				val = item
			default:
				return client.Filters{}, usagef("--filter: want key=value, not %q", item)
			}
			if err := add(cur, val); err != nil {
				return client.Filters{}, err
			}
		}
	}
	return f, nil
}

func (e *env) printStarted(job client.Job) error {
	if e.output == "json" {
		return e.printJSON(client.Created{ID: job.ID, Status: job.Status, Interface: job.Interface})
	}
	where := job.Interface
	if where == "" {
		where = job.Port
	}
	_, err := fmt.Fprintf(e.out, "job %s %s on %s\n", job.ID, job.Status, where)
	return err
}

// waitAndReport polls the job until it ends, then prints its result.
func (e *env) waitAndReport(id string) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		job, err := e.svc.Get(e.c.Context, id)
		if err != nil {
			return err
		}
		if job.Status.Terminal() {
			if job.Status == jobspec.Failed || job.Status == jobspec.Rejected {
				return fmt.Errorf("job %s %s: %s", id, job.Status, job.Reason)
			}
			res, err := e.svc.Result(e.c.Context, id)
			if err != nil {
				return err
			}
			return e.printResult(res, e.output)
		}
		select {
		case <-e.c.Context.Done():
			return e.c.Context.Err()
		case <-t.C:
		}
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show a job's status as STATE_DB records it",
		ArgsUsage:    "[JOB]",
		OnUsageError: usageError,
		Flags:        withConn(jobFlag()),
		Action: action(func(e *env) error {
			id, err := jobArg(e.c)
			if err != nil {
				return err
			}
			job, err := e.svc.Get(e.c.Context, id)
			if err != nil {
				return err
			}
			if e.output == "json" {
				return e.printJSON(job)
			}
			return e.printJob(job)
		}),
	}
}

func resultsCommand() *cli.Command {
	return &cli.Command{
		Name:         "results",
		Usage:        "show the result document of an ended job",
		ArgsUsage:    "[JOB]",
		OnUsageError: usageError,
		Flags: withConn(jobFlag(),
			&cli.StringFlag{Name: "format", Usage: "`FORMAT`: json, table (default: --output), or pcap (the capture of a pcaplike job, to stdout)"},
		),
		Action: action(func(e *env) error {
			id, err := jobArg(e.c)
			if err != nil {
				return err
			}
			format := e.c.String("format")
			if format == "" {
				format = e.output
			}
			switch format {
			case "json", "table":
			case "pcap":
				return e.writePcap(id)
			default:
				return usagef("--format must be json, table or pcap, not %q", format)
			}
			res, err := e.svc.Result(e.c.Context, id)
			if err != nil {
				return err
			}
			return e.printResult(res, format)
		}),
	}
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:         "stop",
		Usage:        "stop a job and wait until telegend has torn it down",
		ArgsUsage:    "[JOB]",
		OnUsageError: usageError,
		Flags:        withConn(jobFlag()),
		Action: action(func(e *env) error {
			id, err := jobArg(e.c)
			if err != nil {
				return err
			}
			job, err := e.svc.Stop(e.c.Context, id)
			if err != nil {
				return err
			}
			if e.output == "json" {
				return e.printJSON(client.Stopped{ID: job.ID, Status: job.Status})
			}
			_, err = fmt.Fprintf(e.out, "job %s %s\n", job.ID, job.Status)
			return err
		}),
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:         "list",
		Usage:        "list the jobs STATE_DB has records of",
		OnUsageError: usageError,
		Flags:        withConn(),
		Action: action(func(e *env) error {
			if err := noArgs(e.c); err != nil {
				return err
			}
			jobs, err := e.svc.List(e.c.Context)
			if err != nil {
				return err
			}
			if e.output == "json" {
				if jobs == nil {
					jobs = []client.Job{}
				}
				return e.printJSON(client.JobList{Jobs: jobs})
			}
			return e.printJobs(jobs)
		}),
	}
}

func watchCommand() *cli.Command {
	return &cli.Command{
		Name:         "watch",
		Usage:        "follow a job live: time left, packet and byte rates, top flows",
		ArgsUsage:    "[JOB]",
		OnUsageError: usageError,
		Flags: withConn(jobFlag(),
			&cli.DurationFlag{Name: "interval", Value: time.Second, Usage: "redraw every `INTERVAL`"},
		),
		Action: action(func(e *env) error {
			id, err := jobArg(e.c)
			if err != nil {
				return err
			}
			iv := e.c.Duration("interval")
			if iv < 100*time.Millisecond {
				return usagef("--interval must be at least 100ms")
			}
			return watch(e.c.Context, e.svc, id, e.out, iv)
		}),
	}
}

// writePcap copies a pcaplike job's capture to stdout, which must not be a terminal.
func (e *env) writePcap(id string) error {
	if isTerminal(e.out) {
		return usagef("--format pcap writes binary data; redirect stdout to a file")
	}
	rc, err := e.svc.Pcap(e.c.Context, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(e.out, rc)
	return err
}

func (e *env) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.out, "%s\n", b)
	return err
}
