"""'config telegen start|stop' against a real redis-server and a stand-in telegend."""

import re
import threading
import time

from conftest import fmt, utcnow

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
CAP = "ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)\n"


def test_register_adds_group(roots):
    config, show = roots
    assert "telegen" in config.commands and set(config.commands["telegen"].commands) == {"start", "stop"}
    assert set(show.commands["telegen"].commands) == {"jobs", "job", "results"}


def test_start_writes_key_and_reports_running(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--span-method", "direct",
                                 "--duration", "30", "--filter", "dscp=10;46,ip_proto=tcp", "--filter", "l4_dport=80",
                                 "--no-otlp-export", "--dir", "both", "--vlan", "100"])
    assert res.exit_code == 0, res.stderr
    m = re.match(r"^job (%s) running on Ethernet16\n$" % UUID, res.stdout)
    assert m, res.stdout
    job = m.group(1)
    assert redis_server.config.hgetall("TELEGEN_JOB|" + job) == {
        "port": "Ethernet16", "span_method": "direct", "duration_sec": "30", "dscp@": "10,46", "ip_proto@": "tcp",
        "l4_dport@": "80", "otlp_export": "false", "direction": "both", "vlan": "100"}
    assert redis_server.state.hget("TELEGEN_JOB_TABLE|" + job, "status") == "running"

    res = runner.invoke(config, ["telegen", "stop", job])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "job %s stopped\n" % job
    assert redis_server.config.exists("TELEGEN_JOB|" + job) == 0


