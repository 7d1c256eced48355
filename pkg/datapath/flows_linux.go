//go:build linux

package datapath

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/telegen-sonic/telegen-sonic/pkg/aggregate"
)

// clock converts the program's CLOCK_MONOTONIC nanoseconds to wall-clock time.
type clock struct {
	wall time.Time
	mono int64
}

func newClock() clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return clock{wall: time.Now(), mono: ts.Nano()}
}

func (c clock) time(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return c.wall.Add(-time.Duration(c.mono - int64(ns)))
}

// FlowWays is how many conversations a set of a flow table holds (FLOW_WAYS in
// bpf/include/telegen.h, read from the generated type).
const FlowWays = len(telegenFlow4Set{}.Key)

// readFlows dumps both flow tables as one-way flows (sampled counts, unscaled) and returns
// how many conversations they hold.
func (r *Run) readFlows() ([]aggregate.Flow, uint64, error) {
	clk := newClock()
	var (
		out     []aggregate.Flow
		present uint64
	)
	seen := make(map[aggregate.FlowKey]int)
	err := dumpSets(r.maps.flows4, func(set *telegenFlow4Set) {
		for i := range set.Key {
			k := &set.Key[i]
			if k.Used == 0 {
				continue
			}
			present++
			var a, b [4]byte
			binary.NativeEndian.PutUint32(a[:], k.Addr[0])
			binary.NativeEndian.PutUint32(b[:], k.Addr[1])
			out = appendFlows(out, seen, clk, netip.AddrFrom4(a), netip.AddrFrom4(b), k.Port, k.Proto, k.Vlan, &set.Val[i].D)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("job %q: read IPv4 flows: %w", r.jobID, err)
	}
	err = dumpSets(r.maps.flows6, func(set *telegenFlow6Set) {
		for i := range set.Key {
			k := &set.Key[i]
			if k.Used == 0 {
				continue
			}
			present++
			out = appendFlows(out, seen, clk, netip.AddrFrom16(k.Addr[0]), netip.AddrFrom16(k.Addr[1]), k.Port, k.Proto, k.Vlan, &set.Val[i].D)
		}
	})
	if err != nil {
		return nil, 0, fmt.Errorf("job %q: read IPv6 flows: %w", r.jobID, err)
	}
	return out, present, nil
}

// appendFlows appends a conversation's directions that carried sampled packets. Two CPUs that
// meet a new conversation at the same moment may each give it a slot: seen (flow key to its
// index in out) merges such twins.
func appendFlows(out []aggregate.Flow, seen map[aggregate.FlowKey]int, clk clock, a, b netip.Addr, port [2]uint16, proto uint8, vlan uint16, dirs *[2]telegenFlowDir) []aggregate.Flow {
	ends := [2]netip.Addr{a, b}
	for side, d := range dirs {
		if d.Packets == 0 {
			continue // a handshake seen unsampled, or only the other direction
		}
		f := aggregate.Flow{
			Key: aggregate.FlowKey{
				Src: ends[side], Dst: ends[side^1],
				SrcPort: port[side], DstPort: port[side^1],
				Proto: proto, VLAN: vlan,
			},
			Packets:   d.Packets,
			Bytes:     d.Bytes,
			FirstSeen: clk.time(d.FirstNs),
			LastSeen:  clk.time(d.LastNs),
			TCPFlags:  d.TcpFlags,
		}
		if i, ok := seen[f.Key]; ok {
			t := &out[i]
			t.Packets += f.Packets
			t.Bytes += f.Bytes
			t.TCPFlags |= f.TCPFlags
			if f.FirstSeen.Before(t.FirstSeen) {
				t.FirstSeen = f.FirstSeen
			}
			if f.LastSeen.After(t.LastSeen) {
				t.LastSeen = f.LastSeen
			}
			continue
		}
		seen[f.Key] = len(out)
		out = append(out, f)
	}
	return out
}

// dumpSets reads every set of a flow table (an array map), in batches where the kernel can
// (5.6+), else one by one.
func dumpSets[S any](m *ebpf.Map, each func(*S)) error {
	const chunk = 64
	var cursor ebpf.MapBatchCursor
	kb := make([]uint32, chunk)
	vb := make([]S, chunk)
	for {
		n, err := m.BatchLookup(&cursor, kb, vb, nil)
		for i := range n {
			each(&vb[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
	}
	var set S
	for i := range m.MaxEntries() {
		if err := m.Lookup(i, &set); err != nil {
			return err
		}
		each(&set)
	}
	return nil
}

// topFlows sorts flows by bytes, then packets (largest first), then by key for a stable
// order, and keeps the first k.
func topFlows(flows []aggregate.Flow, k int) []aggregate.Flow {
	slices.SortFunc(flows, func(a, b aggregate.Flow) int {
		if c := cmp.Compare(b.Bytes, a.Bytes); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Packets, a.Packets); c != 0 {
			return c
		}
		ka, kb := a.Key, b.Key
		return cmp.Or(ka.Src.Compare(kb.Src), ka.Dst.Compare(kb.Dst), cmp.Compare(ka.SrcPort, kb.SrcPort),
			cmp.Compare(ka.DstPort, kb.DstPort), cmp.Compare(ka.Proto, kb.Proto), cmp.Compare(ka.VLAN, kb.VLAN))
	})
	if k > 0 && len(flows) > k {
		flows = flows[:k:k]
	}
	return flows
}
