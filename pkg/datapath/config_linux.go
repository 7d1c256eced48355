//go:build linux

package datapath

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"

	"github.com/cilium/ebpf"
)

// Constants of the eBPF program (bpf/include/telegen.h).
const (
	fVLAN  = 1 << 0
	fProto = 1 << 1
	fSport = 1 << 2
	fDport = 1 << 3
	fSrc4  = 1 << 4
	fDst4  = 1 << 5
	fSrc6  = 1 << 6
	fDst6  = 1 << 7
	fDSCP  = 1 << 8

	featFlows    = 1 << 0
	featTCP      = 1 << 1
	featLatency  = 1 << 2
	featCapture  = 1 << 3
	featChecksum = 1 << 4
	featERSPAN   = 1 << 5
	featNoFast   = 1 << 6 // tests: every frame through the general parser, none through the fast path

	latSlots   = 32
	gapSlots   = 256
	sampleHdr  = 24     // sizeof(struct sample_hdr)
	anySession = 0xffff // cfg_erspan_session: every session
)

// settings are what a job's program instance is built with, and what Adopt reads back from
// its pinned constants.
type settings struct {
	sampleRate uint32 // >= 1
	topK       int
	features   uint32
	capture    *CaptureConfig // with SnapLen rounded as loaded; nil when off
	flowTable  int
	ringSize   int  // ring buffer bytes (capture)
	unfolded   bool // load the programs as compiled, constants not folded in (tests compare)
}

func (j Job) settings() settings {
	s := settings{
		sampleRate: max(j.SampleRate, 1),
		topK:       j.TopK,
		features:   featFlows | featTCP | featLatency | featChecksum,
	}
	if s.topK == 0 {
		s.topK = DefaultTopK
	}
	s.flowTable = FlowTableSize(s.topK)
	if j.ERSPAN != nil {
		s.features |= featERSPAN
	}
	if c := j.Capture; c != nil {
		cc := *c
		if cc.SnapLen == 0 {
			cc.SnapLen = DefaultSnapLen
		}
		cc.SnapLen = min((cc.SnapLen+7)&^7, MaxSnapLen) // records stay 8-byte aligned
		s.capture = &cc
		s.features |= featCapture
		s.ringSize = ringSize(cc.SnapLen)
	}
	return s
}

// ringSize holds 1024 records of the job's size (the ring's 8-byte header, ours, the snap
// length), 256 KiB to 16 MiB, a power of two.
func ringSize(snapLen uint32) int {
	want := 1024 * (8 + sampleHdr + int(snapLen))
	n := 256 << 10
	for n < want && n < 16<<20 {
		n <<= 1
	}
	return n
}

// consts are the values of the program's volatile const variables for the job.
func (j Job) consts(s settings) map[string]any {
	var (
		filters         uint32
		protos          [4]uint64
		dscps           uint64
		sports, dports  [1024]uint64
		src4, src4m     [4]byte
		dst4, dst4m     [4]byte
		src6, src6m     [16]byte
		dst6, dst6m     [16]byte
		bounds          [latSlots]uint64
		gaps            [gapSlots]uint32
		snapLen, rate   uint32
		maxPkts, maxByt uint64
		session         uint16 = anySession
	)
	f := j.Filter
	if f.VLAN != 0 {
		filters |= fVLAN
	}
	if len(f.IPProtos) > 0 {
		filters |= fProto
		for _, p := range f.IPProtos {
			protos[p>>6] |= 1 << (p & 63)
		}
	}
	if len(f.DSCPs) > 0 {
		filters |= fDSCP
		for _, d := range f.DSCPs {
			dscps |= 1 << (d & 63)
		}
	}
	portSet := func(set *[1024]uint64, rs []PortRange) {
		for _, r := range rs {
			for p := int(r.Lo); p <= int(r.Hi); p++ {
				w := bits.ReverseBytes16(uint16(p)) // the set is by wire value (cfg_sports)
				set[w>>6] |= 1 << (w & 63)
			}
		}
	}
	if len(f.SrcPorts) > 0 {
		filters |= fSport
		portSet(&sports, f.SrcPorts)
	}
	if len(f.DstPorts) > 0 {
		filters |= fDport
		portSet(&dports, f.DstPorts)
	}
	if p := f.SrcCIDR; p.IsValid() {
		if p.Addr().Unmap().Is4() {
			filters |= fSrc4
			src4, src4m = prefix4(p)
		} else {
			filters |= fSrc6
			src6, src6m = prefix6(p)
		}
	}
	if p := f.DstCIDR; p.IsValid() {
		if p.Addr().Unmap().Is4() {
			filters |= fDst4
			dst4, dst4m = prefix4(p)
		} else {
			filters |= fDst6
			dst6, dst6m = prefix6(p)
		}
	}
	for i := range bounds {
		bounds[i] = 1 << 62 // above any value (the program clamps at 2^60)
		if i < len(latencyBounds) {
			bounds[i] = latencyBounds[i]
		}
	}
	if s.sampleRate > 1 {
		gaps = gapTable(s.sampleRate)
	}
	if c := s.capture; c != nil {
		snapLen, rate, maxPkts, maxByt = c.SnapLen, c.RatePPS, c.MaxPackets, c.MaxBytes
	} else {
		snapLen = 8
	}
	if j.ERSPAN != nil && j.ERSPAN.SessionID >= 0 {
		session = uint16(j.ERSPAN.SessionID)
	}
	return map[string]any{
		telegenVarCfgFilters:       filters,
		telegenVarCfgFeatures:      s.features,
		telegenVarCfgVlan:          f.VLAN,
		telegenVarCfgProtos:        protos,
		telegenVarCfgDscps:         dscps,
		telegenVarCfgSports:        sports,
		telegenVarCfgDports:        dports,
		telegenVarCfgSrc4:          src4,
		telegenVarCfgSrc4Mask:      src4m,
		telegenVarCfgDst4:          dst4,
		telegenVarCfgDst4Mask:      dst4m,
		telegenVarCfgSrc6:          src6,
		telegenVarCfgSrc6Mask:      src6m,
		telegenVarCfgDst6:          dst6,
		telegenVarCfgDst6Mask:      dst6m,
		telegenVarCfgSampleRate:    s.sampleRate,
		telegenVarCfgGaps:          gaps,
		telegenVarCfgLatBounds:     bounds,
		telegenVarCfgSnaplen:       snapLen,
		telegenVarCfgCapRate:       rate,
		telegenVarCfgCapMaxPackets: maxPkts,
		telegenVarCfgCapMaxBytes:   maxByt,
		telegenVarCfgErspanSession: session,
		telegenVarCfgTopk:          uint32(s.topK),
		telegenVarCfgWakeup:        uint64(s.ringSize / 4),
		telegenVarCfgFlowMask:      uint32(s.flowTable/FlowWays - 1),
		telegenVarCfgFlowShift:     uint32(64 - bits.TrailingZeros(uint(s.flowTable/FlowWays))),
		telegenVarCfgFlowSeed:      rand.Uint64(),
	}
}

