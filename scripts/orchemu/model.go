package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
)

// CONFIG_DB tables the emulator consumes and STATE_DB tables it writes, with SONiC's names
// (sonic-swss-common schema.h).
const (
	cfgPort          = "PORT"
	cfgMirrorSession = "MIRROR_SESSION"
	cfgACLTable      = "ACL_TABLE"
	cfgACLRule       = "ACL_RULE"

	stateMirrorSession = "MIRROR_SESSION_TABLE"
	stateACLTable      = "ACL_TABLE_TABLE"
	stateACLRule       = "ACL_RULE_TABLE"
)

// AclOrch's STATE_DB status values (aclorch.cpp aclObjectStatusLookup).
const (
	aclActive          = "Active"
	aclInactive        = "Inactive"
	aclPendingCreation = "Pending creation"
)

// fieldSessionID is the emulator's extension of STATE_DB MIRROR_SESSION_TABLE: the ERSPAN
// session id its copies carry (SONiC's orchagent publishes none; see docs/MIRROR.md).
const fieldSessionID = "erspan_session_id"

// maxSessionID bounds the ERSPAN session id (10 bits); ids start at 1.
const maxSessionID = 1023

// row is one CONFIG_DB entry's fields.
type row map[string]string

// session is a mirror session the emulated MirrorOrch has accepted.
type session struct {
	name     string
	fields   row
	span     bool // SPAN, else ERSPAN
	srcPorts []string
	dir      string // RX, TX or BOTH; "" when there are no source ports
	dstPort  string
	srcIP    netip.Addr
	dstIP    netip.Addr
	greType  uint16
	dscp     uint8
	ttl      uint8
	id       uint32 // the kernel slot, and the ERSPAN session id
	deleting bool   // deleted in CONFIG_DB; kept while an ACL rule still uses it
}

// aclTable is an ACL table of type MIRROR or MIRRORV6 as the emulated AclOrch sees it.
type aclTable struct {
	name   string
	v6     bool
	stage  string // "ingress" or "egress"
	ports  []string
	status string
	group  uint32 // ACL lookup group in the kernel: one action per table
}

// aclRule is a valid rule of an active mirror table.
type aclRule struct {
	table    string
	name     string
	priority int
	session  string
	match    kRule // match fields only; slot and group are filled when realized
}

// env is what the model asks of the host: netdevs, routes and addresses.
type env interface {
	// Ifindex is the index of netdev name, or 0 when it does not exist.
	Ifindex(name string) int
	// Deliver says how to make a frame arrive on netdev sink: transmitted into the ifindex
	// returned (sink's veth peer), or injected into sink's receive path (ingress true).
	Deliver(sink string) (ifindex int, ingress bool, err error)
	// MAC is the hardware address of netdev name.
	MAC(name string) ([6]byte, error)
}

// route sends ERSPAN traffic for a prefix to a sink netdev.
type route struct {
	prefix netip.Prefix
	sink   string
}

// settings are the emulator's wiring: where SPAN and ERSPAN copies surface.
type settings struct {
	spanSinks map[string]string // dst_port -> sink netdev
	routes    []route
	switchMAC [6]byte // outer source MAC of ERSPAN copies (DEVICE_METADATA mac)
	acl       bool    // play AclOrch
	ids       bool    // publish erspan_session_id (the emulator's extension)
	nextHop   [6]byte // outer destination MAC of ERSPAN copies
}

// orch is the emulated orchagent: MirrorOrch and AclOrch state built from CONFIG_DB operations
// in the order they happen, then reconciled into STATE_DB entries and kernel state.
type orch struct {
	log      *slog.Logger
	set      settings
	ports    map[string]bool
	pending  map[string]row // MIRROR_SESSION SETs not processed yet
	sessions map[string]*session
	reserved map[string]uint32 // ids STATE_DB held when the emulator started
	refused  map[string]string // name -> the last refused SET, so it is logged once
	tables   map[string]row    // ACL_TABLE as in CONFIG_DB
	rules    map[string]row    // ACL_RULE as in CONFIG_DB, key "table|rule"
	active   map[string]*aclTable
	groups   uint32
	sinkErrs map[string]string // session -> why its copies cannot be delivered, to log changes only
	// STATE_DB status per table and rule in this pass and the last one, to log changes only.
	statuses, prevStatuses map[string]string
}

