//go:build linux

package datapath

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/telegen-sonic/telegen-sonic/pkg/datapath/internal/constfold"
)

// tcxSupport is what Start learnt about the kernel's TCX support.
type tcxSupport int

const (
	tcxUnknown tcxSupport = iota
	tcxYes
	tcxNo
)

// Manager loads, attaches, adopts and sweeps the jobs' eBPF programs. It is safe for
// concurrent use. It works in the network namespace of the calling thread: netlink requests
// and bpf(2) calls that name an ifindex resolve it there.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	spec *ebpf.CollectionSpec // parsed once; every job loads from a copy

	mu  sync.Mutex // serialises clsact qdisc ownership changes and guards tcx
	tcx tcxSupport

	attachTCX func(link.TCXOptions) (link.Link, error) // link.AttachTCX; tests fake old kernels
}

// New parses the embedded eBPF object and prepares PinDir (which must be on a bpf filesystem)
// and StateDir. It attaches nothing; call CleanUp and Adopt for what a previous process left.
func New(cfg Config, logger *slog.Logger) (*Manager, error) {
	if cfg.Mode < AttachAuto || cfg.Mode > AttachClsact {
		return nil, fmt.Errorf("mode: unknown attach mode %d", int(cfg.Mode))
	}
	if cfg.PinDir == "" {
		cfg.PinDir = DefaultPinDir
	}
	if cfg.StateDir == "" {
		cfg.StateDir = DefaultStateDir
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	spec, err := loadTelegen()
	if err != nil {
		return nil, err
	}
	if err := ensureBPFFS(cfg.PinDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir %q: %w", cfg.StateDir, err)
	}
	return &Manager{cfg: cfg, log: logger, spec: spec, attachTCX: link.AttachTCX}, nil
}

// Start loads a fresh program instance for the job, attaches it to each requested hook of the
// interface and pins its counters (and TCX links) under PinDir/<job.ID>. On any failure it
// undoes everything it did. The job must not be running or left over (see Adopt, CleanUp).
func (m *Manager) Start(ctx context.Context, job Job) (*Run, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	began := time.Now()
	l, err := netlink.LinkByName(job.Interface)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("interface %q not found", job.Interface)
		}
		return nil, fmt.Errorf("interface %q: %w", job.Interface, err)
	}
	ifindex := l.Attrs().Index

	mode := m.pickMode()
	r, err := m.start(job, ifindex, mode)
	switch {
	case err == nil && mode == ModeTCX:
		m.setTCX(tcxYes)
	case errors.Is(err, ebpf.ErrNotSupported) && mode == ModeTCX && m.cfg.Mode == AttachAuto:
		m.setTCX(tcxNo)
		m.log.Info("kernel lacks tcx, using clsact", "reason", err.Error())
		mode = ModeClsact
		r, err = m.start(job, ifindex, mode)
	case errors.Is(err, ebpf.ErrNotSupported) && mode == ModeTCX:
		return nil, fmt.Errorf("attach mode tcx: %w (use auto or clsact)", err)
	}
	if err != nil {
		return nil, err
	}
	m.log.Info("attached", "job", job.ID, "interface", job.Interface, "mode", mode,
		"ingress", job.Ingress, "egress", job.Egress, "took", time.Since(began))
	// Loading takes a few MB of scratch (the object's BTF and instructions copied, folded and
	// marshalled per hook) that the job no longer needs. Give it back to the switch now
	// rather than when the runtime's background scavenger gets to it: an idle telegend should
	// hold as little as it can. Off the start's path; a GC of a heap this size is brief.
	go debug.FreeOSMemory()
	return r, nil
}

