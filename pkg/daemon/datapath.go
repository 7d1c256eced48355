package daemon

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
	"github.com/telegen-sonic/telegen-sonic/pkg/datapath"
	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/pcapng"
	"github.com/telegen-sonic/telegen-sonic/pkg/reconciler"
)

// Kernel-side caps of a pcaplike job's capture (docs/DATAPLANE.md). The file writer applies
// its own caps too.
const (
	captureSnapLen    = datapath.DefaultSnapLen
	captureMaxPackets = datapath.PcaplikeMaxPackets
	captureMaxBytes   = datapath.PcaplikeMaxBytes
	captureRatePPS    = datapath.PcaplikeRatePPS
	captureMaxFile    = 300 << 20
)

// datapathAdapter gives the reconciler the eBPF datapath in its own terms, together with what
// belongs to a run but not to the kernel: the port's own error counters and the capture file.
type datapathAdapter struct {
	m          *datapath.Manager
	config     configStore // TELEGEN|global and the jobs' keys
	ports      portErrors
	captureDir string
	log        *slog.Logger
}

func (a datapathAdapter) Start(ctx context.Context, spec jobspec.Spec, src reconciler.Source) (reconciler.Run, error) {
	topK := jobspec.DefaultGlobals().TopKFlows
	if g, err := a.config.Globals(ctx); err == nil {
		topK = g.TopKFlows
	} else {
		a.log.Warn("reading topk_flows failed; using the default", "job", spec.ID, "err", err)
	}
	run, err := a.m.Start(ctx, datapathJob(spec, src, topK))
	if err != nil {
		return nil, err
	}
	return a.newRunAdapter(ctx, run, spec.Port, spec.ID, false), nil
}

// datapathJob is what the kernel program of a job is built from.
func datapathJob(spec jobspec.Spec, src reconciler.Source, topK int) datapath.Job {
	ports := func(rs []jobspec.PortRange) []datapath.PortRange {
		out := make([]datapath.PortRange, 0, len(rs))
		for _, r := range rs {
			out = append(out, datapath.PortRange{Lo: r.Lo, Hi: r.Hi})
		}
		return out
	}
	j := datapath.Job{
		ID:        spec.ID,
		Interface: src.Interface, // for direct jobs SONiC names a port's netdev after the port
		Ingress:   spec.Direction.Ingress(),
		Egress:    spec.Direction.Egress(),
		Filter: datapath.Filter{
			VLAN:     spec.VLAN,
			IPProtos: spec.IPProtos,
			SrcPorts: ports(spec.L4SrcPorts),
			DstPorts: ports(spec.L4DstPorts),
			SrcCIDR:  spec.SrcCIDR,
			DstCIDR:  spec.DstCIDR,
			DSCPs:    spec.DSCPs,
		},
		SampleRate: spec.SampleRate,
		TopK:       topK,
	}
	if src.Mirrored {
		// Copies arrive on the sink as received frames, whichever way they crossed the port.
		j.Ingress, j.Egress = true, false
	}
	if src.ERSPAN {
		j.ERSPAN = &datapath.ERSPAN{SessionID: src.ERSPANSessionID} // -1: any session
	}
	if spec.ResultDetail == jobspec.PcapLike {
		j.Capture = &datapath.CaptureConfig{
			SnapLen:    captureSnapLen,
			MaxPackets: captureMaxPackets,
			MaxBytes:   captureMaxBytes,
			RatePPS:    captureRatePPS,
		}
	}
	return j
}

// Adopt re-opens a job a previous telegend left running. The port-counter baseline is the one
// the job started with (kept in the datapath's state directory), so l2_crc still covers the
// whole window; a capture carries on the file the previous daemon was writing (samples that
// were in its buffers when it died are lost).
func (a datapathAdapter) Adopt(ctx context.Context, id string) (reconciler.Run, error) {
	run, err := a.m.Adopt(id)
	if err != nil {
		return nil, err
	}
	port := run.Interface() // a direct job's netdev is its port; a mirror job's key names it
	if fields, ok, err := a.config.Job(ctx, id); err == nil && ok && fields[jobspec.FieldPort] != "" {
		port = fields[jobspec.FieldPort]
	}
	return a.newRunAdapter(ctx, run, port, id, true), nil
}

// CleanUp removes the datapath's leftovers, and the port-counter baselines and unfinished
// capture files (a killed daemon's) of jobs keep does not keep.
func (a datapathAdapter) CleanUp(_ context.Context, keep func(string) bool) error {
	err := a.m.CleanUp(keep)
	remove := func(pattern string, jobID func(base string) string) {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if keep != nil && keep(jobID(filepath.Base(p))) {
				continue
			}
			if rerr := os.Remove(p); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}
	remove(filepath.Join(a.m.StateDir(), l2BaselinePrefix+"*"), func(b string) string {
		return strings.TrimSuffix(strings.TrimPrefix(b, l2BaselinePrefix), ".tmp")
	})
	if a.captureDir != "" {
		remove(filepath.Join(a.captureDir, "*.pcapng.tmp"), func(b string) string {
			return strings.TrimSuffix(b, ".pcapng.tmp")
		})
	}
	return err
}

// l2BaselinePrefix names a job's port-counter baseline file in the datapath's state
// directory: l2-<job id> (job ids are safe file names).
const l2BaselinePrefix = "l2-"

func (a datapathAdapter) l2BaselinePath(id string) string {
	return filepath.Join(a.m.StateDir(), l2BaselinePrefix+id)
}

