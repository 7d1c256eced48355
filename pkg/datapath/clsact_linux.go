//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tcFilter is a cls_bpf filter of ours, as listed from the kernel.
type tcFilter struct {
	attrs  netlink.FilterAttrs
	hook   string
	name   string
	jobID  string
	progID int
}

func clsactParent(hook string) uint32 {
	if hook == HookIngress {
		return netlink.HANDLE_MIN_INGRESS
	}
	return netlink.HANDLE_MIN_EGRESS
}

func linkRef(ifindex int) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: ifindex}}
}

func clsactQdisc(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// findIngressQdisc returns the kind of the qdisc at ffff: ("clsact" or "ingress"), or "".
func findIngressQdisc(ifindex int) (string, error) {
	qs, err := netlink.QdiscList(linkRef(ifindex))
	if err != nil {
		return "", fmt.Errorf("list qdiscs: %w", err)
	}
	for _, q := range qs {
		if q.Attrs().Parent == netlink.HANDLE_CLSACT {
			return q.Type(), nil
		}
	}
	return "", nil
}

// ensureClsact makes sure the interface has a clsact qdisc. If we add it, a marker in StateDir
// records that it is ours to delete once it carries no filter.
func (m *Manager) ensureClsact(ifindex int, iface string, egress bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := netlink.QdiscAdd(clsactQdisc(ifindex))
	if errors.Is(err, unix.EEXIST) {
		kind, err := findIngressQdisc(ifindex)
		if err != nil {
			return fmt.Errorf("interface %q: %w", iface, err)
		}
		if kind != "clsact" && egress {
			return fmt.Errorf("interface %q has a %q qdisc at ffff:, egress needs clsact", iface, kind)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("add clsact qdisc on %q: %w", iface, err)
	}
	if err := os.WriteFile(m.markerPath(ifindex), []byte(iface+"\n"), 0o644); err != nil {
		return errors.Join(fmt.Errorf("record clsact qdisc on %q: %w", iface, err),
			netlink.QdiscDel(clsactQdisc(ifindex)))
	}
	m.log.Debug("added clsact qdisc", "interface", iface)
	return nil
}

// releaseClsact deletes the clsact qdisc on ifindex if we created it (a marker says so) and no
// filter at all is left on it. A marker whose qdisc or interface is gone, or whose ifindex now
// names another interface, is dropped without touching anything else.
func (m *Manager) releaseClsact(ifindex int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	marker := m.markerPath(ifindex)
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clsact marker: %w", err)
	}
	iface := strings.TrimSpace(string(b))
	l, err := netlink.LinkByIndex(ifindex)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || err == nil && l.Attrs().Name != iface {
		return removeMarker(marker)
	}
	if err != nil {
		return fmt.Errorf("interface %q: %w", iface, err)
	}
	kind, err := findIngressQdisc(ifindex)
	if err != nil {
		return fmt.Errorf("interface %q: %w", iface, err)
	}
	if kind != "clsact" {
		return removeMarker(marker)
	}
	for _, hook := range hooks {
		filters, err := netlink.FilterList(linkRef(ifindex), clsactParent(hook))
		if err != nil {
			return fmt.Errorf("list %s filters on %q: %w", hook, iface, err)
		}
		if len(filters) > 0 {
			return nil
		}
	}
	if err := netlink.QdiscDel(clsactQdisc(ifindex)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("delete clsact qdisc on %q: %w", iface, err)
	}
	m.log.Debug("deleted clsact qdisc", "interface", iface)
	return removeMarker(marker)
}

func removeMarker(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clsact marker: %w", err)
	}
	return nil
}

// markers lists the ifindexes for which StateDir holds a clsact marker.
func (m *Manager) markers() ([]int, error) {
	entries, err := os.ReadDir(m.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	var idx []int
	for _, e := range entries {
		s, ok := strings.CutPrefix(e.Name(), markerPrefix)
		if !ok {
			continue
		}
		if i, err := strconv.Atoi(s); err == nil && i > 0 {
			idx = append(idx, i)
		}
	}
	return idx, nil
}

// addFilter attaches prog as a direct-action cls_bpf filter on the hook, at our priority, with
// the first free handle from the job's.
func addFilter(ifindex int, hook, name string, jobID string, prog *ebpf.Program) error {
	h := firstHandle(jobID)
	var err error
	for range handleProbes {
		err = netlink.FilterAdd(&netlink.BpfFilter{
			FilterAttrs: netlink.FilterAttrs{
				LinkIndex: ifindex,
				Parent:    clsactParent(hook),
				Handle:    h,
				Priority:  filterPriority,
				Protocol:  unix.ETH_P_ALL,
			},
			Fd:           prog.FD(),
			Name:         name,
			DirectAction: true,
		})
		if errors.Is(err, unix.EINVAL) {
			return explainPriorityConflict(ifindex, hook, err)
		}
		if !errors.Is(err, unix.EEXIST) {
			return err
		}
		if h++; h == 0 {
			h = 1
		}
	}
	return fmt.Errorf("no free filter handle at priority %d: %w", filterPriority, err)
}

// explainPriorityConflict names the filter that makes the kernel refuse ours (EINVAL) when
// another kind of filter, or one for another protocol, holds our priority.
func explainPriorityConflict(ifindex int, hook string, err error) error {
	filters, listErr := netlink.FilterList(linkRef(ifindex), clsactParent(hook))
	if listErr != nil {
		return err
	}
	for _, f := range filters {
		a := f.Attrs()
		if a.Priority == filterPriority && (f.Type() != "bpf" || a.Protocol != unix.ETH_P_ALL) {
			return fmt.Errorf("priority %d is taken by a %s filter (protocol %#04x) that is not ours: %w",
				filterPriority, f.Type(), a.Protocol, err)
		}
	}
	return err
}

// ourFilters lists the filters of ours (named "telegen:...") on an interface.
func ourFilters(ifindex int) ([]tcFilter, error) {
	var out []tcFilter
	for _, hook := range hooks {
		filters, err := netlink.FilterList(linkRef(ifindex), clsactParent(hook))
		if err != nil {
			return nil, fmt.Errorf("list %s filters: %w", hook, err)
		}
		for _, f := range filters {
			bf, ok := f.(*netlink.BpfFilter)
			if !ok {
				continue
			}
			jobID, ours := parseFilterName(bf.Name)
			if !ours {
				continue
			}
			out = append(out, tcFilter{attrs: bf.FilterAttrs, hook: hook, name: bf.Name, jobID: jobID, progID: bf.Id})
		}
	}
	return out, nil
}

// deleteFilters deletes our filters on ifindex with the given name, and, when progID is not
// zero, that program. A filter or interface that is gone already is not an error.
func deleteFilters(ifindex int, name string, progID int) error {
	filters, err := ourFilters(ifindex)
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range filters {
		if f.name == name && (progID == 0 || f.progID == progID) {
			errs = append(errs, delFilter(f))
		}
	}
	return errors.Join(errs...)
}

func delFilter(f tcFilter) error {
	err := netlink.FilterDel(&netlink.GenericFilter{FilterAttrs: f.attrs, FilterType: "bpf"})
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete filter %q: %w", f.name, err)
	}
	return nil
}
