#!/usr/bin/env python3
"""Checks the test ground itself, without meshd: two zyre.js reference peers
find each other and talk on loopback (random beacon port) and across a netlab
LAN; a netlab cable cut makes them expire each other, and heal brings them
back. If this fails, the other net tests cannot be trusted."""

import time

import meshtest as mt


def pair_talks(a, b, group):
    mt.check("%s and %s connect (names, ids, headers)" % (a.name, b.name))
    e = mt.wait_enter(a, b, ev="connect")
    mt.expect(e.get("headers", {}).get("K") == "V",
              "%s: headers of %s are %r, expected K=V" % (a.name, b.name, e.get("headers")))
    mt.wait_enter(b, a, ev="connect")
    mt.ok("connected")

    mt.check("whisper %s -> %s by name, exact bytes" % (a.name, b.name))
    data = mt.payload("w")
    a.whisper(b.name, data)
    e = b.wait_ev("whisper", id=a.id, name=a.name)
    mt.expect(mt.unb64(e["data"]) == data, "whisper bytes differ: %r" % mt.unb64(e["data"]))
    mt.ok("whisper")

    mt.check("shout into %s (both joined at start)" % group)
    data = mt.payload("s")
    m = a.mark()
    b.shout(group, data)
    e = a.wait_ev("shout", since=m, id=b.id, group=group)
    mt.expect(mt.unb64(e["data"]) == data, "shout bytes differ")
    mt.ok("shout")


def main():
    port = mt.free_udp_port()
    mt.log("loopback, beacon port %d" % port)
    common = ["--port-beacon", port, "--interval", 250, "--group", "g", "--header", "K=V"]
    a = mt.spawn_zre_peer("za", *common)
    a.ready()
    time.sleep(0.5)  # zyre.js probes its inbox port: start peers apart
    b = mt.spawn_zre_peer("zb", *common)
    b.ready()
    pair_talks(a, b, "g")

    mt.check("SIGTERM zb: exit code 0, za sees disconnect quickly")
    t = b.term()
    b.wait_exit(10)
    mt.expect(b.returncode == 0, "zb exit code %s" % b.returncode)
    e = mt.wait_exit_of(a, b, 5, ev="disconnect")
    mt.ok("disconnect after %.2f s" % (e["_t"] - t))
    a.stop()

    mt.check("netlab: up 2 hosts, prefix is unique, hosts listed")
    with mt.Netlab(2) as lab:
        mt.ok("hosts %s" % lab.hosts())
        r = lab.run(1, "ip", "-br", "addr", "show", "eth0")
        mt.expect(r.returncode == 0 and "10.213.0.1/24" in r.stdout,
                  "host 1 eth0: %s %s" % (r.stdout, r.stderr))
        common = ["--iface", "eth0", "--port-beacon", port, "--interval", 250,
                  "--evasive", 1000, "--expired", 3000, "--group", "g", "--header", "K=V"]
        a = lab.spawn_zre_peer(1, "za", *common)
        b = lab.spawn_zre_peer(2, "zb", *common)
        a.ready()
        b.ready()
        pair_talks(a, b, "g")
        e = a.find_ev("connect", id=b.id)[0]

        mt.check("cut host 2: za reports zb expired within 3 s + margin")
        m = a.mark()
        t = lab.cut(2)
        e = mt.wait_exit_of(a, b, 3 + 5, since=m, ev="expired")
        mt.ok("expired after %.2f s" % (e["_t"] - t))

        mt.check("heal host 2: zb comes back on za")
        m = a.mark()
        t = lab.heal(2)
        e = mt.wait_enter(a, b, 15, since=m, ev="connect")
        mt.ok("back after %.2f s" % (e["_t"] - t))
        a.stop()
        b.stop()
    mt.check("netlab down removed the lab")
    r = mt.subprocess.run([lab.netlab, "list"], env=lab.env, stdout=mt.subprocess.PIPE)
    mt.expect(r.stdout.strip() == b"", "hosts left: %r" % r.stdout)
    mt.ok("no hosts left")


if __name__ == "__main__":
    mt.run(main)
