package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/client"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(jobspec.TimeFormat)
}

func (e *env) printJob(j client.Job) error {
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Job", j.ID)
	row("Status", string(j.Status))
	row("Reason", j.Reason)
	row("Port", j.Port)
	row("Interface", j.Interface)
	if j.Slot != nil {
		row("Slot", strconv.Itoa(*j.Slot))
	}
	row("Mirror session", j.MirrorSession)
	row("Created", fmtTime(j.CreatedAt))
	row("Started", fmtTime(j.StartedAt))
	row("Expires", fmtTime(j.ExpiresAt))
	row("Finished", fmtTime(j.FinishedAt))
	row("Packets", strconv.FormatUint(j.PacketsTotal, 10))
	row("Bytes", strconv.FormatUint(j.BytesTotal, 10))
	row("Updated", fmtTime(j.UpdatedAt))
	return tw.Flush()
}

func (e *env) printJobs(jobs []client.Job) error {
	tw := tabwriter.NewWriter(e.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSTATUS\tPORT\tSTARTED\tENDS\tPACKETS\tBYTES\tREASON")
	for _, j := range jobs {
		ends := j.ExpiresAt
		if !j.FinishedAt.IsZero() {
			ends = j.FinishedAt
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", j.ID, j.Status, dash(j.Port), fmtTime(j.StartedAt),
			fmtTime(ends), j.PacketsTotal, j.BytesTotal, dash(j.Reason))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e *env) printResult(r client.Result, format string) error {
	if format == "json" {
		return e.printJSON(r)
	}
	return writeResultTable(e.out, r)
}

// resultOrder is the order in which the table shows the members it knows; the rest follow
// sorted.
var resultOrder = []string{
	"job_id", "status", "reason", "port", "direction", "span_method", "started_at", "finished_at",
	"window_sec", "packets_total", "bytes_total", "ingress_packets", "ingress_bytes", "egress_packets",
	"egress_bytes", "sample_rate", "totals_exact",
}

func writeResultTable(w io.Writer, r client.Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	keys := slices.Sorted(maps.Keys(r))
	slices.SortStableFunc(keys, func(a, b string) int {
		ia, ib := slices.Index(resultOrder, a), slices.Index(resultOrder, b)
		if ia < 0 {
			ia = len(resultOrder)
		}
		if ib < 0 {
			ib = len(resultOrder)
		}
		return ia - ib
	})
	for _, k := range keys {
		if k == "top_flows" {
			continue
		}
		switch v := r[k].(type) {
		case map[string]any:
			for _, sub := range slices.Sorted(maps.Keys(v)) {
				fmt.Fprintf(tw, "%s.%s\t%s\n", k, sub, compact(v[sub]))
			}
		default:
			fmt.Fprintf(tw, "%s\t%s\n", k, dash(r.String(k)))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if flows := r.TopFlows(); len(flows) > 0 {
		fmt.Fprintln(w, "\nTop flows")
		return writeFlows(w, flows, len(flows))
	}
	return nil
}

func compact(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func writeFlows(w io.Writer, flows []client.Flow, n int) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "FLOW\tPKTS\tBYTES\t")
	for _, f := range flows[:min(n, len(flows))] {
		fmt.Fprintf(tw, "%s\t%d\t%d\t\n", f.FiveTuple, f.Pkts, f.Bytes)
	}
	return tw.Flush()
}

// watch redraws a live view of a job until it ends (or ctx does). On a terminal it redraws in
// place; otherwise it prints one frame after another.
func watch(ctx context.Context, svc client.Service, id string, out io.Writer, interval time.Duration) error {
	tty := isTerminal(out)
	var m meter
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		job, err := svc.Get(ctx, id)
		if err != nil {
			return err
		}
		now := time.Now()
		m.add(job, now)
		var res client.Result
		if job.Status.Terminal() {
			res, _ = svc.Result(ctx, id) // a job that never ran has none
		}
		frame := renderWatch(job, m, res, now)
		if tty {
			// Home, the frame with each line cleared to its end, then clear below.
			frame = "\x1b[H" + strings.ReplaceAll(frame, "\n", "\x1b[K\n") + "\x1b[J"
		} else {
			frame += "\n"
		}
		if _, err := io.WriteString(out, frame); err != nil {
			return err
		}
		if job.Status.Terminal() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // Ctrl-C ends a watch normally
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// meter turns successive cumulative counters into rates. It measures time by the record's
// updated_at when telegend provides it (so polling jitter does not distort rates), else by
// the wall clock.
type meter struct {
	have           bool
	packets, bytes uint64
	at             time.Time
	pps, bps       float64 // bits per second
	rated          bool
}

func (m *meter) add(j client.Job, now time.Time) {
	at := j.UpdatedAt
	if at.IsZero() {
		at = now
	}
	if m.have {
		dt := at.Sub(m.at).Seconds()
		if dt <= 0 {
			return // no new figures since the last sample
		}
		if j.PacketsTotal >= m.packets && j.BytesTotal >= m.bytes {
			m.pps = float64(j.PacketsTotal-m.packets) / dt
			m.bps = 8 * float64(j.BytesTotal-m.bytes) / dt
			m.rated = true
		}
	}
	m.have, m.packets, m.bytes, m.at = true, j.PacketsTotal, j.BytesTotal, at
}

const barWidth = 30

// renderWatch draws one frame of the live view.
func renderWatch(j client.Job, m meter, res client.Result, now time.Time) string {
	var b strings.Builder
	where := j.Port
	if j.Interface != "" && j.Interface != j.Port {
		where += " (" + j.Interface + ")"
	}
	fmt.Fprintf(&b, "telegen job %s  %s  %s\n", j.ID, strings.ToUpper(string(j.Status)), dash(where))
	if j.Reason != "" {
		fmt.Fprintf(&b, "reason: %s\n", j.Reason)
	}
	b.WriteString(progressLine(j, now) + "\n")
	rate := func(unit string, v float64, human func(float64) string) string {
		if !m.rated || j.Status.Terminal() {
			return ""
		}
		return "   " + human(v) + unit
	}
	fmt.Fprintf(&b, "packets  %-14s%s\n", strconv.FormatUint(j.PacketsTotal, 10),
		rate(" pps", m.pps, func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }))
	fmt.Fprintf(&b, "bytes    %-14s%s\n", humanBytes(j.BytesTotal), rate("", m.bps, humanBits))
	flows := j.TopFlows
	if f := res.TopFlows(); len(f) > 0 {
		flows = f
	}
	if len(flows) > 0 {
		b.WriteString("top flows\n")
		var fb strings.Builder
		_ = writeFlows(&fb, flows, 5)
		b.WriteString(fb.String())
	}
	if j.Status.Terminal() {
		if res != nil {
			fmt.Fprintf(&b, "ended %s: window %ss, %s packets, %s bytes\n", j.Status, res.String("window_sec"),
				res.String("packets_total"), res.String("bytes_total"))
		} else {
			fmt.Fprintf(&b, "ended %s\n", j.Status)
		}
	} else {
		b.WriteString("(Ctrl-C to quit; the job keeps running)\n")
	}
	return b.String()
}

// progressLine is "[#####.....]  33%  20s left of 30s", or what the job waits for.
func progressLine(j client.Job, now time.Time) string {
	switch {
	case j.Status == jobspec.Pending:
		return "waiting for a free slot"
	case j.StartedAt.IsZero() || j.ExpiresAt.IsZero() || !j.ExpiresAt.After(j.StartedAt):
		return "not started"
	}
	total := j.ExpiresAt.Sub(j.StartedAt)
	end := now
	if j.Status.Terminal() && !j.FinishedAt.IsZero() {
		end = j.FinishedAt
	}
	elapsed := min(max(end.Sub(j.StartedAt), 0), total)
	frac := float64(elapsed) / float64(total)
	filled := int(frac*barWidth + 0.5)
	bar := "[" + strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled) + "]"
	left := (total - elapsed).Round(time.Second)
	return fmt.Sprintf("%s %3.0f%%  %s left of %s", bar, 100*frac, left, total.Round(time.Second))
}

// humanBytes is a byte count in SI units ("1.2 MB").
func humanBytes(n uint64) string {
	if n < 1000 {
		return strconv.FormatUint(n, 10) + " B"
	}
	return scaled(float64(n), "B")
}

// humanBits is a bit rate ("4.1 Mbit/s").
func humanBits(v float64) string {
	if v < 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64) + " bit/s"
	}
	return scaled(v, "bit/s")
}

func scaled(v float64, unit string) string {
	prefixes := []string{"", "k", "M", "G", "T", "P"}
	i := 0
	for v >= 1000 && i < len(prefixes)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + prefixes[i] + unit
}
