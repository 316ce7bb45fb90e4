#!/usr/bin/env python3
"""meshctl driving 3 meshd across a netlab LAN (issue 4 §5: "the same on 3
netlab hosts, meshd on each and meshctl from a fourth").

Hosts 1..3 (10.213.0.1-3) each run meshd (n1..n3) on eth0 with the example
exec agents (shell, python; n3 also the plugin_hello.so plugin as agent
"hello"). Every meshctl runs inside host 4, so each request, reply, SERVICES
list and beacon crosses the bridge. Checked:

  * peers --json: n1..n3 with their 10.213.0.i endpoints; services --json:
    /shell/upper on all three;
  * call (payload upper-cased, --from names the answering host), round_robin
    --count 3 reaching three hosts, direct --peer n2, the plugin on n3,
    fanout /shell/env answered by all three (MESH_CALLER is the meshctl);
  * pub/sub across hosts both ways (sub in host 1 <- pub from host 4, sub in
    host 4 <- pub from host 3);
  * /python/picky: the first attempt is rejected and the call moves on to
    another host (attempt 2);
  * exit codes across the network: no providers 3, /shell/crash 5,
    /shell/hang --timeout 700 -> 4, a call in flight to a host whose cable
    is cut -> 6 (peer lost, after meshctl's ping timeout), while the same
    call made --idempotent moves on to another host and succeeds;
  * netlab cut 2: while n1/n3 still count n2 as a member (before --expired)
    and after, calls keep succeeding, answered by n1/n3 only; n1 and n3 see
    n2 expire; --peer n2 -> 3;
  * netlab heal 2: n2 answers again; n1 sees n2 re-enter. This takes about
    1 s, from the kernel, not mesh: during the cut n2's ARP entries went
    INCOMPLETE (its TCP to earlier callers kept retrying), ARP is retried
    every second, and a SYN-ACK that waited for it costs the caller one SYN
    retransmission (1 s); the call prints its MESH_DEBUG timeline;
  * SIGTERM: every meshd exits 0.

Also prints (asserting only a loose 2 s bound) the wall time of `meshctl call /sys/ping` from
host 4, process start to exit, median of 10, next to the cost of
`netlab exec 4 true` alone.
"""

import json
import os
import statistics
import subprocess
import threading
import time

import meshtest as mt

EXAMPLES = os.path.join(mt.REPO, "agents", "examples")
BEACON_MS = 250
EVASIVE_MS = 1000
EXPIRED_MS = 3000
PING_MS = 300
MESHCTL_PING_TIMEOUT_S = 3.0  # meshctl's peer: default ping interval 1000 ms x 3
CTL_HOST = 4
NAMES = ("n1", "n2", "n3")


def sanitizer_free(text):
    return ("AddressSanitizer" not in text and "LeakSanitizer" not in text
            and "runtime error:" not in text)


