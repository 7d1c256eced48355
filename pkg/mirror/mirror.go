// Package mirror owns the SONiC mirror sessions of telemetry jobs: for each span or erspan job a
// MIRROR_SESSION|telegen_<short id> (and, when the job has filters, ACL tables of type MIRROR
// that pre-filter in hardware), activated by orchagent, removed when the job ends, and swept when
// no live job owns them.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telegen-sonic/telegen-sonic/pkg/jobspec"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// Timing bounds of Create beyond mirror_timeout_sec.
const (
	cleanupTimeout = 3 * time.Second        // removing what a failed Create wrote
	ctxMargin      = 500 * time.Millisecond // left of the caller's deadline for that cleanup
	maxProbe       = time.Second            // waiting for orchagent's verdict on an ACL table
)

// Settings returns TELEGEN|global as in force now.
type Settings func(ctx context.Context) (jobspec.Globals, error)

// Mirror programs mirror sessions in CONFIG_DB and reads orchagent's verdicts in STATE_DB. Its
// methods may be called concurrently.
type Mirror struct {
	cfg      *sonicdb.DB
	state    *sonicdb.DB
	settings Settings
	log      *slog.Logger
	mu       sync.Mutex // serialises sink reservations
}

// New returns a Mirror writing CONFIG_DB through config and reading STATE_DB through state.
func New(config, state *sonicdb.DB, settings Settings, logger *slog.Logger) *Mirror {
	return &Mirror{cfg: config, state: state, settings: settings, log: logger}
}

// Session is what Create made for a job.
type Session struct {
	Name string // MIRROR_SESSION key
	Type string // TypeSPAN or TypeERSPAN
	Sink string // netdev where the copies surface
	// SessionID is the ERSPAN session id the job's copies carry (0-1023), or
	// jobspec.AnySessionID when neither orchagent nor the settings say (an erspan job then
	// takes every session on its sink). -1 for SPAN, whose copies are not encapsulated.
	SessionID int
	// Prefilter says an ACL pre-filter sends only the job's traffic; otherwise every frame of the
	// port is copied and Note says why, for a job with filters.
	Prefilter bool
	Note      string
}

// Create writes the job's session (and ACL pre-filter), waits until orchagent reports it active
// in STATE_DB, and returns where its copies surface. A leftover session of the same name is
// deleted and re-created, since orchagent cannot modify one in place. On error nothing it wrote
// is left, and the error says why in words fit for a mirror_failed reason.
func (m *Mirror) Create(ctx context.Context, spec jobspec.Spec) (Session, error) {
	g, err := m.settings(ctx)
	if err != nil {
		return Session{}, fmt.Errorf("reading TELEGEN|global: %w", err)
	}
	p, err := buildPlan(spec, g)
	if err != nil {
		return Session{}, err
	}
	timeout := time.Duration(g.MirrorTimeoutSec) * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d)-ctxMargin)
	}
	if timeout <= 0 {
		return Session{}, errors.New("no time left to set the mirror session up")
	}
	log := m.log.With("job", spec.ID, "session", p.name)

	if err := m.reserve(ctx, p); err != nil {
		return Session{}, err
	}
	s, err := m.create(ctx, p, g, timeout, log)
	if err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := m.remove(cctx, p.name); rerr != nil {
			log.Warn("removing a failed mirror session failed; the sweep will retry", "err", rerr)
		}
		return Session{}, err
	}
	log.Info("mirror session active", "type", s.Type, "sink", s.Sink, "erspan_session_id", s.SessionID,
		"prefilter", s.Prefilter)
	if s.Note != "" {
		log.Warn("job filters are not pre-filtered in hardware; every frame of the port is copied", "why", s.Note)
	}
	return s, nil
}

// reserve checks that the job's copies can be told apart on its sink and records the session as
// the job's (TELEGEN_MIRROR_TABLE), before anything reaches CONFIG_DB.
func (m *Mirror) reserve(ctx context.Context, p *plan) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	records, err := m.state.GetTable(ctx, StateRecord)
	if err != nil {
		return err
	}
	for name, r := range records {
		if name == p.name || r[RecordSink] != p.sink {
			continue
		}
		if p.typ == TypeSPAN || r[RecordType] == TypeSPAN {
			return fmt.Errorf("sink %s already receives the copies of job %s; SPAN copies carry no session id, so a span job needs a sink of its own (run one at a time, or use span_method erspan)",
				p.sink, r[RecordJobID])
		}
	}
	return m.state.SetEntry(ctx, StateRecord, p.name, map[string]string{
		RecordJobID: p.jobID, RecordType: p.typ, RecordSink: p.sink, RecordSessionID: "",
	})
}

