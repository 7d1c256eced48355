"""
'config telegen' -- start and stop telegen telemetry jobs (sonic-utilities plugin).

Thin, like SONiC's own config commands: it writes (or deletes) CONFIG_DB TELEGEN_JOB|<id>
and prints the verdict telegend records in STATE_DB TELEGEN_JOB_TABLE|<id>. It decides
nothing itself; telegend alone validates and admits. Exit codes match telegen-sonic: 0 ok,
1 other error, 2 invalid input, 3 concurrency cap reached, 4 unavailable.
"""

import re
import sys
import time
import uuid

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

FILTER_KEYS = ("ip_proto", "l4_sport", "l4_dport", "src_cidr", "dst_cidr", "dscp")
FILTER_LISTS = ("ip_proto", "l4_sport", "l4_dport", "dscp")
POLL = 0.25


def parse_filters(values):
    """--filter key=value[,key=value...]; lists take ';'-separated values, repeated flags, or
    items without '=' after a comma. Returns TELEGEN_JOB fields (lists as 'name@')."""
    lists, scalars = {}, {}
    for v in values:
        cur = None
        for item in v.split(","):
            if "=" in item:
                key, val = item.split("=", 1)
                key = key.strip()
                if key not in FILTER_KEYS:
                    raise click.UsageError("--filter: unknown key %r (keys: %s)" % (key, ", ".join(FILTER_KEYS)))
                cur = key
            elif not item.strip():
                continue
            elif cur in FILTER_LISTS:
                val = item
            else:
                raise click.UsageError("--filter: want key=value, not %r" % item)
            val = val.strip()
            if cur in FILTER_LISTS:
                for x in val.split(";"):
                    if not x.strip():
                        raise click.UsageError("--filter %s: empty value" % cur)
                    lists.setdefault(cur, []).append(x.strip())
            else:
                if cur in scalars:
                    raise click.UsageError("--filter %s: given twice; it takes one prefix" % cur)
                if not val:
                    raise click.UsageError("--filter %s: empty value" % cur)
                scalars[cur] = val
    fields = dict(scalars)
    for k, items in lists.items():
        fields[k + "@"] = ",".join(items)
    return fields


OPTIONS = {"port": "--port", "direction": "--dir", "span_method": "--span-method", "vlan": "--vlan",
           "sample_rate": "--sample-rate", "duration_sec": "--duration", "otlp_export": "--otlp-export",
           "result_detail": "--result-detail", "job_id": "--job"}


def option_for(field):
    """The option behind a TELEGEN_JOB field named in a verdict ('dscp@' -> '--filter dscp')."""
    base = field[:-1] if field.endswith("@") else field
    if base in FILTER_KEYS:
        return "--filter " + base
    return OPTIONS.get(base, field)


def feature_enabled(config):
    return config.get("FEATURE", "telegen").get("state") not in ("disabled", "always_disabled")


def max_jobs(config):
    try:
        return int(config.get("TELEGEN", "global").get("max_concurrent_jobs", "2"))
    except ValueError:
        return 2


def verdict(job_id, rec, config):
    """(done, exit_error): done says whether rec answers the write; exit_error is a
    TelegenError for a refusal, None for an admitted job."""
    status, reason = rec.get("status", ""), rec.get("reason", "")
    if status in ("running", "pending", "stopping", "done", "stopped"):
        return True, None
    if status == "rejected":
        if reason == "concurrency_limit":
            return True, TelegenError(
                "At most %d concurrent jobs are allowed. Try again later." % max_jobs(config), 429, EXIT_CAP)
        if reason == "feature_disabled":
            return True, TelegenError("telegen is disabled (FEATURE|telegen)", 503, EXIT_UNAVAILABLE)
        return True, TelegenError("job %s rejected: %s" % (job_id, reason), 502, EXIT_OTHER)
    if status == "failed":
        if reason.startswith("invalid: "):
            field, _, why = reason[len("invalid: "):].partition(": ")
            return True, TelegenError("%s: %s" % (option_for(field), why), 400, EXIT_INVALID)
        return True, TelegenError("job %s failed: %s" % (job_id, reason), 502, EXIT_OTHER)
    return False, None


@click.group(name="telegen")
def telegen():
    """Telegen on-demand data-plane telemetry jobs"""


@telegen.command("start")
@click.option("--port", "-p", required=True, help="SONiC port to watch, e.g. Ethernet16")
@click.option("--job", "job_id", help="job id (default: a new UUID)")
@click.option("--dir", "direction", type=click.Choice(["ingress", "egress", "both"]), help="direction (default ingress)")
@click.option("--span-method", type=click.Choice(["span", "erspan", "direct"]), help="how copies reach the CPU (default span)")
@click.option("--vlan", help="only this VLAN (1-4094)")
@click.option("--sample-rate", help="sample 1 in N packets for per-flow work")
@click.option("--duration", help="seconds the job runs (default: TELEGEN|global default_duration_sec)")
@click.option("--filter", "filters", multiple=True,
              help="key=value[,key=value...]; keys ip_proto, l4_sport, l4_dport, src_cidr, dst_cidr, dscp; "
                   "list values separated by ';' (dscp=10;46) or by repeating --filter")
