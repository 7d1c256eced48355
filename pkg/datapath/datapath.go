// Package datapath owns telegen's eBPF data path: it loads a job's tc observer program with the
// job's filters, sampling and features as load-time constants (folded into the program's
// instructions by internal/constfold), attaches it to a port with TCX
// or clsact, reads what it measured (totals, errors, flows, latency, pcaplike samples), pins
// what must outlive the process, adopts what a previous process left running, and sweeps what
// nobody owns any more. What is measured, and how, is docs/DATAPLANE.md.
//
// It is the only package that imports cilium/ebpf and vishvananda/netlink; its API speaks in
// plain Go types (and aggregate's). A Manager works in the network namespace of the calling
// thread.
//
// Kernel objects of ours, and how they are recognised:
//
//   - <PinDir>/<jobID>/stats, flows4, flows6, latency, capstate, config (the job's constants,
//     .rodata), samples (pcaplike jobs): the job's maps.
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
	"net/netip"
	"time"
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

// Job says what to observe and how.
type Job struct {
	ID        string
	Interface string
	Ingress   bool
	Egress    bool

	// Filter selects the frames the job counts; the zero Filter passes every frame.
	Filter Filter
	// SampleRate sends 1 in SampleRate matching frames (on average, at random) through the
	// sampled analysis: checksum, flows, retransmissions, tcp.rtt and capture. 0 and 1 mean
	// every frame. Totals and malformed are exact whatever the rate.
	SampleRate uint32
	// TopK is how many flows Snapshot(true) reports (0: DefaultTopK). It also sizes the flow
	// tables: FlowTableSize(TopK) conversations per address family.
	TopK int
	// Capture streams the first bytes of sampled frames to Run.Samples (result_detail
	// pcaplike); nil is off.
	Capture *CaptureConfig
	// ERSPAN says that the interface receives ERSPAN copies (GRE, type I, II or III): the job
	// analyses the mirrored frames inside those of this session and ignores everything else.
	// nil: the interface carries the frames themselves.
	ERSPAN *ERSPAN
}

// Filter selects frames. Each set field must match; an empty one matches everything. A filter on
// a field a frame does not have fails: a port filter drops ICMP and non-first fragments, an
// address, protocol or DSCP filter drops frames that are not IP.
type Filter struct {
	VLAN     uint16      // 1-4094: either of the frame's two outer VLAN tags carries this VID
	IPProtos []uint8     // the IP protocol (IPv6: after the extension headers)
	SrcPorts []PortRange // TCP, UDP and SCTP source port
	DstPorts []PortRange
	SrcCIDR  netip.Prefix // invalid = any; IPv4 prefixes drop IPv6 frames and vice versa
	DstCIDR  netip.Prefix
	DSCPs    []uint8 // 0-63
}

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// CaptureConfig bounds what a pcaplike job copies to user space. The kernel enforces every cap;
// a frame over a cap is counted in the snapshot's Capture.Capped.
type CaptureConfig struct {
	SnapLen    uint32 // bytes kept of each frame (0: DefaultSnapLen; at most MaxSnapLen)
	MaxPackets uint64 // samples in all (0: no cap)
	MaxBytes   uint64 // captured bytes in all (0: no cap)
	RatePPS    uint32 // samples per second (0: no cap)
}

// ERSPAN selects the ERSPAN copies a job analyses.
type ERSPAN struct {
	// SessionID is the ERSPAN session (0-1023) of the job's copies; -1 takes every session
	// and type I copies, which carry none.
	SessionID int
}

// Sample is the first bytes of one sampled frame of a pcaplike job.
type Sample struct {
	Time      time.Time // when the program saw it
	Ifindex   int
	Direction string // HookIngress or HookEgress
	WireLen   uint32 // the frame's length on the wire (a VLAN tag in metadata counted)
	Data      []byte // its first SnapLen bytes, a VLAN tag in metadata put back in place
}

// Sizes and defaults.
const (
	DefaultTopK    = 1024
	MinFlowTable   = 1024
	MaxFlowTable   = 65536
	DefaultSnapLen = 128
	MaxSnapLen     = 9216
)

// The kernel-side caps telegend gives a pcaplike job's capture (docs/DATAPLANE.md); make
// bench-bpf measures a job with these.
const (
	PcaplikeMaxPackets = 1_000_000
	PcaplikeMaxBytes   = 256 << 20
	PcaplikeRatePPS    = 20_000
)

// FlowTableSize is the number of conversations each flow table (IPv4, IPv6) of a job with this
// topK holds: 4 × topK rounded up to a power of two, within [MinFlowTable, MaxFlowTable]. The
// slack keeps the sets of the table (16 conversations each) from overflowing while it holds
// topK conversations.
func FlowTableSize(topK int) int {
	if topK <= 0 {
		topK = DefaultTopK
	}
	n := MinFlowTable
	for n < 4*topK && n < MaxFlowTable {
		n <<= 1
	}
	return n
}

// latencyBounds are the upper bounds, in nanoseconds, of the latency histograms' buckets:
// 1-2-5 steps from 1 µs to 10 s. Values above the last bound have a bucket of their own.
var latencyBounds = []uint64{
	1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5,
	1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8, 2e8, 5e8,
	1e9, 2e9, 5e9, 1e10,
}

// LatencyBounds returns the bucket bounds of the tcp.rtt and network.latency histograms (ns).
func LatencyBounds() []uint64 { return append([]uint64(nil), latencyBounds...) }

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
	f := j.Filter
	if f.VLAN > 4094 {
		return fmt.Errorf("job %q: vlan: %d is not 0-4094", j.ID, f.VLAN)
	}
	for _, d := range f.DSCPs {
		if d > 63 {
			return fmt.Errorf("job %q: dscp: %d is not 0-63", j.ID, d)
		}
	}
	for _, r := range append(append([]PortRange(nil), f.SrcPorts...), f.DstPorts...) {
		if r.Lo > r.Hi {
			return fmt.Errorf("job %q: port range %d-%d: start exceeds end", j.ID, r.Lo, r.Hi)
		}
	}
	if j.SampleRate > 1<<24 {
		return fmt.Errorf("job %q: sample rate: %d exceeds %d", j.ID, j.SampleRate, 1<<24)
	}
	if j.TopK < 0 || j.TopK > MaxFlowTable {
		return fmt.Errorf("job %q: topk: %d is not 0-%d", j.ID, j.TopK, MaxFlowTable)
	}
	if c := j.Capture; c != nil && c.SnapLen > MaxSnapLen {
		return fmt.Errorf("job %q: capture snap length: %d exceeds %d", j.ID, c.SnapLen, MaxSnapLen)
	}
	if e := j.ERSPAN; e != nil && (e.SessionID < -1 || e.SessionID > 1023) {
		return fmt.Errorf("job %q: erspan session id: %d is not -1 or 0-1023", j.ID, e.SessionID)
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
