#!/usr/bin/env python3
"""Realms and foreign ZRE peers: only mesh members of the caller's realm are
ever chosen.

(a) On loopback, with a free beacon port: mesh_node P serves /svc/x; two
    zyre.js peers (shared/interop/zre-peer.js) join the realm's ZRE group
    mesh:default: Z (a plain ZRE peer) and ZM (says X-MESH in its HELLO, so it
    becomes a routing-table member, but offers nothing); mesh_node C calls
    /svc/x 200 times with round_robin. Every call succeeds and is answered by
    P; neither zyre.js peer is ever sent a request; both zyre.js peers saw P
    and C connect and join mesh:default (they are peers, just never used);
    C's routing table offers /svc/x only at P, does not hold Z, and holds ZM
    (if at all) with no service.
(b) A second realm: mesh_node O in realm "other" serves /svc/x next to P
    (realm default). C (default) calls 200 times, round_robin: every answer
    comes from P, O serves nothing and is absent from C's table; a caller CO
    of realm "other" gets its answers from O only (the realm works, it is
    just separate)."""

import os
import time

import meshtest as mt

BEACON_MS = 250
N = 200
WINDOW = 4
SETTLE_MS = 1500  # after P is found, let C discover everybody else before calling
GROUP = "mesh:default"


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
    return [words(e) for e in p.find(is_line(kind), since)]


def spawn_node(name, port, *args):
    argv = [mesh_node_bin(), "--name", name, "--beacon-port", str(port),
            "--beacon-interval-ms", str(BEACON_MS)] + [str(a) for a in args]
    p = mt.Proc(name, argv, kind="mesh_node")
    e = p.wait_for(is_line("ready"), 20, "ready line")
    w = words(e)
    mt.expect(len(w) == 2 and len(w[1]) == 32, "%s: bad ready line %r" % (name, e.get("line")))
    p.id = w[1]
    return p


def spawn_zre(name, port, *args):
    z = mt.spawn_zre_peer(name, "--port-beacon", port, "--interval", BEACON_MS, *args)
    z.ready()
    return z


def no_sanitizer_report(p):
    bad = [l for l in p.stderr_lines
           if "AddressSanitizer" in l or "LeakSanitizer" in l or "runtime error:" in l]
    mt.expect(not bad, "%s: sanitizer report on stderr:\n%s\n%s"
              % (p.name, "\n".join(bad[:20]), p.describe()))


def run_caller(label, name, port, realm, expect_provider, *extra):
    """Starts a caller, waits for its done line and exit 0; checks N OK calls all
    answered by expect_provider. Returns (proc, call lines, route lines)."""
    args = ["--calls", N, "--path", "/svc/x", "--window", WINDOW, "--selector", "round_robin",
            "--settle-ms", SETTLE_MS, "--timeout-ms", 5000, "--dump-routes", "--max-s", 90]
    if realm:
        args += ["--realm", realm]
    c = spawn_node(name, port, *(args + list(extra)))
    e = c.wait_for(is_line("done"), 60, "done line")
    rc = c.wait_exit(15)
    mt.expect(rc == 0, "%s: exit code %s\n%s" % (name, rc, c.describe()))
    calls = lines(c, "call")
    mt.expect(e["line"] == "done ok=%d errors=0 max_ms=%s" % (N, words(e)[3].split("=")[1]),
              "%s: %r, expected every call OK\n%s" % (name, e["line"], c.describe()))
    bad = [" ".join(w) for w in calls if w[2] != "OK"]
    mt.expect(len(calls) == N and not bad, "%s: %d call lines, not OK: %s"
              % (name, len(calls), bad[:20]))
    others = {}
    for w in calls:
        if w[3] != expect_provider:
            others[w[3]] = others.get(w[3], 0) + 1
    mt.expect(not others, "[%s] %s: answers from %s, expected only %s"
              % (label, name, others, expect_provider))
    mis = c.find(is_line("mismatch"))
    mt.expect(not mis, "%s: replies not of the form <provider>:<payload>: %s"
              % (name, [m["line"] for m in mis[:10]]))
    return c, calls, lines(c, "route")


# ----------------------------------------------------------------------------------------------


