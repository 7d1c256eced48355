//go:build linux

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// kernel owns the emulator's eBPF objects and their TCX links in the calling network namespace.
// Apply converges them on a kState; Close detaches and frees everything.
type kernel struct {
	log      *slog.Logger
	objs     orchemuObjects
	links    map[linkKey]link.Link
	hooks    map[hookKey]bool
	sessions map[uint32]bool
}

// linkKey is one attachment: a program on an interface.
type linkKey struct {
	ifindex int
	prog    string // "in", "eg" or "encap"
}

// BPF flag of bpf_clone_redirect: into the target's receive path.
const bpfFIngress = 1

// Kinds and match-independent constants of bpf/orchemu.c.
const (
	kindSPAN   = 1
	kindERSPAN = 2
)

func newKernel(log *slog.Logger) (*kernel, error) {
	k := &kernel{log: log, links: map[linkKey]link.Link{}, hooks: map[hookKey]bool{}, sessions: map[uint32]bool{}}
	if err := loadOrchemuObjects(&k.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("loading eBPF objects: %+v", ve)
		}
		return nil, fmt.Errorf("loading eBPF objects: %w", err)
	}
	return k, nil
}

// Apply makes the kernel match want: sessions first and detachments last, so a change never
// copies a frame to a session that is not there.
func (k *kernel) Apply(want kState) error {
	var errs []error
	for slot, s := range want.sessions {
		v := orchemuSession{Kind: kindSPAN, Ifindex: uint32(s.ifindex)}
		if s.ingress {
			v.Flags = bpfFIngress
		}
		if s.erspan {
			v.Kind = kindERSPAN
			v.SrcIp = be32(s.srcIP.As4())
			v.DstIp = be32(s.dstIP.As4())
			v.GreProto, v.Dscp, v.Ttl, v.Smac, v.Dmac = s.greType, s.dscp, s.ttl, s.smac, s.dmac
		}
		if !k.sessions[slot] {
			// A new session's GRE sequence starts at 0.
			if err := k.objs.Seqs.Put(slot, uint32(0)); err != nil {
				errs = append(errs, fmt.Errorf("session %d: %w", slot, err))
			}
		}
		if err := k.objs.Sessions.Put(slot, v); err != nil {
			errs = append(errs, fmt.Errorf("session %d: %w", slot, err))
			continue
		}
		k.sessions[slot] = true
	}
	for key, rules := range want.hooks {
		var v orchemuHookRules
		v.N = uint32(len(rules))
		for i, r := range rules {
			v.Rules[i] = r.bpf()
		}
		if err := k.objs.Hooks.Put(orchemuHookKey{Ifindex: uint32(key.ifindex), Dir: dirOf(key.egress)}, &v); err != nil {
			errs = append(errs, fmt.Errorf("rules of %s: %w", want.names[key.ifindex], err))
			continue
		}
		k.hooks[key] = true
		prog := "in"
		if key.egress {
			prog = "eg"
		}
		errs = append(errs, k.attach(linkKey{key.ifindex, prog}, want.names[key.ifindex]))
	}
	for ifindex := range want.encap {
		errs = append(errs, k.attach(linkKey{ifindex, "encap"}, ""))
	}

	for key := range k.links {
		var keep bool
		switch key.prog {
		case "in", "eg":
			_, keep = want.hooks[hookKey{key.ifindex, key.prog == "eg"}]
		case "encap":
			keep = want.encap[key.ifindex]
		}
		if !keep {
			errs = append(errs, k.detach(key))
		}
	}
	for key := range k.hooks {
		if _, ok := want.hooks[key]; !ok {
			if err := k.objs.Hooks.Delete(orchemuHookKey{Ifindex: uint32(key.ifindex), Dir: dirOf(key.egress)}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, err)
			}
			delete(k.hooks, key)
		}
	}
	for slot := range k.sessions {
		if _, ok := want.sessions[slot]; !ok {
			if err := k.objs.Sessions.Put(slot, orchemuSession{}); err != nil {
				errs = append(errs, err)
			}
			delete(k.sessions, slot)
		}
	}
	return errors.Join(errs...)
}

