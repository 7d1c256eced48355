// Package datapath owns telegen's eBPF data path: it loads the tc observer program, attaches it
// to a port with TCX or clsact, pins what must outlive the process, adopts what a previous
// process left running, and sweeps what nobody owns any more.
//
// It is the only package that imports cilium/ebpf and vishvananda/netlink; its API speaks in
// plain Go types. A Manager works in the network namespace of the calling thread.
//
// Kernel objects of ours, and how they are recognised:
//
//   - <PinDir>/<jobID>/stats: the job's per-CPU counter map.
//   - <PinDir>/<jobID>/tcx_ingress, tcx_egress: the job's TCX links (TCX mode).
//   - <PinDir>/<jobID>/clsact_ingress, clsact_egress: the job's programs (clsact mode; the
//     filter holds the program in the kernel, the pin lets Adopt match filter and job).
//   - clsact mode: a direct-action cls_bpf filter named "telegen:<jobID>:<hook>", protocol all,
//     priority 0x1C00 (7168), on parent ffff:fff2 (ingress) or ffff:fff3 (egress), with a
//     handle derived from the job ID (FNV-1a, probing upwards on collision).
//   - <StateDir>/clsact-<ifindex>: the clsact qdisc on that interface was created by us; it is
//     deleted once no filter at all (ours or anyone's) is left on it. A qdisc without this
//     marker is never deleted.
//
// TCX links are attached at the head of the ingress chain (we see frames as they arrived) and
// at the tail of the egress chain (as they leave), and return TCX_NEXT; clsact filters return
// TC_ACT_UNSPEC. Either way the next program or filter decides what happens to the frame.
package datapath

import (
	"errors"
	"fmt"
)

// Defaults for Config.
const (
	DefaultPinDir   = "/sys/fs/bpf/telegen"
	DefaultStateDir = "/run/telegen"
)

// Hook and mode names used in Attachment and Run.Mode.
const (
	HookIngress = "ingress"
	HookEgress  = "egress"

	ModeTCX    = "tcx"
	ModeClsact = "clsact"
)

// ErrNotFound reports that Adopt found no job, or not all of it (pins, attachments); what is
// there is left for CleanUp.
var ErrNotFound = errors.New("job not found")

// AttachMode selects how programs are attached to an interface.
type AttachMode int

const (
	// AttachAuto uses TCX and falls back to clsact when the kernel lacks TCX (before 6.6).
	AttachAuto AttachMode = iota
	// AttachTCX uses only TCX links.
	AttachTCX
	// AttachClsact uses only a clsact qdisc with cls_bpf filters.
	AttachClsact
)

// String returns the name ParseAttachMode accepts.
func (m AttachMode) String() string {
	switch m {
	case AttachAuto:
		return "auto"
	case AttachTCX:
		return ModeTCX
	case AttachClsact:
		return ModeClsact
	}
	return fmt.Sprintf("AttachMode(%d)", int(m))
}

// ParseAttachMode parses "auto", "tcx" or "clsact".
func ParseAttachMode(s string) (AttachMode, error) {
	for _, m := range []AttachMode{AttachAuto, AttachTCX, AttachClsact} {
		if s == m.String() {
			return m, nil
		}
	}
	return 0, fmt.Errorf("attach mode %q: want auto, tcx or clsact", s)
}

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	Mode AttachMode
	// PinDir is a directory on a bpf filesystem owned by telegen (default DefaultPinDir).
	PinDir string
	// StateDir holds markers that bpffs cannot hold (default DefaultStateDir). Like bpffs it
	// must survive a daemon restart and may vanish with a reboot.
	StateDir string
}

// Job says what to observe.
type Job struct {
	ID        string
	Interface string
	Ingress   bool
	Egress    bool
}

// Counters are a job's totals since it started, summed over CPUs. Bytes are wire frame lengths
// without FCS, including a VLAN tag the kernel moved to metadata.
type Counters struct {
	IngressPackets uint64
	IngressBytes   uint64
	EgressPackets  uint64
	EgressBytes    uint64
}

// Attachment is one program of ours attached in the kernel.
type Attachment struct {
	JobID     string // empty when it cannot be attributed to a job
	Interface string
	Hook      string // HookIngress or HookEgress
	Mode      string // ModeTCX or ModeClsact
}

func (a Attachment) String() string {
	return fmt.Sprintf("%s %s %s job=%s", a.Mode, a.Hook, a.Interface, a.JobID)
}

func (j Job) validate() error {
	if err := validJobID(j.ID); err != nil {
		return err
	}
	if j.Interface == "" {
		return fmt.Errorf("job %q: interface: empty", j.ID)
	}
	if !j.Ingress && !j.Egress {
		return fmt.Errorf("job %q: direction: neither ingress nor egress", j.ID)
	}
	return nil
}

// validJobID accepts the job IDs of the product contract, ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$,
// which are safe as a directory name and inside a filter name ("telegen:<id>:<hook>").
func validJobID(id string) error {
	ok := len(id) >= 1 && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("job id %q: must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", id)
	}
	return nil
}
