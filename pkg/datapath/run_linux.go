//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// Run is one job's program instance, attached to one interface. It is safe for concurrent use.
type Run struct {
	m       *Manager
	jobID   string
	iface   string
	ifindex int
	mode    string
	set     settings

	mu     sync.Mutex
	maps   jobMaps // zero once closed
	closed bool
	undo   []undoStep

	capture *capture // nil unless the job captures

	progIDs []ebpf.ProgramID // the attached programs, for their kernel run statistics
}

// undoStep reverses one step of setting a job up. Steps run last-in first-out.
type undoStep struct {
	what string
	fn   func() error
}

func (r *Run) push(what string, fn func() error) {
	r.undo = append(r.undo, undoStep{what, fn})
}

// undoAll runs the undo stack. A step that fails stays on it, so a later call retries it.
func (r *Run) undoAll() error {
	var errs []error
	var failed []undoStep
	for _, s := range slices.Backward(r.undo) {
		if err := s.fn(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.what, err))
			failed = append(failed, s)
		}
	}
	slices.Reverse(failed)
	r.undo = failed
	return errors.Join(errs...)
}

// Interface is the name of the interface the job is attached to.
func (r *Run) Interface() string { return r.iface }

// Mode is how the job is attached: ModeTCX or ModeClsact.
func (r *Run) Mode() string { return r.mode }

// SampleRate is the job's sampling rate in force (1: every frame).
func (r *Run) SampleRate() uint32 { return r.set.sampleRate }

// Counters reads the job's totals, summed over CPUs.
func (r *Run) Counters() (Counters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return Counters{}, fmt.Errorf("job %q: run is closed", r.jobID)
	}
	st, err := r.readStats()
	if err != nil {
		return Counters{}, err
	}
	return Counters{
		IngressPackets: st[0].Packets,
		IngressBytes:   st[0].Bytes,
		EgressPackets:  st[1].Packets,
		EgressBytes:    st[1].Bytes,
	}, nil
}

// Snapshot reads what the job has measured: exact totals and malformed frames, the sampled
// error counts scaled by the sampling rate, the latency histograms and, with detail, the
// top-K flows (scaled) and the flow-table figures. Without detail it reads only small per-CPU
// arrays (microseconds); detail also dumps the flow tables, up to 2 × MaxFlowTable entries
// (milliseconds), so callers ask for it at a job's end or at an export interval.
func (r *Run) Snapshot(detail bool) (aggregate.Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return aggregate.Snapshot{}, fmt.Errorf("job %q: run is closed", r.jobID)
	}
	n := uint64(r.set.sampleRate)
	snap := aggregate.Snapshot{SampleRate: r.set.sampleRate}
	var (
		flows []aggregate.Flow
		err   error
	)
	if detail {
		if flows, _, err = r.readFlows(); err != nil {
			return aggregate.Snapshot{}, err
		}
	}
	st, err := r.readStats()
	if err != nil {
		return aggregate.Snapshot{}, err
	}
	var sum telegenDirStats
	for _, d := range st {
		addStats(&sum, d)
	}
	snap.Ingress = aggregate.DirectionCounts{Packets: st[0].Packets, Bytes: st[0].Bytes}
	snap.Egress = aggregate.DirectionCounts{Packets: st[1].Packets, Bytes: st[1].Bytes}
	snap.Sampled = sum.Sampled
	snap.Errors = aggregate.Errors{
		Malformed:  sum.Malformed,
		L3Checksum: sum.L3Checksum * n,
		TCPRetrans: sum.TcpRetrans * n,
	}
	snap.Filtered = sum.Filtered + sum.NotErspan
	snap.Unparsed = sum.Unparsed
	snap.FlowsSeen = sum.FlowInserts
	if r.set.capture != nil {
		snap.Capture = &aggregate.CaptureCounts{
			Samples: sum.CaptureSamples,
			Lost:    sum.CaptureLost + r.capture.lost(),
			Capped:  sum.CaptureCapped,
		}
	}
	if snap.Latency, err = r.readLatency(); err != nil {
		return aggregate.Snapshot{}, err
	}
	snap.Programs = r.programStats()
	if detail {
		snap.FlowsEvicted = sum.FlowEvictions
		snap.TopFlows = topFlows(flows, r.set.topK)
		for i := range snap.TopFlows {
			snap.TopFlows[i].Packets *= n
			snap.TopFlows[i].Bytes *= n
		}
	}
	return snap, nil
}