class Ctl:
    """meshctl inside host 4, with the test's discovery flags."""

    def __init__(self, lab, port):
        self.lab = lab
        self.disc = ["--iface", "eth0", "--beacon-port", str(port)]

    def argv(self, *args):
        return (self.lab.wrap(CTL_HOST) + [mt.meshctl_bin()] + [str(a) for a in args]
                + self.disc)

    def run(self, *args, stdin=None, timeout=30, debug=False):
        """Returns (rc, stdout, stderr, seconds). debug: MESH_DEBUG=1 (discovery timeline)."""
        argv = self.argv(*args)
        env = dict(self.lab.env, MESH_DEBUG="1") if debug else self.lab.env
        mt.log("run@%d: meshctl %s" % (CTL_HOST, " ".join(map(str, args))))
        t = time.monotonic()
        try:
            r = subprocess.run(argv, input=stdin.encode() if stdin is not None else None,
                               stdin=None if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            mt.fail("meshctl %s did not finish within %d s\nstderr: %s" % (
                " ".join(map(str, args)), timeout,
                (exc.stderr or b"").decode(errors="replace")))
        dt = time.monotonic() - t
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if mt.VERBOSE:
            print("rc=%d %.3f s\nstdout: %s\nstderr: %s" % (r.returncode, dt, out, err))
        mt.expect(sanitizer_free(err), "meshctl %s: sanitizer report:\n%s" % (
            " ".join(map(str, args)), err))
        return r.returncode, out, err, dt

    def expect(self, want_rc, *args, stdin=None, why="", timeout=30):
        rc, out, err, dt = self.run(*args, stdin=stdin, timeout=timeout)
        mt.expect(rc == want_rc, "meshctl %s (in host %d): exit %d, expected %d%s\n"
                  "stdout: %s\nstderr: %s" % (" ".join(map(str, args)), CTL_HOST, rc, want_rc,
                                              " (%s)" % why if why else "", out, err))
        return out, err, dt

    def json(self, *args, stdin=None):
        out, err, _ = self.expect(0, *args, stdin=stdin)
        try:
            return json.loads(out)
        except ValueError:
            mt.fail("meshctl %s: stdout is not JSON:\n%s\nstderr: %s" % (
                " ".join(map(str, args)), out, err))

    def spawn(self, *args, host=CTL_HOST):
        """meshctl in the background (inside `host`); dies with the test."""
        argv = (self.lab.wrap(host) + mt.pdeathsig_prefix() + [mt.meshctl_bin()]
                + [str(a) for a in args] + self.disc)
        mt.log("start@%d: meshctl %s" % (host, " ".join(map(str, args))))
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.lab.env,
                                start_new_session=True)


def finish(p, timeout, what):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        mt.fail("%s did not exit within %.1f s\nstdout: %s\nstderr: %s" % (
            what, timeout, out.decode(errors="replace"), err.decode(errors="replace")))
    out, err = out.decode(errors="replace"), err.decode(errors="replace")
    mt.expect(sanitizer_free(err), "%s: sanitizer report:\n%s" % (what, err))
    return p.returncode, out, err


class Bg:
    """A background meshctl whose end time is recorded as it happens."""

    def __init__(self, p, what):
        self.p, self.what, self.t_end = p, what, None
        self._t = threading.Thread(target=self._wait, daemon=True)
        self._t.start()

    def _wait(self):
        self.p.wait()
        self.t_end = time.monotonic()

    def finish(self, timeout):
        res = finish(self.p, timeout, self.what)
        self._t.join(2)
        return res


def from_lines(out):
    """[(peer, reply JSON)] from `--from` output (NAME: REPLY per line)."""
    res = []
    for line in out.splitlines():
        name, sep, rest = line.partition(": ")
        mt.expect(sep, "--from line without 'NAME: ': %r" % line)
        try:
            res.append((name, json.loads(rest)))
        except ValueError:
            mt.fail("--from line: the reply is not JSON: %r" % line)
    return res


