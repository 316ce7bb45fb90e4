#!/usr/bin/env python3
"""meshctl against real meshd processes on loopback (docs/meshctl.md).

Three meshd (A, B, C) host the built-in /sys agent and the example exec
agents (shell: crash, busy, hang...; python: wordcount, picky). Four
mesh_node processes (tests/net/mesh_node.c) serve what the agents cannot
show deterministically: FAST and FAST2 answer /t/echo and /t/fan at once
with "<name>:<payload>" (so the bytes meshctl sent can be checked), SLOW
never answers /t/slow and /t/fan, LOST never answers /t/lost and is
SIGKILLed mid-call.

Every subcommand (peers, services, call, cast, fanout, pub, sub, watch,
ping, ring), every exit code (0 ok, 1 failure, 2 usage/bad JSON, 3 no providers,
4 timeout, 5 remote error, 6 peer lost, 7 rejected), payloads from stdin,
a fan-out naming the peer that did not answer, sub receiving pub, and
meshctl leaving cleanly (meshd sees it exit with reason "left").

Beacons of meshd and mesh_node are 3 s apart: meshctl must find its target
by its own beacon (they connect to it at once), not by waiting for theirs.
"""

import base64
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import termios
import time

import meshtest as mt

BEACON_MS = 3000
EXAMPLES = os.path.join(mt.REPO, "agents", "examples")


# ----------------------------------------------------------------------------------------------
# processes


def mesh_node_bin():
    p = os.environ.get("MESH_NODE")
    if not p:
        b = mt.build_dir()
        if not b:
            mt.fail("no build directory: set MESH_BUILD_DIR or MESH_NODE")
        p = os.path.join(b, "tests", "net", "mesh_node")
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        mt.fail("mesh_node not found or not executable: %s" % p)
    return p


def words(e):
    return e.get("line", "").split() if e.get("ev") == "_raw" else []


def is_line(kind):
    return lambda e: words(e)[:1] == [kind]


def spawn_node(name, port, *args):
    argv = [mesh_node_bin(), "--name", name, "--beacon-port", str(port),
            "--beacon-interval-ms", str(BEACON_MS)] + [str(a) for a in args]
    p = mt.Proc(name, argv, kind="mesh_node")
    w = words(p.wait_for(is_line("ready"), 20, "ready line"))
    mt.expect(len(w) == 2 and len(w[1]) == 32, "%s: bad ready line %r" % (name, w))
    p.id = w[1]
    return p


def served(p, since=0):
    """Payloads p has served (its "served <payload> <from> <attempt>" lines)."""
    return [words(e)[1] for e in p.find(is_line("served"), since)]