func (k *kernel) attach(key linkKey, name string) error {
	if l, ok := k.links[key]; ok {
		// Still attached to the same interface? An interface deleted and re-created gets
		// another ifindex, so a link that is no longer valid only needs dropping.
		if _, err := l.Info(); err == nil {
			return nil
		}
		_ = l.Close()
		delete(k.links, key)
	}
	prog := map[string]*ebpf.Program{"in": k.objs.OrchemuIn, "eg": k.objs.OrchemuEg, "encap": k.objs.OrchemuEncap}[key.prog]
	at := ebpf.AttachTCXIngress
	if key.prog != "in" {
		at = ebpf.AttachTCXEgress
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: key.ifindex, Program: prog, Attach: at})
	if err != nil {
		if name == "" {
			name = fmt.Sprintf("ifindex %d", key.ifindex)
		}
		return fmt.Errorf("attach orchemu_%s to %s: %w (the emulator needs TCX, Linux 6.6+)", key.prog, name, err)
	}
	k.links[key] = l
	k.log.Debug("attached", "prog", "orchemu_"+key.prog, "ifindex", key.ifindex, "interface", name)
	return nil
}

func (k *kernel) detach(key linkKey) error {
	l := k.links[key]
	delete(k.links, key)
	k.log.Debug("detached", "prog", "orchemu_"+key.prog, "ifindex", key.ifindex)
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach orchemu_%s from ifindex %d: %w", key.prog, key.ifindex, err)
	}
	return nil
}

// Close detaches every program and frees the objects.
func (k *kernel) Close() error {
	var errs []error
	for _, key := range slices.Collect(maps.Keys(k.links)) {
		errs = append(errs, k.detach(key))
	}
	errs = append(errs, k.objs.Close())
	return errors.Join(errs...)
}

func dirOf(egress bool) uint32 {
	if egress {
		return 1
	}
	return 0
}

// be32 keeps an address's bytes in network order inside a uint32 the program compares as is.
func be32(b [4]byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// bpf renders a rule as bpf/orchemu.c's struct rule (addresses and masks in network order).
func (r kRule) bpf() orchemuRule {
	out := orchemuRule{Match: r.match, Slot: r.slot, Group: r.group, Vlan: r.vlan, Proto: r.proto, Dscp: r.dscp,
		SportLo: r.sportLo, SportHi: r.sportHi, DportLo: r.dportLo, DportHi: r.dportHi}
	out.Src, out.SrcMask = words(r.src)
	out.Dst, out.DstMask = words(r.dst)
	return out
}

func words(p netip.Prefix) (addr, mask [4]uint32) {
	if !p.IsValid() {
		return
	}
	b := p.Addr().AsSlice()
	m := net.CIDRMask(p.Bits(), p.Addr().BitLen())
	for i := 0; i < len(b)/4; i++ {
		addr[i] = be32([4]byte(b[4*i : 4*i+4]))
		mask[i] = be32([4]byte(m[4*i : 4*i+4]))
	}
	return
}

// host is the env of the calling network namespace.
type host struct{}

func (host) Ifindex(name string) int {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0
	}
	return l.Attrs().Index
}

// Deliver: a veth whose peer is in this namespace receives what is transmitted into the peer
// (and counts it in its rx statistics); any other netdev gets the frame injected.
func (host) Deliver(sink string) (int, bool, error) {
	l, err := netlink.LinkByName(sink)
	if err != nil {
		return 0, false, fmt.Errorf("netdev %s: %w", sink, err)
	}
	a := l.Attrs()
	if l.Type() == "veth" && a.NetNsID < 0 && a.ParentIndex > 0 {
		return a.ParentIndex, false, nil
	}
	return a.Index, true, nil
}

func (host) MAC(name string) ([6]byte, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return [6]byte{}, err
	}
	var m [6]byte
	copy(m[:], l.Attrs().HardwareAddr)
	return m, nil
}
