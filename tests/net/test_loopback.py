#!/usr/bin/env python3
"""Three meshd on loopback (random beacon port, short timers): discovery,
whisper, shout, join/leave, clean leave on SIGTERM, expiry after SIGKILL,
the peers command, and `meshctl peers`."""

import os
import time

import meshtest as mt

EVASIVE_MS = 1000
EXPIRED_MS = 3000
INTERVAL_MS = 200


def main():
    port = mt.free_udp_port()
    mt.log("beacon port %d" % port)
    timers = ["--beacon-port", port, "--beacon-interval", INTERVAL_MS,
              "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS]
    a = mt.spawn_meshd("A", *timers, "--header", "X-Test=1")
    b = mt.spawn_meshd("B", *timers)
    c = mt.spawn_meshd("C", *timers)
    nodes = [a, b, c]

    mt.check("each meshd prints ready with a 32-hex id and a tcp://127.0.0.1 endpoint")
    for p in nodes:
        e = p.ready()
        mt.expect(e.get("name") == p.name, "%s: ready name %r" % (p.name, e.get("name")))
        mt.expect(str(e.get("endpoint", "")).startswith("tcp://127.0.0.1:"),
                  "%s: ready endpoint %r" % (p.name, e.get("endpoint")))
    ids = {p.id.lower() for p in nodes}
    mt.expect(len(ids) == 3, "ids are not distinct: %s" % ids)
    mt.ok("ids %s" % ", ".join("%s=%s" % (p.name, p.id) for p in nodes))

    mt.check("all see each other: enter with the right id and name, no self-enter")
    seen = mt.all_see_all(nodes, timeout=15)
    for (obs, who), e in seen.items():
        who_p = {p.name: p for p in nodes}[who]
        mt.expect(e.get("endpoint") == who_p.info.get("endpoint"),
                  "%s sees %s at %r, but %s is ready at %r" % (
                      obs, who, e.get("endpoint"), who, who_p.info.get("endpoint")))
        mt.expect(isinstance(e.get("headers"), dict) and isinstance(e.get("groups"), list),
                  "%s: enter of %s lacks headers/groups: %s" % (obs, who, mt.fmt_event(e)))
    for obs in ("B", "C"):
        h = seen[(obs, "A")]["headers"]
        mt.expect(h.get("X-Test") == "1", "%s sees A's headers %r, expected X-Test=1" % (obs, h))
    mt.ok("6 enter events; endpoints match ready; A's header X-Test=1 seen by B and C")

    mt.check("idle for expired + 1.5 s: nobody reports a live peer gone")
    marks = {p.name: p.mark() for p in nodes}
    idle = EXPIRED_MS / 1000 + 1.5
    for p in nodes:
        p.expect_none(lambda e: e.get("ev") == "exit", idle if p is a else 0,
                      "exit of a live peer", since=marks[p.name])
    churn = {p.name: len(p.find_ev("evasive", since=marks[p.name])) for p in nodes}
    if any(churn.values()):
        mt.note("evasive events for live, beaconing peers during %.1f s idle: %s (liveness "
                "seems refreshed by TCP traffic only, not by beacons)" % (idle, churn))
    mt.ok("no exit events")

    mt.check("peers command: A lists B and C")
    m = a.mark()
    a.send({"peers": True})
    e = a.wait_ev("peers", since=m)
    listed = {str(x.get("id", "")).lower(): x for x in e.get("peers", [])}
    mt.expect(set(listed) == {b.id.lower(), c.id.lower()},
              "A's peers are %s, expected B and C (%s, %s)" % (list(listed), b.id, c.id))
    mt.expect(listed[b.id.lower()].get("name") == "B", "peer entry for B: %r" % listed[b.id.lower()])
    mt.ok("peers: %s" % sorted(x.get("name") for x in listed.values()))

    mt.check("whisper A -> B by id and by name: same bytes, only B receives")
    for to in (b.id, "B"):
        data = mt.payload("whisper-to-" + to)
        mb = b.mark()
        a.whisper(to, data)
        e = b.wait_ev("whisper", since=mb, id=a.id, name="A", what="whisper from A (to=%s)" % to)
        got = mt.unb64(e["data"])
        mt.expect(got == data, "B got %r, A sent %r" % (got, data))
    c.expect_none(lambda e: e.get("ev") == "whisper", 0.3, "whisper on C")
    mt.ok("exact bytes, twice")

    mt.check("whisper A -> B: 256 KiB arrives intact; a burst of 500 arrives complete, in order")
    data = os.urandom(256 * 1024)
    mb = b.mark()
    a.whisper(b.id, data)
    e = b.wait_ev("whisper", since=mb, id=a.id, what="256 KiB whisper from A")
    mt.expect(mt.unb64(e["data"]) == data, "256 KiB whisper: B got %d bytes, different"
              % len(mt.unb64(e["data"])))
    mb = b.mark()
    n = 500
    for i in range(n):
        a.whisper(b.id, b"burst-%d" % i)
    last = b"burst-%d" % (n - 1)
    b.wait_for(lambda e: e.get("ev") == "whisper" and mt.unb64(e["data"]) == last, 20,
               "last whisper of the burst", since=mb)
    got = [mt.unb64(e["data"]) for e in b.find_ev("whisper", since=mb)]
    mt.expect(got == [b"burst-%d" % i for i in range(n)],
              "burst: B got %d whispers, first difference at %s" % (len(got), next(
                  (i for i, (x, y) in enumerate(zip(got, [b"burst-%d" % i for i in range(n)]))
                   if x != y), min(len(got), n))))
    mt.ok("256 KiB intact; 500 in order")

    mt.check("B and C join g: the others see the joins")
    marks = {p.name: p.mark() for p in nodes}
    b.join("g")
    c.join("g")
    for obs, who in ((a, b), (a, c), (b, c), (c, b)):
        obs.wait_ev("join", since=marks[obs.name], id=who.id, name=who.name, group="g")
    mt.ok("A saw B and C join; B and C saw each other")

    mt.check("A (not in g) shouts to g: B and C receive the same bytes")
    data = mt.payload("shout-from-A")
    mb, mc, ma = b.mark(), c.mark(), a.mark()
    a.shout("g", data)
    for p in (b, c):
        e = p.wait_ev("shout", since={"B": mb, "C": mc}[p.name], id=a.id, name="A", group="g")
        mt.expect(mt.unb64(e["data"]) == data, "%s got %r" % (p.name, mt.unb64(e["data"])))
    mt.ok("B and C got it")

    mt.check("B shouts to g: C receives, A (not in g) does not")
    data = mt.payload("shout-from-B")
    b.shout("g", data)
    e = c.wait_ev("shout", since=mc, id=b.id, group="g")
    mt.expect(mt.unb64(e["data"]) == data, "C got %r" % mt.unb64(e["data"]))
    a.expect_none(lambda e: e.get("ev") == "shout", 1.0, "shout delivered to A (not in g)",
                  since=ma)
    mt.ok("C got it, A got nothing in 1 s")

    mt.check("meshctl peers --json lists A, B, C (not itself) with endpoint/groups/headers")
    lst = mt.meshctl_json("peers", "--beacon-port", port, "--json", "--wait", 5000)
    mt.expect(isinstance(lst, list), "meshctl output is not a JSON array: %r" % lst)
    by_id = {str(x.get("id", "")).lower(): x for x in lst}
    want = {p.id.lower() for p in nodes}
    mt.expect(set(by_id) == want, "meshctl listed %s, expected exactly %s (A, B, C)" % (
        [(x.get("name"), x.get("id")) for x in lst], sorted(want)))
    for p in nodes:
        x = by_id[p.id.lower()]
        mt.expect(x.get("name") == p.name, "meshctl entry for %s: %r" % (p.name, x))
        mt.expect(x.get("endpoint") == p.info.get("endpoint"),
                  "meshctl endpoint of %s: %r, ready says %r" % (p.name, x.get("endpoint"),
                                                                 p.info.get("endpoint")))
        mt.expect(isinstance(x.get("groups"), list) and isinstance(x.get("headers"), dict),
                  "meshctl entry for %s lacks groups/headers: %r" % (p.name, x))
    mt.expect(by_id[a.id.lower()]["headers"].get("X-Test") == "1",
              "meshctl headers of A: %r" % by_id[a.id.lower()]["headers"])
    for p in (b, c):
        mt.expect("g" in by_id[p.id.lower()]["groups"],
                  "meshctl groups of %s: %r (joined g)" % (p.name, by_id[p.id.lower()]["groups"]))
    mt.expect("g" not in by_id[a.id.lower()]["groups"], "meshctl says A is in g")
    mt.ok("3 entries, endpoints/groups/headers right")

    mt.check("meshctl peers (table) shows the ID NAME ENDPOINT GROUPS HEADERS columns")
    r = mt.meshctl("peers", "--beacon-port", port, "--wait", 5000)
    mt.expect(r.returncode == 0, "meshctl peers: rc %d, stderr %s" % (r.returncode, r.stderr))
    head = r.stdout.splitlines()[0].split() if r.stdout.strip() else []
    mt.expect(head[:5] == ["ID", "NAME", "ENDPOINT", "GROUPS", "HEADERS"],
              "table header is %r:\n%s" % (head, r.stdout))
    for p in nodes:
        mt.expect(any(p.id.lower() in l.lower() and p.name in l.split()
                      for l in r.stdout.splitlines()[1:]),
                  "table lacks a row for %s (%s):\n%s" % (p.name, p.id, r.stdout))
    mt.ok("table has the header and a row per node")

    mt.check("C leaves g: A and B see the leave")
    marks = {p.name: p.mark() for p in nodes}
    c.leave("g")
    for obs in (a, b):
        obs.wait_ev("leave", since=marks[obs.name], id=c.id, name="C", group="g")
    mt.ok("leave seen by A and B")

    mt.check("SIGTERM C: A and B get exit reason left well before expiry; C exits 0")
    marks = {p.name: p.mark() for p in nodes}
    t = c.term()
    for obs in (a, b):
        e = mt.wait_exit_of(obs, c, EXPIRED_MS / 1000 + 5, since=marks[obs.name])
        dt = e["_t"] - t
        mt.expect(e.get("reason") == "left", "%s: exit of C has reason %r, expected left: %s"
                  % (obs.name, e.get("reason"), mt.fmt_event(e)))
        mt.expect(dt < EXPIRED_MS / 2000, "%s: exit of C after %.2f s, expected a clean leave "
                  "well before expiry (< %.1f s)" % (obs.name, dt, EXPIRED_MS / 2000))
        mt.ok("%s: exit left after %.2f s" % (obs.name, dt))
    rc = c.wait_exit(10)
    mt.expect(rc == 0, "C exit code %s after SIGTERM, expected 0\n%s" % (rc, c.describe()))
    if not c.find_ev("stopped"):
        mt.note("C printed no {\"ev\":\"stopped\"} before exiting")
    mt.ok("C exited 0")

    mt.check("SIGKILL B: A reports B exit reason expired within expired + margin")
    ma = a.mark()
    t = time.monotonic()
    b.kill()
    limit = EXPIRED_MS / 1000 + 3.0
    e = mt.wait_exit_of(a, b, limit + 10, since=ma)
    dt = e["_t"] - t
    mt.expect(e.get("reason") == "expired", "A: exit of B has reason %r, expected expired: %s"
              % (e.get("reason"), mt.fmt_event(e)))
    mt.expect(dt <= limit, "A: exit of B after %.2f s, expected within %.1f s" % (dt, limit))
    mt.expect(dt >= EVASIVE_MS / 1000 * 0.9,
              "A: B expired after only %.2f s (evasive is %d ms)" % (dt, EVASIVE_MS))
    ev = a.find_ev("evasive", since=ma, id=b.id)
    if not ev:
        mt.note("A printed no evasive event for B before it expired")
    else:
        mt.ok("A: B evasive after %.2f s" % (ev[0]["_t"] - t))
    mt.ok("A: B expired after %.2f s" % dt)

    mt.check("a new node at a dead node's endpoint: A drops the old one at once, sees the new")
    pd = mt.free_tcp_port()
    d = mt.spawn_meshd("D", *timers, "--port", pd)
    d.ready()
    mt.wait_enter(a, d)
    ma = a.mark()
    t = time.monotonic()
    d.kill()
    d2 = mt.spawn_meshd("D2", *timers, "--port", pd)
    d2.ready()
    mt.wait_enter(a, d2, since=ma)
    e = mt.wait_exit_of(a, d, EXPIRED_MS / 1000 + 5, since=ma)
    dt = e["_t"] - t
    mt.expect(e.get("reason") in ("replaced", "reset") and dt < EXPIRED_MS / 2000,
              "A: exit of D after %.2f s with reason %r; expected replaced (or reset) "
              "as soon as D2 took its endpoint" % (dt, e.get("reason")))
    mt.ok("exit of D %s after %.2f s; D2 entered" % (e.get("reason"), dt))
    d2.stop()

    mt.check("A alone: stop cleanly, exit 0")
    a.stop()
    mt.ok("A exited 0")


if __name__ == "__main__":
    mt.run(main)