func (m *Manager) pickMode() string {
	switch m.cfg.Mode {
	case AttachTCX:
		return ModeTCX
	case AttachClsact:
		return ModeClsact
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tcx == tcxNo {
		return ModeClsact
	}
	return ModeTCX
}

func (m *Manager) setTCX(s tcxSupport) {
	m.mu.Lock()
	m.tcx = s
	m.mu.Unlock()
}

func (m *Manager) start(job Job, ifindex int, mode string) (_ *Run, err error) {
	set := job.settings()
	r := &Run{m: m, jobID: job.ID, iface: job.Interface, ifindex: ifindex, mode: mode, set: set}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.undoAll())
		}
	}()

	coll, err := m.load(job, set, mode)
	if err != nil {
		return nil, err
	}
	r.push("close objects", func() error { coll.Close(); return nil })
	r.maps = mapsOf(coll.Maps)

	dir := m.jobDir(job.ID)
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("job %q: %s exists: the job is running or was left over (Adopt or CleanUp it)", job.ID, dir)
		}
		return nil, fmt.Errorf("job %q: pin dir: %w", job.ID, err)
	}
	r.push("remove pins", func() error { return os.RemoveAll(dir) })
	for pin, name := range mapPins {
		if name == telegenMapSamples && set.capture == nil {
			continue
		}
		if err := coll.Maps[name].Pin(filepath.Join(dir, pin)); err != nil {
			return nil, fmt.Errorf("job %q: pin map %s: %w", job.ID, pin, err)
		}
	}
	if set.capture != nil {
		if err := r.startCapture(); err != nil {
			return nil, fmt.Errorf("job %q: %w", job.ID, err)
		}
	}

	if mode == ModeClsact {
		if err := m.ensureClsact(ifindex, job.Interface, job.Egress); err != nil {
			return nil, err
		}
		r.push("release clsact qdisc", func() error { return m.releaseClsact(ifindex) })
	}
	for _, hook := range job.hooks() {
		prog := coll.Programs[progName(mode, hook)]
		pin := filepath.Join(dir, pinName(mode, hook))
		if mode == ModeTCX {
			err = r.attachTCX(prog, hook, pin)
		} else {
			err = r.attachClsact(prog, hook, pin)
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// load creates the job's maps and the programs for its hooks from a copy of the parsed spec,
// with the job's constants (folded into the programs too, see constfold) and map sizes. The
// programs are folded and verified in parallel: verification is most of a job's start-up time.
func (m *Manager) load(job Job, set settings, mode string) (_ *ebpf.Collection, err error) {
	spec := m.spec.Copy()
	for name, v := range job.consts(set) {
		vs := spec.Variables[name]
		if vs == nil {
			return nil, fmt.Errorf("load eBPF programs: constant %s missing from the object", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("load eBPF programs: constant %s: %w", name, err)
		}
	}
	spec.Maps[telegenMapFlows4].MaxEntries = uint32(set.flowTable / FlowWays) // sets
	spec.Maps[telegenMapFlows6].MaxEntries = uint32(set.flowTable / FlowWays)
	if set.capture != nil {
		spec.Maps[telegenMapSamples].MaxEntries = uint32(set.ringSize)
	}

	var ro map[string][]byte // the constants, to fold into the programs
	if !set.unfolded {
		if ro, err = constfold.ReadOnlyData(spec); err != nil {
			return nil, fmt.Errorf("load eBPF programs: %w", err)
		}
	}

	// The maps (and constants) first, then each program on its own against them.
	progSpecs := spec.Programs
	spec.Programs = nil
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, fmt.Errorf("load eBPF maps: %w", err)
	}
	coll.Programs = make(map[string]*ebpf.Program)
	defer func() {
		if err != nil {
			coll.Close()
		}
	}()
	hooks := job.hooks()
	specs := make([]*ebpf.CollectionSpec, len(hooks))
	for i, h := range hooks {
		name := progName(mode, h)
		ps := *spec
		ps.Programs = map[string]*ebpf.ProgramSpec{name: progSpecs[name].Copy()}
		specs[i] = &ps
	}
	progs := make([]*ebpf.Program, len(hooks))
	errs := make([]error, len(hooks))
	var wg sync.WaitGroup
	for i, h := range hooks {
		wg.Go(func() {
			name := progName(mode, h)
			if ro != nil {
				ps := specs[i].Programs[name]
				if insns, _, err := constfold.Fold(ps.Instructions, ro); err == nil {
					ps.Instructions = insns
				} else {
					// An optimization, never a reason to refuse a job: the program as
					// compiled measures the same, a little slower.
					m.log.Warn("constants not folded into the program; loading it as compiled",
						"job", job.ID, "program", name, "err", err)
				}
			}
			c, err := ebpf.NewCollectionWithOptions(specs[i], ebpf.CollectionOptions{MapReplacements: coll.Maps})
			if err != nil {
				errs[i] = fmt.Errorf("load eBPF program %s: %w", name, err)
				return
			}
			progs[i] = c.DetachProgram(name)
			c.Close()
		})
	}
	wg.Wait()
	for i, h := range hooks {
		if progs[i] != nil {
			coll.Programs[progName(mode, h)] = progs[i]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return coll, nil
}

func (r *Run) attachTCX(prog *ebpf.Program, hook, pin string) error {
	// Ingress: first to see the frame as it arrived. Egress: last, closest to the wire.
	anchor := link.Tail()
	if hook == HookIngress {
		anchor = link.Head()
	}
	l, err := r.m.attachTCX(link.TCXOptions{
		Interface: r.ifindex,
		Program:   prog,
		Attach:    tcxAttachType(hook),
		Anchor:    anchor,
	})
	if err != nil {
		return fmt.Errorf("attach tcx %s on %q: %w", hook, r.iface, err)
	}
	r.push("detach tcx "+hook, func() error { return detachLink(l) })
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin tcx %s link: %w", hook, err)
	}
	if info, err := prog.Info(); err == nil {
		if id, ok := info.ID(); ok {
			r.progIDs = append(r.progIDs, id)
		}
	}
	return nil
}

func (r *Run) attachClsact(prog *ebpf.Program, hook, pin string) error {
	name := filterName(r.jobID, hook)
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("program info: %w", err)
	}
	progID, _ := info.ID()
	if err := addFilter(r.ifindex, hook, name, r.jobID, prog); err != nil {
		return fmt.Errorf("attach clsact %s filter on %q: %w", hook, r.iface, err)
	}
	r.push("delete clsact "+hook+" filter", func() error {
		return deleteFilters(r.ifindex, name, int(progID))
	})
	if err := prog.Pin(pin); err != nil {
		return fmt.Errorf("pin clsact %s program: %w", hook, err)
	}
	r.progIDs = append(r.progIDs, progID)
	return nil
}

// detachLink detaches a link even if other holders (a pin, another process) keep it open.
func detachLink(l link.Link) error {
	err := l.Detach()
	if errors.Is(err, ebpf.ErrNotSupported) {
		err = nil
	}
	return errors.Join(err, l.Close())
}

// Adopt reopens a job that a previous process started and left attached: its pinned counters
// (which keep counting) and its attachments. It returns an error wrapping ErrNotFound when the
// job is not there whole (no pins, a missing or defunct attachment, an incompatible map); what
// there is stays for CleanUp.
// StateDir is the directory of markers that bpffs cannot hold (Config.StateDir, defaulted);
// callers may keep their own per-job state there, under names that do not start with
// "clsact-".
func (m *Manager) StateDir() string { return m.cfg.StateDir }

func (m *Manager) Adopt(jobID string) (_ *Run, err error) {
	if err := validJobID(jobID); err != nil {
		return nil, err
	}
	notFound := func(format string, args ...any) error {
		return fmt.Errorf("adopt job %q: %s: %w", jobID, fmt.Sprintf(format, args...), ErrNotFound)
	}
	dir := m.jobDir(jobID)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound("no %s", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("adopt job %q: %w", jobID, err)
	}

	// Everything opened so far; closed (never unpinned) unless the whole job is found.
	var closers []func() error
	defer func() {
		if err != nil {
			for _, c := range slices.Backward(closers) {
				c()
			}
		}
	}()

	maps, err := m.adoptMaps(dir, entries)
	if err != nil {
		return nil, fmt.Errorf("adopt job %q: %w", jobID, err)
	}
	closers = append(closers, func() error { maps.close(); return nil })
	set, err := loadSettings(m.spec, maps.config, int(maps.flows4.MaxEntries())*FlowWays)
	if err != nil {
		return nil, notFound("%v", err)
	}
	if set.capture != nil && maps.samples == nil {
		return nil, notFound("no ring buffer pinned for its capture")
	}

	type hookState struct {
		hook, name string
		lnk        link.Link
		progID     int
	}
	var (
		mode    string
		ifindex int
		found   []hookState
	)
	for _, e := range entries {
		pmode, hook, ok := parsePinName(e.Name())
		if !ok {
			if _, isMap := mapPins[e.Name()]; isMap {
				continue
			}
			return nil, notFound("unknown pin %q", e.Name())
		}
		if mode != "" && pmode != mode {
			return nil, notFound("pins of both modes")
		}
		mode = pmode
		path := filepath.Join(dir, e.Name())
		var idx int
		st := hookState{hook: hook}
		if mode == ModeTCX {
			l, err := link.LoadPinnedLink(path, nil)
			if err != nil {
				return nil, notFound("tcx %s link: %v", hook, err)
			}
			closers = append(closers, l.Close)
			info, err := l.Info()
			if err != nil {
				return nil, fmt.Errorf("adopt job %q: tcx %s link: %w", jobID, hook, err)
			}
			tcx := info.TCX()
			if tcx == nil || tcx.Ifindex == 0 || ebpf.AttachType(tcx.AttachType) != tcxAttachType(hook) {
				return nil, notFound("tcx %s link is detached", hook)
			}
			idx, st.lnk, st.progID = int(tcx.Ifindex), l, int(info.Program)
		} else {
			prog, err := ebpf.LoadPinnedProgram(path, nil)
			if err != nil {
				return nil, notFound("clsact %s program: %v", hook, err)
			}
			info, err := prog.Info()
			prog.Close()
			if err != nil {
				return nil, fmt.Errorf("adopt job %q: clsact %s program: %w", jobID, hook, err)
			}
			id, _ := info.ID()
			st.name, st.progID = filterName(jobID, hook), int(id)
			if idx, err = findFilter(st.name, st.progID); err != nil {
				return nil, fmt.Errorf("adopt job %q: %w", jobID, err)
			}
			if idx == 0 {
				return nil, notFound("no clsact %s filter", hook)
			}
		}
		if ifindex != 0 && idx != ifindex {
			return nil, notFound("hooks on different interfaces")
		}
		ifindex = idx
		found = append(found, st)
	}
	if len(found) == 0 {
		return nil, notFound("nothing attached")
	}
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return nil, notFound("interface %d: %v", ifindex, err)
	}

	r := &Run{m: m, jobID: jobID, iface: l.Attrs().Name, ifindex: ifindex, mode: mode, set: set, maps: maps}
	r.push("close maps", func() error { maps.close(); return nil })
	r.push("remove pins", func() error { return os.RemoveAll(dir) })
	if set.capture != nil {
		if err := r.startCapture(); err != nil {
			return nil, fmt.Errorf("adopt job %q: %w", jobID, err) // the maps close (closers)
		}
	}
	if mode == ModeClsact {
		r.push("release clsact qdisc", func() error { return m.releaseClsact(ifindex) })
	}
	for _, st := range found {
		r.progIDs = append(r.progIDs, ebpf.ProgramID(st.progID))
		if mode == ModeTCX {
			r.push("detach tcx "+st.hook, func() error { return detachLink(st.lnk) })
		} else {
			r.push("delete clsact "+st.hook+" filter", func() error {
				return deleteFilters(ifindex, st.name, st.progID)
			})
		}
	}
	m.log.Info("adopted", "job", jobID, "interface", r.iface, "mode", mode, "hooks", len(found))
	return r, nil
}

// findFilter returns the ifindex of the interface carrying our filter with this name and
// program, or 0.
func findFilter(name string, progID int) (int, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return 0, fmt.Errorf("list interfaces: %w", err)
	}
	for _, l := range links {
		filters, err := ourFilters(l.Attrs().Index)
		if err != nil {
			return 0, fmt.Errorf("interface %q: %w", l.Attrs().Name, err)
		}
		for _, f := range filters {
			if f.name == name && f.progID == progID {
				return l.Attrs().Index, nil
			}
		}
	}
	return 0, nil
}

