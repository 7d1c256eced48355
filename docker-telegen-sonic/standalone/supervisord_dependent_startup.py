#!/usr/bin/env python3
"""Small stand-in for the supervisord-dependent-startup event listener of SONiC's base images.

The telegen image built outside sonic-buildimage (../Dockerfile) has Debian's supervisor but not
this PyPI plugin, so it installs this module under the same name; the supervisord test runs it
too. It honours the options the container's supervisord.conf uses:

    dependent_startup=true                     start this program from here (autostart=false)
    dependent_startup_wait_for=a:running b:exited
                                               ...once every listed program is in that state
                                               (several states may be given as a:running|exited)

Programs become eligible in priority order. Like the plugin, the configuration is found with
-c PATH, else where supervisord looks by default, [include] sections followed.
"""

import argparse
import configparser
import glob
import os
import sys
import xmlrpc.client

from supervisor import childutils

DEFAULT_CONFIGS = (
    "../etc/supervisord.conf",
    "../supervisord.conf",
    "supervisord.conf",
    "etc/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor/supervisord.conf",
)
TRUE = ("true", "yes", "on", "1")


def log(msg):
    print("dependent-startup: " + msg, file=sys.stderr, flush=True)


def read_config(path):
    parser = configparser.RawConfigParser(strict=False, inline_comment_prefixes=(";",))
    parser.read(path)
    if parser.has_section("include"):
        here = os.path.dirname(os.path.abspath(path))
        for pattern in parser.get("include", "files").split():
            for name in sorted(glob.glob(os.path.join(here, pattern))):
                parser.read(name)
    return parser


def dependent_programs(parser):
    """{name: (priority, [(program, {STATE, ...}), ...])} of the dependent_startup programs."""
    out = {}
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        opts = parser[section]
        if opts.get("dependent_startup", "false").strip().lower() not in TRUE:
            continue
        deps = []
        for item in opts.get("dependent_startup_wait_for", "").split():
            prog, _, states = item.partition(":")
            deps.append((prog, {s.upper() for s in (states or "running").split("|")}))
        out[section.split(":", 1)[1]] = (int(opts.get("priority", "999")), deps)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", "--configuration")
    args = ap.parse_args()
    path = args.configuration or next((p for p in DEFAULT_CONFIGS if os.path.exists(p)), None)
    if path is None:
        log("no supervisord configuration found")
        return 3
    programs = dependent_programs(read_config(path))
    log("programs: " + ", ".join(f"{n} after {d or 'nothing'}" for n, (_, d) in sorted(programs.items())))
    rpc = childutils.getRPCInterface(os.environ)
    states = {}
    started = set()

    def start_ready():
        for name, (_, deps) in sorted(programs.items(), key=lambda kv: (kv[1][0], kv[0])):
            if name in started or not all(states.get(p) in want for p, want in deps):
                continue
            started.add(name)
            log(f"starting {name}")
            try:
                rpc.supervisor.startProcess(name, False)
            except xmlrpc.client.Fault as err:
                log(f"starting {name}: {err.faultString}")

    first = True
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        if first:
            for info in rpc.supervisor.getAllProcessInfo():
                states[info["name"]] = info["statename"]
            first = False
        event = headers["eventname"]
        if event.startswith("PROCESS_STATE_"):
            pheaders, _ = childutils.eventdata(payload + "\n")
            states[pheaders["processname"]] = event[len("PROCESS_STATE_"):]
        start_ready()
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