// prefix4 is an IPv4 prefix as the program compares it: address and mask in network order.
func prefix4(p netip.Prefix) (addr, mask [4]byte) {
	p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), 32)).Masked()
	addr = p.Addr().As4()
	binary.BigEndian.PutUint32(mask[:], ^uint32(0)<<(32-p.Bits()))
	if p.Bits() == 0 {
		mask = [4]byte{}
	}
	return addr, mask
}

func prefix6(p netip.Prefix) (addr, mask [16]byte) {
	p = p.Masked()
	addr = p.Addr().As16()
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return addr, mask
}

// gapTable is what drives 1-in-n sampling: the number of matching frames from one sampled
// frame to the next is drawn uniformly from these 256 values, quantiles of the geometric
// distribution with mean n (the gaps of independent 1-in-n coin flips), nudged so that their
// mean is exactly n.
func gapTable(n uint32) [gapSlots]uint32 {
	var t [gapSlots]uint32
	p := 1 / float64(n)
	var sum int64
	for i := range t {
		u := (float64(i) + 0.5) / gapSlots
		g := math.Ceil(math.Log1p(-u) / math.Log1p(-p))
		t[i] = uint32(max(g, 1))
		sum += int64(t[i])
	}
	// Spread the difference to the exact mean over the table, largest gaps first.
	diff := int64(n)*gapSlots - sum
	for i := gapSlots - 1; diff != 0; i = (i + gapSlots - 1) % gapSlots {
		step := int64(1)
		if diff < 0 {
			step = -1
		}
		if int64(t[i])+step >= 1 {
			t[i] = uint32(int64(t[i]) + step)
			diff -= step
		}
	}
	return t
}

// loadSettings reads back what a pinned job was built with from its pinned constants.
func loadSettings(spec *ebpf.CollectionSpec, rodata *ebpf.Map, flowTable int) (settings, error) {
	var raw []byte
	if err := rodata.Lookup(uint32(0), &raw); err != nil {
		return settings{}, fmt.Errorf("read constants: %w", err)
	}
	get := func(name string, out any) error {
		v := spec.Variables[name]
		if v == nil {
			return fmt.Errorf("constant %s: not in this build", name)
		}
		end := int(v.Offset) + int(v.Size())
		if end > len(raw) {
			return fmt.Errorf("constant %s: beyond the pinned constants", name)
		}
		_, err := binary.Decode(raw[v.Offset:end], binary.NativeEndian, out)
		return err
	}
	var (
		s                settings
		topK, snap, rate uint32
		maxP, maxB       uint64
	)
	for _, c := range []struct {
		name string
		out  any
	}{
		{telegenVarCfgSampleRate, &s.sampleRate},
		{telegenVarCfgFeatures, &s.features},
		{telegenVarCfgTopk, &topK},
		{telegenVarCfgSnaplen, &snap},
		{telegenVarCfgCapRate, &rate},
		{telegenVarCfgCapMaxPackets, &maxP},
		{telegenVarCfgCapMaxBytes, &maxB},
	} {
		if err := get(c.name, c.out); err != nil {
			return settings{}, err
		}
	}
	s.sampleRate = max(s.sampleRate, 1)
	s.topK = int(topK)
	s.flowTable = flowTable
	if s.features&featCapture != 0 {
		s.capture = &CaptureConfig{SnapLen: snap, MaxPackets: maxP, MaxBytes: maxB, RatePPS: rate}
	}
	return s, nil
}