// CleanUp removes every attachment and pin of ours whose job keep does not keep (a nil keep
// keeps nothing): the TCX links and job directories under PinDir, the filters named
// "telegen:<job>:..." on every interface of the namespace, and the clsact qdiscs we created that
// no filter uses any more. It works from what the kernel and PinDir hold, so it also clears what
// a killed process left, and it never touches qdiscs, filters or programs that are not ours. It
// does what it can and returns the joined errors; it may be called again.
func (m *Manager) CleanUp(keep func(jobID string) bool) error {
	if keep == nil {
		keep = func(string) bool { return false }
	}
	var errs []error

	ids, err := m.jobDirs()
	errs = append(errs, err)
	for _, id := range ids {
		if keep(id) {
			continue
		}
		if err := m.removeJob(id); err != nil {
			errs = append(errs, fmt.Errorf("job %q: %w", id, err))
		} else {
			m.log.Info("removed stale job pins", "job", id)
		}
	}

	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, fmt.Errorf("list interfaces: %w", err))
	}
	for _, l := range links {
		filters, err := ourFilters(l.Attrs().Index)
		if err != nil {
			errs = append(errs, fmt.Errorf("interface %q: %w", l.Attrs().Name, err))
			continue
		}
		for _, f := range filters {
			if f.jobID != "" && keep(f.jobID) {
				continue
			}
			if err := delFilter(f); err != nil {
				errs = append(errs, fmt.Errorf("interface %q: %w", l.Attrs().Name, err))
			} else {
				m.log.Info("removed stale clsact filter", "job", f.jobID, "interface", l.Attrs().Name, "hook", f.hook)
			}
		}
	}

	idx, err := m.markers()
	errs = append(errs, err)
	for _, i := range idx {
		errs = append(errs, m.releaseClsact(i))
	}
	return errors.Join(errs...)
}

