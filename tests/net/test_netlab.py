#!/usr/bin/env python3
"""Three meshd on a netlab LAN (eth0 of three network namespaces): all see all
over real broadcast; a cut cable makes the others expire host 3; healing it
brings host 3 back on both sides."""

import time

import meshtest as mt

EVASIVE_MS = 2000
EXPIRED_MS = 6000
INTERVAL_MS = 250


def main():
    port = mt.free_udp_port()
    args = ["--iface", "eth0", "--beacon-port", port, "--beacon-interval", INTERVAL_MS,
            "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS]
    with mt.Netlab(3) as lab:
        mt.check("meshd on hosts 1..3 (--iface eth0, beacon port %d) are ready on 10.213.0.i" % port)
        nodes = [lab.spawn_meshd(i, "n%d" % i, *args) for i in (1, 2, 3)]
        for i, p in enumerate(nodes, 1):
            p.ready()
            mt.expect(str(p.info.get("endpoint", "")).startswith("tcp://%s:" % lab.addr(i)),
                      "%s: endpoint %r, expected on %s" % (p.name, p.info.get("endpoint"),
                                                           lab.addr(i)))
        n1, n2, n3 = nodes
        mt.ok("ready: %s" % ", ".join(p.info["endpoint"] for p in nodes))

        mt.check("all see all, at the right addresses")
        seen = mt.all_see_all(nodes, timeout=20)
        for (obs, who), e in seen.items():
            i = int(who[1:])
            mt.expect(str(e.get("endpoint", "")).startswith("tcp://%s:" % lab.addr(i)),
                      "%s sees %s at %r" % (obs, who, e.get("endpoint")))
        mt.ok("6 enter events")

        mt.check("whisper n1 -> n3 across the LAN")
        data = mt.payload("n1-to-n3")
        m = n3.mark()
        n1.whisper(n3.id, data)
        e = n3.wait_ev("whisper", since=m, id=n1.id)
        mt.expect(mt.unb64(e["data"]) == data, "n3 got %r" % mt.unb64(e["data"]))
        mt.ok("exact bytes")

        mt.check("cut host 3: n1 and n2 report n3 exit expired within %d ms + margin"
                 % EXPIRED_MS)
        marks = {p.name: p.mark() for p in nodes}
        t = lab.cut(3)
        limit = EXPIRED_MS / 1000 + 3.0
        for obs in (n1, n2):
            e = mt.wait_exit_of(obs, n3, limit + 10, since=marks[obs.name])
            dt = e["_t"] - t
            mt.expect(e.get("reason") == "expired", "%s: exit of n3 has reason %r: %s" % (
                obs.name, e.get("reason"), mt.fmt_event(e)))
            mt.expect(dt <= limit, "%s: n3 expired after %.2f s, expected within %.1f s" % (
                obs.name, dt, limit))
            mt.ok("%s: n3 expired after %.2f s" % (obs.name, dt))
        mt.check("isolated n3 reports n1 and n2 expired too, and keeps running")
        for who in (n1, n2):
            e = mt.wait_exit_of(n3, who, limit + 10, since=marks["n3"])
            mt.expect(e.get("reason") == "expired", "n3: exit of %s has reason %r" % (
                who.name, e.get("reason")))
        mt.expect(n3.alive(), "n3 died while cut off\n%s" % n3.describe())
        n1.expect_none(lambda e: e.get("ev") == "exit" and mt.same_id(e.get("id"), n2.id), 0,
                       "exit of n2 on n1 (only n3 was cut)")
        mt.ok("n3 expired both; n1<->n2 unaffected")

        mt.check("heal host 3: n3 re-enters on n1 and n2, and they on n3")
        marks = {p.name: p.mark() for p in nodes}
        t = lab.heal(3)
        for obs, who in ((n1, n3), (n2, n3), (n3, n1), (n3, n2)):
            e = mt.wait_enter(obs, who, 20, since=marks[obs.name])
            mt.ok("%s sees %s again after %.2f s" % (obs.name, who.name, e["_t"] - t))

        mt.check("after heal, whisper n3 -> n2 works")
        data = mt.payload("n3-to-n2")
        m = n2.mark()
        n3.whisper(n2.id, data)
        e = n2.wait_ev("whisper", since=m, id=n3.id)
        mt.expect(mt.unb64(e["data"]) == data, "n2 got %r" % mt.unb64(e["data"]))
        mt.ok("exact bytes")

        mt.check("all stop cleanly (exit 0)")
        for p in nodes:
            p.stop()
        mt.ok("exit 0 x3")
    mt.ok("lab %s down" % lab.prefix)


if __name__ == "__main__":
    mt.run(main)
