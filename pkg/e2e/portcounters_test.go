package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestL2CRCFromPortCounters: l2_crc is the growth of SONiC's own SAI_PORT_STAT_IF_IN_ERRORS
// over the job's window (COUNTERS_DB COUNTERS_PORT_NAME_MAP -> COUNTERS:<oid>), as syncd
// publishes it. The test plays syncd: it writes the port's counters before the job and bumps
// them while the job runs. A port SONiC publishes no counters for gets no l2_crc at all (unknown
// is not zero).
func TestL2CRCFromPortCounters(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			s := newSwitch(t, mode, "Ethernet16", "Ethernet20")
			ctx := context.Background()
			counters := s.redis.Client(t, 2)
			const oid = "oid:0x1000000000005"
			must(t, counters.HSet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet16", oid).Err())
			must(t, counters.HSet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS", "1000",
				"SAI_PORT_STAT_IF_IN_UCAST_PKTS", "5", "SAI_PORT_STAT_IF_IN_DISCARDS", "0").Err())
			s.startDaemon()

			s.putJob("crc", "port", "Ethernet16", "span_method", "direct", "duration_sec", "3")
			s.putJob("nocounters", "port", "Ethernet20", "span_method", "direct", "duration_sec", "3")
			s.waitStatus("crc", "running", 2*time.Second)
			s.waitStatus("nocounters", "running", 2*time.Second)

			// Errors arrive in two polls of syncd's, 5 then 7 more.
			time.Sleep(300 * time.Millisecond)
			must(t, counters.HSet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS", "1005").Err())
			time.Sleep(500 * time.Millisecond)
			must(t, counters.HSet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS", "1012").Err())

			s.waitStatus("crc", "done", 5*time.Second)
			s.waitStatus("nocounters", "done", 5*time.Second)
			// Errors after the job ended are not the job's.
			must(t, counters.HSet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS", "2000").Err())

			errs := resultErrors(t, s, "crc")
			if v, ok := errs["l2_crc"]; !ok || string(v) != "12" {
				t.Errorf("crc: errors %v, want l2_crc 12 (1012 - 1000)", fmtErrors(errs))
			}
			errs = resultErrors(t, s, "nocounters")
			if v, ok := errs["l2_crc"]; ok {
				t.Errorf("nocounters: l2_crc %s for a port without COUNTERS_DB entries; want it absent (unknown)", v)
			}
			s.daemon.stop(t)
		})
	}
}

// resultErrors decodes the result's errors object, keeping each value's JSON text.
func resultErrors(t *testing.T, s *vswitch, id string) map[string]json.RawMessage {
	t.Helper()
	res := s.result(id)
	var errs map[string]json.RawMessage
	if err := json.Unmarshal([]byte(res["errors"]), &errs); err != nil {
		t.Fatalf("job %s: result errors %q: %v (result %v)", id, res["errors"], err, res)
	}
	return errs
}

func fmtErrors(m map[string]json.RawMessage) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

// TestL2CRCAcrossRestart: telegend killed with -9 mid-job and started again adopts the job and
// counts l2_crc over the whole window: errors before the kill, while no daemon ran, and after.
// The baseline file it kept goes with the job.
func TestL2CRCAcrossRestart(t *testing.T) {
	s := newSwitch(t, "auto", "Ethernet16")
	ctx := context.Background()
	counters := s.redis.Client(t, 2)
	const oid = "oid:0x1000000000005"
	bump := func(v string) {
		t.Helper()
		must(t, counters.HSet(ctx, "COUNTERS:"+oid, "SAI_PORT_STAT_IF_IN_ERRORS", v).Err())
	}
	must(t, counters.HSet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet16", oid).Err())
	bump("1000")
	d := s.startDaemon()
	s.putJob("crc", "port", "Ethernet16", "span_method", "direct", "duration_sec", "4")
	s.waitStatus("crc", "running", 2*time.Second)
	baseline := filepath.Join(s.stateDir, "l2-crc")
	if _, err := os.Stat(baseline); err != nil {
		t.Fatalf("no baseline kept: %v", err)
	}
	bump("1003")
	time.Sleep(300 * time.Millisecond) // a live reading of 3
	d.kill()
	bump("1008") // while no daemon runs
	s.startDaemon()
	s.waitStatus("crc", "running", 2*time.Second)
	time.Sleep(300 * time.Millisecond)
	bump("1010")
	s.waitStatus("crc", "done", 5*time.Second)
	if v, ok := resultErrors(t, s, "crc")["l2_crc"]; !ok || string(v) != "10" {
		t.Errorf("l2_crc %s (present %v), want 10: 1010 - 1000 across the restart", v, ok)
	}
	if _, err := os.Stat(baseline); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("baseline file after the job: %v", err)
	}
	s.assertClean()
	s.daemon.stop(t)
}
