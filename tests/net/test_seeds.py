#!/usr/bin/env python3
"""Seed discovery without UDP: three meshd with --no-beacon and fixed inbox
ports; B seeds A, C seeds B. All three must end fully connected, A<->C only
through gossip. `meshctl peers --no-beacon --seed A` lists all three."""

import time

import meshtest as mt

EVASIVE_MS = 1000
EXPIRED_MS = 3000


def main():
    pa, pb, pc = mt.free_tcp_port(), mt.free_tcp_port(), mt.free_tcp_port()
    ep = {n: "tcp://127.0.0.1:%d" % p for n, p in (("A", pa), ("B", pb), ("C", pc))}
    mt.log("inbox ports A=%d B=%d C=%d" % (pa, pb, pc))
    timers = ["--no-beacon", "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS]

    mt.check("A, B (seed A), C (seed B) start; endpoints are the given ports")
    a = mt.spawn_meshd("A", *timers, "--port", pa)
    a.ready()
    b = mt.spawn_meshd("B", *timers, "--port", pb, "--seed", ep["A"])
    b.ready()
    c = mt.spawn_meshd("C", *timers, "--port", pc, "--seed", ep["B"])
    c.ready()
    nodes = [a, b, c]
    for p in nodes:
        mt.expect(p.info.get("endpoint") == ep[p.name],
                  "%s: ready endpoint %r, expected %s" % (p.name, p.info.get("endpoint"), ep[p.name]))
    mt.ok("ready at %s" % ", ".join(ep[p.name] for p in nodes))

    mt.check("fully connected: each sees the other two (A<->C only via gossip)")
    seen = mt.all_see_all(nodes, timeout=20)
    for (obs, who), e in seen.items():
        mt.expect(e.get("endpoint") == ep[who], "%s sees %s at %r, expected %s" % (
            obs, who, e.get("endpoint"), ep[who]))
    mt.ok("A saw C after %.2f s, C saw A after %.2f s" % (
        seen[("A", "C")]["_t"] - c.t_start, seen[("C", "A")]["_t"] - c.t_start))

    mt.check("whisper A -> C and C -> A over the gossiped link: exact bytes")
    for src, dst in ((a, c), (c, a)):
        data = mt.payload("%s-to-%s" % (src.name, dst.name))
        m = dst.mark()
        src.whisper(dst.id, data)
        e = dst.wait_ev("whisper", since=m, id=src.id, name=src.name)
        mt.expect(mt.unb64(e["data"]) == data, "%s got %r" % (dst.name, mt.unb64(e["data"])))
    mt.ok("both directions")

    mt.check("peers command on C lists A and B")
    m = c.mark()
    c.send({"peers": True})
    e = c.wait_ev("peers", since=m)
    got = {str(x.get("id", "")).lower() for x in e.get("peers", [])}
    mt.expect(got == {a.id.lower(), b.id.lower()}, "C's peers: %s" % e.get("peers"))
    mt.ok("A and B")

    mt.check("meshctl peers --no-beacon --seed A --json lists A, B and C (not itself)")
    lst = mt.meshctl_json("peers", "--no-beacon", "--seed", ep["A"], "--json", "--wait", 6000)
    mt.expect(isinstance(lst, list), "meshctl output is not a JSON array: %r" % lst)
    by_id = {str(x.get("id", "")).lower(): x for x in lst}
    mt.expect(set(by_id) == {p.id.lower() for p in nodes},
              "meshctl listed %s, expected exactly A, B, C %s" % (
                  [(x.get("name"), x.get("id")) for x in lst], [p.id for p in nodes]))
    for p in nodes:
        x = by_id[p.id.lower()]
        mt.expect(x.get("name") == p.name and x.get("endpoint") == ep[p.name],
                  "meshctl entry for %s: %r" % (p.name, x))
    mt.ok("3 entries with names and endpoints")

    mt.check("SIGKILL B (the bridge): A and C report B expired, and keep their direct link")
    ma, mc = a.mark(), c.mark()
    t = time.monotonic()
    b.kill()
    limit = EXPIRED_MS / 1000 + 3.0
    for obs, m in ((a, ma), (c, mc)):
        e = mt.wait_exit_of(obs, b, limit + 10, since=m)
        dt = e["_t"] - t
        mt.expect(e.get("reason") == "expired", "%s: exit of B reason %r, expected expired" % (
            obs.name, e.get("reason")))
        mt.expect(dt <= limit, "%s: B expired after %.2f s, expected within %.1f s" % (
            obs.name, dt, limit))
        mt.ok("%s: B expired after %.2f s" % (obs.name, dt))
    a.expect_none(lambda e: e.get("ev") == "exit" and mt.same_id(e.get("id"), c.id), 0,
                  "exit of C on A", since=ma)
    c.expect_none(lambda e: e.get("ev") == "exit" and mt.same_id(e.get("id"), a.id), 0,
                  "exit of A on C", since=mc)
    data = mt.payload("A-to-C-after-B")
    m = c.mark()
    a.whisper(c.id, data)
    e = c.wait_ev("whisper", since=m, id=a.id)
    mt.expect(mt.unb64(e["data"]) == data, "C got %r" % mt.unb64(e["data"]))
    mt.ok("A<->C still connected, whisper works")

    mt.check("no ghost: dead B does not re-enter on A or C (6 s, beyond the seed retry)")
    a.expect_none(lambda e: e.get("ev") == "enter" and mt.same_id(e.get("id"), b.id), 6.0,
                  "re-enter of dead B on A", since=ma)
    c.expect_none(lambda e: e.get("ev") == "enter" and mt.same_id(e.get("id"), b.id), 0,
                  "re-enter of dead B on C", since=mc)
    mt.ok("none")

    mt.check("SIGTERM C: A reports C's exit; C exits 0")
    ma = a.mark()
    t = c.term()
    e = mt.wait_exit_of(a, c, EXPIRED_MS / 1000 + 8, since=ma)
    dt = e["_t"] - t
    if e.get("reason") != "left":
        mt.note("A: exit of C after %.2f s has reason %r (no clean leave without beacons?)"
                % (dt, e.get("reason")))
    else:
        mt.ok("A: exit left after %.2f s" % dt)
    rc = c.wait_exit(10)
    mt.expect(rc == 0, "C exit code %s\n%s" % (rc, c.describe()))
    mt.ok("C exited 0")

    mt.check("a seed that comes up late: E seeds F's port before F runs; they meet")
    pf = mt.free_tcp_port()
    e_ = mt.spawn_meshd("E", *timers, "--seed", "tcp://127.0.0.1:%d" % pf)
    e_.ready()
    time.sleep(1.0)
    f = mt.spawn_meshd("F", *timers, "--port", pf)
    f.ready()
    t = time.monotonic()
    ev = mt.wait_enter(e_, f, timeout=20)
    mt.wait_enter(f, e_, timeout=20)
    mt.ok("E saw F %.2f s after F was ready" % (ev["_t"] - t))

    mt.check("A, E, F stop cleanly")
    for p in (a, e_, f):
        p.stop()
    mt.ok("exit 0")


if __name__ == "__main__":
    mt.run(main)
