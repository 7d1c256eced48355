"""Fixtures for the telegen CLI plugin tests: a private redis-server with SONiC's DB layout,
the plugins loaded into click roots as sonic-utilities would, and a stand-in telegend for the
verdict logic (the real one is exercised by test_telegend.py, run from pkg/e2e)."""

import datetime
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import click
import pytest
import redis
from click.testing import CliRunner

HERE = os.path.dirname(os.path.abspath(__file__))
CLI_DIR = os.path.dirname(HERE)
CONFIG_DB, STATE_DB = 4, 6


def load_plugin(kind):
    """Import <kind>/plugins/telegen.py by path, as sonic-utilities' plugin loader would."""
    path = os.path.join(CLI_DIR, kind, "plugins", "telegen.py")
    spec = importlib.util.spec_from_file_location("telegen_%s_plugin" % kind, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def plugins():
    return load_plugin("config"), load_plugin("show")


@pytest.fixture
def roots(plugins):
    """The 'config' and 'show' click roots with the plugins registered through register()."""
    @click.group()
    def config():
        pass

    @click.group()
    def show():
        pass

    plugins[0].register(config)
    plugins[1].register(show)
    return config, show


class Redis(object):
    def __init__(self, path):
        self.dir = path
        self.socket = os.path.join(path, "redis.sock")
        self.config_path = os.path.join(path, "database_config.json")
        conf = os.path.join(path, "redis.conf")
        with open(conf, "w") as f:
            f.write("port 0\nunixsocket %s\nunixsocketperm 700\nnotify-keyspace-events AKE\ndatabases 16\n"
                    "save \"\"\nappendonly no\ndir %s\n" % (self.socket, path))
        dbs = {"APPL_DB": (0, ":"), "CONFIG_DB": (CONFIG_DB, "|"), "STATE_DB": (STATE_DB, "|")}
        with open(self.config_path, "w") as f:
            json.dump({"INSTANCES": {"redis": {"hostname": "127.0.0.1", "port": 0, "unix_socket_path": self.socket}},
                       "DATABASES": {n: {"id": i, "separator": s, "instance": "redis"} for n, (i, s) in dbs.items()},
                       "VERSION": "1.0"}, f)
        self.proc = subprocess.Popen(["redis-server", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while True:
            try:
                redis.Redis(unix_socket_path=self.socket).ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.02)
        self.config = redis.Redis(unix_socket_path=self.socket, db=CONFIG_DB, decode_responses=True)
        self.state = redis.Redis(unix_socket_path=self.socket, db=STATE_DB, decode_responses=True)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def redis_server(monkeypatch):
    if shutil.which("redis-server") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: redis-server is required")
        pytest.skip("needs redis-server")
    path = tempfile.mkdtemp(prefix="tgpy", dir="/tmp")
    r = Redis(path)
    monkeypatch.setenv("DB_CONFIG_PATH", r.config_path)
    yield r
    r.stop()
    shutil.rmtree(path, ignore_errors=True)


def fmt(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class FakeDaemon(object):
    """Answers TELEGEN_JOB writes like telegend's admission (two slots), or as decide() says."""

    def __init__(self, r, slots=2):
        self.r, self.slots, self.live, self.decide = r, slots, set(), None
        self.ps = r.config.pubsub()
        self.ps.psubscribe("__keyspace@%d__:TELEGEN_JOB|*" % CONFIG_DB)
        while True:
            m = self.ps.get_message(timeout=1)
            if m and m["type"] == "psubscribe":
                break
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            m = self.ps.get_message(timeout=0.1)
            if not m or m["type"] != "pmessage":
                continue
            job = m["channel"].split("TELEGEN_JOB|", 1)[1]
            self.handle(job, m["data"])

    def handle(self, job, event):
        now = fmt(utcnow())
        if event == "hset" and job not in self.live:
            fields = self.r.config.hgetall("TELEGEN_JOB|" + job)
            if not fields:
                return
            if self.decide is not None:
                rec = self.decide(job, fields)
                if rec is None:
                    return
            elif len(self.live) < self.slots:
                rec = {"status": "running", "interface": fields["port"], "slot": str(len(self.live)),
                       "started_at": now, "expires_at": fmt(utcnow() + datetime.timedelta(seconds=60))}
            else:
                rec = {"status": "rejected", "reason": "concurrency_limit", "finished_at": now}
            rec.setdefault("created_at", now)
            rec.setdefault("packets_total", "0")
            rec.setdefault("bytes_total", "0")
            p = self.r.state.pipeline()
            p.delete("TELEGEN_JOB_TABLE|" + job, "TELEGEN_RESULT_TABLE|" + job)
            p.hset("TELEGEN_JOB_TABLE|" + job, mapping=rec)
            p.execute()
            if rec["status"] in ("done", "stopped", "failed", "rejected"):
                self.r.config.delete("TELEGEN_JOB|" + job)
            else:
                self.live.add(job)
        elif event == "del" and job in self.live:
            self.live.discard(job)
            self.r.state.hset("TELEGEN_RESULT_TABLE|" + job, mapping={"status": "stopped", "window_sec": "1.000",
                                                                      "packets_total": "0", "bytes_total": "0"})
            self.r.state.hset("TELEGEN_JOB_TABLE|" + job, mapping={"status": "stopped", "finished_at": now, "slot": ""})

    def close(self):
        self.stopping = True
        self.thread.join()
        self.ps.close()


@pytest.fixture
def fake_daemon(redis_server):
    d = FakeDaemon(redis_server)
    yield d
    d.close()


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always keeps stderr apart
        return CliRunner()
