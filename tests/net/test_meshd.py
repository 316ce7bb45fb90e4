#!/usr/bin/env python3
"""meshd as a daemon (docs/meshd.md): the ZPL configuration file and the flags
that override it, --print-config, config errors (exit 2 with FILE:LINE),
the task service's settings (data dir, journal sync, rate limits, quorum
memory, startup grace) and its data dir at start, the built-in agent (/sys/ping, /sys/info, /sys/stats) called with meshctl,
SIGTERM draining a slow request in flight (it completes; past --grace it
fails), SIGHUP reloading the agents (a bad file leaves the running ones),
and the exit codes. Loopback only, random ports; exec agents are small shell
scripts written by the test."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import meshtest as mt


def work_dir():
    """Scratch space inside the log directory (kept when the test fails)."""
    d = os.path.abspath(os.path.join(mt.logdir(), "work"))
    os.makedirs(d, exist_ok=True)
    return d


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)
    return path


def run_meshd(*args, timeout=15):
    argv = [mt.meshd_bin()] + [str(a) for a in args]
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        mt.fail("meshd %s did not exit within %d s" % (" ".join(argv[1:]), timeout))
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def expect_config_error(cfg_path, line, words, *flags, what):
    """meshd --config FILE exits 2 at once, naming FILE:LINE and the words."""
    rc, out, err = run_meshd("--config", cfg_path, *flags)
    where = "%s:%d:" % (cfg_path, line) if line else cfg_path
    mt.expect(rc == 2, "%s: exit %d, expected 2\nstdout: %s\nstderr: %s" % (what, rc, out, err))
    mt.expect(where in err, "%s: stderr does not name %s:\n%s" % (what, where, err))
    for w in words:
        mt.expect(w in err, "%s: stderr does not say %r:\n%s" % (what, w, err))
    mt.expect(len(err.strip().splitlines()) == 1, "%s: more than one line:\n%s" % (what, err))
    mt.expect(not out.strip(), "%s: something on stdout (nothing may start): %s" % (what, out))
    mt.ok("%s -> 2: %s" % (what, err.strip()))


def exec_agent(d, methods):
    """A directory of executables (an exec agent): {name: shell body}."""
    os.makedirs(d, exist_ok=True)
    for name, body in methods.items():
        write(os.path.join(d, name), "#!/bin/sh\n" + body, 0o755)
    return d


def parse_zpl(text):
    """{path: [values]} of a ZPL text (enough for the checks here)."""
    out, stack = {}, []
    for raw in text.splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        depth = (len(raw) - len(raw.lstrip(" "))) // 4
        name, _, value = raw.strip().partition("=")
        name, value = name.strip(), value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        del stack[depth:]
        stack.append(name)
        out.setdefault("/".join(stack), []).append(value)
    return out


def call(port, path, payload=None, *extra, timeout=30):
    args = ["call", path] + ([payload] if payload is not None else []) + \
        ["--beacon-port", port] + list(extra)
    return mt.meshctl(*args, timeout=timeout)


def call_json(port, path, payload=None, *extra):
    r = call(port, path, payload, *extra)
    mt.expect(r.returncode == 0, "meshctl call %s: exit %d\nstdout: %s\nstderr: %s" % (
        path, r.returncode, r.stdout, r.stderr))
    try:
        return json.loads(r.stdout)
    except ValueError:
        mt.fail("meshctl call %s: not JSON: %r" % (path, r.stdout))


def spawn(name, *args):
    """meshd with --events --stdin (the harness's usual shape)."""
    return mt.spawn_meshd(name, *args)


class Background:
    """A meshctl call in a thread: .result once done."""

    def __init__(self, port, path, payload, *extra):
        self.result = None
        self.done_at = None
        self._t = threading.Thread(target=self._run, args=(port, path, payload) + extra,
                                   daemon=True)
        self._t.start()

    def _run(self, port, path, payload, *extra):
        self.result = call(port, path, payload, *extra)
        self.done_at = time.monotonic()

    def join(self, timeout):
        self._t.join(timeout)
        mt.expect(not self._t.is_alive(), "the background call did not finish in %d s" % timeout)
        return self.result


def wait_file(path, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.path.exists(path):
            return
        time.sleep(0.02)
    mt.fail("%s: %s did not appear within %.1f s" % (what, path, timeout))


# ----------------------------------------------------------------------------------------------


def check_config_errors(w):
    mt.check("config errors: one line naming FILE:LINE and what is wrong; exit 2, nothing starts")
    cases = [
        ("indent.cfg", "peer\n    name = a\n  realm = r\n", 3, ["indent"], "a 2-space indent"),
        ("tab.cfg", "peer\n\tname = a\n", 2, ["tab"], "a tab indent"),
        ("deep.cfg", "peer\n        name = a\n", 2, ["deeper"], "two levels at once"),
        ("unknown.cfg", "# ok\npeer\n    name = a\n    nmae = b\n", 4,
         ["peer/nmae", "unknown key"], "an unknown key"),
        ("section.cfg", "peer\n    name = a\nmisc\n    x = 1\n", 3, ["unknown section", "misc"],
         "an unknown section"),
        ("value.cfg", "peer\n    name = a\n    beacon-port = 99999\n", 3,
         ["peer/beacon-port", "99999"], "a port out of range"),
        ("bool.cfg", "daemon\n    syslog = maybe\n", 2, ["daemon/syslog", "maybe"],
         "a bad boolean"),
        ("level.cfg", "daemon\n    log-level = loud\n", 2, ["log-level", "loud"],
         "a bad log level"),
        ("twice.cfg", "peer\n    name = a\n    name = b\n", 3, ["given twice", "line 2"],
         "a key given twice"),
        ("novalue.cfg", "peer\n    name\n", 2, ["missing value"], "a key without value"),
        ("quote.cfg", "peer\n    name = \"a\n", 2, ["closing"], "an unclosed quote"),
        ("sectionvalue.cfg", "peer = 1\n", 1, ["section"], "a value on a section"),
        ("agentkind.cfg", "peer\n    name = a\nagents\n    x\n        path = .\n", 4,
         ["agents/x", "kind"], "an agent without kind"),
        ("agentpath.cfg", "agents\n    x\n        kind = exec\n        path = no/such/dir\n", 4,
         ["agents/x/path", "No such file"], "an exec agent whose directory does not exist"),
        ("agentkey.cfg", "agents\n    x\n        kind = plugin\n        path = agentkey.cfg\n"
         "        workers = 3\n", 5, ["workers", "exec"], "an exec-only key on a plugin"),
        ("regex.cfg", "agents\n    x\n        kind = exec\n        path = .\n"
         "        filter = (a\n", 5, ["filter", "regular expression"],
         "a filter that is not a regex"),
        ("reserved.cfg", "agents\n    sys\n        kind = exec\n        path = .\n", 2,
         ["reserved"], "the reserved agent name sys"),
        ("sync.cfg", "tasks\n    journal-sync = fast\n", 2,
         ["tasks/journal-sync", "fast", "full, meta or none"], "a bad journal-sync"),
        ("rlunit.cfg", "tasks\n    ratelimit = /image/resize=10/s\n"
         "    ratelimit = /image/thumb=10/x\n", 3,
         ["tasks/ratelimit", "/image/thumb", "10/x", "N/s"], "a rate limit per 'x'"),
        ("rlzero.cfg", "tasks\n    ratelimit = /image/resize=0/s\n", 2,
         ["tasks/ratelimit", "0/s"], "a rate limit of 0"),
        ("rlpath.cfg", "tasks\n    ratelimit = image/resize=10/s\n", 2,
         ["tasks/ratelimit", "image/resize", "starts with '/'"],
         "a rate-limited path without its leading '/'"),
        ("rlform.cfg", "tasks\n    ratelimit = /image/resize\n", 2,
         ["tasks/ratelimit", "PATH=LIMIT"], "a rate limit without its limit"),
        ("rltwice.cfg", "tasks\n    ratelimit = /a=1/s\n    ratelimit = /b=1/s\n"
         "    ratelimit = /a=2/s\n", 4, ["/a", "given twice", "line 2"],
         "a rate-limited path given twice"),
        ("quorum.cfg", "tasks\n    quorum-memory = 0\n", 2,
         ["tasks/quorum-memory", "off"], "a quorum memory of 0"),
        ("grace.cfg", "tasks\n    startup-grace = soon\n", 2,
         ["tasks/startup-grace", "soon"], "a bad startup grace"),
        ("datafile.cfg", "tasks\n    data-dir = datafile.cfg\n", 2,
         ["tasks/data-dir", "not a directory"], "a data dir that is a regular file"),
    ]
    for fname, text, line, words, what in cases:
        expect_config_error(write(os.path.join(w, fname), text), line, words, "--name", "n",
                            what=what)
    expect_config_error(os.path.join(w, "no-such.cfg"), 0, ["cannot open"], what="a missing file")

    mt.check("flag errors name the flag; exit 2")
    for args, words in [(["--name", "n", "--grace", "soon"], ["--grace", "soon"]),
                        (["--name", "n", "--exec-agent", "x"], ["--exec-agent", "NAME="]),
                        (["--name", "n", "--exec-agent", "x=/no/such/dir"], ["No such file"]),
                        (["--name", "n", "--header", "bad key=1"], ["--header"]),
                        (["--name", "n", "--seed", "udp://x"], ["--seed", "tcp://"]),
                        (["--name", "n", "--realm", "r" * 251], ["--realm"]),
                        (["--name", "n", "stray"], ["unexpected argument"]),
                        (["--name", "n", "--journal-sync", "async"], ["--journal-sync"]),
                        (["--name", "n", "--task-ratelimit", "/x=10/x"],
                         ["--task-ratelimit", "10/x"]),
                        (["--name", "n", "--task-ratelimit", "/x=0/s"],
                         ["--task-ratelimit", "0/s"]),
                        (["--name", "n", "--task-ratelimit", "x=1/s"], ["starts with '/'"]),
                        (["--name", "n", "--task-quorum-memory", "never"],
                         ["--task-quorum-memory"]),
                        (["--print-config"], ["name"])]:
        rc, out, err = run_meshd(*args)
        mt.expect(rc == 2 and all(x in err for x in words),
                  "meshd %s: exit %d (expected 2), stderr %r should say %r" % (
                      " ".join(args), rc, err, words))
        mt.ok("%s -> 2: %s" % (" ".join(a if len(a) < 40 else a[:12] + "..." for a in args),
                               err.strip()))

    mt.check("a plugin that does not load: exit 2, and the peer never starts")
    bogus = write(os.path.join(w, "bogus.so"), "not a shared object\n")
    port = mt.free_udp_port()
    rc, out, err = run_meshd("--name", "n", "--beacon-port", port, "--events",
                             "--plugin", "bad=" + bogus)
    mt.expect(rc == 2, "bogus plugin: exit %d, expected 2\nstderr: %s" % (rc, err))
    mt.expect('"ready"' not in out, "bogus plugin: meshd got ready: %s" % out)
    mt.ok("exit 2: %s" % err.strip().splitlines()[-1])


def check_print_config(w):
    mt.check("--print-config: the effective configuration as ZPL; it loads back identically")
    exec_agent(os.path.join(w, "echo-agent"), {"echo": "cat\n"})
    cfg = write(os.path.join(w, "full.cfg"), """# every section
peer
    name = "from file"   # quoted: has a space
    realm = r1
    beacon-port = 40001
    port = 0
    beacon = false
    beacon-interval = 250
    evasive = 2000
    expired = 9000
    ping-interval = 500
    seed = tcp://127.0.0.1:40002
    seed = tcp://127.0.0.1:40003
    group = g1
    header
        X-Role = worker
daemon
    grace = 1500
    log-level = warn
tasks
    replicas = 3
    data-dir = tasks-data       # relative to this file; need not exist yet
    journal-sync = meta
    ratelimit = /image/resize=10/s
    ratelimit = /mail/send = 600/m   # spaces around the last '=' are allowed
    ratelimit = "/odd#path=5/h"
    quorum-memory = off
    startup-grace = 0
agents
    echo
        kind = exec
        path = echo-agent      # relative to this file
        workers = 2
        timeout = 3000
        filter = '^(echo|x)$'
        active-check = "test -d /"
        tags
            zone = eu
""")
    rc, out1, err = run_meshd("--config", cfg, "--print-config")
    mt.expect(rc == 0, "--print-config: exit %d\n%s" % (rc, err))
    z = parse_zpl(out1)
    want = {"peer/name": ["from file"], "peer/realm": ["r1"], "peer/beacon-port": ["40001"],
            "peer/beacon": ["false"], "peer/beacon-interval": ["250"],
            "peer/seed": ["tcp://127.0.0.1:40002", "tcp://127.0.0.1:40003"],
            "peer/group": ["g1"], "peer/header/X-Role": ["worker"], "daemon/grace": ["1500"],
            "daemon/log-level": ["warn"], "daemon/syslog": ["false"], "peer/iface": ["lo"],
            "agents/echo/kind": ["exec"],
            "agents/echo/path": [os.path.realpath(os.path.join(w, "echo-agent"))],
            "agents/echo/workers": ["2"], "agents/echo/filter": ["^(echo|x)$"],
            "agents/echo/active-check": ["test -d /"], "agents/echo/tags/zone": ["eu"],
            "tasks/enabled": ["true"], "tasks/replicas": ["3"],
            "tasks/data-dir": [os.path.join(os.path.realpath(w), "tasks-data")],
            "tasks/journal-sync": ["meta"],
            "tasks/ratelimit": ["/image/resize=10/s", "/mail/send=600/m", "/odd#path=5/h"],
            "tasks/quorum-memory": ["off"], "tasks/startup-grace": ["0"]}
    for k, v in want.items():
        mt.expect(z.get(k) == v, "--print-config %s = %r, expected %r\n%s" % (k, z.get(k), v,
                                                                              out1))
    again = write(os.path.join(w, "printed.cfg"), out1)
    os.chdir("/")  # the printed paths are absolute: they load from anywhere
    rc, out2, err = run_meshd("--config", again, "--print-config")
    mt.expect(rc == 0 and out2 == out1, "printed config does not load back the same (rc %d):\n"
              "--- first\n%s--- second\n%s%s" % (rc, out1, out2, err))
    mt.ok("%d keys, loads back identically" % len(z))

    mt.check("flags override the file; --seed/--group replace its lists; --header merges")
    rc, out, err = run_meshd("--config", cfg, "--name", "flagged", "--beacon-port", 40009,
                             "--group", "g2", "--header", "X-Extra=1", "--grace", 100,
                             "--exec-agent", "echo=" + os.path.join(w, "echo-agent"),
                             "--data-dir", os.path.join(w, "flag-data"), "--journal-sync", "none",
                             "--task-ratelimit", "/mail/send=5/s",
                             "--task-ratelimit", "/new/path=7/m",
                             "--task-quorum-memory", 60000, "--task-startup-grace", 250,
                             "--print-config")
    mt.expect(rc == 0, "--print-config with flags: exit %d\n%s" % (rc, err))
    z = parse_zpl(out)
    want = {"peer/name": ["flagged"], "peer/beacon-port": ["40009"], "peer/realm": ["r1"],
            "peer/group": ["g2"], "peer/header/X-Role": ["worker"],
            "peer/header/X-Extra": ["1"], "daemon/grace": ["100"],
            "agents/echo/workers": ["4"],  # the flag's agent replaced the file's, defaults
            "tasks/data-dir": [os.path.join(os.path.realpath(w), "flag-data")],
            "tasks/journal-sync": ["none"], "tasks/quorum-memory": ["60000"],
            "tasks/startup-grace": ["250"],
            # a flag replaces the file's limit of its path, adds the others
            "tasks/ratelimit": ["/image/resize=10/s", "/mail/send=5/s", "/odd#path=5/h",
                                "/new/path=7/m"]}
    for k, v in want.items():
        mt.expect(z.get(k) == v, "with flags: %s = %r, expected %r\n%s" % (k, z.get(k), v, out))
    mt.expect("agents/echo/filter" not in z, "the flag's agent kept the file's filter:\n" + out)
    again = write(os.path.join(w, "printed-flags.cfg"), out)
    rc, out3, err = run_meshd("--config", again, "--print-config")
    mt.expect(rc == 0 and out3 == out, "the flags' config does not load back the same (rc %d):\n"
              "--- first\n%s--- second\n%s%s" % (rc, out, out3, err))
    mt.ok("name, port, group, header, grace, agent, tasks as the flags say; loads back")

    mt.check("defaults: journal-sync full, quorum memory 300000, startup grace 3000, no data dir")
    rc, out, err = run_meshd("--name", "n", "--print-config")
    z = parse_zpl(out)
    want = {"tasks/journal-sync": ["full"], "tasks/quorum-memory": ["300000"],
            "tasks/startup-grace": ["3000"]}
    for k, v in want.items():
        mt.expect(rc == 0 and z.get(k) == v, "default %s = %r, expected %r\n%s%s" % (
            k, z.get(k), v, out, err))
    mt.expect("tasks/data-dir" not in z and "tasks/ratelimit" not in z,
              "a data dir or rate limit by default:\n" + out)
    mt.ok("as documented")

    mt.check("the example config agents/examples/meshd.cfg loads")
    example = os.path.join(mt.REPO, "agents", "examples", "meshd.cfg")
    rc, out, err = run_meshd("--config", example, "--print-config")
    mt.expect(rc == 0, "%s: exit %d\n%s" % (example, rc, err))
    mt.ok("%d lines" % len(out.splitlines()))


def check_data_dir(w):
    port = mt.free_udp_port()

    mt.check("--data-dir at a regular file: exit 2, one clear line, nothing starts")
    afile = write(os.path.join(w, "not-a-dir"), "x\n")
    rc, out, err = run_meshd("--name", "n", "--beacon-port", port, "--events", "--data-dir", afile)
    mt.expect(rc == 2 and "--data-dir" in err and afile in err and "not a directory" in err,
              "--data-dir FILE: exit %d (expected 2), stderr %r" % (rc, err))
    mt.expect(len(err.strip().splitlines()) == 1 and '"ready"' not in out,
              "--data-dir FILE: more than one line, or meshd got ready:\n%s%s" % (out, err))
    mt.ok("2: %s" % err.strip())

    mt.check("--data-dir at a fresh directory: meshd starts and keeps its journal there")
    data = os.path.join(w, "fresh-data")
    shutil.rmtree(data, ignore_errors=True)
    a = spawn("A", "--beacon-port", port, "--data-dir", data, "--task-startup-grace", 0)
    a.ready()
    wait_file(os.path.join(data, "data.mdb"), 5, "the journal")
    mt.ok("ready; %s holds %s" % (data, ", ".join(sorted(os.listdir(data)))))

    mt.check("a second meshd on the same data dir: exit 2, 'data dir DIR: in use'")
    rc, out, err = run_meshd("--name", "B", "--beacon-port", port, "--events", "--data-dir", data,
                             timeout=10)
    mt.expect(rc == 2 and ("data dir %s:" % data) in err and "in use" in err,
              "second meshd on %s: exit %d (expected 2), stderr %r" % (data, rc, err))
    mt.expect('"ready"' not in out, "the second meshd got ready: %s" % out)
    mt.expect(a.alive(), "A died when another meshd tried its data dir\n" + a.describe())
    mt.ok("2: %s" % err.strip())
    a.stop()

    mt.check("a data dir holding something that is not a journal: exit 2 before anything starts")
    bad = os.path.join(w, "bad-data")
    os.makedirs(bad, exist_ok=True)
    write(os.path.join(bad, "data.mdb"), "not an LMDB file\n" * 512)
    rc, out, err = run_meshd("--name", "n", "--beacon-port", port, "--events", "--data-dir", bad,
                             timeout=10)
    mt.expect(rc == 2 and ("data dir %s:" % bad) in err and '"ready"' not in out,
              "damaged data dir: exit %d (expected 2), stderr %r" % (rc, err))
    mt.ok("2: %s" % err.strip())


def check_running(w):
    port = mt.free_udp_port()
    timers = ["--beacon-interval", 200, "--evasive", 1000, "--expired", 3000,
              "--ping-interval", 200]
    mark = os.path.join(w, "slow.started")
    agent = exec_agent(os.path.join(w, "work-agent"), {
        "hi": "cat >/dev/null\necho '\"hello\"'\n",
        "slow": "cat >/dev/null\ntouch %s\nsleep 2\necho '{\"slept\": true}'\n" % mark,
        "long": "cat >/dev/null\ntouch %s\nsleep 30\necho '{}'\n" % mark,
    })
    cfg = write(os.path.join(w, "run.cfg"), """peer
    name = ignored-the-flag-wins
    beacon-port = %d
daemon
    grace = 4000
agents
    work
        kind = exec
        path = work-agent
        workers = 2
""" % mt.free_udp_port())

    mt.check("flags override the file at run time: --beacon-port decides whom it meets")
    a = spawn("A", "--config", cfg, "--beacon-port", port, *timers)
    b = spawn("B", "--beacon-port", port, *timers)
    a.ready()
    b.ready()
    mt.all_see_all([a, b])
    mt.ok("A (file says another port) meets B on the flag's port")

    mt.check("/sys/ping answers \"pong\" (msgpack string, printed as JSON by meshctl)")
    got = call_json(port, "/sys/ping", None, "--selector", "direct", "--peer", "A")
    mt.expect(got == "pong", "/sys/ping: %r" % got)
    mt.ok("pong")

    mt.check("/sys/info: name, id, version, realm, uptime, services, status")
    info = call_json(port, "/sys/info", None, "--selector", "direct", "--peer", "A")
    mt.expect(info.get("name") == "A" and mt.same_id(info.get("id"), a.id),
              "/sys/info name/id: %r" % info)
    mt.expect(info.get("realm") == "default" and isinstance(info.get("version"), str)
              and isinstance(info.get("uptime_s"), int), "/sys/info: %r" % info)
    svc = info.get("services") or []
    for p in ("/sys/ping", "/sys/info", "/sys/stats", "/work/hi", "/work/slow"):
        mt.expect(p in svc, "/sys/info services lack %s: %r" % (p, svc))
    st = info.get("status") or {}
    mt.expect(isinstance(st.get("load"), (int, float)) and isinstance(st.get("inflight"), int),
              "/sys/info status: %r" % st)
    mt.ok("%s, %d services" % (info.get("version"), len(svc)))

    mt.check("/sys/stats: requests, errors, drops, peers, per-agent counters")
    got = call_json(port, "/work/hi")
    mt.expect(got == "hello", "/work/hi: %r" % got)
    stats = call_json(port, "/sys/stats", None, "--selector", "direct", "--peer", "A")
    for k in ("requests_in", "requests_out", "errors", "envelopes_dropped", "zre_dropped",
              "peers"):
        mt.expect(isinstance(stats.get(k), int), "/sys/stats lacks %s: %r" % (k, stats))
    mt.expect(stats["requests_in"] >= 4, "/sys/stats requests_in: %r" % stats)
    agents = stats.get("agents") or {}
    mt.expect(agents.get("work", {}).get("requests", 0) >= 1 and
              agents.get("work", {}).get("kind") == "exec" and "sys" in agents,
              "/sys/stats agents: %r" % agents)
    tasks = stats.get("tasks")
    mt.expect(isinstance(tasks, dict) and isinstance(tasks.get("held"), int) and
              tasks.get("quorum") is True and isinstance(tasks.get("ready"), bool) and
              isinstance(tasks.get("journal_commits"), int),
              "/sys/stats tasks: %r" % (tasks,))
    mt.ok("requests_in %d, agents %s, tasks held %d" % (stats["requests_in"], sorted(agents),
                                                        tasks["held"]))

    mt.check("SIGHUP with a bad file: logged with FILE:LINE, the running agents stay")
    good = open(cfg).read()
    write(cfg, good.replace("    work\n", "  work\n"))
    a.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("reload refused" in l
                                                  for l in a.stderr_lines):
        time.sleep(0.05)
    refused = [l for l in a.stderr_lines if "reload refused" in l]
    mt.expect(refused and ("%s:7:" % cfg) in refused[-1],
              "no 'reload refused' naming %s:7 in A's log:\n%s" % (cfg, a.describe()))
    mt.expect(a.alive(), "A died on a bad reload")
    mt.expect(call_json(port, "/work/hi") == "hello", "/work/hi after a refused reload")
    mt.ok("A alive, /work/hi still answers; %s" % refused[-1].split(": ", 1)[-1])

    mt.check("SIGHUP: agents reloaded (renamed work -> job); a request in flight completes")
    if os.path.exists(mark):
        os.remove(mark)
    slow = Background(port, "/work/slow", "{}")
    wait_file(mark, 10, "the slow method")
    write(cfg, good.replace("    work\n", "    job\n") + "tasks\n    ratelimit = /job/hi=5/s\n")
    a.signal(signal.SIGHUP)
    r = slow.join(20)
    mt.expect(r.returncode == 0 and json.loads(r.stdout) == {"slept": True},
              "the call in flight during the reload: exit %d %s %s" % (r.returncode, r.stdout,
                                                                      r.stderr))
    got = call_json(port, "/job/hi")
    mt.expect(got == "hello", "/job/hi after the reload: %r" % got)
    r = call(port, "/work/hi", None, "--wait", 1500)
    mt.expect(r.returncode == 3, "/work/hi after the reload: exit %d (expected 3, no providers)"
              " %s %s" % (r.returncode, r.stdout, r.stderr))
    mt.expect(a.alive(), "A died on the reload")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("reload: rate limit /job/hi: 5/s" in l
                                                  for l in a.stderr_lines):
        time.sleep(0.05)
    log = list(a.stderr_lines)
    mt.expect(any("reload: rate limit /job/hi: 5/s" in l for l in log),
              "the reload did not apply the new rate limit:\n" + "\n".join(log))
    mt.expect(not any("next start" in l for l in log),
              "a rate limit change asked for a restart:\n" + "\n".join(log))
    mt.ok("in-flight call done, /job/hi answers, /work/hi is gone, the rate limit applied")

    mt.check("SIGTERM with a slow request in flight: it completes, then A leaves and exits 0")
    os.remove(mark)
    slow = Background(port, "/job/slow", "{}")
    wait_file(mark, 10, "the slow method")
    mb = b.mark()
    t_term = a.term()
    r = slow.join(20)
    rc = a.wait_exit(15)
    mt.expect(r.returncode == 0 and json.loads(r.stdout) == {"slept": True},
              "the call in flight at SIGTERM: exit %d %s %s" % (r.returncode, r.stdout,
                                                               r.stderr))
    mt.expect(rc == 0, "A exit code %s after SIGTERM\n%s" % (rc, a.describe()))
    e = mt.wait_exit_of(b, a, 5, since=mb)
    mt.expect(e.get("reason") == "left", "B: exit of A reason %r" % e.get("reason"))
    mt.expect(a.find_ev("stopped"), "A printed no stopped event")
    mt.ok("reply after %.2f s, A left (exit 0)" % (slow.done_at - t_term))

    mt.check("SIGTERM past --grace: the request still running fails, A exits 0 in time")
    c = spawn("C", "--beacon-port", port, "--grace", 500, "--exec-agent", "long=" + agent,
              *timers)
    c.ready()
    mt.wait_enter(b, c)
    os.remove(mark)
    held = Background(port, "/long/long", "{}", "--timeout", 20000)
    wait_file(mark, 10, "the long method")
    t_term = c.term()
    rc = c.wait_exit(10)
    took = time.monotonic() - t_term
    r = held.join(20)
    mt.expect(rc == 0, "C exit code %s\n%s" % (rc, c.describe()))
    mt.expect(took < 5, "C took %.1f s to stop with --grace 500" % took)
    mt.expect(r.returncode == 5 and "agent unloaded" in r.stderr,
              "the call cut by the grace period: exit %d (expected 5, a remote error \"agent "
              "unloaded\", sent before C left) %s %s" % (r.returncode, r.stdout, r.stderr))
    mt.ok("C stopped after %.2f s; the call failed with exit %d: %s" % (
        took, r.returncode, r.stderr.strip()))

    mt.check("runtime failure exits 1 (no such interface)")
    rc, out, err = run_meshd("--name", "x", "--iface", "nosuch0", "--beacon-port", port)
    mt.expect(rc == 1, "no such interface: exit %d\n%s" % (rc, err))
    mt.ok("1: %s" % err.strip().splitlines()[-1])

    mt.check("--help and --version exit 0")
    for flag in ("--help", "--version"):
        rc, out, err = run_meshd(flag)
        mt.expect(rc == 0 and out.strip(), "%s: exit %d, stdout %r" % (flag, rc, out))
    mt.ok("0")

    b.stop()


def main():
    w = work_dir()
    check_config_errors(w)
    check_print_config(w)
    check_data_dir(w)
    check_running(w)


if __name__ == "__main__":
    mt.run(main)