@click.option("--otlp-export/--no-otlp-export", default=None, help="export OpenTelemetry metrics (default on)")
@click.option("--result-detail", type=click.Choice(["summary", "flows", "pcaplike"]), help="what the result keeps")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="seconds to wait for telegend's verdict")
def start(port, job_id, direction, span_method, vlan, sample_rate, duration, filters, otlp_export, result_detail, timeout):
    """Write TELEGEN_JOB|<id> and wait for telegend's verdict."""
    try:
        fields = {"port": port}
        for name, value in (("direction", direction), ("span_method", span_method), ("vlan", vlan),
                            ("sample_rate", sample_rate), ("duration_sec", duration), ("result_detail", result_detail)):
            if value is not None:
                fields[name] = str(value)
        if otlp_export is not None:
            fields["otlp_export"] = "true" if otlp_export else "false"
        fields.update(parse_filters(filters))
        if job_id is not None and not JOB_ID_RE.match(job_id):
            raise TelegenError("--job: must be 1-64 characters of letters, digits, '_', '.', '-', starting with a "
                               "letter or digit, not %r" % job_id, 400, EXIT_INVALID)
        job_id = job_id or str(uuid.uuid4())
        config, state = connect("CONFIG_DB"), connect("STATE_DB")
        if not feature_enabled(config):
            raise TelegenError("telegen is disabled (FEATURE|telegen); enable it with: config feature state telegen enabled",
                               503, EXIT_UNAVAILABLE)
        if config.exists("TELEGEN_JOB", job_id):
            raise TelegenError("job %s exists already; stop it first" % job_id, 400, EXIT_INVALID)
        job = run_start(config, state, job_id, fields, timeout)
    except TelegenError as e:
        fail(e)
    click.echo("job %s %s on %s" % (job_id, job.get("status"), job.get("interface") or port))


def run_start(config, state, job_id, fields, timeout):
    watch = state.watch("TELEGEN_JOB_TABLE", job_id)
    try:
        written = now_ms()
        config.set("TELEGEN_JOB", job_id, fields)
        deadline = time.monotonic() + timeout
        starting = None
        while True:
            rec = state.get("TELEGEN_JOB_TABLE", job_id)
            created = parse_time(rec.get("created_at"))
            if rec and created is not None and created >= written:
                done, err = verdict(job_id, rec, config)
                if err is not None:
                    raise err
                if done:
                    return rec
                starting = rec
            left = deadline - time.monotonic()
            if left <= 0:
                break
            watch.wait(min(left, POLL))
    finally:
        watch.close()
    if starting is not None:
        return starting
    config.delete("TELEGEN_JOB", job_id)
    raise TelegenError("telegend recorded no verdict for job %s within %gs (is it running?); TELEGEN_JOB|%s was "
                       "removed again" % (job_id, timeout, job_id), 503, EXIT_UNAVAILABLE)


@telegen.command("stop")
@click.argument("job_id", metavar="JOB")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="seconds to wait for telegend")
def stop(job_id, timeout):
    """Delete TELEGEN_JOB|JOB and wait until telegend has stopped it."""
    try:
        if not JOB_ID_RE.match(job_id):
            raise TelegenError("job id %r is not valid" % job_id, 400, EXIT_INVALID)
        config, state = connect("CONFIG_DB"), connect("STATE_DB")
        status = run_stop(config, state, job_id, timeout)
    except TelegenError as e:
        fail(e)
    click.echo("job %s %s" % (job_id, status))


def run_stop(config, state, job_id, timeout, grace=1.0):
    rec0 = state.get("TELEGEN_JOB_TABLE", job_id)
    key = config.exists("TELEGEN_JOB", job_id)
    live0 = bool(rec0) and rec0.get("status") not in TERMINAL
    if not key and not rec0:
        raise TelegenError("job %s not found" % job_id, 404, EXIT_OTHER)
    if not key and not live0:
        return rec0.get("status")
    watch = state.watch("TELEGEN_JOB_TABLE", job_id)
    try:
        mark = now_ms()
        if key:
            config.delete("TELEGEN_JOB", job_id)
        start = time.monotonic()
        seen_live = live0
        while True:
            rec = state.get("TELEGEN_JOB_TABLE", job_id)
            if rec:
                same_run = live0 and rec.get("created_at") == rec0.get("created_at")
                finished = parse_time(rec.get("finished_at"))
                if rec.get("status") in TERMINAL and (same_run or (finished is not None and finished >= mark)):
                    return rec.get("status")
                if rec.get("status") not in TERMINAL:
                    seen_live = True
            elapsed = time.monotonic() - start
            if not seen_live and elapsed >= grace:
                return "stopped"  # never admitted: nothing ran
            if elapsed >= timeout:
                raise TelegenError("TELEGEN_JOB|%s was deleted, but telegend recorded no end of the job within %gs "
                                   "(is it running?)" % (job_id, timeout), 503, EXIT_UNAVAILABLE)
            watch.wait(min(timeout - elapsed, POLL))
    finally:
        watch.close()


def register(cli):
    cli.add_command(telegen)
