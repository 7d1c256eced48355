//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// jobMaps are one job's maps. samples is nil unless the job captures.
type jobMaps struct {
	stats, flows4, flows6, latency, capstate, samples, config *ebpf.Map
}

// mapsOf picks a job's maps out of its loaded collection (which owns them).
func mapsOf(ms map[string]*ebpf.Map) jobMaps {
	return jobMaps{
		stats:    ms[telegenMapStats],
		flows4:   ms[telegenMapFlows4],
		flows6:   ms[telegenMapFlows6],
		latency:  ms[telegenMapLatency],
		capstate: ms[telegenMapCapstate],
		samples:  ms[telegenMapSamples],
		config:   ms[".rodata"],
	}
}

func (jm *jobMaps) byPin() map[string]**ebpf.Map {
	return map[string]**ebpf.Map{
		statsPin:   &jm.stats,
		"flows4":   &jm.flows4,
		"flows6":   &jm.flows6,
		"latency":  &jm.latency,
		"capstate": &jm.capstate,
		"samples":  &jm.samples,
		configPin:  &jm.config,
	}
}

// close closes the maps adopted from pins (never those a collection owns).
func (jm *jobMaps) close() {
	for _, mp := range jm.byPin() {
		if *mp != nil {
			(*mp).Close()
			*mp = nil
		}
	}
}

// adoptMaps opens a job's pinned maps and checks that this build's program made them: same
// types, key and value sizes, and (but for the flow tables and the ring buffer, which a job
// sizes) the same sizes. Anything missing or different is ErrNotFound.
func (m *Manager) adoptMaps(dir string, entries []os.DirEntry) (_ jobMaps, err error) {
	var jm jobMaps
	defer func() {
		if err != nil {
			jm.close()
		}
	}()
	pinned := make(map[string]bool)
	for _, e := range entries {
		pinned[e.Name()] = true
	}
	for pin, mp := range jm.byPin() {
		if !pinned[pin] {
			if pin == "samples" {
				continue // only pcaplike jobs have one
			}
			return jm, fmt.Errorf("no %s map pinned: %w", pin, ErrNotFound)
		}
		mm, err := ebpf.LoadPinnedMap(filepath.Join(dir, pin), nil)
		if errors.Is(err, fs.ErrNotExist) {
			return jm, fmt.Errorf("no %s map pinned: %w", pin, ErrNotFound)
		}
		if err != nil {
			return jm, fmt.Errorf("%s map: %w", pin, err)
		}
		*mp = mm
		spec := *m.spec.Maps[mapPins[pin]]
		switch pin {
		case "flows4", "flows6":
			if n := int(mm.MaxEntries()) * FlowWays; n < MinFlowTable || n > MaxFlowTable {
				return jm, fmt.Errorf("pinned %s map holds %d flows: %w", pin, n, ErrNotFound)
			}
			spec.MaxEntries = mm.MaxEntries()
		case "samples":
			spec.MaxEntries = mm.MaxEntries()
		case configPin:
			// The loader makes global data mmapable where the kernel can.
			spec.Flags |= mm.Flags() & unix.BPF_F_MMAPABLE
		}
		if err := spec.Compatible(mm); err != nil {
			return jm, fmt.Errorf("pinned %s map from another version: %v: %w", pin, err, ErrNotFound)
		}
	}
	return jm, nil
}
