//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Names that identify our kernel objects; see the package comment.
const (
	statsPin = "stats"
	// configPin is the job's constants (.rodata), read back by Adopt.
	configPin = "config"

	// filterPrefix starts the name of every cls_bpf filter of ours: "telegen:<jobID>:<hook>".
	filterPrefix = "telegen:"
	// progPrefix starts the kernel name of every program of ours (bpf/telegen_tc.c).
	progPrefix = "telegen_"
	// filterPriority is the tc priority of our filters. Lower runs earlier: before filters that
	// tc numbers automatically (49152 and down), away from 1, which other agents like to use.
	filterPriority = 0x1C00
	// handleProbes bounds the search for a free filter handle.
	handleProbes = 16

	markerPrefix = "clsact-"
)

var hooks = [...]string{HookIngress, HookEgress}

func (j Job) hooks() []string {
	var hs []string
	if j.Ingress {
		hs = append(hs, HookIngress)
	}
	if j.Egress {
		hs = append(hs, HookEgress)
	}
	return hs
}

// pinName is the pin of a hook's attachment: the TCX link, or the clsact program.
func pinName(mode, hook string) string { return mode + "_" + hook }

func parsePinName(name string) (mode, hook string, ok bool) {
	mode, hook, ok = strings.Cut(name, "_")
	ok = ok && (mode == ModeTCX || mode == ModeClsact) && (hook == HookIngress || hook == HookEgress)
	return mode, hook, ok
}

// mapPins maps the pin name of each of a job's maps to the map's name in the object. The
// ring buffer (samples) is pinned for pcaplike jobs only.
var mapPins = map[string]string{
	statsPin:   telegenMapStats,
	"flows4":   telegenMapFlows4,
	"flows6":   telegenMapFlows6,
	"latency":  telegenMapLatency,
	"capstate": telegenMapCapstate,
	"samples":  telegenMapSamples,
	configPin:  ".rodata",
}

// ourPin reports whether a name in a job's pin directory is one we create.
func ourPin(name string) bool {
	_, _, ok := parsePinName(name)
	_, isMap := mapPins[name]
	return ok || isMap
}

func filterName(jobID, hook string) string { return filterPrefix + jobID + ":" + hook }

// parseFilterName returns the job of a filter named by filterName; ok is false for names
// without our prefix. A name with our prefix but no valid job yields ok and an empty job.
func parseFilterName(name string) (jobID string, ok bool) {
	rest, ok := strings.CutPrefix(name, filterPrefix)
	if !ok {
		return "", false
	}
	id, hook, found := strings.Cut(rest, ":")
	if !found || validJobID(id) != nil || (hook != HookIngress && hook != HookEgress) {
		return "", true
	}
	return id, true
}

// firstHandle is where the handle search for a job's filter starts.
func firstHandle(jobID string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(jobID))
	if v := h.Sum32(); v != 0 {
		return v
	}
	return 1
}

func progName(mode, hook string) string {
	switch {
	case mode == ModeTCX && hook == HookIngress:
		return telegenProgTelegenTcxIn
	case mode == ModeTCX:
		return telegenProgTelegenTcxEg
	case hook == HookIngress:
		return telegenProgTelegenTcIn
	default:
		return telegenProgTelegenTcEg
	}
}

func tcxAttachType(hook string) ebpf.AttachType {
	if hook == HookIngress {
		return ebpf.AttachTCXIngress
	}
	return ebpf.AttachTCXEgress
}

func (m *Manager) jobDir(jobID string) string { return filepath.Join(m.cfg.PinDir, jobID) }

func (m *Manager) markerPath(ifindex int) string {
	return filepath.Join(m.cfg.StateDir, fmt.Sprintf("%s%d", markerPrefix, ifindex))
}

// jobDirs lists the job directories under PinDir. Entries that are not directories named like
// a job, or that hold pins we never create, are not ours and are skipped.
func (m *Manager) jobDirs() ([]string, error) {
	entries, err := os.ReadDir(m.cfg.PinDir)
	if err != nil {
		return nil, fmt.Errorf("pin dir: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if !e.IsDir() || validJobID(e.Name()) != nil {
			continue
		}
		if ok, err := m.ownJobDir(e.Name()); err != nil {
			return nil, err
		} else if !ok {
			m.log.Warn("pin dir entry is not ours; leaving it", "path", m.jobDir(e.Name()))
			continue
		}
		ids = append(ids, e.Name())
	}
	return ids, nil
}

func (m *Manager) ownJobDir(jobID string) (bool, error) {
	entries, err := os.ReadDir(m.jobDir(jobID))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pin dir: %w", err)
	}
	for _, e := range entries {
		if !ourPin(e.Name()) {
			return false, nil
		}
	}
	return true, nil
}

// ensureBPFFS checks that dir is, or will be created, on a bpf filesystem, then creates it.
func ensureBPFFS(dir string) error {
	p := filepath.Clean(dir)
	for {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if errors.Is(err, unix.ENOENT) && p != filepath.Dir(p) {
			p = filepath.Dir(p)
			continue
		}
		if err != nil {
			return fmt.Errorf("pin dir %q: %w", dir, err)
		}
		if st.Type != unix.BPF_FS_MAGIC {
			return fmt.Errorf("pin dir %q: %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir, p)
		}
		break
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin dir %q: %w", dir, err)
	}
	return nil
}
