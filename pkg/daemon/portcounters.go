package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// SONiC's port counters in COUNTERS_DB: syncd polls each port's SAI statistics every 1000 ms
// (flex counter group PORT_STAT_COUNTER) into COUNTERS:<oid>, and COUNTERS_PORT_NAME_MAP maps a
// port name to its oid. An L2 CRC error never reaches the CPU, so l2_crc can only come from here.
const (
	countersPortNameMap = "COUNTERS_PORT_NAME_MAP" // a hash: port name -> "oid:0x..."
	countersTable       = "COUNTERS"               // COUNTERS<sep><oid>, a hash of SAI stats
	statIfInErrors      = "SAI_PORT_STAT_IF_IN_ERRORS"
)

// errPortCountersUnknown marks a port whose counters SONiC does not (or no longer) publish; the
// wrapping error says which key or field is missing.
var errPortCountersUnknown = errors.New("port counters unknown")

// portErrors reads ports' SAI_PORT_STAT_IF_IN_ERRORS from COUNTERS_DB.
type portErrors struct{ db *sonicdb.DB }

func newPortErrors(db *sonicdb.DB) portErrors { return portErrors{db} }

// read returns the port's counter object and its SAI_PORT_STAT_IF_IN_ERRORS now. A port (or
// field) SONiC does not publish gives an error wrapping errPortCountersUnknown.
func (p portErrors) read(ctx context.Context, port string) (oid string, v uint64, err error) {
	oid, err = p.db.Client().HGet(ctx, countersPortNameMap, port).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("%s %s: no field %s: %w", p.db.Name(), countersPortNameMap, port, errPortCountersUnknown)
	}
	if err != nil {
		return "", 0, fmt.Errorf("%s %s %s: %w", p.db.Name(), countersPortNameMap, port, err)
	}
	key := p.db.Key(countersTable, oid)
	s, err := p.db.Client().HGet(ctx, key, statIfInErrors).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, fmt.Errorf("%s %s: no field %s: %w", p.db.Name(), key, statIfInErrors, errPortCountersUnknown)
	}
	if err != nil {
		return "", 0, fmt.Errorf("%s %s %s: %w", p.db.Name(), key, statIfInErrors, err)
	}
	v, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%s %s %s: %q is not a counter: %w", p.db.Name(), key, statIfInErrors, s, errPortCountersUnknown)
	}
	return oid, v, nil
}

// Baseline starts following port's input errors over a job's window, from now. It never fails:
// when the counter cannot be read now, the window's l2_crc is unknown for good (what happened
// before a late first reading cannot be told), and every Since says why.
func (p portErrors) Baseline(ctx context.Context, port string) *l2Window {
	w := &l2Window{p: p, port: port}
	w.oid, w.last, w.baseErr = p.read(ctx, port)
	return w
}

// SaveBaseline writes where the window started (counter object and value) to path, so that a
// daemon that adopts the job after a restart counts from the same point. Nothing is written
// for a window whose baseline is unknown.
func (w *l2Window) SaveBaseline(path string) error {
	if w.baseErr != nil {
		return nil
	}
	w.mu.Lock()
	data := fmt.Sprintf("%s %d\n", w.oid, w.last)
	w.mu.Unlock()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ResumeBaseline follows port's input errors from a baseline SaveBaseline wrote. Errors
// counted meanwhile (while no daemon ran) are the window's; a counter reset meanwhile loses
// what came before the reset. ok is false when path holds no baseline.
func (p portErrors) ResumeBaseline(port, path string) (w *l2Window, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var (
		oid  string
		last uint64
	)
	if n, err := fmt.Sscanf(string(data), "%s %d", &oid, &last); n != 2 || err != nil {
		return nil, false
	}
	return &l2Window{p: p, port: port, oid: oid, last: last}, true
}

// l2Window is one port's SAI_PORT_STAT_IF_IN_ERRORS followed over a job's window. Safe for
// concurrent use.
type l2Window struct {
	p       portErrors
	port    string
	baseErr error

	mu    sync.Mutex
	oid   string // counter object of the last good reading
	last  uint64 // its value then
	total uint64 // errors counted since the baseline
}

// Since reads the counter now and returns the errors counted since the baseline (l2_crc). Any
// error means l2_crc is unknown at this reading; the window keeps what it had counted, and a
// later good reading continues from there.
//
// A counter that goes down was reset (syncd restarted, counters cleared in the ASIC) and counted
// from zero again, so its new value is all new errors; so is the value of a new counter object,
// when the port's oid changes (syncd recreated the port).
func (w *l2Window) Since(ctx context.Context) (uint64, error) {
	if w.baseErr != nil {
		return 0, fmt.Errorf("l2_crc unknown since the job started: %w", w.baseErr)
	}
	// Readings are applied in the order they were taken: one at a time.
	w.mu.Lock()
	defer w.mu.Unlock()
	oid, v, err := w.p.read(ctx, w.port)
	if err != nil {
		return 0, fmt.Errorf("l2_crc unknown: %w", err)
	}
	if oid == w.oid && v >= w.last {
		w.total += v - w.last
	} else {
		w.total += v
	}
	w.oid, w.last = oid, v
	return w.total, nil
}
