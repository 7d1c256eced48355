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

// readFlows dumps both flow tables as one-way flows (sampled counts, unscaled) and returns
// how many conversations they hold.
func (r *Run) readFlows() ([]aggregate.Flow, uint64, error) {
	clk := newClock()
	var out []aggregate.Flow
	k4, v4, err := dumpMap[telegenFlow4Key](r.maps.flows4)
	if err != nil {
		return nil, 0, fmt.Errorf("job %q: read IPv4 flows: %w", r.jobID, err)
	}
	for i, k := range k4 {
		var a, b [4]byte
		binary.NativeEndian.PutUint32(a[:], k.Addr[0])
		binary.NativeEndian.PutUint32(b[:], k.Addr[1])
		out = appendFlows(out, clk, netip.AddrFrom4(a), netip.AddrFrom4(b), k.Port, k.Proto, k.Vlan, &v4[i])
	}
	k6, v6, err := dumpMap[telegenFlow6Key](r.maps.flows6)
	if err != nil {
		return nil, 0, fmt.Errorf("job %q: read IPv6 flows: %w", r.jobID, err)
	}
	for i, k := range k6 {
		out = appendFlows(out, clk, netip.AddrFrom16(k.Addr[0]), netip.AddrFrom16(k.Addr[1]), k.Port, k.Proto, k.Vlan, &v6[i])
	}
	return out, uint64(len(k4) + len(k6)), nil
}

// appendFlows appends a conversation's directions that carried sampled packets.
func appendFlows(out []aggregate.Flow, clk clock, a, b netip.Addr, port [2]uint16, proto uint8, vlan uint16, v *telegenFlowVal) []aggregate.Flow {
	ends := [2]netip.Addr{a, b}
	for side, d := range v.D {
		if d.Packets == 0 {
			continue // a handshake seen unsampled, or only the other direction
		}
		out = append(out, aggregate.Flow{
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
		})
	}
	return out
}

// dumpMap reads every entry of a hash map, in batches where the kernel can (5.6+), else one
// by one. Entries the LRU evicts meanwhile may be missed; none is read twice.
func dumpMap[K any](m *ebpf.Map) ([]K, []telegenFlowVal, error) {
	const chunk = 4096
	var (
		keys   []K
		vals   []telegenFlowVal
		cursor ebpf.MapBatchCursor
	)
	kb := make([]K, chunk)
	vb := make([]telegenFlowVal, chunk)
	for {
		n, err := m.BatchLookup(&cursor, kb, vb, nil)
		keys = append(keys, kb[:n]...)
		vals = append(vals, vb[:n]...)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return keys, vals, nil
		}
		if errors.Is(err, ebpf.ErrNotSupported) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
	}
	keys, vals = keys[:0], vals[:0]
	var (
		k K
		v telegenFlowVal
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
		vals = append(vals, v)
	}
	return keys, vals, it.Err()
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
