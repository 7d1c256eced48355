package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/telegen-sonic/telegen-sonic/pkg/internal/testenv"
	"github.com/telegen-sonic/telegen-sonic/pkg/sonicdb"
)

// countersDB is COUNTERS_DB of a fresh redis-server, opened through database_config.json as the
// daemon opens it, and a raw client on the same DB to play syncd.
func countersDB(t *testing.T) (*sonicdb.DB, *redis.Client) {
	t.Helper()
	r := testenv.StartRedis(t)
	cfg, err := sonicdb.LoadConfig(r.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	db, err := cfg.Open("COUNTERS_DB")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, r.Client(t, 2)
}

func TestPortErrorsWindow(t *testing.T) {
	db, syncd := countersDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	set := func(key string, kv ...any) {
		t.Helper()
		if err := syncd.HSet(ctx, key, kv...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// As SONiC lays it out (sonic-utilities tests/mock_tables/counters_db.json): the map, then
	// COUNTERS:oid:0x... with a second colon in the key.
	set("COUNTERS_PORT_NAME_MAP", "Ethernet16", "oid:0x1000000000005", "Ethernet20", "oid:0x1000000000006")
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "1000", "SAI_PORT_STAT_IF_IN_UCAST_PKTS", "5")

	pe := newPortErrors(db)
	w := pe.Baseline(ctx, "Ethernet16")
	step := func(what string, want uint64) {
		t.Helper()
		got, err := w.Since(ctx)
		if err != nil || got != want {
			t.Errorf("%s: l2_crc %d, %v; want %d", what, got, err, want)
		}
	}
	step("no change", 0)
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "1007")
	step("+7", 7)
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "1010")
	step("+3", 10)
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "4")
	step("reset to 0, then 4 more", 14)
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "6")
	step("+2 after the reset", 16)

	// The port vanishes from the map for a while: unknown, and counting resumes after.
	if err := syncd.HDel(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet16").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Since(ctx); !errors.Is(err, errPortCountersUnknown) ||
		!strings.Contains(err.Error(), "COUNTERS_DB COUNTERS_PORT_NAME_MAP: no field Ethernet16") {
		t.Errorf("port missing from the map: %v", err)
	}
	set("COUNTERS:oid:0x1000000000005", "SAI_PORT_STAT_IF_IN_ERRORS", "9")
	set("COUNTERS_PORT_NAME_MAP", "Ethernet16", "oid:0x1000000000005")
	step("back, +3 meanwhile", 19)

	// syncd recreated the port: a new object counting from zero.
	set("COUNTERS:oid:0x1000000000099", "SAI_PORT_STAT_IF_IN_ERRORS", "5")
	set("COUNTERS_PORT_NAME_MAP", "Ethernet16", "oid:0x1000000000099")
	step("new oid with 5", 24)

	// A field that is not a number, or missing, is unknown and names the key and field.
	set("COUNTERS:oid:0x1000000000099", "SAI_PORT_STAT_IF_IN_ERRORS", "n/a")
	if _, err := w.Since(ctx); !errors.Is(err, errPortCountersUnknown) ||
		!strings.Contains(err.Error(), `COUNTERS:oid:0x1000000000099 SAI_PORT_STAT_IF_IN_ERRORS: "n/a"`) {
		t.Errorf("non-numeric counter: %v", err)
	}
	set("COUNTERS:oid:0x1000000000099", "SAI_PORT_STAT_IF_IN_ERRORS", "5")
	step("readable again", 24)

	// A port with a map entry but no counters yet, and a port SONiC does not know at all: the
	// whole window is unknown, even once the counters appear.
	for _, port := range []string{"Ethernet20", "Ethernet99"} {
		w := pe.Baseline(ctx, port)
		set("COUNTERS:oid:0x1000000000006", "SAI_PORT_STAT_IF_IN_ERRORS", "3")
		set("COUNTERS_PORT_NAME_MAP", "Ethernet99", "oid:0x1000000000006")
		_, err := w.Since(ctx)
		if !errors.Is(err, errPortCountersUnknown) || !strings.Contains(err.Error(), "since the job started") {
			t.Errorf("%s: %v, want unknown since the start", port, err)
		}
		if err := syncd.Del(ctx, "COUNTERS:oid:0x1000000000006").Err(); err != nil {
			t.Fatal(err)
		}
		if err := syncd.HDel(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet99").Err(); err != nil {
			t.Fatal(err)
		}
	}

	// Redis itself failing is an error too, not errPortCountersUnknown.
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := w.Since(cctx); err == nil || errors.Is(err, errPortCountersUnknown) {
		t.Errorf("cancelled read: %v", err)
	}
}

// TestPortErrorsConcurrent: readings taken at once are applied one at a time, so a counter that
// only grows never looks reset.
func TestPortErrorsConcurrent(t *testing.T) {
	db, syncd := countersDB(t)
	ctx := context.Background()
	if err := syncd.HSet(ctx, "COUNTERS_PORT_NAME_MAP", "Ethernet0", "oid:0x1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := syncd.HSet(ctx, "COUNTERS:oid:0x1", "SAI_PORT_STAT_IF_IN_ERRORS", "100").Err(); err != nil {
		t.Fatal(err)
	}
	w := newPortErrors(db).Baseline(ctx, "Ethernet0")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			_ = syncd.HSet(ctx, "COUNTERS:oid:0x1", "SAI_PORT_STAT_IF_IN_ERRORS", strconv.Itoa(101+i)).Err()
		}
	})
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := w.Since(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got, err := w.Since(ctx); err != nil || got != 200 {
		t.Errorf("l2_crc %d, %v; want 200", got, err)
	}
}