def main():
    meshd = mt.meshd_bin()
    helptext = subprocess.run([meshd, "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT).stdout.decode(errors="replace")
    if "--exec-agent" not in helptext:
        raise mt.Skip("this meshd hosts no agents (no --exec-agent in meshd --help)")
    plugin = os.path.join(mt.build_dir() or "", "agents", "examples", "plugin_hello.so")
    if not os.path.isfile(plugin):
        mt.note("no plugin at %s: the plugin check is skipped" % plugin)
        plugin = None

    port = mt.free_udp_port()
    t_start = time.monotonic()
    with mt.Netlab(4) as lab:
        ctl = Ctl(lab, port)
        mt.check("meshd on hosts 1..3 (eth0, beacon port %d, evasive %d, expired %d, "
                 "ping %d ms) with the shell and python exec agents" % (
                     port, EVASIVE_MS, EXPIRED_MS, PING_MS))
        common = ["--iface", "eth0", "--beacon-port", port, "--beacon-interval", BEACON_MS,
                  "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS,
                  "--ping-interval", PING_MS,
                  "--exec-agent", "shell=" + os.path.join(EXAMPLES, "shell"),
                  "--exec-agent", "python=" + os.path.join(EXAMPLES, "python")]
        nodes = []
        for i, name in enumerate(NAMES, 1):
            extra = ["--plugin", "hello=" + plugin] if plugin and i == 3 else []
            nodes.append(lab.spawn_meshd(i, name, *common, *extra))
        for i, p in enumerate(nodes, 1):
            p.ready()
            mt.expect(str(p.info.get("endpoint", "")).startswith("tcp://%s:" % lab.addr(i)),
                      "%s: endpoint %r, expected on %s" % (p.name, p.info.get("endpoint"),
                                                           lab.addr(i)))
        n1, n2, n3 = nodes
        mt.all_see_all(nodes, timeout=20)
        mt.ok("ready and all see all: %s" % ", ".join(p.info["endpoint"] for p in nodes))

        mt.check("services --json (from host 4): /shell/upper on n1, n2, n3, all alive")
        want = {("/shell/upper", n) for n in NAMES} | {("/python/picky", n) for n in NAMES} | \
            {("/sys/ping", n) for n in NAMES}
        if plugin:
            want.add(("/hello/greet", "n3"))
        deadline = time.monotonic() + 15
        while True:
            lst = ctl.json("services", "--json")
            got = {(x.get("path"), x.get("peer")) for x in lst}
            if want <= got or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        mt.expect(want <= got, "services --json lacks %s:\n%s" % (sorted(want - got), lst))
        ids = {p.name: p.id.upper() for p in nodes}
        for x in lst:
            if x.get("path") == "/shell/upper":
                mt.expect(x.get("alive") is True and str(x.get("id")).upper() == ids[x["peer"]],
                          "services entry %r: not alive or wrong id (ids %r)" % (x, ids))
        mt.expect(not [x for x in lst if x.get("path") == "/hello/greet" and x["peer"] != "n3"],
                  "/hello/greet offered by another host than n3: %r" % lst)
        mt.ok("%d rows" % len(lst))

        mt.check("peers --json: n1..n3 with their ids and 10.213.0.i endpoints")
        lst = ctl.json("peers", "--json")
        by_name = {}
        for x in lst:
            by_name.setdefault(x.get("name"), []).append(x)
        for i, p in enumerate(nodes, 1):
            mt.expect(len(by_name.get(p.name, [])) == 1,
                      "peers --json: %d entries named %s: %r" % (
                          len(by_name.get(p.name, [])), p.name, lst))
            x = by_name[p.name][0]
            mt.expect(str(x.get("id")).upper() == p.id.upper(), "peers: %s has id %r, not %s" % (
                p.name, x.get("id"), p.id))
            mt.expect(x.get("endpoint") == p.info["endpoint"] and
                      x["endpoint"].startswith("tcp://%s:" % lab.addr(i)),
                      "peers: %s at %r, meshd said %r" % (p.name, x.get("endpoint"),
                                                          p.info["endpoint"]))
            mt.expect(x.get("headers", {}).get("X-MESH") == "1",
                      "peers: %s headers %r" % (p.name, x.get("headers")))
        mt.ok(", ".join("%s %s" % (x["name"], x["endpoint"]) for x in lst))

        mt.check("call /shell/upper: upper-cased reply, --from names one of n1..n3")
        out, _, _ = ctl.expect(0, "call", "/shell/upper", '{"text": "across the lan", "n": 7}',
                               "--from")
        r = from_lines(out)
        mt.expect(len(r) == 1 and r[0][0] in NAMES and
                  r[0][1] == {"text": "ACROSS THE LAN", "n": 7}, "call --from: %r" % out)
        out, _, _ = ctl.expect(0, "call", "/shell/upper", "-", stdin='["stdin", {"k": "v"}]')
        mt.expect(json.loads(out) == ["STDIN", {"k": "V"}], "call - (stdin): %r" % out)
        mt.ok("answered by %s; stdin payload too" % r[0][0])

        mt.check("round_robin --count 3 --from: three different hosts")
        out, _, _ = ctl.expect(0, "call", "/shell/upper", '"rr"', "--selector", "round_robin",
                               "--count", 3, "--from")
        r = from_lines(out)
        mt.expect(len(r) == 3 and sorted(n for n, _ in r) == list(NAMES) and
                  all(v == "RR" for _, v in r), "round_robin --count 3:\n%s" % out)
        mt.ok("order %s" % [n for n, _ in r])

        mt.check("--selector direct --peer n2 (and --peer <id of n3>): that host answers")
        for _ in range(2):
            out, _, _ = ctl.expect(0, "call", "/shell/upper", '"d"', "--selector", "direct",
                                   "--peer", "n2", "--from")
            mt.expect(from_lines(out) == [("n2", "D")], "direct n2: %r" % out)
        info = ctl.json("call", "/sys/info", "--peer", n3.id)
        mt.expect(info.get("name") == "n3" and info.get("endpoint") == n3.info["endpoint"],
                  "/sys/info --peer <n3 id>: %r" % info)
        mt.ok("n2 twice; /sys/info of n3 by id, endpoint %s" % info.get("endpoint"))

        if plugin:
            mt.check("plugin agent on n3 only: /hello/greet answered by n3, greeting the caller")
            out, _, _ = ctl.expect(0, "call", "/hello/greet", "--from")
            r = from_lines(out)
            mt.expect(len(r) == 1 and r[0][0] == "n3" and isinstance(r[0][1], str) and
                      r[0][1].startswith("hello, meshctl-"), "/hello/greet: %r" % out)
            mt.ok(r[0][1])

        mt.check("fanout /shell/env: 3 answers, each run for this meshctl")
        doc = ctl.json("fanout", "/shell/env", "--json")
        reps = doc.get("replies", [])
        mt.expect(sorted(x.get("peer") for x in reps) == list(NAMES) and
                  doc.get("missing") == [], "fanout /shell/env --json: %r" % doc)
        for x in reps:
            env = x.get("data") or {}
            mt.expect(env.get("MESH_AGENT") == "shell" and env.get("MESH_METHOD") == "env" and
                      str(env.get("MESH_CALLER", "")).startswith("meshctl-") and
                      str(x.get("id")).upper() == ids[x["peer"]],
                      "fanout reply of %s: %r" % (x.get("peer"), x))
        mt.expect(len({x["data"]["MESH_CALLER"] for x in reps}) == 1,
                  "fanout: MESH_CALLER differs: %r" % [x["data"]["MESH_CALLER"] for x in reps])
        out, _, _ = ctl.expect(0, "fanout", "/sys/ping")
        lines = sorted(out.splitlines())
        mt.expect(lines == ['n1: "pong"', 'n2: "pong"', 'n3: "pong"'], "fanout /sys/ping:\n%s"
                  % out)
        mt.ok("n1, n2, n3 answered (caller %s); table output too" % reps[0]["data"]["MESH_CALLER"])

        mt.check("pub/sub across hosts: sub in host 1 <- pub from host 4, "
                 "sub in host 4 <- pub from host 3")
        sub1 = ctl.spawn("sub", "/lan/", "--prefix", "--count", 1, host=1)
        sub4 = ctl.spawn("sub", "/lan/four", "--count", 1, host=4)
        tries = {}
        for topic, host, data in (("/lan/one", 4, {"to": "host1"}),
                                  ("/lan/four", 3, {"to": "host4"})):
            deadline = time.monotonic() + 15
            tries[topic] = 0
            while True:
                tries[topic] += 1
                argv = (lab.wrap(host) + [mt.meshctl_bin(), "pub", topic, json.dumps(data),
                                          "--wait", 2000] + ctl.disc)
                mt.log("run@%d: meshctl pub %s" % (host, topic))
                r = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=lab.env, timeout=30)
                err = r.stderr.decode(errors="replace")
                mt.expect(sanitizer_free(err), "pub: sanitizer report:\n%s" % err)
                if r.returncode == 0 or time.monotonic() > deadline:
                    break
                mt.expect(r.returncode == 3, "pub %s from host %d: exit %d\n%s" % (
                    topic, host, r.returncode, err))
            mt.expect(r.returncode == 0, "pub %s from host %d never found a subscriber" % (
                topic, host))
        msgs = {}
        for name, p, topic, data in (("sub@1", sub1, "/lan/one", {"to": "host1"}),
                                     ("sub@4", sub4, "/lan/four", {"to": "host4"})):
            rc, out, err = finish(p, 10, "meshctl sub (%s)" % name)
            mt.expect(rc == 0, "%s: exit %d\n%s" % (name, rc, err))
            got = [json.loads(l) for l in out.splitlines()]
            mt.expect(len(got) == 1 and got[0].get("topic") == topic and
                      got[0].get("data") == data and
                      str(got[0].get("from", "")).startswith("meshctl-") and
                      len(got[0].get("from_id", "")) == 32, "%s got %r" % (name, got))
            msgs[name] = got[0]["from"]
        mt.ok("delivered both ways (pub tries %r; publishers %r)" % (tries, msgs))

        mt.check("/python/picky: the first attempt is rejected, another host answers attempt 2")
        for _ in range(2):
            out, _, _ = ctl.expect(0, "call", "/python/picky", '"x"', "--from")
            r = from_lines(out)
            mt.expect(len(r) == 1 and r[0][0] in NAMES and isinstance(r[0][1], dict) and
                      r[0][1].get("attempt") == 2 and
                      str(r[0][1].get("caller", "")).startswith("meshctl-"),
                      "picky: %r" % out)
        mt.ok("attempt 2, answered by %s" % r[0][0])

        mt.check("exit codes across the network: no providers 3, remote error 5, timeout 4")
        _, err, dt3 = ctl.expect(3, "call", "/no/such/path", "--wait", 1000)
        mt.expect("no provider" in err, "no providers: stderr %r" % err)
        _, err, _ = ctl.expect(5, "call", "/shell/crash", '"x"')
        mt.expect("the disk is on fire" in err and "remote error from n" in err,
                  "crash: stderr %r" % err)
        _, err, dt4 = ctl.expect(4, "call", "/shell/hang", "--timeout", 700)
        mt.expect(0.65 <= dt4 < 5, "hang --timeout 700 ended after %.2f s" % dt4)
        _, err5, _ = ctl.expect(5, "fanout", "/shell/crash")
        mt.ok("3 after %.2f s; 5 with the remote message; 4 after %.2f s; fanout of crash 5"
              % (dt3, dt4))

        mt.check("meshctl call /sys/ping from host 4, process start to exit (printed only)")
        base = []
        for _ in range(10):
            t = time.monotonic()
            subprocess.run(lab.wrap(CTL_HOST) + ["true"], env=lab.env, check=True)
            base.append(time.monotonic() - t)
        times = [ctl.expect(0, "call", "/sys/ping")[2] for _ in range(10)]
        up_times = [ctl.expect(0, "call", "/shell/upper", '"t"')[2] for _ in range(5)]
        mt.log("TIMING meshctl call /sys/ping (netlab exec 4, across the bridge): median "
               "%.1f ms, min %.1f, max %.1f (n=10); `netlab exec 4 true` alone: median %.1f ms;"
               " call /shell/upper (exec agent, jq): median %.1f ms (n=5)" % (
                   1000 * statistics.median(times), 1000 * min(times), 1000 * max(times),
                   1000 * statistics.median(base), 1000 * statistics.median(up_times)))
        mt.expect(statistics.median(times) < 2.0,
                  "meshctl call /sys/ping median %.2f s across the LAN: it seems to wait for "
                  "beacons rather than act on its own" % statistics.median(times))

        mt.check("a key that the key selector sends to n2 (for the idempotent call below)")
        key = None
        for k in range(24):
            out, _, _ = ctl.expect(0, "call", "/shell/slow", "0", "--key", "k%d" % k, "--from")
            if from_lines(out)[0][0] == "n2":
                key = "k%d" % k
                break
        mt.expect(key, "no key among k0..k23 goes to n2")
        mt.ok("--key %s -> n2" % key)

        mt.check("cut host 2 with two calls in flight to n2: --peer n2 exits 6 (peer lost) after "
                 "about meshctl's ping timeout (%.0f s); --idempotent --key %s moves on and "
                 "succeeds on n1/n3" % (MESHCTL_PING_TIMEOUT_S, key))
        m2 = n2.mark()
        lost = Bg(ctl.spawn("call", "/shell/slow", '{"seconds": 8}', "--peer", "n2",
                            "--timeout", 20000), "call /shell/slow --peer n2")
        idem = Bg(ctl.spawn("call", "/shell/slow", '{"seconds": 1}', "--key", key,
                            "--idempotent", "--from", "--timeout", 20000),
                  "call /shell/slow --idempotent --key %s" % key)
        for bg in (lost, idem):
            cname = "meshctl-%d" % bg.p.pid
            n2.wait_ev("enter", since=m2, name=cname, timeout=10,
                       what="n2 sees the caller %s (%s)" % (cname, bg.what))
        time.sleep(0.4)  # the requests reach n2 and its exec workers start
        for bg in (lost, idem):
            if bg.p.poll() is not None:
                mt.fail("%s ended before the cut: %r" % (bg.what, bg.finish(1)))
        marks = {p.name: p.mark() for p in nodes}
        t_cut = lab.cut(2)

        mt.check("while cut: calls from host 4 keep succeeding, answered by n1/n3 only "
                 "(before and after n1/n3 expire n2)")
        answered = []
        ncalls = 0
        window_end = t_cut + EXPIRED_MS / 1000 + 1.5
        before_expiry = 0
        while time.monotonic() < window_end:
            t = time.monotonic()
            out, err, _ = ctl.expect(0, "call", "/shell/upper", '"cut"', "--selector",
                                     "round_robin", "--count", 2, "--from",
                                     why="calls during the cut of host 2")
            r = from_lines(out)
            mt.expect(len(r) == 2 and all(n in ("n1", "n3") and v == "CUT" for n, v in r),
                      "during the cut (+%.2f s): %r" % (t - t_cut, out))
            answered += [n for n, _ in r]
            ncalls += 1
            if not n1.find_ev("exit", since=marks["n1"], id=n2.id):
                before_expiry += 1
        mt.expect(before_expiry >= 1,
                  "no call ran while n1 still counted n2 as a member (%d calls)" % ncalls)
        mt.expect(set(answered) == {"n1", "n3"}, "answers during the cut: %r" % answered)
        mt.ok("%d meshctl runs (%d before n1 expired n2), %d answers, all from n1/n3"
              % (ncalls, before_expiry, len(answered)))

        rc, out, err = lost.finish(20)
        dt6 = lost.t_end - t_cut
        mt.expect(rc == 6, "call in flight to the cut n2: exit %d, expected 6 (peer lost)\n"
                  "stdout: %s\nstderr: %s" % (rc, out, err))
        mt.expect(dt6 < MESHCTL_PING_TIMEOUT_S + 5,
                  "the call in flight to n2 failed %.2f s after the cut" % dt6)
        mt.ok("--peer n2: exit 6 %.2f s after the cut: %s" % (
            dt6, (err.strip().splitlines() or [""])[-1]))
        rc, out, err = idem.finish(20)
        dti = idem.t_end - t_cut
        mt.expect(rc == 0, "idempotent call in flight to the cut n2: exit %d, expected 0\n"
                  "stdout: %s\nstderr: %s" % (rc, out, err))
        r = from_lines(out)
        mt.expect(len(r) == 1 and r[0][0] in ("n1", "n3") and r[0][1] == {"slept": 1},
                  "idempotent call: %r" % out)
        mt.ok("--idempotent: answered by %s %.2f s after the cut" % (r[0][0], dti))

        mt.check("n1 and n3 report n2 exit (expired) within %d ms + margin" % EXPIRED_MS)
        limit = EXPIRED_MS / 1000 + 3.0
        for obs in (n1, n3):
            e = mt.wait_exit_of(obs, n2, limit + 5, since=marks[obs.name])
            mt.expect(e.get("reason") == "expired", "%s: exit of n2 has reason %r" % (
                obs.name, e.get("reason")))
            mt.expect(e["_t"] - t_cut <= limit, "%s: n2 expired after %.2f s" % (
                obs.name, e["_t"] - t_cut))
            mt.ok("%s: n2 expired after %.2f s" % (obs.name, e["_t"] - t_cut))
        mt.expect(n2.alive(), "n2 died while cut off\n%s" % n2.describe())
        _, err, _ = ctl.expect(3, "call", "/shell/upper", '"x"', "--peer", "n2", "--wait", 800,
                               why="n2 is cut off")
        mt.ok("--peer n2 -> 3 while cut")

        mt.check("heal host 2: n2 answers again (direct), and round_robin reaches all three")
        marks = {p.name: p.mark() for p in nodes}
        t_heal = lab.heal(2)
        deadline = t_heal + 15
        tries = 0
        while True:
            tries += 1
            rc, out, err, _ = ctl.run("call", "/shell/upper", '"healed"', "--peer", "n2",
                                      "--from", "--wait", 2000, debug=True)
            if rc == 0 or time.monotonic() > deadline:
                break
            mt.expect(rc == 3, "call --peer n2 after heal: exit %d\n%s" % (rc, err))
        mt.expect(rc == 0 and from_lines(out) == [("n2", "HEALED")],
                  "n2 did not answer within 15 s of heal (last exit %d)\nstdout: %s\nstderr: %s"
                  % (rc, out, err))
        dt_back = time.monotonic() - t_heal
        timeline = [l for l in err.splitlines() if l.startswith("meshctl: +")]
        mt.log("discovery timeline of that call (MESH_DEBUG):\n    " + "\n    ".join(timeline))
        e = mt.wait_enter(n1, n2, 15, since=marks["n1"])
        mt.ok("n2 answered %.2f s after heal (%d tries); n1 saw n2 re-enter after %.2f s"
              % (dt_back, tries, e["_t"] - t_heal))
        out, _, _ = ctl.expect(0, "call", "/shell/upper", '"rr"', "--selector", "round_robin",
                               "--count", 3, "--from")
        r = from_lines(out)
        mt.expect(sorted(n for n, _ in r) == list(NAMES), "round_robin after heal:\n%s" % out)
        mt.ok("round_robin: %s" % [n for n, _ in r])

        mt.check("SIGTERM: every meshd exits 0; no sanitizer report")
        for p in nodes:
            p.term()
        for p in nodes:
            rc = p.wait_exit(15)
            mt.expect(rc == 0, "%s: exit %s after SIGTERM\n%s" % (p.name, rc, p.describe()))
        for p in nodes:
            bad = [l for l in p.stderr_lines if not sanitizer_free(l)]
            mt.expect(not bad, "%s: sanitizer report on stderr:\n%s" % (p.name, p.describe()))
        mt.ok("exit 0 x3")
    mt.log("TIMING total %.1f s" % (time.monotonic() - t_start))


if __name__ == "__main__":
    mt.run(main)