func (m *Mirror) create(ctx context.Context, p *plan, g jobspec.Globals, timeout time.Duration, log *slog.Logger) (Session, error) {
	w, err := watch(ctx, m.state, p.name)
	if err != nil {
		return Session{}, err
	}
	defer w.close()
	deadline := time.Now().Add(timeout)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	if err := m.clearLeftover(wctx, w, p.name, timeout, log); err != nil {
		return Session{}, err
	}
	probe := min(timeout/4, maxProbe)
	if p.acl() {
		if why := m.probeTables(wctx, w, p, probe); why != "" {
			if err := m.removeACL(ctx, p.name); err != nil {
				return Session{}, err
			}
			p.dropACL(why)
		}
	}
	fields := p.portSession
	if p.acl() {
		fields = p.aclSession
	}
	if err := m.cfg.SetEntry(ctx, TableMirrorSession, p.name, fields); err != nil {
		return Session{}, err
	}
	st, err := m.waitActive(wctx, w, p, timeout)
	if err != nil {
		return Session{}, err
	}
	if p.acl() {
		if why, err := m.addRules(wctx, w, p, probe); err != nil {
			return Session{}, err
		} else if why != "" {
			// The session was made for ACL-driven mirroring: re-create it port-wide.
			log.Warn("ACL pre-filter failed; falling back to port mirroring", "why", why)
			if err := m.removeConfig(ctx, p.name); err != nil {
				return Session{}, err
			}
			if err := m.waitGone(wctx, w, p.name, timeout); err != nil {
				return Session{}, err
			}
			p.dropACL(why)
			if err := m.cfg.SetEntry(ctx, TableMirrorSession, p.name, p.portSession); err != nil {
				return Session{}, err
			}
			if st, err = m.waitActive(wctx, w, p, timeout); err != nil {
				return Session{}, err
			}
		}
	}

	s := Session{Name: p.name, Type: p.typ, Sink: p.sink, SessionID: -1, Prefilter: p.acl(), Note: p.note}
	rec := map[string]string{RecordPrefilter: "port", RecordPrefilterNote: p.note}
	if p.acl() {
		rec[RecordPrefilter] = "acl"
		var tables []string
		for _, t := range p.tables {
			tables = append(tables, t.key)
		}
		rec[RecordACLTables] = sonicdb.JoinList(tables)
	}
	if p.typ == TypeERSPAN {
		s.SessionID = sessionID(st, g)
		rec[RecordSessionID] = "any"
		if s.SessionID != jobspec.AnySessionID {
			rec[RecordSessionID] = strconv.Itoa(s.SessionID)
		}
		// The check and the record that the next check reads are one step under the lock.
		m.mu.Lock()
		defer m.mu.Unlock()
		if err := m.checkSessionID(ctx, p, rec[RecordSessionID]); err != nil {
			return Session{}, err
		}
	}
	if err := m.state.ModEntry(ctx, StateRecord, p.name, rec); err != nil {
		return Session{}, err
	}
	return s, nil
}

// sessionID is the ERSPAN session id of a session's copies: what orchagent published with it,
// else the platform's from the settings, else any.
func sessionID(st map[string]string, g jobspec.Globals) int {
	if n, err := strconv.Atoi(st[FieldSessionID]); err == nil && n >= 0 && n <= 1023 {
		return n
	}
	return g.ERSPANPlatformSessionID
}

// checkSessionID refuses an ERSPAN session whose copies could not be told from another job's on
// the same sink: the same id, or an id nobody knows. The caller holds m.mu.
func (m *Mirror) checkSessionID(ctx context.Context, p *plan, id string) error {
	records, err := m.state.GetTable(ctx, StateRecord)
	if err != nil {
		return err
	}
	for name, r := range records {
		if name == p.name || r[RecordSink] != p.sink || r[RecordType] != TypeERSPAN || r[RecordSessionID] == "" {
			continue
		}
		if other := r[RecordSessionID]; other == id || other == "any" || id == "any" {
			return fmt.Errorf("the ERSPAN copies of job %s on sink %s carry session id %s, and this job's %s; they could not be told apart (set erspan_platform_session_id only when the platform stamps one id, and run one erspan job per sink then)",
				r[RecordJobID], p.sink, other, id)
		}
	}
	return nil
}

// clearLeftover removes a session of the same name left by an earlier run and waits until
// orchagent has removed it too, so its state is never taken for the new session's.
func (m *Mirror) clearLeftover(ctx context.Context, w *stateWatch, name string, timeout time.Duration, log *slog.Logger) error {
	exists, err := m.anyConfig(ctx, name)
	if err != nil {
		return err
	}
	if exists {
		log.Info("removing a leftover mirror session of the same name before re-creating it")
		if err := m.removeConfig(ctx, name); err != nil {
			return err
		}
	}
	return m.waitGone(ctx, w, name, timeout)
}

