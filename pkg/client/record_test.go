package client

import (
	"encoding/json"
	"testing"
	"time"
)

func TestJobFromRecord(t *testing.T) {
	j := JobFromRecord("j1", map[string]string{
		"status": "running", "reason": "", "slot": "1", "interface": "Ethernet16", "mirror_session": "",
		"created_at": "2025-01-02T03:04:05.678Z", "started_at": "2025-01-02T03:04:05.700Z",
		"expires_at": "2025-01-02T03:06:05.700Z", "finished_at": "", "packets_total": "18446744073709551615",
		"bytes_total": "1000", "updated_at": "2025-01-02T03:04:06.000Z",
		"top_flows": `[{"5tuple":"10.0.0.1:1->10.0.0.2:2/TCP","pkts":3,"bytes":180}]`,
	})
	if j.ID != "j1" || j.Status != "running" || j.Slot == nil || *j.Slot != 1 || j.Interface != "Ethernet16" ||
		j.PacketsTotal != 1<<64-1 || j.BytesTotal != 1000 || len(j.TopFlows) != 1 || j.TopFlows[0].Bytes != 180 {
		t.Errorf("JobFromRecord = %+v", j)
	}
	if want := time.Date(2025, 1, 2, 3, 6, 5, 700e6, time.UTC); !j.ExpiresAt.Equal(want) || !j.FinishedAt.IsZero() {
		t.Errorf("times: expires %v finished %v", j.ExpiresAt, j.FinishedAt)
	}
	b, _ := json.Marshal(JobFromRecord("j2", map[string]string{"status": "rejected", "reason": "concurrency_limit", "slot": ""}))
	if want := `{"job_id":"j2","status":"rejected","reason":"concurrency_limit","packets_total":0,"bytes_total":0}`; string(b) != want {
		t.Errorf("json = %s\nwant %s", b, want)
	}
}

func TestResultFromFields(t *testing.T) {
	r := ResultFromFields("j1", map[string]string{
		"status": "done", "reason": "", "port": "Ethernet16", "window_sec": "4.000", "packets_total": "500",
		"bytes_total": "18446744073709551615", "totals_exact": "true", "sample_rate": "100",
		"started_at":  "2025-01-02T03:04:05.678Z",
		"errors":      `{"l2_crc":0,"l3_checksum":2}`,
		"top_flows":   `[{"5tuple":"[2001:db8::1]:443->[2001:db8::2]:5000/TCP","pkts":2,"bytes":3000}]`,
		"otel_export": `{"exported":true,"endpoint":"http://127.0.0.1:4318"}`,
		"broken_json": `{"a":`, "note": "007",
	})
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"broken_json":"{\"a\":","bytes_total":18446744073709551615,"errors":{"l2_crc":0,"l3_checksum":2},` +
		`"job_id":"j1","note":"007","otel_export":{"endpoint":"http://127.0.0.1:4318","exported":true},` +
		`"packets_total":500,"port":"Ethernet16","reason":"","sample_rate":100,"started_at":"2025-01-02T03:04:05.678Z",` +
		`"status":"done","top_flows":[{"5tuple":"[2001:db8::1]:443-\u003e[2001:db8::2]:5000/TCP","bytes":3000,"pkts":2}],` +
		`"totals_exact":true,"window_sec":4.000}`
	if string(b) != want {
		t.Errorf("result json\n got %s\nwant %s", b, want)
	}
	if r.Uint("bytes_total") != 1<<64-1 || r.Float("window_sec") != 4 || r.String("port") != "Ethernet16" {
		t.Errorf("accessors: %d %v %q", r.Uint("bytes_total"), r.Float("window_sec"), r.String("port"))
	}
	if f := r.TopFlows(); len(f) != 1 || f[0].Pkts != 2 || f[0].FiveTuple != "[2001:db8::1]:443->[2001:db8::2]:5000/TCP" {
		t.Errorf("TopFlows = %+v", f)
	}
}
