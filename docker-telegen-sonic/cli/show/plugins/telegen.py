"""
'show telegen' -- telegen telemetry jobs as STATE_DB records them (sonic-utilities plugin).

'show telegen jobs' lists TELEGEN_JOB_TABLE, 'show telegen job JOB' shows one record and
'show telegen results JOB' the result document of an ended job (TELEGEN_RESULT_TABLE).
Exit codes match telegen-sonic: 0 ok, 1 other error (e.g. not found), 4 unavailable.
"""

import re
import sys
import time

import click

# --- telegen shared: begin ---
# Kept identical in config/plugins/telegen.py and show/plugins/telegen.py (a test checks):
# sonic-package-manager installs each plugin file alone, so neither can import the other.
import datetime
import json
import os

DEFAULT_DB_CONFIG = "/var/run/redis/sonic-db/database_config.json"
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TERMINAL = ("done", "stopped", "failed", "rejected")
LIVE = ("pending", "starting", "running", "stopping")

EXIT_OTHER, EXIT_INVALID, EXIT_CAP, EXIT_UNAVAILABLE = 1, 2, 3, 4


class TelegenError(Exception):
    """An outcome to print as 'ERROR: <message> (HTTP <status>)' and exit with."""

    def __init__(self, message, status, code):
        Exception.__init__(self, message)
        self.message, self.status, self.code = message, status, code


def fail(err):
    """Print a TelegenError the way telegen-sonic does and exit with its code."""
    click.echo("ERROR: %s (HTTP %d)" % (err.message, err.status), err=True)
    sys.exit(err.code)


def db_config_path():
    return os.environ.get("DB_CONFIG_PATH") or DEFAULT_DB_CONFIG


def parse_time(s):
    """An RFC 3339 time from STATE_DB as an aware datetime, or None."""
    if not s:
        return None
    try:
        if s.endswith("Z"):
            s = s[:-1] + "+00:00"
        return datetime.datetime.fromisoformat(s)
    except ValueError:
        return None