func (m *Mirror) waitGone(ctx context.Context, w *stateWatch, name string, timeout time.Duration) error {
	err := w.until(ctx, func() (bool, error) {
		_, ok, err := m.state.GetEntry(ctx, StateMirrorSession, name)
		return !ok, err
	})
	if ctx.Err() != nil {
		return fmt.Errorf("orchagent did not remove the previous %s within %v (STATE_DB %s still has it)", name, timeout, StateMirrorSession)
	}
	return err
}

// probeTables writes the job's ACL tables and waits for AclOrch's verdict. It returns why the
// pre-filter cannot be used, or "" when every table is Active.
func (m *Mirror) probeTables(ctx context.Context, w *stateWatch, p *plan, wait time.Duration) string {
	for _, t := range p.tables {
		if err := m.cfg.SetEntry(ctx, TableACLTable, t.key, t.fields); err != nil {
			return "writing ACL_TABLE failed: " + err.Error()
		}
	}
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var why string
	err := w.until(pctx, func() (bool, error) {
		why = ""
		for _, t := range p.tables {
			st, ok, err := m.state.GetEntry(ctx, StateACLTable, t.key)
			switch {
			case err != nil:
				return false, err
			case !ok:
				why = fmt.Sprintf("orchagent reported no status for ACL table %s within %v (no mirror ACL support?)", t.key, wait)
				return false, nil
			case !strings.EqualFold(st["status"], "Active"):
				why = fmt.Sprintf("orchagent reported ACL table %s as %q", t.key, st["status"])
				if st["status"] == "Pending creation" {
					why += " (another mirror ACL table exists at this stage)"
				}
				return true, nil
			}
		}
		return true, nil
	})
	if err != nil && pctx.Err() == nil {
		return "reading ACL_TABLE_TABLE failed: " + err.Error()
	}
	return why
}

