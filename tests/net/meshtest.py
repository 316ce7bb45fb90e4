"""meshtest: a small harness for the black-box tests of meshd / meshctl.

Each test script does

    import meshtest as mt
    def main(t): ...
    mt.run(main)

and drives real processes:

  * Proc: a child process (meshd with --events --stdin, or the zyre.js
    reference peer) whose stdout is read line by line as JSON events by a
    thread.  wait_for() blocks on a predicate over the events, send() writes
    one JSON command line, stop() sends SIGTERM and checks the exit code,
    kill() sends SIGKILL.
  * Netlab: a context manager around shared/netlab/netlab with a unique
    NETLAB_PREFIX, torn down on exit.
  * free_udp_port() / free_tcp_port(): ports found by binding port 0.

Network safety: nothing here sends a packet; the processes it starts are
told to use loopback ("lo", the default of meshd and of zre-peer.js) or run
inside netlab namespaces (10.213.0.0/24).  Never pass --iface eth0 to a
process that is not started through Netlab.spawn*.

Locations (environment, set by tests/net/CMakeLists.txt):
  MESH_BUILD_DIR   build tree (meshd at agents/meshd, meshctl at tools/meshctl);
                   default: the newest <repo>/build/*/ holding agents/meshd
  MESH_MESHD, MESH_MESHCTL   explicit binaries (override MESH_BUILD_DIR)
  MESH_SHARED      the shared directory (netlab/, interop/); default <repo>/../shared
  MESH_INTEROP_DIR where zyre.js is installed; default $MESH_BUILD_DIR/interop
  MESH_TEST_VERBOSE=1   echo every event and stderr line as it arrives
  MESH_TEST_LOGDIR      keep full logs of every process there (default: a
                        temporary directory, printed on failure)

Exit codes of a test script: 0 pass, 1 fail, 77 skipped (ctest SKIP_RETURN_CODE).
"""

import base64
import collections
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VERBOSE = os.environ.get("MESH_TEST_VERBOSE", "") not in ("", "0")

SKIP = 77
DEADLINE_S = int(os.environ.get("MESH_TEST_DEADLINE", "270"))  # below ctest's TIMEOUT 300


class Failure(Exception):
    """A check failed; the message says what and shows the evidence."""


class Skip(Exception):
    """The test cannot run here (missing tool, not root...)."""


# ----------------------------------------------------------------------------------------------
# Output


_t0 = time.monotonic()


def _stamp():
    return "%7.3f" % (time.monotonic() - _t0)


def log(msg):
    print("[%s] %s" % (_stamp(), msg), flush=True)


def check(what):
    """Announce a check (printed before it runs)."""
    log("CHECK " + what)


def ok(what):
    log("  ok: " + what)


def note(what):
    """Something worth knowing that is not (yet) a failure."""
    log("  NOTE: " + what)


def fail(msg):
    raise Failure(msg)


def expect(cond, msg):
    if not cond:
        fail(msg)


# ----------------------------------------------------------------------------------------------
# Locations


def _arg_build_dir():
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == "--build-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--build-dir="):
            return a.split("=", 1)[1]
    return None


def build_dir():
    d = _arg_build_dir() or os.environ.get("MESH_BUILD_DIR")
    if d:
        return os.path.abspath(d)
    found = glob.glob(os.path.join(REPO, "build", "*", "agents", "meshd"))
    if found:
        found.sort(key=os.path.getmtime)
        return os.path.dirname(os.path.dirname(found[-1]))
    return None


def _binary(env, rel):
    p = os.environ.get(env)
    if not p:
        b = build_dir()
        if not b:
            fail("no build directory: set MESH_BUILD_DIR (or %s), or build into %s/build/<name>"
                 % (env, REPO))
        p = os.path.join(b, rel)
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        fail("binary not found or not executable: %s (set MESH_BUILD_DIR or %s)" % (p, env))
    return p


def meshd_bin():
    return _binary("MESH_MESHD", os.path.join("agents", "meshd"))


def meshctl_bin():
    return _binary("MESH_MESHCTL", os.path.join("tools", "meshctl"))


def shared_dir():
    d = os.environ.get("MESH_SHARED") or os.path.join(os.path.dirname(REPO), "shared")
    return os.path.abspath(d)