func newOrch(log *slog.Logger, set settings) *orch {
	return &orch{
		log:      log,
		set:      set,
		ports:    map[string]bool{},
		pending:  map[string]row{},
		sessions: map[string]*session{},
		reserved: map[string]uint32{},
		refused:  map[string]string{},
		tables:   map[string]row{},
		rules:    map[string]row{},
		active:   map[string]*aclTable{},
		statuses: map[string]string{},
		sinkErrs: map[string]string{},
	}
}

// op is one CONFIG_DB change: a SET with the entry's fields, or a DEL.
type op struct {
	table, key string
	fields     row // nil for a DEL
}

// apply records one operation, as orchagent's consumers do on their queues.
func (o *orch) apply(x op) {
	del := x.fields == nil
	switch x.table {
	case cfgPort:
		if del {
			delete(o.ports, x.key)
		} else {
			o.ports[x.key] = true
		}
	case cfgMirrorSession:
		o.applySession(x.key, x.fields)
	case cfgACLTable:
		setOrDel(o.tables, x.key, x.fields)
	case cfgACLRule:
		setOrDel(o.rules, x.key, x.fields)
	}
}

func setOrDel(m map[string]row, key string, fields row) {
	if fields == nil {
		delete(m, key)
	} else {
		m[key] = fields
	}
}

// applySession is MirrorOrch's doTask for one entry. A SET on a session that exists is refused
// (orchagent: "object already exists", task_duplicated): sessions cannot be modified in place.
// A DEL removes the session once no ACL rule uses it.
func (o *orch) applySession(name string, fields row) {
	if fields == nil {
		delete(o.pending, name)
		delete(o.refused, name)
		if s := o.sessions[name]; s != nil {
			s.deleting = true
		}
		return
	}
	if s := o.sessions[name]; s != nil && !s.deleting {
		if !maps.Equal(s.fields, fields) && o.refused[name] != fingerprint(fields) {
			o.refused[name] = fingerprint(fields)
			o.log.Error("failed to create session: object already exists; mirror sessions cannot be modified in place (delete and re-create)",
				"session", name, "kept", fingerprint(s.fields), "refused", fingerprint(fields))
		}
		return
	}
	o.pending[name] = fields
}

func fingerprint(r row) string {
	keys := slices.Sorted(maps.Keys(r))
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k + "=" + r[k])
	}
	return b.String()
}

// state is what a reconcile produces: STATE_DB entries (table -> key -> fields) and the kernel.
type state struct {
	db     map[string]map[string]row
	kernel kState
}

// kState is the kernel's desired state.
type kState struct {
	sessions map[uint32]kSession // slot -> session
	hooks    map[hookKey][]kRule // port and direction -> rules in evaluation order
	encap    map[int]bool        // veth peers whose egress encapsulates ERSPAN copies
	names    map[int]string      // ifindex -> netdev, for logs
}

type hookKey struct {
	ifindex int
	egress  bool
}

// kSession is a session as the kernel program needs it.
type kSession struct {
	erspan  bool
	ifindex int
	ingress bool
	srcIP   netip.Addr
	dstIP   netip.Addr
	greType uint16
	dscp    uint8
	ttl     uint8
	smac    [6]byte
	dmac    [6]byte
}

// kRule is an ACL rule or port mirror entry in the kernel. A zero match matches every frame.
type kRule struct {
	match                              uint32
	slot, group                        uint32
	vlan                               uint16
	proto, dscp                        uint8
	sportLo, sportHi, dportLo, dportHi uint16
	src, dst                           netip.Prefix
}

// Match bits, as bpf/orchemu.c M_*.
const (
	mSrc4 = 1 << iota
	mDst4
	mSrc6
	mDst6
	mProto
	mSport
	mDport
	mDSCP
	mVLAN
)

// portMirrorGroup is the lookup group of a session's port mirroring: its own, so it never
// competes with an ACL table's action.
const portMirrorGroup = 1 << 31

