#!/usr/bin/env python3
"""A provider killed with SIGKILL during a stream of calls: no call hangs,
idempotent calls all succeed.

On loopback, with a free beacon port: providers A and B (mesh_node --serve
/svc/work --delay-ms 20) and a caller C making N calls, WINDOW outstanding,
round_robin. While the calls run, A is SIGKILLed. Run twice:
  (a) non-idempotent: every call completes, each either OK or PEERLOST, and
      the PEERLOST ones fail fast (when A expires, well before their timeout);
  (b) --idempotent: all N calls succeed, those caught on A retried on B.
Both: C exits 0 in bounded time, ok + errors == N, no call took longer than
its timeout + a margin, B served calls after the kill, no sanitizer report.

The ZRE timers are shortened (a SIGKILLed peer is only noticed when it goes
silent past expired) so that A's loss comes well before a call's deadline."""

import os
import signal
import time

import meshtest as mt

N = 400
WINDOW = 4
DELAY_MS = 20
TIMEOUT_MS = 8000        # per call (mesh_call_opts_t.timeout_ms)
MARGIN_MS = 1500         # a call's completion may lag its deadline by this much
BEACON_MS = 250
EVASIVE_MS = 1000
EXPIRED_MS = 2000        # A is declared lost 2-3 s after its last word (reap every evasive)
PING_MS = 250
PING_TIMEOUT_MS = 750    # silent this long: out of dispatch
# A call lost with A fails when A expires: after at most expired + a reap period + the
# ping interval (its last word) + slack; far below TIMEOUT_MS, so "fast" is unambiguous.
LOST_FAST_MS = EXPIRED_MS + EVASIVE_MS + PING_MS + 1500
KILL_AFTER = 60          # calls completed before A is killed
CALLER_MAX_S = 90        # mesh_node's own hard deadline (exit 3)
CALLER_WAIT_S = 60       # the test's bound on the caller's run


# ----------------------------------------------------------------------------------------------
# mesh_node processes (plain text lines; the harness stores each as {"ev": "_raw", "line": ...})


def mesh_node_bin():
    p = os.environ.get("MESH_NODE")
    if not p:
        b = mt.build_dir()
        if not b:
            mt.fail("no build directory: set MESH_BUILD_DIR or MESH_NODE")
        p = os.path.join(b, "tests", "net", "mesh_node")
    if not (os.path.isfile(p) and os.access(p, os.X_OK)):
        mt.fail("mesh_node not found or not executable: %s (set MESH_NODE or MESH_BUILD_DIR)" % p)
    return p


def words(e):
    return e.get("line", "").split() if e.get("ev") == "_raw" else []


def is_line(kind):
    return lambda e: words(e)[:1] == [kind]


def lines(p, kind, since=0):
    """[(time, words)] of p's lines starting with kind."""
    return [(e["_t"], words(e)) for e in p.find(is_line(kind), since)]


DEFAULT_TIMERS = False    # scenario (c): mesh's own defaults (expired 30 s, ping timeout 3 s)


def timers(port):
    if DEFAULT_TIMERS:
        return ["--beacon-port", port, "--beacon-interval-ms", BEACON_MS]
    return ["--beacon-port", port, "--beacon-interval-ms", BEACON_MS,
            "--evasive-ms", EVASIVE_MS, "--expired-ms", EXPIRED_MS,
            "--ping-interval-ms", PING_MS, "--ping-timeout-ms", PING_TIMEOUT_MS]


def spawn_node(name, port, *args):
    argv = [mesh_node_bin(), "--name", name] + [str(a) for a in timers(port)] + \
        [str(a) for a in args]
    p = mt.Proc(name, argv, kind="mesh_node")
    e = p.wait_for(is_line("ready"), 20, "ready line")
    w = words(e)
    mt.expect(len(w) == 2 and len(w[1]) == 32, "%s: bad ready line %r" % (name, e.get("line")))
    p.id = w[1]
    return p


def parse_kv(ws):
    kv = {}
    for x in ws[1:]:
        k, _, v = x.partition("=")
        kv[k] = int(v)
    return kv