// flowReadBudget bounds the CPU that live snapshots spend dumping flow tables: after a dump
// that took d, the next live one waits 1/flowReadBudget × d.
const flowReadBudget = 0.05

// runAdapter is a job's run as the reconciler sees it.
type runAdapter struct {
	*datapath.Run
	flows *flowCache
	l2    *l2Window // the port's SAI_PORT_STAT_IF_IN_ERRORS since the job started
	// l2baseline is where l2's start is kept for a daemon that adopts the job.
	l2baseline string
	capture    *capture // the pcapng writer of a pcaplike job, or nil
}

// flowCache keeps the detail part of the last snapshot that dumped the flow tables.
type flowCache struct {
	mu      sync.Mutex
	next    time.Time // a live snapshot dumps again from then on
	sampled uint64    // Sampled when the tables were dumped
	valid   bool
	top     []aggregate.Flow
	evicted uint64
}

func (a datapathAdapter) newRunAdapter(ctx context.Context, r *datapath.Run, port, id string, adopted bool) runAdapter {
	ra := runAdapter{Run: r, flows: &flowCache{}, l2baseline: a.l2BaselinePath(id)}
	if adopted {
		if w, ok := a.ports.ResumeBaseline(port, ra.l2baseline); ok {
			ra.l2 = w
		} else {
			a.log.Warn("no port-counter baseline kept for the job: l2_crc counts from its adoption", "job", id, "port", port)
		}
	}
	if ra.l2 == nil {
		ra.l2 = a.ports.Baseline(ctx, port)
		if err := ra.l2.SaveBaseline(ra.l2baseline); err != nil {
			a.log.Warn("keeping the port-counter baseline failed: a restarted daemon would count l2_crc from its adoption", "job", id, "err", err)
		}
	}
	if samples := r.Samples(); samples != nil {
		packets := make(chan pcapng.Packet, 256)
		go func() {
			defer close(packets)
			for smp := range samples {
				dir, _ := pcapng.ParseDirection(smp.Direction)
				packets <- pcapng.Packet{Time: smp.Time, Ifindex: smp.Ifindex, Direction: dir, WireLen: smp.WireLen, Data: smp.Data}
			}
		}()
		iface := r.Interface()
		ra.capture = startCapture(context.WithoutCancel(ctx), capturePath(a.captureDir, id), packets,
			captureLimits{SnapLen: captureSnapLen, MaxPackets: captureMaxPackets, MaxBytes: captureMaxBytes, MaxFileSize: captureMaxFile, Resume: adopted},
			func(int) string { return iface })
	}
	return ra
}

// Finish reads the final figures (flow tables included), tears the run down, and waits for the
// capture file to be complete.
func (r runAdapter) Finish() (aggregate.Snapshot, map[string]string, error) {
	snap, serr := r.snapshot(true)
	cerr := r.Run.Close()
	if err := os.Remove(r.l2baseline); err != nil && !errors.Is(err, fs.ErrNotExist) {
		cerr = errors.Join(cerr, err)
	}
	var extra map[string]string
	if r.capture != nil {
		stats, err := r.capture.Wait()
		// Every sample the kernel took is in the file or counted as dropped: a daemon killed
		// with samples read from the ring but not yet written lost them, and an adopting
		// daemon does not know its predecessor's drops; the kernel's count covers both.
		if c := snap.Capture; c != nil && c.Samples > stats.Packets+stats.Dropped {
			stats.Dropped = c.Samples - stats.Packets
		}
		extra = stats.Fields()
		if err != nil {
			extra["pcap_error"] = err.Error()
		}
	}
	return snap, extra, errors.Join(serr, cerr)
}

// Snapshot is the live view: totals, errors and latency always fresh; the top flows are
// re-read when sampled packets arrived since the last read and the read budget allows, so
// they are exact once traffic pauses and at most a few dumps old otherwise.
func (r runAdapter) Snapshot() (aggregate.Snapshot, error) { return r.snapshot(false) }

// FinalSnapshot reads everything, flow tables included: what a job's result should hold.
func (r runAdapter) FinalSnapshot() (aggregate.Snapshot, error) { return r.snapshot(true) }

func (r runAdapter) snapshot(final bool) (aggregate.Snapshot, error) {
	c := r.flows
	c.mu.Lock()
	defer c.mu.Unlock()
	snap, err := r.Run.Snapshot(false)
	if err != nil {
		return snap, err
	}
	r.addPortErrors(&snap)
	fresh := c.valid && snap.Sampled == c.sampled
	if final || (!fresh && !time.Now().Before(c.next)) {
		began := time.Now()
		full, err := r.Run.Snapshot(true)
		if err != nil {
			return snap, err
		}
		took := time.Since(began)
		c.next = time.Now().Add(time.Duration(float64(took) / flowReadBudget))
		c.sampled, c.valid = full.Sampled, true
		c.top, c.evicted = full.TopFlows, full.FlowsEvicted
		full.Errors.L2CRC, full.Errors.L2CRCKnown = snap.Errors.L2CRC, snap.Errors.L2CRCKnown
		return full, nil
	}
	snap.TopFlows, snap.FlowsEvicted = c.top, c.evicted
	return snap, nil
}

// addPortErrors fills l2_crc from SONiC's port counters when they can be read.
func (r runAdapter) addPortErrors(snap *aggregate.Snapshot) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if v, err := r.l2.Since(ctx); err == nil {
		snap.Errors.L2CRC, snap.Errors.L2CRCKnown = v, true
	}
}