// reconcile processes pending operations and computes STATE_DB and the kernel.
func (o *orch) reconcile(e env) state {
	o.dropDeleted()
	o.createPending()
	st := state{db: map[string]map[string]row{
		stateMirrorSession: {}, stateACLTable: {}, stateACLRule: {},
	}}
	kst := kState{sessions: map[uint32]kSession{}, hooks: map[hookKey][]kRule{}, encap: map[int]bool{}, names: map[int]string{}}

	live := map[string]bool{} // sessions active in hardware
	for _, s := range sortedSessions(o.sessions) {
		fields, ks, ok := o.realize(s, e)
		st.db[stateMirrorSession][s.name] = fields
		if ok {
			live[s.name] = true
			kst.sessions[s.id] = ks
			if ks.erspan {
				kst.encap[ks.ifindex] = true
			}
		}
	}

	// Port mirroring: every frame of a source port, in the session's direction.
	for _, s := range sortedSessions(o.sessions) {
		if !live[s.name] {
			continue
		}
		for _, p := range s.srcPorts {
			for _, egress := range directions(s.dir) {
				o.addHook(e, kst, p, egress, kRule{slot: s.id, group: portMirrorGroup | s.id})
			}
		}
	}

	if o.set.acl {
		o.reconcileACL(e, st, kst, live)
	}
	st.kernel = kst
	return st
}

// dropDeleted removes deleted sessions no ACL rule refers to any more (orchagent retries the
// delete of a referenced session).
func (o *orch) dropDeleted() {
	used := map[string]bool{}
	for _, r := range o.validRules() {
		used[r.session] = true
	}
	for name, s := range o.sessions {
		if s.deleting && !used[name] {
			delete(o.sessions, name)
			o.log.Info("removed mirror session", "session", name)
		}
	}
}

// createPending validates and creates the sessions whose SET has not been processed.
func (o *orch) createPending() {
	for _, name := range slices.Sorted(maps.Keys(o.pending)) {
		fields := o.pending[name]
		if s := o.sessions[name]; s != nil {
			if !s.deleting {
				delete(o.pending, name)
				continue
			}
			continue // the old one is still referenced; create after it goes
		}
		delete(o.pending, name)
		s, err := o.validateSession(name, fields)
		if err != nil {
			if o.refused[name] != fingerprint(fields) {
				o.refused[name] = fingerprint(fields)
				o.log.Error("failed to create mirror session; no STATE_DB entry", "session", name, "err", err)
			}
			continue
		}
		delete(o.refused, name)
		id, ok := o.allocID(name)
		if !ok {
			o.log.Error("failed to create mirror session: HW resources are not available", "session", name)
			continue
		}
		s.id = id
		o.sessions[name] = s
		o.log.Info("created mirror session", "session", name, "id", id, "fields", fingerprint(fields))
	}
}

// allocID gives a new session the id it had before the emulator restarted, else the lowest
// free one, avoiding ids still reserved for other sessions while any other is free.
func (o *orch) allocID(name string) (uint32, bool) {
	used := map[uint32]bool{}
	for _, s := range o.sessions {
		used[s.id] = true
	}
	if id, ok := o.reserved[name]; ok && !used[id] {
		return id, true
	}
	held := map[uint32]bool{}
	for other, id := range o.reserved {
		if other != name {
			held[id] = true
		}
	}
	for _, avoid := range []map[uint32]bool{held, nil} {
		for id := uint32(1); id <= maxSessionID; id++ {
			if !used[id] && !avoid[id] {
				return id, true
			}
		}
	}
	return 0, false
}