def no_sanitizer_report(p):
    bad = [l for l in p.stderr_lines
           if "AddressSanitizer" in l or "LeakSanitizer" in l or "runtime error:" in l]
    mt.expect(not bad, "%s: sanitizer report on stderr:\n%s\n%s"
              % (p.name, "\n".join(bad[:20]), p.describe()))


# ----------------------------------------------------------------------------------------------


def scenario(label, idempotent):
    mt.log("==== %s ====" % label)
    port = mt.free_udp_port()
    mt.check("[%s] providers A and B serve /svc/work (delay %d ms), beacon port %d"
             % (label, DELAY_MS, port))
    a = spawn_node("A-" + label, port, "--serve", "/svc/work", "--delay-ms", DELAY_MS)
    time.sleep(0.2)
    b = spawn_node("B-" + label, port, "--serve", "/svc/work", "--delay-ms", DELAY_MS)
    mt.ok("A=%s B=%s" % (a.id, b.id))

    mt.check("[%s] caller C: %d calls, window %d, round_robin, timeout %d ms%s, once both "
             "providers are in its table" % (label, N, WINDOW, TIMEOUT_MS,
                                             ", idempotent" if idempotent else ""))
    args = ["--calls", N, "--path", "/svc/work", "--window", WINDOW, "--selector",
            "round_robin", "--providers", 2, "--max-s", CALLER_MAX_S]
    if not DEFAULT_TIMERS:
        args += ["--timeout-ms", TIMEOUT_MS]
    if idempotent:
        args.append("--idempotent")
    t_start = time.monotonic()
    c = spawn_node("C-" + label, port, *args)
    c.wait_for(is_line("providers"), 20, "providers line (A and B in C's routing table)")
    mt.ok("calls started")

    mt.check("[%s] once call %d has completed, with A serving: SIGKILL A" % (label, KILL_AFTER))
    c.wait_for(lambda e: is_line("call")(e) and int(words(e)[1]) >= KILL_AFTER, 30,
               "call %d completed" % KILL_AFTER)
    served_a = len(lines(a, "served"))
    mt.expect(served_a > 0, "A served nothing before the kill:\n%s" % a.describe())
    mark_b = b.mark()
    mark_c = c.mark()
    t_kill = time.monotonic()
    a.kill()
    done_before = len(lines(c, "call"))
    mt.ok("A killed (rc %s) after serving %d; C had %d calls completed"
          % (a.returncode, served_a, done_before))

    mt.check("[%s] C finishes all %d calls and exits 0 within %d s" % (label, N, CALLER_WAIT_S))
    left = CALLER_WAIT_S - (time.monotonic() - t_start)
    e = c.wait_for(is_line("done"), max(left, 1), "done line (every call completed)")
    rc = c.wait_exit(15)
    mt.expect(rc == 0, "C: exit code %s, expected 0\n%s" % (rc, c.describe()))
    mt.expect(not c.find(is_line("timeout")), "C hit its hard deadline:\n%s" % c.describe())
    kv = parse_kv(words(e))
    calls = lines(c, "call")
    mt.ok("%s in %.1f s (%.1f s after the kill)" % (e["line"], time.monotonic() - t_start,
                                                   time.monotonic() - t_kill))

    mt.check("[%s] ok + errors == %d, one call line per call, each seq once" % (label, N))
    mt.expect(kv.get("ok", -1) + kv.get("errors", -1) == N, "done line %r" % e["line"])
    seqs = sorted(int(w[1]) for _, w in calls)
    mt.expect(seqs == list(range(1, N + 1)),
              "call lines: %d lines, seqs missing %s, repeated %s" % (
                  len(seqs), sorted(set(range(1, N + 1)) - set(seqs))[:20],
                  sorted(s for s in set(seqs) if seqs.count(s) > 1)[:20]))
    oks = [w for _, w in calls if w[2] == "OK"]
    mt.expect(len(oks) == kv["ok"], "done says ok=%d, %d OK call lines" % (kv["ok"], len(oks)))
    mis = c.find(is_line("mismatch"))
    mt.expect(not mis, "C: replies not of the form <provider>:<payload>: %s"
              % [m["line"] for m in mis[:10]])
    mt.ok("ok=%d errors=%d" % (kv["ok"], kv["errors"]))

    mt.check("[%s] no call took longer than its timeout + %d ms (max_ms %d)"
             % (label, MARGIN_MS, kv["max_ms"]))
    slow = [w for _, w in calls if int(w[4]) > TIMEOUT_MS + MARGIN_MS]
    mt.expect(not slow and kv["max_ms"] <= TIMEOUT_MS + MARGIN_MS,
              "calls slower than %d ms: %s" % (TIMEOUT_MS + MARGIN_MS, slow[:10]))
    mt.ok("max %d ms" % kv["max_ms"])

    errs = [w for _, w in calls if w[2] != "OK"]
    if idempotent:
        mt.check("[%s] every idempotent call succeeded" % label)
        mt.expect(not errs, "%d calls failed: %s" % (len(errs), [" ".join(w) for w in errs[:20]]))
        mt.expect(kv["ok"] == N, "done line %r" % e["line"])
        mt.ok("%d/%d OK" % (kv["ok"], N))

        mt.check("[%s] the calls caught on A were retried on B (B saw attempt >= 2)" % label)
        retried = [w for _, w in lines(b, "served", mark_b) if int(w[3]) >= 2]
        mt.expect(retried, "B served no retried request (attempt >= 2) after the kill:\n%s"
                  % b.describe())
        slow_ok = sorted(int(w[4]) for _, w in calls[done_before:] if w[2] == "OK")[-3:]
        mt.ok("%d retries served by B; slowest successful calls %s ms" % (len(retried), slow_ok))
    else:
        mt.check("[%s] each failed call failed with PEERLOST, fast (< %d ms, timeout %d ms), "
                 "and at least one call was caught on A" % (label, LOST_FAST_MS, TIMEOUT_MS))
        other = [w for w in errs if w[2] != "PEERLOST"]
        mt.expect(not other, "calls failed otherwise than PEERLOST: %s"
                  % [" ".join(w) for w in other[:20]])
        slow = [w for w in errs if int(w[4]) >= LOST_FAST_MS]
        mt.expect(not slow, "PEERLOST calls took >= %d ms: %s"
                  % (LOST_FAST_MS, [" ".join(w) for w in slow[:20]]))
        mt.expect(errs, "no call failed: none was caught on A? (%d calls after the kill)"
                  % (len(calls) - done_before))
        named = [w for w in errs if w[3] != a.name]
        mt.expect(not named, "PEERLOST calls not attributed to A (%s): %s"
                  % (a.name, [" ".join(w) for w in named[:10]]))
        mt.ok("%d PEERLOST (%s ms), %d OK" % (len(errs), sorted(int(w[4]) for w in errs),
                                             kv["ok"]))

    mt.check("[%s] B served calls after the kill; no call succeeded on A after A was lost"
             % label)
    after_b = lines(b, "served", mark_b)
    mt.expect(after_b, "B served nothing after the kill:\n%s" % b.describe())
    by_b_after = [w for _, w in lines(c, "call", mark_c) if w[2] == "OK" and w[3] == b.name]
    mt.expect(by_b_after, "C got no reply from B after the kill")
    # A was killed: every OK reply attributed to A must have reached C before the kill
    # (a reply from a dead process would be a ghost); allow the in-flight few.
    late_a = [w for t, w in lines(c, "call", mark_c) if w[2] == "OK" and w[3] == a.name
              and t - t_kill > 0.5]
    mt.expect(not late_a, "OK replies from A more than 0.5 s after its SIGKILL: %s"
              % [" ".join(w) for w in late_a[:10]])
    mt.ok("B served %d requests after the kill; C got %d of its replies"
          % (len(after_b), len(by_b_after)))

    mt.check("[%s] B stops cleanly on SIGTERM; no sanitizer report from B or C" % label)
    b.stop(timeout=10, expect_rc=0)
    for p in (b, c):
        no_sanitizer_report(p)
    mt.ok("clean")


def main():
    mesh_node_bin()
    scenario("non-idempotent", idempotent=False)
    scenario("idempotent", idempotent=True)
    # (c) with every timer at its default, the provider's ZRE expiry (30 s) comes long after a
    # call's deadline (5 s): calls caught on A must move on when A misses its status pings.
    global DEFAULT_TIMERS
    DEFAULT_TIMERS = True
    scenario("idempotent-default-timers", idempotent=True)


if __name__ == "__main__":
    mt.run(main)
