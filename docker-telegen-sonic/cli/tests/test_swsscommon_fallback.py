"""Without python3-redis the plugins fall back to swsscommon's SonicV2Connector (polling, no
keyspace subscription). swsscommon is not installable off a SONiC image, so a stand-in module
with SonicV2Connector's method names, backed by the test's redis-server, plays its part."""

import json
import re
import sys
import types

import pytest
import redis as real_redis


class FakeSonicV2Connector(object):
    def __init__(self, use_unix_socket_path=False):
        import os
        with open(os.environ["DB_CONFIG_PATH"]) as f:
            self.cfg = json.load(f)
        self.clients = {}

    def connect(self, name):
        db = self.cfg["DATABASES"][name]
        sock = self.cfg["INSTANCES"][db["instance"]]["unix_socket_path"]
        self.clients[name] = real_redis.Redis(unix_socket_path=sock, db=db["id"], decode_responses=True)

    def get_db_separator(self, name):
        return self.cfg["DATABASES"][name]["separator"]

    def get_all(self, name, key):
        return self.clients[name].hgetall(key)

    def set(self, name, key, field, value):
        return self.clients[name].hset(key, field, value)

    def delete(self, name, key):
        return self.clients[name].delete(key)

    def exists(self, name, key):
        return self.clients[name].exists(key)

    def keys(self, name, pattern):
        return self.clients[name].keys(pattern)


@pytest.fixture
def no_redis_py(monkeypatch):
    sw = types.ModuleType("swsscommon.swsscommon")
    sw.SonicV2Connector = FakeSonicV2Connector
    sw.ConfigDBConnector = object
    pkg = types.ModuleType("swsscommon")
    pkg.swsscommon = sw
    monkeypatch.setitem(sys.modules, "swsscommon", pkg)
    monkeypatch.setitem(sys.modules, "swsscommon.swsscommon", sw)
    monkeypatch.setitem(sys.modules, "redis", None)  # "import redis" now raises ImportError


def test_fallback_start_show_stop(roots, runner, redis_server, fake_daemon, no_redis_py):
    config, show = roots
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16", "--filter", "dscp=46"])
    assert res.exit_code == 0, res.stderr
    job = re.match(r"^job (\S+) running on Ethernet16\n$", res.stdout).group(1)
    res = runner.invoke(show, ["telegen", "jobs", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["jobs"][0]["job_id"] == job
    res = runner.invoke(config, ["telegen", "stop", job])
    assert res.exit_code == 0 and res.stdout == "job %s stopped\n" % job


def test_neither_backend(roots, runner, redis_server, monkeypatch):
    config, _ = roots
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "swsscommon", None)
    res = runner.invoke(config, ["telegen", "start", "--port", "Ethernet16"])
    assert res.exit_code == 4 and "needs python3-redis" in res.stderr