def now_ms():
    """Now in UTC, truncated to milliseconds like the times telegend writes."""
    n = datetime.datetime.now(datetime.timezone.utc)
    return n.replace(microsecond=n.microsecond // 1000 * 1000)


class _RedisDb(object):
    """One SONiC database reached with python3-redis through database_config.json."""

    def __init__(self, name, path):
        import redis
        try:
            with open(path) as f:
                cfg = json.load(f)
            db = cfg["DATABASES"][name]
            inst = cfg["INSTANCES"][db["instance"]]
        except (OSError, ValueError, KeyError) as e:
            raise TelegenError("cannot find Redis: %s: %s" % (path, e), 503, EXIT_UNAVAILABLE)
        self.id, self.sep = int(db["id"]), db["separator"]
        password = None
        if inst.get("password_path"):
            p = inst["password_path"]
            if not os.path.isabs(p):
                p = os.path.join(os.path.dirname(path), p)
            with open(p) as f:
                password = f.read().strip()
        sock = inst.get("unix_socket_path")
        has_tcp = inst.get("hostname") and inst.get("port")
        common = dict(db=self.id, password=password, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
        if sock and (not has_tcp or os.path.exists(sock)):
            self.r = redis.Redis(unix_socket_path=sock, **common)
        else:
            self.r = redis.Redis(host=inst["hostname"], port=int(inst["port"]), **common)
        self.errors = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

    def key(self, table, key):
        return table.upper() + self.sep + key

    def get(self, table, key):
        return self._call(lambda: _drop_null(self.r.hgetall(self.key(table, key))))

    def set(self, table, key, fields):
        self._call(lambda: self.r.hset(self.key(table, key), mapping=fields))

    def delete(self, table, key):
        self._call(lambda: self.r.delete(self.key(table, key)))

    def exists(self, table, key):
        return self._call(lambda: self.r.exists(self.key(table, key)) == 1)

    def table(self, table):
        def read():
            prefix = self.key(table, "")
            out = {}
            for k in self.r.scan_iter(match=_escape_glob(prefix) + "*", count=1000):
                v = _drop_null(self.r.hgetall(k))
                if v:
                    out[k[len(prefix):]] = v
            return out
        return self._call(read)

    def watch(self, table, key):
        """A subscription to the entry's keyspace channel, confirmed before it returns."""
        channel = "__keyspace@%d__:%s" % (self.id, self.key(table, key))

        def sub():
            ps = self.r.pubsub()
            ps.subscribe(channel)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                m = ps.get_message(timeout=0.2)
                if m and m["type"] == "subscribe":
                    return _Watch(ps)
            ps.close()
            raise TelegenError("redis unavailable: no confirmation of SUBSCRIBE " + channel, 503, EXIT_UNAVAILABLE)
        return self._call(sub)

    def _call(self, fn):
        try:
            return fn()
        except self.errors as e:
            raise TelegenError("redis unavailable: %s" % e, 503, EXIT_UNAVAILABLE)


class _Watch(object):
    def __init__(self, ps):
        self.ps = ps

    def wait(self, seconds):
        """Return after an event on the channel or after seconds."""
        try:
            self.ps.get_message(timeout=max(seconds, 0.001))
        except Exception:  # a broken subscription: keep polling
            time.sleep(seconds)

    def close(self):
        self.ps.close()


class _SwssDb(object):
    """The same surface over swsscommon's SonicV2Connector, for hosts without python3-redis.
    It has no keyspace subscription, so waits poll."""

    def __init__(self, name, path):
        from swsscommon.swsscommon import SonicV2Connector
        self.name = name
        self.c = SonicV2Connector(use_unix_socket_path=True)
        self.c.connect(name)
        self.sep = self.c.get_db_separator(name)

    def key(self, table, key):
        return table.upper() + self.sep + key

    def get(self, table, key):
        return _drop_null(dict(self.c.get_all(self.name, self.key(table, key)) or {}))

    def set(self, table, key, fields):
        k = self.key(table, key)
        for f, v in fields.items():
            self.c.set(self.name, k, f, v)

    def delete(self, table, key):
        self.c.delete(self.name, self.key(table, key))

    def exists(self, table, key):
        return bool(self.c.exists(self.name, self.key(table, key)))

    def table(self, table):
        prefix = self.key(table, "")
        out = {}
        for k in self.c.keys(self.name, _escape_glob(prefix) + "*") or []:
            v = _drop_null(dict(self.c.get_all(self.name, k) or {}))
            if v:
                out[k[len(prefix):]] = v
        return out

    def watch(self, table, key):
        return _Poll()


class _Poll(object):
    def wait(self, seconds):
        time.sleep(seconds)

    def close(self):
        pass


def _drop_null(fields):
    fields.pop("NULL", None)
    return fields


def _escape_glob(s):
    return re.sub(r"([*?\[\]\\])", r"\\\1", s)


def connect(name):
    """CONFIG_DB or STATE_DB: python3-redis through database_config.json, else swsscommon."""
    try:
        import redis  # noqa: F401
    except ImportError:
        try:
            from swsscommon.swsscommon import ConfigDBConnector  # noqa: F401
        except ImportError:
            raise TelegenError("needs python3-redis (or swsscommon) to reach Redis", 503, EXIT_UNAVAILABLE)
        return _SwssDb(name, db_config_path())
    return _RedisDb(name, db_config_path())


def typed(name, value):
    """A STATE_DB string as the JSON value it stands for (as telegen-rest types results)."""
    if name in ("status", "reason", "port", "interface", "direction", "span_method", "mirror_session",
                "result_detail", "job_id") or name.endswith("_at"):
        return value
    v = value.strip()
    if name in ("errors", "top_flows", "latency_histogram_ns", "otel_export") or v[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    if value in ("true", "false"):
        return value == "true"
    if re.match(r"^-?(0|[1-9][0-9]*)$", value):
        return int(value)
    if re.match(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$", value):
        return float(value)
    return value
# --- telegen shared: end ---

RESULT_ORDER = ("job_id", "status", "reason", "port", "direction", "span_method", "started_at", "finished_at",
                "window_sec", "packets_total", "bytes_total", "ingress_packets", "ingress_bytes", "egress_packets",
                "egress_bytes", "sample_rate", "totals_exact")


def table(headers, rows):
    """Plain columns, as SONiC's show commands print them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(str(c))) for w, c in zip(widths, row)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def job_doc(job_id, rec):
    doc = {"job_id": job_id}
    for k, v in rec.items():
        doc[k] = typed(k, v)
    return doc


def check_id(job_id):
    if not JOB_ID_RE.match(job_id):
        raise TelegenError("job id %r is not valid" % job_id, 400, EXIT_INVALID)


def port_of(config, state, job_id, rec):
    return (config.get("TELEGEN_JOB", job_id).get("port") or state.get("TELEGEN_RESULT_TABLE", job_id).get("port")
            or rec.get("interface") or "-")


@click.group(name="telegen")
def telegen():
    """Telegen on-demand data-plane telemetry jobs"""


@telegen.command("jobs")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def jobs(as_json):
    """List the jobs STATE_DB has records of."""
    try:
        config, state = connect("CONFIG_DB"), connect("STATE_DB")
        records = state.table("TELEGEN_JOB_TABLE")
        keys = config.table("TELEGEN_JOB")
        order = sorted(records, key=lambda i: (records[i].get("created_at", ""), i))
        if as_json:
            docs = []
            for i in order:
                d = job_doc(i, records[i])
                d["port"] = keys.get(i, {}).get("port") or port_of(config, state, i, records[i])
                docs.append(d)
            click.echo(json.dumps({"jobs": docs}, indent=2))
            return
        rows = []
        for i in order:
            r = records[i]
            port = keys.get(i, {}).get("port") or port_of(config, state, i, r)
            ends = r.get("finished_at") or r.get("expires_at") or "-"
            rows.append((i, r.get("status", "-"), port, r.get("started_at") or "-", ends, r.get("packets_total", "0"),
                         r.get("bytes_total", "0"), r.get("reason") or "-"))
        click.echo(table(("Job", "Status", "Port", "Started", "Ends", "Packets", "Bytes", "Reason"), rows))
    except TelegenError as e:
        fail(e)


@telegen.command("job")
@click.argument("job_id", metavar="JOB")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def job(job_id, as_json):
    """Show one job's STATE_DB record."""
    try:
        check_id(job_id)
        config, state = connect("CONFIG_DB"), connect("STATE_DB")
        rec = state.get("TELEGEN_JOB_TABLE", job_id)
        if not rec:
            if config.exists("TELEGEN_JOB", job_id):
                raise TelegenError("job %s has no verdict yet: TELEGEN_JOB|%s exists, but telegend has not recorded it "
                                   "(is it running?)" % (job_id, job_id), 404, EXIT_OTHER)
            raise TelegenError("job %s not found" % job_id, 404, EXIT_OTHER)
        doc = job_doc(job_id, rec)
        doc["port"] = port_of(config, state, job_id, rec)
        if as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        order = ("job_id", "status", "reason", "port", "interface", "slot", "mirror_session", "created_at",
                 "started_at", "expires_at", "finished_at", "packets_total", "bytes_total", "updated_at")
        rows = [(k, rec.get(k, doc.get(k))) for k in order if rec.get(k, doc.get(k)) not in (None, "")]
        click.echo(table(("Field", "Value"), rows))
    except TelegenError as e:
        fail(e)


@telegen.command("results")
@click.argument("job_id", metavar="JOB")
@click.option("--json", "as_json", is_flag=True, help="print the result document as JSON")
def results(job_id, as_json):
    """Show the result document of an ended job."""
    try:
        check_id(job_id)
        state = connect("STATE_DB")
        res = state.get("TELEGEN_RESULT_TABLE", job_id)
        if not res:
            rec = state.get("TELEGEN_JOB_TABLE", job_id)
            if not rec:
                raise TelegenError("job %s not found" % job_id, 404, EXIT_OTHER)
            if rec.get("status") not in TERMINAL:
                raise TelegenError("job %s is %s; its result is written when it ends" % (job_id, rec.get("status")),
                                   409, EXIT_OTHER)
            raise TelegenError("job %s ended %s without a result" % (job_id, rec.get("status")), 404, EXIT_OTHER)
        doc = job_doc(job_id, res)
        if as_json:
            click.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        keys = sorted(doc, key=lambda k: (RESULT_ORDER.index(k) if k in RESULT_ORDER else len(RESULT_ORDER), k))
        rows = []
        for k in keys:
            v = doc[k]
            if k == "top_flows":
                continue
            if isinstance(v, dict):
                rows.extend(("%s.%s" % (k, s), json.dumps(v[s]) if not isinstance(v[s], str) else v[s]) for s in sorted(v))
            elif isinstance(v, bool):
                rows.append((k, "true" if v else "false"))
            else:
                rows.append((k, v if v != "" else "-"))
        click.echo(table(("Field", "Value"), rows))
        flows = doc.get("top_flows")
        if isinstance(flows, list) and flows:
            click.echo("")
            click.echo(table(("Flow", "Packets", "Bytes"),
                             [(f.get("5tuple", "?"), f.get("pkts", 0), f.get("bytes", 0)) for f in flows]))
    except TelegenError as e:
        fail(e)


def register(cli):
    cli.add_command(telegen)