class Ctl:
    """meshctl with the test's discovery flags."""

    def __init__(self, port):
        self.disc = ["--beacon-port", str(port)]

    def argv(self, *args):
        return [mt.meshctl_bin()] + [str(a) for a in args] + self.disc

    def run(self, *args, stdin=None, timeout=30):
        """Returns (rc, stdout, stderr, seconds)."""
        argv = self.argv(*args)
        mt.log("run: %s" % " ".join(argv))
        t = time.monotonic()
        try:
            r = subprocess.run(argv, input=stdin.encode() if isinstance(stdin, str) else stdin,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                               stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            mt.fail("meshctl %s did not finish within %d s\nstderr: %s" % (
                " ".join(map(str, args)), timeout, (exc.stderr or b"").decode(errors="replace")))
        dt = time.monotonic() - t
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if mt.VERBOSE:
            print("rc=%d %.3f s\nstdout: %s\nstderr: %s" % (r.returncode, dt, out, err))
        return r.returncode, out, err, dt

    def expect(self, want_rc, *args, stdin=None, why="", timeout=30):
        rc, out, err, dt = self.run(*args, stdin=stdin, timeout=timeout)
        mt.expect(rc == want_rc, "meshctl %s: exit %d, expected %d%s\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, args)), rc, want_rc, " (%s)" % why if why else "", out, err))
        mt.expect("AddressSanitizer" not in err and "runtime error:" not in err
                  and "LeakSanitizer" not in err,
                  "meshctl %s: sanitizer report:\n%s" % (" ".join(map(str, args)), err))
        return out, err, dt

    def json(self, *args, stdin=None):
        out, err, _ = self.expect(0, *args, stdin=stdin)
        try:
            return json.loads(out)
        except ValueError:
            mt.fail("meshctl %s: stdout is not JSON:\n%s\nstderr: %s" % (
                " ".join(map(str, args)), out, err))

    def spawn(self, *args, **kw):
        argv = self.argv(*args)
        mt.log("start: %s" % " ".join(argv))
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)


def finish(p, timeout, what):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        mt.fail("%s did not exit within %.1f s\nstdout: %s\nstderr: %s" % (
            what, timeout, out.decode(errors="replace"), err.decode(errors="replace")))
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def msgpack_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b


def unraw(v):
    mt.expect(isinstance(v, dict) and set(v) == {"$raw"}, "expected {\"$raw\": ...}: %r" % (v,))
    return base64.b64decode(v["$raw"])


# ----------------------------------------------------------------------------------------------


def main():
    meshd = mt.meshd_bin()
    helptext = subprocess.run([meshd, "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT).stdout.decode(errors="replace")
    if "--exec-agent" not in helptext:
        raise mt.Skip("this meshd hosts no agents (no --exec-agent in meshd --help)")

    port = mt.free_udp_port()
    ctl = Ctl(port)
    mt.log("beacon port %d" % port)

    mt.check("usage errors and bad JSON exit 2, before joining anything")
    r = subprocess.run([mt.meshctl_bin()], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    mt.expect(r.returncode == 2 and r.stderr, "meshctl alone: exit %d" % r.returncode)
    for args, why in [
        (("bogus",), "unknown command"),
        (("call",), "call without a path"),
        (("call", "no-slash"), "a path without /"),
        (("call", "/x", "1", "2"), "one argument too many"),
        (("call", "/x", "--selector", "bogus"), "unknown selector"),
        (("call", "/x", "--selector", "direct"), "direct without --peer"),
        (("call", "/x", "--tag", "novalue"), "a tag without ="),
        (("call", "/x", "--timeout", "0"), "timeout 0"),
        (("call", "/x", "--prefix"), "an option of another command"),
        (("peers", "--no-such-option"), "unknown option"),
        (("sub",), "sub without a pattern"),
        (("call", "/x", "{bad"), "bad JSON argument"),
        (("pub", "/t", "[1,"), "bad JSON argument (pub)"),
        (("ring", "--replicas", "2"), "ring: --replicas without a KEY"),
        (("ring", "k", "--replicas", "0"), "ring: 0 replicas"),
        (("ring", "k1", "k2"), "ring: two keys"),
    ]:
        rc, out, err, dt = ctl.run(*args)
        mt.expect(rc == 2, "meshctl %s: exit %d, expected 2 (%s)\n%s" % (
            " ".join(args), rc, why, err))
        mt.expect(err.strip(), "meshctl %s: exit 2 without a message on stderr" % " ".join(args))
    _, err, dt = ctl.expect(2, "call", "/nobody/here", "-", stdin="{\"c\": ", why="bad JSON on stdin")
    mt.expect("JSON" in err, "bad JSON on stdin: stderr does not say so: %r" % err)
    mt.expect(dt < 2.0, "bad JSON on stdin took %.2f s: it should fail before waiting" % dt)
    out, _, _ = ctl.expect(0, "--help")
    mt.expect("fanout" in out and "watch" in out, "--help does not list the commands:\n%s" % out)
    ctl.expect(1, "peers", "--iface", "nosuch0", why="no such interface")
    mt.ok("exit 2 with a message each time; bad stdin JSON fails in %.2f s; --iface nosuch0 -> 1"
          % dt)

    mt.check("3 meshd with /sys, shell and python agents; mesh_node FAST, FAST2, SLOW, LOST")
    agents = ["--exec-agent", "shell=" + os.path.join(EXAMPLES, "shell"),
              "--exec-agent", "python=" + os.path.join(EXAMPLES, "python")]
    timers = ["--beacon-port", port, "--beacon-interval", BEACON_MS]
    nodes = [mt.spawn_meshd(n, *timers, *agents) for n in ("A", "B", "C")]
    for p in nodes:
        p.ready()
    a, b, c = nodes
    fast = spawn_node("FAST", port, "--serve", "/t/echo", "--serve", "/t/fan")
    fast2 = spawn_node("FAST2", port, "--serve", "/t/echo", "--serve", "/t/fan")
    slow = spawn_node("SLOW", port, "--serve", "/t/slow", "--serve", "/t/fan",
                      "--delay-ms", 600000)
    lost = spawn_node("LOST", port, "--serve", "/t/lost", "--delay-ms", 600000)
    mt.all_see_all(nodes, timeout=20)
    mt.ok("A=%s B=%s C=%s" % (a.id, b.id, c.id))

    mt.check("services: the table and --json list every provider of every path")
    want = {("/sys/ping", n) for n in "ABC"} | {("/shell/crash", n) for n in "ABC"} | \
        {("/python/wordcount", n) for n in "ABC"} | \
        {("/t/echo", "FAST"), ("/t/echo", "FAST2"), ("/t/fan", "SLOW"), ("/t/lost", "LOST")}
    deadline = time.monotonic() + 20
    while True:
        lst = ctl.json("services", "--json")
        got = {(x.get("path"), x.get("peer")) for x in lst}
        if want <= got or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    mt.expect(want <= got, "services --json lacks %s" % sorted(want - got))
    for x in lst:
        mt.expect(isinstance(x.get("load"), (int, float)) and isinstance(x.get("tags"), list)
                  and x.get("alive") is True and len(x.get("id", "")) == 32,
                  "services --json entry: %r" % x)
    out, _, _ = ctl.expect(0, "services")
    rows = [l.split() for l in out.splitlines()]
    mt.expect(rows and rows[0] == ["PATH", "PEER", "LOAD", "TAGS", "ALIVE"],
              "services table header: %r" % (rows[:1],))
    mt.expect(["/sys/ping", "B"] in [r[:2] for r in rows[1:]] and
              ["/t/echo", "FAST2"] in [r[:2] for r in rows[1:]],
              "services table lacks rows:\n%s" % out)
    mt.ok("%d services rows; table header right" % len(lst))

    mt.check("ring: every meshd and mesh_node on it, no meshctl; shares sum to 100%; "
             "owners the same from two meshctl runs")
    members = {p.id.upper(): p.name for p in nodes + [fast, fast2, slow, lost]}
    deadline = time.monotonic() + 20
    while True:
        doc = ctl.json("ring", "--json")
        got = {str(m.get("id", "")).upper() for m in doc.get("members", [])}
        if (got == set(members) and all(m.get("agrees") is True for m in doc["members"])) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    mt.expect(got == set(members), "ring --json: members %s, expected %s" % (
        sorted(m.get("name") for m in doc.get("members", [])), sorted(members.values())))
    for m in doc["members"]:
        mt.expect(m.get("vnodes") == 1024 and m.get("agrees") is True and
                  m.get("digest") == doc.get("digest") and
                  members.get(m["id"].upper()) == m.get("name"),
                  "ring --json member %r (digest %s): not on the same ring" % (
                      m, doc.get("digest")))
    total = sum(m["share"] for m in doc["members"])
    mt.expect(abs(total - 1.0) < 1e-6, "ring --json: shares sum to %r" % total)
    mt.expect(len(doc.get("digest", "")) == 16 and doc["digest"] != "0" * 16,
              "ring --json digest %r" % doc.get("digest"))
    out, _, _ = ctl.expect(0, "ring")
    lines = out.splitlines()
    mt.expect(lines and lines[0].split() == ["ID", "NAME", "VNODES", "SHARE", "AGREES"],
              "ring table header: %r" % lines[:1])
    rows = [l.split() for l in lines[1:-1]]
    mt.expect({r[0] for r in rows} == set(members) and all(r[4] == "yes" for r in rows),
              "ring table rows:\n%s" % out)
    pct = sum(float(r[3].rstrip("%")) for r in rows)
    mt.expect(abs(pct - 100.0) < 0.1, "ring table: SHARE sums to %.2f%%\n%s" % (pct, out))
    mt.expect(lines[-1] == "digest %s, %d members" % (doc["digest"], len(members)),
              "ring table digest line %r, expected digest %s" % (lines[-1], doc["digest"]))
    runs = [ctl.json("ring", "user-42", "--replicas", 3, "--json") for _ in range(2)]
    owners = [[(o["rank"], o["role"], o["id"].upper()) for o in r.get("owners", [])] for r in runs]
    mt.expect(owners[0] == owners[1] and runs[0]["digest"] == runs[1]["digest"],
              "ring user-42: owners %r, then %r" % (owners[0], owners[1]))
    ids = [o[2] for o in owners[0]]
    mt.expect(len(ids) == 3 and len(set(ids)) == 3 and set(ids) <= set(members) and
              [o[1] for o in owners[0]] == ["owner", "replica", "replica"],
              "ring user-42 --replicas 3: %r" % owners[0])
    out, _, _ = ctl.expect(0, "ring", "user-42")
    table = [l.split() for l in out.splitlines()]
    mt.expect(table[0] == ["ROLE", "ID", "NAME"] and
              [(r[0], r[1]) for r in table[1:3]] == [("owner", ids[0]), ("replica", ids[1])] and
              len(table) == 4, "ring user-42 (2 by default) is not the start of the 3:\n%s" % out)
    mt.ok("%d members, digest %s; user-42 -> %s, then %s" % (
        len(members), doc["digest"], members[ids[0]], ", ".join(members[i] for i in ids[1:])))

    mt.check("peers: --json lists the meshd and mesh_node peers; the table has its header")
    lst = ctl.json("peers", "--json", "--wait", 5000)
    ids = {str(x.get("id", "")).upper() for x in lst}
    for p in nodes + [fast, fast2, slow, lost]:
        mt.expect(p.id.upper() in ids, "peers --json lacks %s (%s): %s" % (p.name, p.id, lst))
    out, _, _ = ctl.expect(0, "peers")
    mt.expect(out.split()[:5] == ["ID", "NAME", "ENDPOINT", "GROUPS", "HEADERS"],
              "peers table:\n%s" % out)
    mt.ok("%d peers" % len(lst))

    mt.check("call: JSON in, JSON out; the reply of /sys/info names the peer asked (--peer)")
    info = ctl.json("call", "/sys/info", "--peer", "B")
    mt.expect(isinstance(info, dict) and info.get("name") == "B", "/sys/info of B: %r" % info)
    info = ctl.json("call", "/sys/info", "--peer", c.id)
    mt.expect(info.get("name") == "C", "/sys/info --peer <C's id>: %r" % info)
    wc = ctl.json("call", "/python/wordcount", '{"text": "to be or not to be", "top": 1}')
    mt.expect(wc.get("words") == 6 and wc.get("top") in ([["to", 2]], [["be", 2]]),
              "wordcount reply: %r" % wc)
    out, _, _ = ctl.expect(0, "call", "/sys/ping", "--pretty")
    mt.expect(json.loads(out) == "pong", "/sys/ping: %r" % out)
    mt.ok("info B and C by name and id; wordcount %r" % wc)

    mt.check("call: the payload reaches the handler as msgpack (FAST echoes the bytes)")
    m = fast.mark()
    out, err, _ = ctl.expect(0, "call", "/t/echo", "--peer", "FAST", '{"a": [1, "x"]}')
    got = unraw(json.loads(out))
    mt.expect(got == b"FAST:" + b"\x81\xa1a\x92\x01\xa1x",
              "FAST echoed %r: not the msgpack of {\"a\": [1, \"x\"]}" % got)
    mt.expect("not msgpack" in err, "no warning for a reply that is not msgpack: %r" % err)
    out, _, _ = ctl.expect(0, "call", "/t/echo", "--peer", "FAST2", "--raw", "plain bytes")
    mt.expect(out == "FAST2:plain bytes", "--raw reply: %r" % out)
    mt.ok("msgpack bytes exact; --raw both ways")

    mt.check("'-' reads the payload from stdin")
    out, _, _ = ctl.expect(0, "call", "/t/echo", "--peer", "FAST", "-", stdin='{"c":1}\n')
    mt.expect(unraw(json.loads(out)) == b"FAST:\x81\xa1c\x01", "stdin payload: %r" % out)
    wc = ctl.json("call", "/python/wordcount", "-", stdin='"one two three"')
    mt.expect(wc.get("words") == 3, "wordcount from stdin: %r" % wc)
    out, _, _ = ctl.expect(0, "call", "/t/echo", "--peer", "FAST", "--raw", "-", stdin="raw in")
    mt.expect(out == "FAST:raw in", "--raw from stdin: %r" % out)
    mt.ok("JSON and raw payloads from stdin")

    mt.check("selectors: key is sticky, round_robin and random answer, a tag nobody has -> 3")
    first = ctl.json("call", "/sys/info", "--selector", "key", "--key", "user-42")["name"]
    for _ in range(2):
        again = ctl.json("call", "/sys/info", "--key", "user-42")["name"]
        mt.expect(again == first, "key user-42 went to %s, then %s" % (first, again))
    for sel in ("round_robin", "random", "least_loaded"):
        ctl.json("call", "/sys/ping", "--selector", sel, "--idempotent", "--timeout", 5000)
    _, err, dt = ctl.expect(3, "call", "/sys/ping", "--tag", "zone=nowhere", "--wait", 800)
    mt.ok("key -> %s three times; no provider with the tag (%.2f s)" % (first, dt))

    mt.check("meshctl finds its target fast (its own beacon brings the others; theirs are %d s "
             "apart)" % (BEACON_MS // 1000))
    times = [ctl.expect(0, "call", "/sys/ping")[2] for _ in range(5)]
    med = statistics.median(times)
    mt.expect(med < 1.0, "meshctl call /sys/ping: median %.3f s over 5 runs (beacons every %d s):"
              " it seems to wait for the providers' beacons" % (med, BEACON_MS // 1000))
    mt.ok("median %.3f s, max %.3f s" % (med, max(times)))

    mt.check("a rejection moves the call on: /python/picky rejects first attempts")
    r = ctl.json("call", "/python/picky", '"x"')
    mt.expect(r.get("attempt") == 2, "picky replied %r, expected attempt 2" % r)
    mt.ok("answered on attempt 2 by another peer")

    mt.check("exit codes: 3 no providers, 4 timeout, 5 remote error, 7 rejected")
    _, err, dt = ctl.expect(3, "call", "/no/such/path", "--wait", 1000)
    mt.expect("no providers" in err and 0.9 <= dt < 5, "no providers: %.2f s, %r" % (dt, err))
    ctl.expect(3, "call", "/sys/ping", "--realm", "elsewhere", "--wait", 800,
               why="no providers in another realm")
    m = slow.mark()
    _, err, dt = ctl.expect(4, "call", "/t/slow", "--timeout", 800)
    mt.expect(served(slow, m), "SLOW never received the call:\n%s" % slow.describe())
    mt.expect(0.7 <= dt < 5, "timeout 800 ms took %.2f s" % dt)
    _, err, _ = ctl.expect(5, "call", "/shell/crash")
    mt.expect("the disk is on fire" in err, "remote error message not printed: %r" % err)
    _, err, _ = ctl.expect(5, "call", "/python/wordcount", "42")
    mt.expect("TypeError" in err, "python exception not printed: %r" % err)
    _, err, _ = ctl.expect(7, "call", "/shell/busy")
    mt.expect("rejected" in err, "rejected: %r" % err)
    mt.ok("3, 3 (realm), 4 after %.2f s, 5 with the remote message, 7" % dt)

    mt.check("exit code 6: the provider is SIGKILLed while the call waits")
    m = lost.mark()
    p = ctl.spawn("call", "/t/lost", "--timeout", 30000)
    lost.wait_for(is_line("served"), 15, "the call reached LOST", since=m)
    t = time.monotonic()
    lost.kill()
    rc, out, err = finish(p, 25, "meshctl call /t/lost")
    dt = time.monotonic() - t
    mt.expect(rc == 6, "call to a killed provider: exit %d, expected 6\n%s" % (rc, err))
    mt.expect(dt < 15, "peer lost noticed after %.1f s" % dt)
    mt.ok("exit 6, %.1f s after the kill" % dt)

    mt.check("SIGINT while waiting: exit 1 at once")
    p = ctl.spawn("call", "/no/such/path", "--wait", 20000)
    time.sleep(0.5)
    t = time.monotonic()
    p.send_signal(signal.SIGINT)
    rc, _, err = finish(p, 10, "meshctl call after SIGINT")
    mt.expect(rc == 1 and time.monotonic() - t < 5, "SIGINT: exit %d\n%s" % (rc, err))
    mt.ok("exit 1")

    mt.check("cast: one provider; --all: every provider")
    m1, m2 = fast.mark(), fast2.mark()
    ctl.expect(0, "cast", "/t/echo", "--raw", "cast-one")
    ctl.expect(0, "cast", "/t/echo", "--all", "--raw", "cast-all")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        got = served(fast, m1) + served(fast2, m2)
        if got.count("cast-all") == 2 and got.count("cast-one") == 1:
            break
        time.sleep(0.1)
    mt.expect(got.count("cast-one") == 1 and got.count("cast-all") == 2,
              "served after the casts: FAST %s, FAST2 %s" % (served(fast, m1), served(fast2, m2)))
    ctl.expect(3, "cast", "/no/such/path", "--wait", 500)
    mt.ok("cast-one once, cast-all on both; no providers -> 3")

    mt.check("fanout: each answer with its peer's name, the peer that did not answer named")
    out, err, _ = ctl.expect(4, "fanout", "/t/fan", "--raw", "fan", "--timeout", 1500)
    lines = dict(l.split(": ", 1) for l in out.splitlines() if ": " in l)
    mt.expect(lines.get("FAST") == '"FAST:fan"' and lines.get("FAST2") == '"FAST2:fan"' and
              lines.get("SLOW") == "no answer", "fanout output:\n%s" % out)
    mt.expect("did not answer" in err, "fanout stderr: %r" % err)
    doc = json.loads(ctl.expect(4, "fanout", "/t/fan", "--raw", "x", "--timeout", 1000,
                                "--json")[0])
    mt.expect(sorted(r["peer"] for r in doc["replies"]) == ["FAST", "FAST2"] and
              [x["peer"] for x in doc["missing"]] == ["SLOW"] and
              doc["missing"][0]["id"].upper() == slow.id.upper(), "fanout --json: %r" % doc)
    doc = ctl.json("fanout", "/sys/info", "--json")
    mt.expect(sorted(r["peer"] for r in doc["replies"]) == ["A", "B", "C"] and
              all(r["data"]["name"] == r["peer"] for r in doc["replies"]) and
              doc["missing"] == [], "fanout /sys/info: %r" % doc)
    out, _, _ = ctl.expect(5, "fanout", "/shell/crash")
    mt.expect(out.count("error:") == 3, "fanout of crash:\n%s" % out)
    mt.ok("FAST, FAST2 answered, SLOW named; /sys/info from A, B, C; errors -> 5")

    mt.check("sub receives pub (prefix and exact); pub with no subscriber -> 3")
    sub_all = ctl.spawn("sub", "/news/", "--prefix", "--count", 2)
    sub_b = ctl.spawn("sub", "/news/b")
    deadline = time.monotonic() + 15
    while True:
        rc, _, err, _ = ctl.run("pub", "/news/a", '{"n": 1}', "--wait", 2000)
        if rc == 0 or time.monotonic() > deadline:
            break
        mt.expect(rc == 3, "pub: exit %d\n%s" % (rc, err))
    mt.expect(rc == 0, "pub /news/a never found a subscriber")
    ctl.expect(0, "pub", "/news/b", "-", stdin='["from", "stdin"]')
    ctl.expect(3, "pub", "/elsewhere", "1", "--wait", 1000, why="no subscribers")
    rc, out, err = finish(sub_all, 10, "sub --count 2")
    mt.expect(rc == 0, "sub --count 2: exit %d\n%s" % (rc, err))
    msgs = [json.loads(l) for l in out.splitlines()]
    mt.expect([(x["topic"], x["data"]) for x in msgs] ==
              [("/news/a", {"n": 1}), ("/news/b", ["from", "stdin"])] and
              all(x["from"].startswith("meshctl-") and len(x["from_id"]) == 32 for x in msgs),
              "sub --prefix got %r" % msgs)
    time.sleep(0.3)
    sub_b.send_signal(signal.SIGTERM)
    rc, out, err = finish(sub_b, 10, "sub /news/b after SIGTERM")
    msgs = [json.loads(l) for l in out.splitlines()]
    mt.expect(rc == 0 and [x["topic"] for x in msgs] == ["/news/b"],
              "sub /news/b: exit %d, got %r\n%s" % (rc, msgs, err))
    mt.ok("prefix sub got both in order; exact sub only /news/b, exit 0 on SIGTERM")

    mt.check("ping: round trip of /sys/ping on one peer")
    out, _, _ = ctl.expect(0, "ping", "A")
    mt.expect(out.startswith("pong from A (%s): time=" % a.id.upper()) and "ms" in out,
              "ping A: %r" % out)
    out, _, _ = ctl.expect(0, "ping", b.id, "--count", 3, "--interval", 50)
    mt.expect(out.count("pong from B") == 3 and "3 sent, 3 answered" in out, "ping -c 3:\n%s" % out)
    line = ctl.json("ping", "C", "--json")
    mt.expect(line.get("peer") == "C" and line.get("reply") == "pong" and line.get("ms") >= 0,
              "ping --json: %r" % line)
    ctl.expect(3, "ping", "nobody", "--wait", 800, why="no such peer")
    ctl.expect(3, "ping", "FAST", "--wait", 800, why="FAST offers no /sys/ping")
    mt.ok(out.splitlines()[-1])

    mt.check("watch: plain tables when stdout is not a terminal")
    out, _, _ = ctl.expect(0, "watch", "--count", 2, "--interval", 200)
    mt.expect(out.count("PATH") == 2 and out.count("PEER") == 2 and "/sys/ping" in out and
              "FAST2" in out, "watch output:\n%s" % out)
    mt.ok("2 screens")

    mt.check("watch on a terminal: full screen, quits on q")
    pid, fd = pty.fork()
    if pid != 0:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 80, 100, 0, 0))
    if pid == 0:
        try:
            os.execv(mt.meshctl_bin(), ctl.argv("watch", "--interval", 200))
        finally:
            os._exit(127)
    screen = b""
    deadline = time.monotonic() + 10
    while b"/sys/ping" not in screen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                screen += os.read(fd, 65536)
            except OSError:
                break
    os.write(fd, b"q")
    end = time.monotonic() + 10
    status = None
    while time.monotonic() < end:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                screen += os.read(fd, 65536)
            except OSError:
                pass
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        mt.fail("watch did not quit on q; screen:\n%r" % screen[-2000:])
    os.close(fd)
    mt.expect(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0,
              "watch exit status %r" % status)
    mt.expect(b"\x1b[?1049h" in screen and b"\x1b[?1049l" in screen and b"/sys/ping" in screen,
              "watch screen lacks the alternate screen or the services: %r" % screen[-2000:])
    mt.ok("drew the services, left the alternate screen, exit 0")

    mt.check("meshctl leaves cleanly: meshd A sees it enter, then exit with reason left")
    ma = a.mark()
    p = ctl.spawn("call", "/sys/ping", "--peer", "A")
    rc, out, err = finish(p, 15, "meshctl call")
    mt.expect(rc == 0, "call: exit %d\n%s" % (rc, err))
    name = "meshctl-%d" % p.pid
    a.wait_ev("enter", since=ma, name=name, what="enter of %s" % name)
    e = a.wait_ev("exit", since=ma, name=name, what="exit of %s" % name, timeout=10)
    mt.expect(e.get("reason") == "left", "A: exit of %s with reason %r" % (name, e.get("reason")))
    mt.ok("%s: enter, exit left" % name)

    for p in nodes:
        p.stop()
    for p in (fast, fast2, slow):
        p.term()
        mt.expect(p.wait_exit(10) == 0, "%s did not stop cleanly\n%s" % (p.name, p.describe()))


if __name__ == "__main__":
    mt.run(main)