// removeJob detaches a job's pinned TCX links (whoever else holds them) and removes its pin
// directory. Its clsact filters are found by name, not here.
func (m *Manager) removeJob(jobID string) error {
	dir := m.jobDir(jobID)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if mode, _, ok := parsePinName(e.Name()); !ok || mode != ModeTCX {
			continue
		}
		l, err := link.LoadPinnedLink(filepath.Join(dir, e.Name()), nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, detachLink(l))
	}
	errs = append(errs, os.RemoveAll(dir))
	return errors.Join(errs...)
}

// Attachments asks the kernel what of ours is attached in this namespace: TCX programs named
// "telegen_*" or linked through a pin under PinDir, and cls_bpf filters named "telegen:*".
// JobID comes from the pin or the filter name and is empty when neither says.
func (m *Manager) Attachments() ([]Attachment, error) {
	pinned, err := m.pinnedLinks()
	if err != nil {
		return nil, err
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	var out []Attachment
	tcx := true
	for _, l := range links {
		idx, name := l.Attrs().Index, l.Attrs().Name
		for _, hook := range hooks {
			if !tcx {
				break
			}
			res, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: tcxAttachType(hook)})
			if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, unix.EINVAL) {
				tcx = false // a kernel before 6.6 has no TCX
				break
			}
			if err != nil {
				return nil, fmt.Errorf("interface %q: tcx %s: %w", name, hook, err)
			}
			for _, p := range res.Programs {
				lid, _ := p.LinkID()
				jobID, ok := pinned[lid]
				if !ok && !strings.HasPrefix(programName(p.ID), progPrefix) {
					continue
				}
				out = append(out, Attachment{JobID: jobID, Interface: name, Hook: hook, Mode: ModeTCX})
			}
		}
		filters, err := ourFilters(idx)
		if err != nil {
			return nil, fmt.Errorf("interface %q: %w", name, err)
		}
		for _, f := range filters {
			out = append(out, Attachment{JobID: f.jobID, Interface: name, Hook: f.hook, Mode: ModeClsact})
		}
	}
	slices.SortFunc(out, func(a, b Attachment) int { return strings.Compare(a.String(), b.String()) })
	return out, nil
}

// pinnedLinks maps the IDs of the TCX links pinned under PinDir to their jobs.
func (m *Manager) pinnedLinks() (map[link.ID]string, error) {
	ids, err := m.jobDirs()
	if err != nil {
		return nil, err
	}
	out := make(map[link.ID]string)
	for _, id := range ids {
		for _, hook := range hooks {
			l, err := link.LoadPinnedLink(filepath.Join(m.jobDir(id), pinName(ModeTCX, hook)), nil)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("job %q: %w", id, err)
			}
			info, err := l.Info()
			l.Close()
			if err != nil {
				return nil, fmt.Errorf("job %q: tcx %s link: %w", id, hook, err)
			}
			out[info.ID] = id
		}
	}
	return out, nil
}

// programName is the kernel's name for a program, or "" if it is gone.
func programName(id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return ""
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return ""
	}
	return info.Name
}