// readStats sums the per-CPU counters of each direction.
func (r *Run) readStats() ([2]telegenDirStats, error) {
	var out [2]telegenDirStats
	for i, dir := range []telegenDirection{telegenDirectionDIR_INGRESS, telegenDirectionDIR_EGRESS} {
		var perCPU []telegenDirStats
		if err := r.maps.stats.Lookup(dir, &perCPU); err != nil {
			return out, fmt.Errorf("job %q: read counters: %w", r.jobID, err)
		}
		for _, s := range perCPU {
			addStats(&out[i], s)
		}
	}
	return out, nil
}

// bpfStatsSysctl says whether the kernel accounts every program's run time; it may also do so
// for a holder of a BPF_ENABLE_STATS descriptor, which the sysctl does not show.
const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

// programStats sums the kernel's run statistics of the job's programs. They are known when the
// sysctl is on or the kernel has counted runs; a program that cannot be read (gone) adds nothing.
func (r *Run) programStats() aggregate.ProgramStats {
	var ps aggregate.ProgramStats
	for _, id := range r.progIDs {
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		st, err := p.Stats()
		p.Close()
		if err != nil {
			continue
		}
		ps.RunTime += st.Runtime
		ps.Runs += st.RunCount
	}
	ps.Known = ps.Runs > 0
	if !ps.Known { // runs counted say it already; no file read then
		on, _ := os.ReadFile(bpfStatsSysctl)
		ps.Known = strings.TrimSpace(string(on)) == "1"
	}
	return ps
}

func addStats(sum *telegenDirStats, s telegenDirStats) {
	sum.Packets += s.Packets
	sum.Bytes += s.Bytes
	sum.Sampled += s.Sampled
	sum.Malformed += s.Malformed
	sum.Filtered += s.Filtered
	sum.L3Checksum += s.L3Checksum
	sum.TcpRetrans += s.TcpRetrans
	sum.FlowInserts += s.FlowInserts
	sum.FlowErrors += s.FlowErrors
	sum.FlowEvictions += s.FlowEvictions
	sum.CaptureSamples += s.CaptureSamples
	sum.CaptureLost += s.CaptureLost
	sum.CaptureCapped += s.CaptureCapped
	sum.Unparsed += s.Unparsed
	sum.NotErspan += s.NotErspan
}

// Latency metric names (DESIGN.md).
const (
	MetricTCPRTT         = "tcp.rtt"
	MetricNetworkLatency = "network.latency"
)

func (r *Run) readLatency() (map[string]aggregate.Histogram, error) {
	out := make(map[string]aggregate.Histogram, 2)
	for name, id := range map[string]telegenHistId{
		MetricTCPRTT:         telegenHistIdHIST_TCP_RTT,
		MetricNetworkLatency: telegenHistIdHIST_NET_LATENCY,
	} {
		var perCPU []telegenHist
		if err := r.maps.latency.Lookup(id, &perCPU); err != nil {
			return nil, fmt.Errorf("job %q: read %s histogram: %w", r.jobID, name, err)
		}
		h := aggregate.Histogram{Bounds: LatencyBounds(), Counts: make([]uint64, len(latencyBounds)+1)}
		for _, c := range perCPU {
			for i, v := range c.Counts {
				h.Counts[min(i, len(latencyBounds))] += v
				h.Count += v
			}
			h.Sum += c.Sum
		}
		out[name] = h
	}
	return out, nil
}

// Close detaches the job from its interface, ends its capture (after handing over what the
// ring buffer still holds), removes its pins and pin directory, deletes the clsact qdisc if we
// created it and nothing else uses it, and releases the maps. It may be called again: a step
// that failed is retried, and a closed Run returns nil.
func (r *Run) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed && len(r.undo) == 0 {
		return nil
	}
	r.closed = true
	if err := r.undoAll(); err != nil {
		return fmt.Errorf("close job %q: %w", r.jobID, err)
	}
	r.maps = jobMaps{}
	r.m.log.Info("detached", "job", r.jobID, "interface", r.iface, "mode", r.mode)
	return nil
}