// validateSession checks a MIRROR_SESSION entry as MirrorOrch does: known fields, type SPAN or
// ERSPAN, direction RX, TX or BOTH, source ports that exist, a SPAN destination that is a
// front-panel port (never CPU), ERSPAN addresses of one family.
func (o *orch) validateSession(name string, f row) (*session, error) {
	s := &session{name: name, fields: f, greType: 0x88be, ttl: 255}
	for k := range f {
		switch k {
		case "type", "src_port", "direction", "dst_port", "src_ip", "dst_ip", "gre_type", "dscp", "ttl", "queue", "NULL":
		case "policer", "sample_rate", "truncate_size":
			o.log.Warn("mirror session attribute accepted but not emulated", "session", name, "attribute", k)
		default:
			return nil, fmt.Errorf("unknown attribute %s", k)
		}
	}
	switch t := cmp.Or(f["type"], "ERSPAN"); t {
	case "SPAN":
		s.span = true
	case "ERSPAN":
	default:
		return nil, fmt.Errorf("type %q is not SPAN or ERSPAN", t)
	}
	if v := f["src_port"]; v != "" {
		for _, p := range strings.Split(v, ",") {
			if !o.ports[p] {
				return nil, fmt.Errorf("failed to get valid source port list: %q is not a port", p)
			}
			s.srcPorts = append(s.srcPorts, p)
		}
		s.dir = cmp.Or(f["direction"], "BOTH")
	}
	if d, ok := f["direction"]; ok && d != "RX" && d != "TX" && d != "BOTH" {
		return nil, fmt.Errorf("direction %q is not RX, TX or BOTH", d)
	}
	if s.span {
		s.dstPort = f["dst_port"]
		switch {
		case s.dstPort == "":
			return nil, fmt.Errorf("SPAN session has no dst_port")
		case !o.ports[s.dstPort]:
			return nil, fmt.Errorf("not supported port %s: failed to get valid destination port", s.dstPort)
		case slices.Contains(s.srcPorts, s.dstPort):
			return nil, fmt.Errorf("destination port %s is also a source port", s.dstPort)
		}
		return s, nil
	}
	var err error
	if s.srcIP, err = netip.ParseAddr(f["src_ip"]); err != nil {
		return nil, fmt.Errorf("src_ip %q: %w", f["src_ip"], err)
	}
	if s.dstIP, err = netip.ParseAddr(f["dst_ip"]); err != nil {
		return nil, fmt.Errorf("dst_ip %q: %w", f["dst_ip"], err)
	}
	if s.srcIP.Is4() != s.dstIP.Is4() {
		return nil, fmt.Errorf("src_ip %s and dst_ip %s are of different families", s.srcIP, s.dstIP)
	}
	if v, ok := f["gre_type"]; ok {
		if s.greType, ok = jobspec.ParseGREType(v); !ok {
			return nil, fmt.Errorf("gre_type %q", v)
		}
	}
	for _, b := range []struct {
		name string
		max  uint64
		dst  *uint8
	}{{"dscp", 63, &s.dscp}, {"ttl", 255, &s.ttl}, {"queue", 255, new(uint8)}} {
		if v, ok := f[b.name]; ok {
			n, err := strconv.ParseUint(v, 10, 8)
			if err != nil || n > b.max {
				return nil, fmt.Errorf("%s %q is not 0-%d", b.name, v, b.max)
			}
			*b.dst = uint8(n)
		}
	}
	return s, nil
}