def test_start_with_job_id(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--job", "mine.1"])
    assert res.exit_code == 0 and res.stdout == "job mine.1 running on Ethernet16\n", res.stderr
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--job", "mine.1"])
    assert res.exit_code == 2 and "exists already" in res.stderr
    for bad in ("a|b", "*", "-x", "a b"):
        res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--job", bad])
        assert res.exit_code == 2 and res.stderr.startswith("ERROR: --job: must be"), (bad, res.stderr)
    assert redis_server.config.keys("TELEGEN_JOB|*") == ["TELEGEN_JOB|mine.1"]


def test_cap(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    for _ in range(2):
        assert runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"]).exit_code == 0
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet20"])
    assert res.exit_code == 3
    assert res.stderr == CAP
    assert res.stdout == ""
    redis_server.config.hset("TELEGEN|global", "max_concurrent_jobs", "2")  # read, never written by the plugin


def test_invalid_verdict_names_option(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    fake_daemon.decide = lambda job, f: {"status": "failed", "reason": 'invalid: dscp@: item "99": must be an integer 0-63'}
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--filter", "dscp=99"])
    assert res.exit_code == 2
    assert res.stderr == 'ERROR: --filter dscp: item "99": must be an integer 0-63 (HTTP 400)\n'
    fake_daemon.decide = lambda job, f: {"status": "failed", "reason": "attach_failed: no such device"}
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 1 and "failed: attach_failed: no such device (HTTP 502)" in res.stderr


def test_bad_filters_are_usage_errors(roots, runner, redis_server):
    config, _ = roots
    for f in ("color=red", "46", "src_cidr=a,b", "dscp="):
        res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--filter", f])
        assert res.exit_code == 2 and "--filter" in res.stderr, (f, res.stderr)
    assert redis_server.config.keys("TELEGEN_JOB|*") == []


def test_no_verdict_removes_key(roots, runner, redis_server):
    config, _ = roots
    ps = redis_server.config.pubsub()
    ps.psubscribe("__keyspace@4__:TELEGEN_JOB|*")
    t0 = time.monotonic()
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--timeout", "0.4"])
    assert 0.4 <= time.monotonic() - t0 < 3
    assert res.exit_code == 4
    assert "telegend recorded no verdict" in res.stderr and res.stderr.endswith("(HTTP 503)\n")
    assert redis_server.config.keys("TELEGEN_JOB|*") == []
    events = []
    deadline = time.monotonic() + 2
    while len(events) < 2 and time.monotonic() < deadline:
        m = ps.get_message(timeout=0.2)
        if m and m["type"] == "pmessage":
            events.append(m["data"] if isinstance(m["data"], str) else m["data"].decode())
    assert events == ["hset", "del"]
    ps.close()


def test_feature_disabled(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    redis_server.config.hset("FEATURE|telegen", "state", "disabled")
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 4 and res.stderr.startswith("ERROR: telegen is disabled")
    assert redis_server.config.keys("TELEGEN_JOB|*") == []


def test_old_record_is_not_the_answer(roots, runner, redis_server, fake_daemon):
    config, _ = roots
    redis_server.state.hset("TELEGEN_JOB_TABLE|again", mapping={"status": "running", "created_at": "2020-01-01T00:00:00.000Z"})
    answered = threading.Event()

    def late(job, fields):
        def answer():
            time.sleep(0.3)
            redis_server.state.hset("TELEGEN_JOB_TABLE|" + job, mapping={
                "status": "rejected", "reason": "concurrency_limit", "created_at": fmt(utcnow())})
            answered.set()
        threading.Thread(target=answer).start()
        return None
    fake_daemon.decide = late
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--job", "again"])
    assert answered.wait(2)
    assert res.exit_code == 3 and res.stderr == CAP


def test_starting_then_running(roots, runner, redis_server, fake_daemon):
    config, _ = roots

    def slow(job, fields):
        def run():
            time.sleep(0.3)
            redis_server.state.hset("TELEGEN_JOB_TABLE|" + job, mapping={"status": "running", "interface": "Ethernet16"})
        threading.Thread(target=run).start()
        return {"status": "starting"}
    fake_daemon.decide = slow
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 0 and re.match(r"^job %s running on Ethernet16\n$" % UUID, res.stdout), res.stdout


def test_stop_cases(roots, runner, redis_server):
    config, _ = roots
    res = runner.invoke(config, ["telegen", "stop", "nope"])
    assert res.exit_code == 1 and res.stderr == "ERROR: job nope not found (HTTP 404)\n"
    redis_server.state.hset("TELEGEN_JOB_TABLE|old", mapping={"status": "done", "created_at": fmt(utcnow())})
    res = runner.invoke(config, ["telegen", "stop", "old"])
    assert res.exit_code == 0 and res.stdout == "job old done\n"
    # A key telegend never answered: removed, reported stopped after the grace.
    redis_server.config.hset("TELEGEN_JOB|orphan", "port", "Ethernet16")
    res = runner.invoke(config, ["telegen", "stop", "orphan"])
    assert res.exit_code == 0 and res.stdout == "job orphan stopped\n"
    assert redis_server.config.exists("TELEGEN_JOB|orphan") == 0
    # A live record but no daemon to end it.
    redis_server.config.hset("TELEGEN_JOB|hung", "port", "Ethernet16")
    redis_server.state.hset("TELEGEN_JOB_TABLE|hung", mapping={"status": "running", "created_at": fmt(utcnow())})
    res = runner.invoke(config, ["telegen", "stop", "hung", "--timeout", "0.3"])
    assert res.exit_code == 4 and "recorded no end of the job" in res.stderr
    res = runner.invoke(config, ["telegen", "stop", "a|b"])
    assert res.exit_code == 2


def test_redis_down(roots, runner, redis_server):
    config, show = roots
    redis_server.stop()
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 4 and res.stderr.startswith("ERROR: redis unavailable"), res.stderr
    res = runner.invoke(show, ["telegen", "jobs"])
    assert res.exit_code == 4 and res.stderr.startswith("ERROR: redis unavailable"), res.stderr


def test_missing_db_config(roots, runner, monkeypatch, tmp_path):
    config, _ = roots
    monkeypatch.setenv("DB_CONFIG_PATH", str(tmp_path / "none.json"))
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 4 and res.stderr.startswith("ERROR: cannot find Redis")
