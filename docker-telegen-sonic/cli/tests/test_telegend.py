"""The plugins against the real telegend on a virtual switch. pkg/e2e (TestFrontendPlugins)
starts redis-server, the switch ports and telegend, then runs this suite with
TELEGEN_E2E_DB_CONFIG and TELEGEN_E2E_PORTS set; without them these tests skip."""

import json
import os
import re

import pytest

DB_CONFIG = os.environ.get("TELEGEN_E2E_DB_CONFIG")
PORTS = [p for p in os.environ.get("TELEGEN_E2E_PORTS", "").split(",") if p]
CAP = "ERROR: At most 2 concurrent jobs are allowed. Try again later. (HTTP 429)\n"

pytestmark = pytest.mark.skipif(not DB_CONFIG or len(PORTS) < 2,
                                reason="needs TELEGEN_E2E_DB_CONFIG and two TELEGEN_E2E_PORTS (run by pkg/e2e)")


@pytest.fixture
def live(monkeypatch):
    monkeypatch.setenv("DB_CONFIG_PATH", DB_CONFIG)


def start(runner, config, port, *extra):
    return runner.invoke(config, ["telegen", "start", "--port", port, "--span-method", "direct", "--duration", "30"]
                         + list(extra))


def test_telegend_lifecycle(roots, runner, live):
    config, show = roots
    jobs = []
    for port in PORTS[:2]:
        res = start(runner, config, port)
        assert res.exit_code == 0, res.stderr
        m = re.match(r"^job (\S+) running on %s\n$" % port, res.stdout)
        assert m, res.stdout
        jobs.append(m.group(1))
    try:
        res = start(runner, config, PORTS[0])
        assert res.exit_code == 3, res.stdout + res.stderr
        assert res.stderr == CAP

        res = runner.invoke(show, ["telegen", "job", jobs[0], "--json"])
        assert res.exit_code == 0, res.stderr
        doc = json.loads(res.stdout)
        assert doc["status"] == "running" and doc["interface"] == PORTS[0] and doc["port"] == PORTS[0]
        assert doc["started_at"] and doc["expires_at"] > doc["started_at"]

        res = runner.invoke(show, ["telegen", "jobs"])
        assert res.exit_code == 0
        statuses = [ln.split()[1] for ln in res.stdout.splitlines()[2:]]
        assert sorted(statuses) == ["rejected", "running", "running"], res.stdout
    finally:
        for job in jobs:
            res = runner.invoke(config, ["telegen", "stop", job])
            assert res.exit_code == 0 and res.stdout == "job %s stopped\n" % job, res.stderr

    res = runner.invoke(show, ["telegen", "results", jobs[0], "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "stopped" and doc["port"] == PORTS[0]
    assert isinstance(doc["packets_total"], int) and isinstance(doc["totals_exact"], bool)
    assert isinstance(doc["window_sec"], float) and doc["window_sec"] > 0


def test_telegend_invalid(roots, runner, live):
    config, _ = roots
    res = start(runner, config, "Ethernet999")
    assert res.exit_code == 2
    assert res.stderr == 'ERROR: --port: "Ethernet999" is not a port of CONFIG_DB PORT (HTTP 400)\n'
    res = start(runner, config, PORTS[0], "--filter", "dscp=64")
    assert res.exit_code == 2
    assert res.stderr == 'ERROR: --filter dscp: item "64": must be an integer 0-63 (HTTP 400)\n'