// realize decides a session's STATE_DB entry and, when it is active, its kernel form. A SPAN
// session is active at once; an ERSPAN one when a route reaches a usable sink (orchagent
// waits for the route and neighbour of dst_ip).
func (o *orch) realize(s *session, e env) (row, kSession, bool) {
	if s.span {
		fields := row{"status": "active", "monitor_port": s.dstPort}
		sink := cmp.Or(o.set.spanSinks[s.dstPort], o.set.spanSinks["*"], s.dstPort)
		ifindex, ingress, err := e.Deliver(sink)
		if o.changed(s.name, err) && err != nil {
			o.log.Warn("SPAN session is active, but its copies have nowhere to go", "session", s.name, "sink", sink, "err", err)
		}
		if err != nil {
			return fields, kSession{}, false
		}
		return fields, kSession{ifindex: ifindex, ingress: ingress}, true
	}
	fields := row{"status": "inactive"}
	if o.set.ids {
		fields[fieldSessionID] = strconv.Itoa(int(s.id))
	}
	if !s.dstIP.Is4() {
		if o.changed(s.name, errors.New("IPv6 ERSPAN is not emulated")) {
			o.log.Warn("ERSPAN session stays inactive: IPv6 ERSPAN is not emulated", "session", s.name)
		}
		return fields, kSession{}, false
	}
	r, ok := o.lookupRoute(s.dstIP)
	if !ok {
		if o.changed(s.name, fmt.Errorf("no route to dst_ip %s", s.dstIP)) {
			o.log.Warn("ERSPAN session stays inactive: no route to its dst_ip (see -erspan-route)", "session", s.name, "dst_ip", s.dstIP)
		}
		return fields, kSession{}, false
	}
	ifindex, ingress, err := e.Deliver(r.sink)
	if err == nil && ingress {
		err = fmt.Errorf("%s is not a veth whose peer is in this network namespace", r.sink)
	}
	if o.changed(s.name, err) && err != nil {
		o.log.Warn("ERSPAN session stays inactive", "session", s.name, "sink", r.sink, "err", err)
	}
	if err != nil {
		return fields, kSession{}, false
	}
	smac := o.set.switchMAC
	if smac == ([6]byte{}) {
		if smac, err = e.MAC(r.sink); err != nil {
			return fields, kSession{}, false
		}
	}
	fields["status"] = "active"
	fields["monitor_port"] = r.sink
	fields["route_prefix"] = r.prefix.String()
	fields["dst_mac"] = macString(o.set.nextHop)
	return fields, kSession{erspan: true, ifindex: ifindex, srcIP: s.srcIP, dstIP: s.dstIP, greType: s.greType,
		dscp: s.dscp, ttl: s.ttl, smac: smac, dmac: o.set.nextHop}, true
}

// changed records a session's delivery error and reports whether it differs from the last one,
// so a lasting problem is logged once.
func (o *orch) changed(session string, err error) bool {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if o.sinkErrs[session] == msg {
		return false
	}
	o.sinkErrs[session] = msg
	return true
}

