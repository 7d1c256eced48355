//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
)

// Run is one job's program instance, attached to one interface. It is safe for concurrent use.
type Run struct {
	m       *Manager
	jobID   string
	iface   string
	ifindex int
	mode    string

	mu    sync.Mutex
	stats *ebpf.Map // nil once closed
	undo  []undoStep
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

// Counters reads the job's totals, summed over CPUs.
func (r *Run) Counters() (Counters, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stats == nil {
		return Counters{}, fmt.Errorf("job %q: run is closed", r.jobID)
	}
	in, err := sumStats(r.stats, telegenDirectionDIR_INGRESS)
	if err != nil {
		return Counters{}, fmt.Errorf("job %q: ingress counters: %w", r.jobID, err)
	}
	eg, err := sumStats(r.stats, telegenDirectionDIR_EGRESS)
	if err != nil {
		return Counters{}, fmt.Errorf("job %q: egress counters: %w", r.jobID, err)
	}
	return Counters{
		IngressPackets: in.Packets,
		IngressBytes:   in.Bytes,
		EgressPackets:  eg.Packets,
		EgressBytes:    eg.Bytes,
	}, nil
}

func sumStats(m *ebpf.Map, dir telegenDirection) (telegenDirStats, error) {
	var perCPU []telegenDirStats
	if err := m.Lookup(dir, &perCPU); err != nil {
		return telegenDirStats{}, err
	}
	var sum telegenDirStats
	for _, s := range perCPU {
		sum.Packets += s.Packets
		sum.Bytes += s.Bytes
	}
	return sum, nil
}

// Close detaches the job from its interface, removes its pins and pin directory, deletes the
// clsact qdisc if we created it and nothing else uses it, and releases the counters. It may be
// called again: a step that failed is retried, and a closed Run returns nil.
func (r *Run) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stats == nil && len(r.undo) == 0 {
		return nil
	}
	r.stats = nil
	if err := r.undoAll(); err != nil {
		return fmt.Errorf("close job %q: %w", r.jobID, err)
	}
	r.m.log.Info("detached", "job", r.jobID, "interface", r.iface, "mode", r.mode)
	return nil
}