// addRules writes the ACL rules and waits (up to wait) until AclOrch reports each Active. It
// returns why the pre-filter cannot be used, or "".
func (m *Mirror) addRules(ctx context.Context, w *stateWatch, p *plan, wait time.Duration) (string, error) {
	for _, r := range p.rules {
		if err := m.cfg.SetEntry(ctx, TableACLRule, r.key, r.fields); err != nil {
			return "", err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// why is what the last complete reading said; a reading cut short by the deadline says
	// nothing (it must not turn "no status yet" into "all active").
	why := fmt.Sprintf("orchagent reported no status for the ACL rules within %v", wait)
	err := w.until(rctx, func() (bool, error) {
		for _, r := range p.rules {
			st, ok, err := m.state.GetEntry(ctx, StateACLRule, r.key)
			switch {
			case err != nil:
				return false, err
			case !ok:
				why = fmt.Sprintf("orchagent reported no status for ACL rule %s within %v", r.key, wait)
				return false, nil
			case !strings.EqualFold(st["status"], "Active"):
				why = fmt.Sprintf("orchagent reported ACL rule %s as %q", r.key, st["status"])
				return true, nil
			}
		}
		why = "" // every rule Active
		return true, nil
	})
	if err != nil && rctx.Err() == nil {
		return "", err
	}
	return why, nil
}

// waitActive waits for STATE_DB MIRROR_SESSION_TABLE|name status active and returns the entry.
func (m *Mirror) waitActive(ctx context.Context, w *stateWatch, p *plan, timeout time.Duration) (map[string]string, error) {
	// st and exists are the last complete reading: one cut short by the deadline must not
	// turn "inactive" into "no entry".
	var st map[string]string
	var exists bool
	err := w.until(ctx, func() (bool, error) {
		e, ok, err := m.state.GetEntry(ctx, StateMirrorSession, p.name)
		if err != nil {
			return false, err
		}
		st, exists = e, ok
		return exists && st["status"] == "active", nil
	})
	if err == nil {
		return st, nil
	}
	if ctx.Err() == nil {
		return nil, err
	}
	if !exists {
		why := fmt.Sprintf("orchagent rejected %s: no STATE_DB %s entry within %v", p.name, StateMirrorSession, timeout)
		if p.typ == TypeSPAN && strings.EqualFold(p.spanDst, "CPU") {
			why += "; orchagent does not support SPAN to CPU (span_dst_port must be a front-panel port; or use span_method erspan)"
		} else {
			why += "; see orchagent's log"
		}
		return nil, errors.New(why)
	}
	why := fmt.Sprintf("orchagent did not activate %s within %v (status %s)", p.name, timeout, st["status"])
	if p.typ == TypeERSPAN {
		why += fmt.Sprintf("; is there a route and neighbour to erspan_dst_ip %s?", p.erspanDst)
	}
	return nil, errors.New(why)
}

// Delete removes everything Create made for the job: its ACL rules and tables, its session and
// its record. Deleting what is not there is not an error.
func (m *Mirror) Delete(ctx context.Context, jobID string) error {
	name := jobspec.MirrorSessionName(jobID)
	if err := m.remove(ctx, name); err != nil {
		return err
	}
	m.log.Debug("removed mirror session", "job", jobID, "session", name)
	return nil
}

func (m *Mirror) remove(ctx context.Context, name string) error {
	if err := m.removeConfig(ctx, name); err != nil {
		return err
	}
	return m.state.DelEntry(ctx, StateRecord, name)
}

// removeConfig deletes a session's CONFIG_DB rows, rules first: orchagent keeps a session that
// a rule still uses.
func (m *Mirror) removeConfig(ctx context.Context, name string) error {
	if err := m.removeACL(ctx, name); err != nil {
		return err
	}
	return m.cfg.DelEntry(ctx, TableMirrorSession, name)
}

func (m *Mirror) removeACL(ctx context.Context, name string) error {
	rules, err := m.cfg.Keys(ctx, TableACLRule)
	if err != nil {
		return err
	}
	tables := tableNames(name)
	for _, r := range rules {
		if t, _, _ := strings.Cut(r, "|"); slices.Contains(tables, t) {
			if err := m.cfg.DelEntry(ctx, TableACLRule, r); err != nil {
				return err
			}
		}
	}
	for _, t := range tables {
		if err := m.cfg.DelEntry(ctx, TableACLTable, t); err != nil {
			return err
		}
	}
	return nil
}

// anyConfig reports whether CONFIG_DB holds a session or ACL table of this name.
func (m *Mirror) anyConfig(ctx context.Context, name string) (bool, error) {
	keys := []string{m.cfg.Key(TableMirrorSession, name)}
	for _, t := range tableNames(name) {
		keys = append(keys, m.cfg.Key(TableACLTable, t))
	}
	n, err := m.cfg.Client().Exists(ctx, keys...).Result()
	return n > 0, err
}

// CleanUp removes every session, ACL table and ACL rule named telegen_* (and every record)
// whose job keep does not claim. The owner of a session is its record's job, else the job id its
// name spells (names of short ids are the id itself); an ACL table's owner is in its
// policy_desc. Anything of ours with no owner known is removed. Idempotent.
func (m *Mirror) CleanUp(ctx context.Context, keep func(jobID string) bool) error {
	records, err := m.state.GetTable(ctx, StateRecord)
	if err != nil {
		return err
	}
	sessions, err := m.cfg.Keys(ctx, TableMirrorSession)
	if err != nil {
		return err
	}
	tables, err := m.cfg.GetTable(ctx, TableACLTable)
	if err != nil {
		return err
	}
	rules, err := m.cfg.Keys(ctx, TableACLRule)
	if err != nil {
		return err
	}
	owner := func(session string) string {
		if r, ok := records[session]; ok {
			return r[RecordJobID]
		}
		if id, ok := strings.CutPrefix(session, jobspec.SessionPrefix); ok && jobspec.MirrorSessionName(id) == session {
			return id
		}
		return ""
	}
	orphan := func(jobID string) bool { return jobID == "" || !keep(jobID) }

	var errs []error
	dropTable := map[string]bool{}
	for t, f := range tables {
		if !strings.HasPrefix(t, jobspec.SessionPrefix) {
			continue
		}
		id, ok := strings.CutPrefix(f["policy_desc"], descPrefix)
		if !ok {
			id = owner(t)
		}
		dropTable[t] = orphan(id)
	}
	for _, r := range rules {
		t, _, _ := strings.Cut(r, "|")
		if !strings.HasPrefix(t, jobspec.SessionPrefix) {
			continue
		}
		drop, known := dropTable[t]
		if !known {
			drop = orphan(owner(t))
		}
		if drop {
			errs = append(errs, m.sweep(ctx, TableACLRule, r))
		}
	}
	for t, drop := range dropTable {
		if drop {
			errs = append(errs, m.sweep(ctx, TableACLTable, t))
		}
	}
	for _, s := range sessions {
		if strings.HasPrefix(s, jobspec.SessionPrefix) && orphan(owner(s)) {
			errs = append(errs, m.sweep(ctx, TableMirrorSession, s))
		}
	}
	for name, r := range records {
		if orphan(r[RecordJobID]) {
			if err := m.state.DelEntry(ctx, StateRecord, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (m *Mirror) sweep(ctx context.Context, table, key string) error {
	if err := m.cfg.DelEntry(ctx, table, key); err != nil {
		return err
	}
	m.log.Info("removed a mirror entry no live job owns", "table", table, "key", key)
	return nil
}