def part_a():
    label = "zyre.js in the realm group"
    mt.log("==== %s ====" % label)
    port = mt.free_udp_port()
    mt.check("[a] mesh_node P serves /svc/x; zyre.js Z and ZM (X-MESH header) join %s; "
             "beacon port %d" % (GROUP, port))
    mt.ensure_interop()  # may skip (no node/npm, no registry)
    p = spawn_node("P", port, "--serve", "/svc/x", "--delay-ms", 2)
    time.sleep(0.3)
    z = spawn_zre("Z", port, "--group", GROUP)
    time.sleep(0.5)  # zyre.js peers probe inbox ports from 49152: start them apart
    zm = spawn_zre("ZM", port, "--group", GROUP, "--header", "X-MESH=1")
    mt.ok("P=%s Z=%s ZM=%s" % (p.id, z.id, zm.id))

    mt.check("[a] caller C: %d calls to /svc/x, round_robin, window %d, after %d ms settling: "
             "all OK, all answered by P" % (N, WINDOW, SETTLE_MS))
    c, calls, routes = run_caller("a", "caller", port, None, "P")
    mt.ok("%d/%d answered by P" % (len(calls), N))

    mt.check("[a] P served exactly the %d requests of C" % N)
    served = lines(p, "served")
    mt.expect(len(served) == N and all(w[2] == "caller" for w in served),
              "P served %d requests (expected %d from caller): %s" % (
                  len(served), N, [" ".join(w) for w in served if w[2] != "caller"][:10]))
    mt.ok("%d" % len(served))

    mt.check("[a] Z and ZM saw P and C connect and join %s" % GROUP)
    for zz in (z, zm):
        for m in (p, c):
            mt.wait_enter(zz, m, timeout=10, ev="connect")
            zz.wait_ev("join", timeout=10, id=m.id, group=GROUP,
                       what="join %s by %s" % (GROUP, m.name))
    mt.ok("both zyre.js peers list both mesh nodes in %s" % GROUP)

    mt.check("[a] no request ever reached Z or ZM (no whisper carrying a call payload)")
    for zz in (z, zm):
        reqs = [e for e in zz.find_ev("whisper") if b"caller:" in mt.unb64(e.get("data", ""))]
        mt.expect(not reqs, "%s received %d requests, e.g. %s" % (
            zz.name, len(reqs), mt.fmt_event(reqs[0]) if reqs else ""))
    w_z = z.find_ev("whisper")
    mt.expect(not w_z, "Z (no X-MESH) got whispers from the mesh: %s"
              % [mt.fmt_event(e) for e in w_z[:5]])
    mt.ok("Z got no whisper at all; ZM got %d (services/gossip), none a request"
          % len(zm.find_ev("whisper")))

    mt.check("[a] C's routing table: /svc/x only at P; Z absent; ZM a member with no service "
             "(listed, not used)")
    by_id = {}
    for w in routes:  # route <name> <id> <path|-> <alive> <self>
        by_id.setdefault(w[2].lower(), []).append(w)
    svc = [w for w in routes if w[3] == "/svc/x"]
    mt.expect(len(svc) == 1 and w_eq(svc[0][2], p.id), "C's providers of /svc/x: %s" % svc)
    mt.expect(z.id.lower() not in by_id, "Z is a member of C's routing table: %s"
              % by_id.get(z.id.lower()))
    zm_rows = by_id.get(zm.id.lower(), [])
    mt.expect(all(w[3] == "-" for w in zm_rows), "ZM offers services in C's table: %s" % zm_rows)
    if zm_rows:
        mt.ok("members %s; ZM listed with no service: %s" % (
            lines(c, "members"), [" ".join(w) for w in zm_rows]))
    else:
        mt.note("ZM (X-MESH, in %s) is not in C's routing table: %s" % (GROUP, routes))

    mt.check("[a] P stops cleanly; zyre.js peers see P leave; no sanitizer report")
    mz = z.mark()
    p.stop(timeout=10, expect_rc=0)
    z.wait_ev(("disconnect", "leave"), timeout=10, since=mz, id=p.id, what="P leaving")
    for q in (p, c):
        no_sanitizer_report(q)
    z.stop()
    zm.stop()
    mt.ok("clean")


def w_eq(a, b):
    return mt.same_id(a, b)


def part_b():
    mt.log("==== a second realm ====")
    port = mt.free_udp_port()
    mt.check("[b] O (realm other) and P (realm default) both serve /svc/x, beacon port %d" % port)
    o = spawn_node("O", port, "--realm", "other", "--serve", "/svc/x", "--delay-ms", 2)
    time.sleep(0.2)
    p = spawn_node("P", port, "--serve", "/svc/x", "--delay-ms", 2)
    mt.ok("O=%s P=%s" % (o.id, p.id))

    mt.check("[b] caller C (realm default): %d calls, round_robin: all OK, all from P" % N)
    c, calls, routes = run_caller("b", "caller", port, None, "P")
    mt.ok("%d/%d answered by P" % (len(calls), N))

    mt.check("[b] O served nothing; O is not in C's routing table")
    served_o = lines(o, "served")
    mt.expect(not served_o, "O (realm other) served %d requests of realm default: %s"
              % (len(served_o), [" ".join(w) for w in served_o[:10]]))
    rows = [w for w in routes if w_eq(w[2], o.id)]
    mt.expect(not rows, "O is in C's routing table: %s" % rows)
    mt.ok("routes of C: %s" % [" ".join(w[1:4]) for w in routes])

    mt.check("[b] caller CO (realm other): %d calls, all OK, all from O; P serves none of them"
             % N)
    served_p = len(lines(p, "served"))
    co, calls, routes = run_caller("b", "co", port, "other", "O")
    mt.expect(len(lines(p, "served")) == served_p, "P (realm default) served calls of realm other")
    rows = [w for w in routes if w_eq(w[2], p.id) or w_eq(w[2], c.id)]
    mt.expect(not rows, "realm-default peers in CO's routing table: %s" % rows)
    mt.ok("%d/%d answered by O" % (len(calls), N))

    mt.check("[b] O and P stop cleanly; no sanitizer report")
    o.stop(timeout=10, expect_rc=0)
    p.stop(timeout=10, expect_rc=0)
    for q in (o, p, c, co):
        no_sanitizer_report(q)
    mt.ok("clean")


def main():
    mesh_node_bin()
    part_b()   # no zyre.js needed: runs even where part (a) would skip
    part_a()


if __name__ == "__main__":
    mt.run(main)