func (o *orch) lookupRoute(a netip.Addr) (route, bool) {
	var best route
	found := false
	for _, r := range o.set.routes {
		if r.prefix.Contains(a) && (!found || r.prefix.Bits() > best.prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

func directions(dir string) []bool {
	switch dir {
	case "RX":
		return []bool{false}
	case "TX":
		return []bool{true}
	case "BOTH":
		return []bool{false, true}
	}
	return nil
}

func sortedSessions(m map[string]*session) []*session {
	out := slices.Collect(maps.Values(m))
	slices.SortFunc(out, func(a, b *session) int { return cmp.Compare(a.name, b.name) })
	return out
}

// addHook appends a rule to a port's hook; ports without a netdev are skipped (logged).
func (o *orch) addHook(e env, kst kState, port string, egress bool, r kRule) {
	ifindex := e.Ifindex(port)
	if ifindex == 0 {
		o.log.Warn("port has no netdev; its mirroring is not realized", "port", port)
		return
	}
	k := hookKey{ifindex, egress}
	if len(kst.hooks[k]) >= maxRules {
		o.log.Error("too many mirror rules on a port; the rest are not realized", "port", port, "egress", egress, "max", maxRules)
		return
	}
	kst.hooks[k] = append(kst.hooks[k], r)
	kst.names[ifindex] = port
}

// maxRules is MAX_RULES of bpf/orchemu.c.
const maxRules = 32

// reconcileACL is AclOrch for tables of type MIRROR and MIRRORV6: tables become Active (at most
// one per type and stage, as orchagent allows; the others stay "Pending creation"), Inactive
// when invalid; valid rules of active tables become Active and, when their session is active,
// copy matching frames.
func (o *orch) reconcileACL(e env, st state, kst kState, live map[string]bool) {
	o.prevStatuses, o.statuses = o.statuses, map[string]string{}
	// Tables gone from CONFIG_DB, or whose type or stage changed, are removed first.
	for name, t := range o.active {
		f, ok := o.tables[name]
		if !ok {
			delete(o.active, name)
			continue
		}
		v6, stage, _, err := o.parseTable(f)
		if err != nil || v6 != t.v6 || stage != t.stage {
			delete(o.active, name)
		}
	}
	taken := map[string]string{} // "MIRROR|ingress" -> table
	for name, t := range o.active {
		taken[tableSlot(t.v6, t.stage)] = name
	}
	for _, name := range slices.Sorted(maps.Keys(o.tables)) {
		f := o.tables[name]
		if !isMirrorTable(f) {
			continue // not a mirror table: not the emulator's business
		}
		v6, stage, ports, err := o.parseTable(f)
		status := aclActive
		switch {
		case err != nil:
			status = aclInactive
			o.logStatus("table", name, status, "err", err)
		case taken[tableSlot(v6, stage)] != "" && taken[tableSlot(v6, stage)] != name:
			status = aclPendingCreation
			o.logStatus("table", name, status, "why", "a mirror table of this type already exists at this stage",
				"existing", taken[tableSlot(v6, stage)])
		default:
			t := o.active[name]
			if t == nil {
				o.groups++
				t = &aclTable{name: name, v6: v6, stage: stage, group: o.groups}
				o.active[name] = t
				taken[tableSlot(v6, stage)] = name
			}
			t.ports = ports
			o.logStatus("table", name, status)
		}
		st.db[stateACLTable][name] = row{"status": status}
	}

	byTable := map[string][]aclRule{}
	for key, f := range o.rules {
		table, rname, _ := strings.Cut(key, "|")
		t := o.active[table]
		if t == nil {
			continue
		}
		r, err := o.parseRule(t, rname, f)
		status := aclActive
		if err != nil {
			status = aclInactive
			o.logStatus("rule", key, status, "err", err)
		} else {
			o.logStatus("rule", key, status)
			byTable[table] = append(byTable[table], r)
		}
		st.db[stateACLRule][key] = row{"status": status}
	}

	tables := slices.Collect(maps.Values(o.active))
	slices.SortFunc(tables, func(a, b *aclTable) int { return cmp.Compare(a.group, b.group) })
	for _, t := range tables {
		rules := byTable[t.name]
		slices.SortFunc(rules, func(a, b aclRule) int {
			return cmp.Or(cmp.Compare(b.priority, a.priority), cmp.Compare(a.name, b.name))
		})
		for _, r := range rules {
			s := o.sessions[r.session]
			if s == nil || !live[s.name] {
				continue
			}
			kr := r.match
			kr.slot, kr.group = s.id, t.group
			for _, p := range t.ports {
				o.addHook(e, kst, p, t.stage == "egress", kr)
			}
		}
	}
}

// validRules lists the rules of active tables that parse.
func (o *orch) validRules() []aclRule {
	var out []aclRule
	for key, f := range o.rules {
		table, rname, _ := strings.Cut(key, "|")
		if t := o.active[table]; t != nil {
			if r, err := o.parseRule(t, rname, f); err == nil {
				out = append(out, r)
			}
		}
	}
	return out
}

func tableSlot(v6 bool, stage string) string {
	if v6 {
		return "MIRRORV6|" + stage
	}
	return "MIRROR|" + stage
}

func isMirrorTable(f row) bool {
	t := strings.ToUpper(f["type"])
	return t == "MIRROR" || t == "MIRRORV6"
}

func (o *orch) parseTable(f row) (v6 bool, stage string, ports []string, err error) {
	v6 = strings.ToUpper(f["type"]) == "MIRRORV6"
	stage = strings.ToLower(cmp.Or(f["stage"], "ingress"))
	if stage != "ingress" && stage != "egress" {
		return false, "", nil, fmt.Errorf("stage %q is not ingress or egress", f["stage"])
	}
	list, ok := f["ports@"]
	if !ok {
		list = f["ports"]
	}
	for _, p := range strings.Split(list, ",") {
		if p == "" {
			continue
		}
		if !o.ports[p] {
			return false, "", nil, fmt.Errorf("failed to process port %q", p)
		}
		ports = append(ports, p)
	}
	return v6, stage, ports, nil
}

// parseRule validates an ACL_RULE of a mirror table as AclOrch does: known match fields of the
// table's family, exactly one mirror action allowed at the table's stage, naming an existing
// session.
func (o *orch) parseRule(t *aclTable, name string, f row) (aclRule, error) {
	r := aclRule{table: t.name, name: name}
	var actions []string
	for k, v := range f {
		var err error
		switch strings.ToUpper(k) {
		case "PRIORITY":
			r.priority, err = strconv.Atoi(v)
		case "SRC_IP", "DST_IP", "SRC_IPV6", "DST_IPV6":
			err = r.match.setAddr(strings.ToUpper(k), v, t.v6)
		case "IP_PROTOCOL", "NEXT_HEADER":
			var n uint64
			n, err = strconv.ParseUint(v, 0, 8)
			r.match.proto, r.match.match = uint8(n), r.match.match|mProto
		case "L4_SRC_PORT", "L4_SRC_PORT_RANGE":
			r.match.sportLo, r.match.sportHi, err = parsePorts(v, strings.HasSuffix(strings.ToUpper(k), "RANGE"))
			r.match.match |= mSport
		case "L4_DST_PORT", "L4_DST_PORT_RANGE":
			r.match.dportLo, r.match.dportHi, err = parsePorts(v, strings.HasSuffix(strings.ToUpper(k), "RANGE"))
			r.match.match |= mDport
		case "DSCP":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 8)
			if err == nil && n > 63 {
				err = fmt.Errorf("out of range")
			}
			r.match.dscp, r.match.match = uint8(n), r.match.match|mDSCP
		case "VLAN_ID":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 16)
			if err == nil && (n < 1 || n > 4094) {
				err = fmt.Errorf("out of range")
			}
			r.match.vlan, r.match.match = uint16(n), r.match.match|mVLAN
		case "MIRROR_ACTION", "MIRROR_INGRESS_ACTION":
			if t.stage != "ingress" {
				err = fmt.Errorf("action not supported at stage %s", t.stage)
			}
			actions = append(actions, v)
		case "MIRROR_EGRESS_ACTION":
			if t.stage != "egress" {
				err = fmt.Errorf("action not supported at stage %s", t.stage)
			}
			actions = append(actions, v)
		case "NULL":
		default:
			err = fmt.Errorf("unknown or invalid rule attribute")
		}
		if err != nil {
			return aclRule{}, fmt.Errorf("%s %q: %w", k, v, err)
		}
	}
	if len(actions) != 1 {
		return aclRule{}, fmt.Errorf("a mirror rule needs exactly one mirror action, has %d", len(actions))
	}
	r.session = actions[0]
	if o.sessions[r.session] == nil {
		return aclRule{}, fmt.Errorf("mirror rule references mirror session %q that does not exist", r.session)
	}
	return r, nil
}

func (k *kRule) setAddr(field, v string, v6 bool) error {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		a, aerr := netip.ParseAddr(v)
		if aerr != nil {
			return err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	p = p.Masked()
	is6 := strings.HasSuffix(field, "V6")
	if p.Addr().Is4() == is6 || is6 != v6 {
		return fmt.Errorf("address family does not fit the field and the table type")
	}
	switch field {
	case "SRC_IP":
		k.src, k.match = p, k.match|mSrc4
	case "DST_IP":
		k.dst, k.match = p, k.match|mDst4
	case "SRC_IPV6":
		k.src, k.match = p, k.match|mSrc6
	case "DST_IPV6":
		k.dst, k.match = p, k.match|mDst6
	}
	return nil
}

func parsePorts(v string, isRange bool) (lo, hi uint16, err error) {
	a, b := v, v
	if isRange {
		var ok bool
		if a, b, ok = strings.Cut(v, "-"); !ok {
			return 0, 0, fmt.Errorf("not lo-hi")
		}
	}
	l, err1 := strconv.ParseUint(a, 10, 16)
	h, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil || l > h {
		return 0, 0, fmt.Errorf("not a port or range 0-65535")
	}
	return uint16(l), uint16(h), nil
}

// logStatus logs an ACL object's status when it changes.
func (o *orch) logStatus(kind, key, status string, args ...any) {
	k := kind + " " + key
	o.statuses[k] = status
	if o.prevStatuses[k] == status {
		return
	}
	lvl := slog.LevelInfo
	if status != aclActive {
		lvl = slog.LevelWarn
	}
	o.log.Log(context.Background(), lvl, "ACL "+kind+" status", append([]any{kind, key, "status", status}, args...)...)
}