def netlab_bin():
    p = os.path.join(shared_dir(), "netlab", "netlab")
    if not os.path.isfile(p):
        raise Skip("netlab not found at %s (set MESH_SHARED)" % p)
    return p


def interop_dir():
    d = os.environ.get("MESH_INTEROP_DIR")
    if d:
        return os.path.abspath(d)
    b = build_dir()
    if b:
        return os.path.join(b, "interop")
    return os.path.join(tempfile.gettempdir(), "mesh-interop")


_interop_ready = None


def ensure_interop():
    """Installs zyre.js (shared/interop/setup, idempotent) and returns
    (node, zre-peer.js, NODE_PATH). Skips the test if Node.js is missing or
    the install fails (no registry)."""
    global _interop_ready
    if _interop_ready:
        return _interop_ready
    node = shutil.which("node")
    if not node or not shutil.which("npm"):
        raise Skip("node/npm not installed: cannot run the zyre.js reference peer")
    setup = os.path.join(shared_dir(), "interop", "setup")
    script = os.path.join(shared_dir(), "interop", "zre-peer.js")
    if not os.path.isfile(setup) or not os.path.isfile(script):
        raise Skip("shared/interop not found under %s (set MESH_SHARED)" % shared_dir())
    d = interop_dir()
    os.makedirs(d, exist_ok=True)
    log("interop: installing/checking zyre.js in %s" % d)
    # Two tests may run the setup at once: npm install into one dir is not re-entrant.
    with open(os.path.join(d, ".setup.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            r = subprocess.run([setup, d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=240)
        except subprocess.TimeoutExpired:
            raise Skip("interop setup timed out (npm registry unreachable?)")
    if r.returncode != 0:
        raise Skip("interop setup failed (rc %d): %s" % (
            r.returncode, r.stdout.decode(errors="replace")[-2000:]))
    _interop_ready = (node, script, os.path.join(d, "node_modules"))
    return _interop_ready


# ----------------------------------------------------------------------------------------------
# Ports

_given = set()


def _free_port(kind, host=""):
    for _ in range(50):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((host, 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port in _given:
            continue
        # The same number must be free for the other protocol too (meshd binds UDP for
        # beacons and TCP for its inbox; keep the two apart from anything else).
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        o = socket.socket(socket.AF_INET, other)
        try:
            o.bind((host, port))
        except OSError:
            continue
        finally:
            o.close()
        _given.add(port)
        return port
    fail("could not find a free port")


def free_udp_port():
    """A UDP port free on 0.0.0.0 now (for a beacon port)."""
    return _free_port(socket.SOCK_DGRAM)


def free_tcp_port():
    """A TCP port free on 0.0.0.0 now (for an inbox --port)."""
    return _free_port(socket.SOCK_STREAM)


# ----------------------------------------------------------------------------------------------
# Data helpers


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text)


def payload(tag):
    """Distinctive binary bytes: NUL, high bytes, invalid UTF-8, and a tag."""
    return b"\x00\xff\xfe" + tag.encode() + b"\x80\x01\x00" + os.urandom(8)


def same_id(a, b):
    return a is not None and b is not None and str(a).lower() == str(b).lower()


def evmatch(e, ev=None, **fields):
    """True if event e has ev (a name or a tuple of names) and every field equal
    (ids compared case-insensitively; mesh uses upper-case hex, zyre.js lower)."""
    if ev is not None:
        names = (ev,) if isinstance(ev, str) else tuple(ev)
        if e.get("ev") not in names:
            return False
    for k, v in fields.items():
        if k == "id":
            if not same_id(e.get("id"), v):
                return False
        elif e.get(k) != v:
            return False
    return True


def _short(v, limit=160):
    if isinstance(v, str) and len(v) > limit:
        return "%s...(%d chars)" % (v[:limit], len(v))
    if isinstance(v, list):
        return [_short(x, limit) for x in v]
    if isinstance(v, dict):
        return {k: _short(x, limit) for k, x in v.items()}
    return v


def fmt_event(e):
    """One event for a human: own timestamp, long strings (data) shortened."""
    d = {k: _short(v) for k, v in e.items() if not k.startswith("_")}
    return "+%.3fs %s" % (e.get("_t", _t0) - _t0, json.dumps(d, sort_keys=False))


# ----------------------------------------------------------------------------------------------
# Processes

_procs = []
_cleanups = []
_logdir = None


def logdir():
    global _logdir
    if _logdir is None:
        d = os.environ.get("MESH_TEST_LOGDIR")
        if d:
            os.makedirs(d, exist_ok=True)
            _logdir = d
        else:
            _logdir = tempfile.mkdtemp(prefix="meshtest-%s-" % os.path.basename(sys.argv[0])
                                       .replace(".py", ""))
    return _logdir


def _pdeathsig_prefix():
    # Child dies with us even if we are SIGKILLed (ctest timeout): no stray beacons.
    sp = shutil.which("setpriv")
    if sp:
        r = subprocess.run([sp, "--pdeathsig", "KILL", "true"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            return [sp, "--pdeathsig", "KILL"]
    return []


_PDS = None


def pdeathsig_prefix():
    global _PDS
    if _PDS is None:
        _PDS = _pdeathsig_prefix()
    return _PDS


class Proc:
    """A child process emitting JSON lines on stdout and taking JSON lines on stdin."""

    def __init__(self, name, argv, env=None, kind="proc", wrap=None):
        self.name = name
        self.kind = kind
        self.argv = list(argv)
        self.id = None
        self.info = None
        self.events = []
        self.stderr_lines = collections.deque(maxlen=400)
        self._cv = threading.Condition()
        self._eof = False
        self.returncode = None
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        cmd = list(wrap or []) + pdeathsig_prefix() + self.argv
        base = os.path.join(logdir(), name)
        self._out_log = open(base + ".out", "a", buffering=1)
        self._err_log = open(base + ".err", "a", buffering=1)
        log("start %s: %s" % (name, " ".join(cmd)))
        self.t_start = time.monotonic()
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=full_env, start_new_session=True)
        _procs.append(self)
        self._rt = threading.Thread(target=self._read_out, daemon=True)
        self._et = threading.Thread(target=self._read_err, daemon=True)
        self._rt.start()
        self._et.start()

    # -- readers
    def _read_out(self):
        for raw in self.p.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if not line.strip():
                continue
            self._out_log.write(line + "\n")
            try:
                e = json.loads(line)
                if not isinstance(e, dict):
                    raise ValueError("not an object")
            except ValueError:
                e = {"ev": "_raw", "line": line}
            e["_t"] = time.monotonic()
            if VERBOSE:
                print("[%s] %-8s %s" % (_stamp(), self.name, fmt_event(e)), flush=True)
            with self._cv:
                self.events.append(e)
                self._cv.notify_all()
        with self._cv:
            self._eof = True
            self._cv.notify_all()

    def _read_err(self):
        for raw in self.p.stderr:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self._err_log.write(line + "\n")
            self.stderr_lines.append(_short(line, 400))
            if VERBOSE:
                print("[%s] %-8s stderr: %s" % (_stamp(), self.name, line), flush=True)

    # -- state
    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def mark(self):
        """Index of the next event: pass as since= to look only at later events."""
        with self._cv:
            return len(self.events)

    def find(self, pred, since=0):
        with self._cv:
            return [e for e in self.events[since:] if pred(e)]

    def find_ev(self, ev=None, since=0, **fields):
        return self.find(lambda e: evmatch(e, ev, **fields), since)

    def describe(self, n_events=25, n_err=25):
        lines = ["--- %s (%s, pid %d, %s) ---" % (
            self.name, self.kind, self.p.pid,
            "running" if self.p.poll() is None else "exited rc=%s" % self.p.returncode)]
        with self._cv:
            evs = list(self.events[-n_events:])
            total = len(self.events)
        lines.append("last %d of %d events:" % (len(evs), total))
        lines += ["    " + fmt_event(e) for e in evs] or ["    (none)"]
        err = list(self.stderr_lines)[-n_err:]
        if err:
            lines.append("last %d stderr lines:" % len(err))
            lines += ["    " + l for l in err]
        return "\n".join(lines)

    # -- waiting
    def wait_for(self, pred, timeout, what="a matching event", since=0):
        """Waits for the first event (at index >= since) satisfying pred; returns it.
        Fails with the recent events if it does not come within timeout seconds or
        the process ends first."""
        deadline = time.monotonic() + timeout
        with self._cv:
            i = since
            while True:
                while i < len(self.events):
                    e = self.events[i]
                    i += 1
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if self._eof:
                    break
                if left <= 0:
                    break
                self._cv.wait(min(left, 0.5))
        if self._eof:
            self._et.join(1.0)  # let the last stderr lines in (why it ended)
            try:
                self.p.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
        why = ("process ended (rc=%s) first" % self.p.returncode) if self._eof else \
            "not seen within %.1f s" % timeout
        fail("%s: %s: %s\n%s" % (self.name, what, why, self.describe()))

    def wait_ev(self, ev, timeout=15, since=0, what=None, **fields):
        what = what or "event %s %s" % (ev, json.dumps(fields))
        return self.wait_for(lambda e: evmatch(e, ev, **fields), timeout, what, since)

    def expect_none(self, pred, duration, what, since=0):
        """Fails if an event satisfying pred exists or arrives within duration seconds."""
        end = time.monotonic() + duration
        while True:
            bad = self.find(pred, since)
            if bad:
                fail("%s: unexpected %s: %s\n%s" % (self.name, what, fmt_event(bad[0]),
                                                    self.describe()))
            if time.monotonic() >= end:
                return
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))

    def ready(self, timeout=20):
        """Waits for the "ready" event; records id and the event as info."""
        e = self.wait_ev("ready", timeout=timeout, what="ready event")
        self.id = e.get("id")
        self.info = e
        expect(isinstance(self.id, str) and len(self.id) == 32
               and all(c in "0123456789abcdefABCDEF" for c in self.id),
               "%s: ready id is not 32 hex digits: %r" % (self.name, self.id))
        return e

    # -- commands
    def send(self, cmd):
        line = json.dumps(cmd)
        if VERBOSE:
            print("[%s] %-8s <- %s" % (_stamp(), self.name, _short(line, 300)), flush=True)
        try:
            self.p.stdin.write((line + "\n").encode())
            self.p.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            fail("%s: cannot send %s: %s\n%s" % (self.name, _short(line), exc, self.describe()))

    def whisper(self, to, data):
        self.send({"whisper": {"to": to, "data": b64(data)}})

    def shout(self, group, data):
        self.send({"shout": {"group": group, "data": b64(data)}})

    def join(self, group):
        self.send({"join": group})

    def leave(self, group):
        self.send({"leave": group})

    # -- ending
    def signal(self, sig):
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def term(self):
        """Sends SIGTERM and returns the time it was sent (no waiting)."""
        t = time.monotonic()
        self.signal(signal.SIGTERM)
        return t

    def wait_exit(self, timeout):
        try:
            self.returncode = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            fail("%s: did not exit within %.1f s\n%s" % (self.name, timeout, self.describe()))
        self._rt.join(5)
        self._et.join(5)
        return self.returncode

    def stop(self, timeout=10, expect_rc=0):
        """SIGTERM, wait, check the exit code."""
        if self.p.poll() is not None:
            fail("%s: had already exited (rc=%s) before stop\n%s"
                 % (self.name, self.p.returncode, self.describe()))
        self.term()
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail("%s: did not exit within %.1f s of SIGTERM (killed)\n%s"
                 % (self.name, timeout, self.describe()))
        self._rt.join(5)
        self._et.join(5)
        self.returncode = rc
        if expect_rc is not None and rc != expect_rc:
            fail("%s: exit code %s after SIGTERM, expected %s\n%s"
                 % (self.name, rc, expect_rc, self.describe()))
        return rc

    def kill(self):
        """SIGKILL the process group; reaps."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.signal(signal.SIGKILL)
        try:
            self.returncode = self.p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return self.returncode

    def close_logs(self):
        for f in (self._out_log, self._err_log):
            try:
                f.close()
            except Exception:
                pass


def meshd_argv(name, *args):
    return [meshd_bin(), "--name", name, "--events", "--stdin"] + [str(a) for a in args]


def spawn_meshd(name, *args, env=None):
    """meshd on this machine's namespace. Never pass --iface eth0 here."""
    _guard_iface(args)
    return Proc(name, meshd_argv(name, *args), env=env, kind="meshd")


def zre_peer_argv(name, *args):
    node, script, _ = ensure_interop()
    return [node, script, "--name", name] + [str(a) for a in args]


def zre_peer_env():
    _, _, node_path = ensure_interop()
    return {"NODE_PATH": node_path}


def spawn_zre_peer(name, *args):
    """The zyre.js reference peer on loopback (its default iface is lo)."""
    _guard_iface(args)
    return Proc(name, zre_peer_argv(name, *args), env=zre_peer_env(), kind="zre-peer")


def _guard_iface(args):
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a == "--iface" and i + 1 < len(args) and args[i + 1] not in ("lo", "127.0.0.1"):
            fail("refusing to beacon on %s outside a netlab namespace" % args[i + 1])


def meshctl(*args, timeout=30, wrap=None, env=None):
    """Runs meshctl to completion; returns CompletedProcess (text)."""
    cmd = list(wrap or []) + [meshctl_bin()] + [str(a) for a in args]
    log("run: %s" % " ".join(cmd))
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                           env=env)
    except subprocess.TimeoutExpired as exc:
        fail("meshctl did not finish within %d s: %s\nstdout: %s\nstderr: %s" % (
            timeout, " ".join(cmd), (exc.stdout or b"").decode(errors="replace"),
            (exc.stderr or b"").decode(errors="replace")))
    r.stdout = r.stdout.decode(errors="replace")
    r.stderr = r.stderr.decode(errors="replace")
    if VERBOSE:
        print("meshctl rc=%d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr))
    return r


def meshctl_json(*args, timeout=30, wrap=None, env=None):
    """meshctl ... --json; checks exit 0 and returns the parsed JSON."""
    r = meshctl(*args, timeout=timeout, wrap=wrap, env=env)
    if r.returncode != 0:
        fail("meshctl %s: exit %d\nstdout: %s\nstderr: %s" % (" ".join(map(str, args)),
                                                              r.returncode, r.stdout, r.stderr))
    try:
        return json.loads(r.stdout)
    except ValueError as exc:
        fail("meshctl %s: stdout is not JSON (%s):\n%s\nstderr: %s" % (
            " ".join(map(str, args)), exc, r.stdout, r.stderr))


# ----------------------------------------------------------------------------------------------
# Common multi-process checks


def wait_enter(p, other, timeout=15, since=0, ev="enter"):
    """p reports other (a ready Proc) entering with the right id and name."""
    return p.wait_ev(ev, timeout=timeout, since=since, id=other.id, name=other.name,
                     what="%s of %s (id %s)" % (ev, other.name, other.id))


def wait_exit_of(p, other, timeout, since=0, ev="exit"):
    return p.wait_ev(ev, timeout=timeout, since=since, id=other.id,
                     what="%s of %s (id %s)" % (ev, other.name, other.id))


def all_see_all(procs, timeout=15, since=None, ev="enter"):
    """Every proc reports every other one (enter with the right id and name);
    returns {(observer name, observed name): event}."""
    seen = {}
    for p in procs:
        for q in procs:
            if p is q:
                continue
            s = since[p.name] if since else 0
            seen[(p.name, q.name)] = wait_enter(p, q, timeout, s, ev=ev)
    for p in procs:
        own = p.find(lambda e: e.get("ev") == ev and same_id(e.get("id"), p.id))
        expect(not own, "%s reports itself entering: %s" % (p.name, own and fmt_event(own[0])))
    return seen


# ----------------------------------------------------------------------------------------------
# netlab


class Netlab:
    """with Netlab(3) as lab: lab.spawn_meshd(1, "n1", "--iface", "eth0", ...)

    Uses NETLAB_PREFIX=t<pid><suffix>, runs `netlab down` before (stale lab of a
    recycled pid) and after; kills the processes it started before tearing down."""

    def __init__(self, n, suffix=""):
        if os.geteuid() != 0:
            raise Skip("netlab needs root (network namespaces)")
        if not shutil.which("ip"):
            raise Skip("iproute2 (ip) not installed")
        self.n = n
        self.prefix = "t%d%s" % (os.getpid(), suffix)
        self.netlab = netlab_bin()
        self.env = dict(os.environ, NETLAB_PREFIX=self.prefix)
        self.procs = []
        self._up = False

    def _nl(self, *args, check=True):
        r = subprocess.run([self.netlab] + [str(a) for a in args], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if check and r.returncode != 0:
            fail("netlab %s (prefix %s): rc %d: %s%s" % (
                " ".join(map(str, args)), self.prefix, r.returncode,
                r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")))
        return r

    def __enter__(self):
        _cleanups.append(self.down)
        self._nl("down", check=False)
        log("netlab up %d (NETLAB_PREFIX=%s)" % (self.n, self.prefix))
        self._up = True
        self._nl("up", self.n)
        hosts = self.hosts()
        expect(len(hosts) == self.n, "netlab list shows %r, expected %d hosts" % (hosts, self.n))
        return self

    def __exit__(self, *exc):
        self.down()
        return False

    def hosts(self):
        return self._nl("list").stdout.decode().split()

    def addr(self, i):
        return "10.213.0.%d" % i

    def wrap(self, i):
        """Command prefix that runs a command inside host i."""
        return [self.netlab, "exec", str(i)]

    def run(self, i, *argv, timeout=30):
        r = subprocess.run(self.wrap(i) + [str(a) for a in argv], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        r.stdout = r.stdout.decode(errors="replace")
        r.stderr = r.stderr.decode(errors="replace")
        return r

    def _spawn(self, i, name, argv, env, kind):
        e = {"NETLAB_PREFIX": self.prefix}
        e.update(env or {})
        p = Proc(name, argv, env=e, kind=kind, wrap=self.wrap(i))
        self.procs.append(p)
        return p

    def spawn_meshd(self, i, name, *args):
        return self._spawn(i, name, meshd_argv(name, *args), None, "meshd@%d" % i)

    def spawn_zre_peer(self, i, name, *args):
        return self._spawn(i, name, zre_peer_argv(name, *args), zre_peer_env(), "zre-peer@%d" % i)

    def meshctl(self, i, *args, timeout=30):
        return meshctl(*args, timeout=timeout, wrap=self.wrap(i), env=self.env)

    def meshctl_json(self, i, *args, timeout=30):
        return meshctl_json(*args, timeout=timeout, wrap=self.wrap(i), env=self.env)

    def cut(self, i):
        log("netlab cut %d" % i)
        self._nl("cut", i)
        return time.monotonic()

    def heal(self, i):
        log("netlab heal %d" % i)
        self._nl("heal", i)
        return time.monotonic()

    def down(self):
        if not self._up:
            return
        for p in self.procs:
            p.kill()
        self._up = False
        log("netlab down (NETLAB_PREFIX=%s)" % self.prefix)
        r = self._nl("down", check=False)
        left = [h for h in self._nl("list", check=False).stdout.decode().split()]
        if r.returncode != 0 or left:
            log("WARNING: netlab down left %r (rc %d): %s" % (left, r.returncode,
                                                           r.stderr.decode(errors="replace")))


# ----------------------------------------------------------------------------------------------
# Running a test


def kill_all():
    for p in _procs:
        if p.alive():
            p.kill()


def _on_signal(signum, frame):
    raise Failure("interrupted by signal %d" % signum)


def _on_alarm(signum, frame):
    raise Failure("test exceeded its overall deadline of %d s (MESH_TEST_DEADLINE)" % DEADLINE_S)


def run(main, describe_events=40):
    """Runs main(), reports PASS/FAIL/SKIP, kills every process, tears down every
    lab, and exits 0 / 1 / 77. On a failure, each process is described with its
    last describe_events events (fewer for a test whose report says it all)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(DEADLINE_S)
    name = os.path.basename(sys.argv[0])
    rc = 1
    try:
        main()
        rc = 0
    except Skip as exc:
        log("SKIP %s: %s" % (name, exc))
        rc = SKIP
    except Failure as exc:
        log("FAIL %s:\n%s" % (name, exc))
    except Exception:
        log("FAIL %s: unexpected error:\n%s" % (name, traceback.format_exc()))
    finally:
        signal.alarm(0)
        # A second SIGTERM/SIGINT must not interrupt the cleanup.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if rc == 1 and _procs:
                print("==== every process of this test ====", flush=True)
                for p in _procs:
                    print(p.describe(describe_events, 40), flush=True)
            kill_all()
            for c in reversed(_cleanups):
                try:
                    c()
                except Exception:
                    log("cleanup error:\n%s" % traceback.format_exc())
        finally:
            kill_all()
            for p in _procs:
                p.close_logs()
    if rc == 1 and _logdir:
        log("full process logs in %s" % _logdir)
    elif _logdir and not os.environ.get("MESH_TEST_LOGDIR"):
        shutil.rmtree(_logdir, ignore_errors=True)
    if rc == 0:
        log("PASS %s" % name)
    sys.exit(rc)
