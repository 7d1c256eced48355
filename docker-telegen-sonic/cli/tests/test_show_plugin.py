"""'show telegen jobs|job|results' against a real redis-server."""

import json
import os

from conftest import CLI_DIR

BEGIN, END = "# --- telegen shared: begin ---", "# --- telegen shared: end ---"


def seed(r):
    r.config.hset("TELEGEN_JOB|j1", mapping={"port": "Ethernet16", "span_method": "direct"})
    r.state.hset("TELEGEN_JOB_TABLE|j1", mapping={
        "status": "running", "reason": "", "slot": "0", "interface": "Ethernet16", "mirror_session": "",
        "created_at": "2025-01-02T03:04:05.000Z", "started_at": "2025-01-02T03:04:05.100Z",
        "expires_at": "2025-01-02T03:06:05.100Z", "finished_at": "", "packets_total": "12", "bytes_total": "1500",
        "updated_at": "2025-01-02T03:04:06.000Z"})
    r.state.hset("TELEGEN_JOB_TABLE|j0", mapping={
        "status": "done", "created_at": "2025-01-01T00:00:00.000Z", "started_at": "2025-01-01T00:00:00.000Z",
        "finished_at": "2025-01-01T00:01:00.000Z", "packets_total": "500", "bytes_total": "64000"})
    r.state.hset("TELEGEN_RESULT_TABLE|j0", mapping={
        "status": "done", "port": "Ethernet20", "window_sec": "60.000", "packets_total": "500",
        "bytes_total": "64000", "totals_exact": "true", "sample_rate": "100",
        "errors": '{"l2_crc":0,"l3_checksum":3}',
        "top_flows": '[{"5tuple":"10.0.0.1:1234->10.0.0.2:80/TCP","pkts":400,"bytes":60000}]'})
    r.state.hset("TELEGEN_JOB_TABLE|j2", mapping={
        "status": "rejected", "reason": "concurrency_limit", "created_at": "2025-01-02T03:04:06.000Z"})


def test_jobs_table(roots, runner, redis_server):
    _, show = roots
    seed(redis_server)
    res = runner.invoke(show, ["telegen", "jobs"])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["Job", "Status", "Port", "Started", "Ends", "Packets", "Bytes", "Reason"]
    assert [ln.split()[:3] for ln in lines[2:]] == [["j0", "done", "Ethernet20"], ["j1", "running", "Ethernet16"],
                                                    ["j2", "rejected", "-"]]
    assert "concurrency_limit" in lines[4]


def test_jobs_json(roots, runner, redis_server):
    _, show = roots
    seed(redis_server)
    res = runner.invoke(show, ["telegen", "jobs", "--json"])
    doc = json.loads(res.stdout)
    assert [j["job_id"] for j in doc["jobs"]] == ["j0", "j1", "j2"]
    j1 = doc["jobs"][1]
    assert j1["packets_total"] == 12 and j1["slot"] == 0 and j1["status"] == "running" and j1["port"] == "Ethernet16"


def test_job(roots, runner, redis_server):
    _, show = roots
    seed(redis_server)
    res = runner.invoke(show, ["telegen", "job", "j1"])
    assert res.exit_code == 0
    rows = dict(ln.split(None, 1) for ln in res.stdout.splitlines()[2:])
    assert rows["status"] == "running" and rows["port"] == "Ethernet16" and rows["expires_at"] == "2025-01-02T03:06:05.100Z"
    assert "mirror_session" not in rows
    res = runner.invoke(show, ["telegen", "job", "j1", "--json"])
    assert json.loads(res.stdout)["bytes_total"] == 1500
    res = runner.invoke(show, ["telegen", "job", "nope"])
    assert res.exit_code == 1 and res.stderr == "ERROR: job nope not found (HTTP 404)\n"
    redis_server.config.hset("TELEGEN_JOB|fresh", "port", "Ethernet16")
    res = runner.invoke(show, ["telegen", "job", "fresh"])
    assert res.exit_code == 1 and "has no verdict yet" in res.stderr
    res = runner.invoke(show, ["telegen", "job", "a|b"])
    assert res.exit_code == 2


def test_results(roots, runner, redis_server):
    _, show = roots
    seed(redis_server)
    res = runner.invoke(show, ["telegen", "results", "j0", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc == {"job_id": "j0", "status": "done", "port": "Ethernet20", "window_sec": 60.0, "packets_total": 500,
                   "bytes_total": 64000, "totals_exact": True, "sample_rate": 100,
                   "errors": {"l2_crc": 0, "l3_checksum": 3},
                   "top_flows": [{"5tuple": "10.0.0.1:1234->10.0.0.2:80/TCP", "pkts": 400, "bytes": 60000}]}
    res = runner.invoke(show, ["telegen", "results", "j0"])
    assert res.exit_code == 0
    assert "errors.l3_checksum  3" in res.stdout and "10.0.0.1:1234->10.0.0.2:80/TCP  400" in res.stdout
    assert res.stdout.index("status") < res.stdout.index("window_sec") < res.stdout.index("errors.l2_crc")
    res = runner.invoke(show, ["telegen", "results", "j1"])
    assert res.exit_code == 1 and "is running; its result is written when it ends (HTTP 409)" in res.stderr
    res = runner.invoke(show, ["telegen", "results", "j2"])
    assert res.exit_code == 1 and "ended rejected without a result" in res.stderr


def test_shared_code_identical():
    blocks = []
    for kind in ("config", "show"):
        with open(os.path.join(CLI_DIR, kind, "plugins", "telegen.py")) as f:
            src = f.read()
        blocks.append(src[src.index(BEGIN):src.index(END)])
    assert blocks[0] == blocks[1], "the shared blocks of the config and show plugins differ"
