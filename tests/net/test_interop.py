#!/usr/bin/env python3
"""Interoperability with an independent ZRE implementation (zyre.js 1.3, via
shared/interop/zre-peer.js): (a) on loopback, (b) across a netlab LAN.
Checked from both sides' output: discovery, whisper both ways, shout both
ways in a shared group, join/leave seen both ways, leaving seen both ways,
and `meshctl peers` listing the zyre.js peer with its name and headers."""

import meshtest as mt

INTERVAL_MS = 250
EVASIVE_MS = 2000
EXPIRED_MS = 10000  # long, so that a prompt exit/disconnect can only come from a clean leave
QUICK_S = 3.0       # a clean leave must be reported within this


def scenario(label, spawn_m, spawn_z, run_meshctl_json, addr_m, addr_z, lab=None, zhost=None):
    """spawn_m(name) / spawn_z(name, *extra) start meshd / zre-peer already
    configured for the interface and beacon port; run_meshctl_json(*args)
    runs `meshctl peers` there. With a lab, zhost's cable is also cut and
    healed (both sides must expire each other, then meet again)."""
    mt.log("==== interop %s ====" % label)
    mt.check("[%s] meshd M and zyre.js zpeer start" % label)
    m = spawn_m("M")
    m.ready()
    mt.expect(str(m.info.get("endpoint", "")).startswith("tcp://%s:" % addr_m),
              "M: ready endpoint %r, expected on %s" % (m.info.get("endpoint"), addr_m))
    z = spawn_z("zpeer", "--header", "K=V")  # started after M's inbox is bound
    z.ready()
    mt.ok("M=%s zpeer=%s" % (m.id, z.id))

    mt.check("[%s] discovery: M reports enter of zpeer (name, headers K=V, endpoint on %s); "
             "zpeer reports connect of M" % (label, addr_z))
    e = mt.wait_enter(m, z, timeout=20)
    mt.expect(e.get("headers", {}).get("K") == "V",
              "M: headers of zpeer %r, expected K=V" % e.get("headers"))
    mt.expect(str(e.get("endpoint", "")).startswith("tcp://%s:" % addr_z),
              "M: endpoint of zpeer %r, expected on %s" % (e.get("endpoint"), addr_z))
    e = mt.wait_enter(z, m, timeout=20, ev="connect")
    if "X-MESH" not in (e.get("headers") or {}):
        mt.note("zpeer sees M's headers %r (no X-MESH)" % e.get("headers"))
    mt.ok("both sides")

    mt.check("[%s] idle for expired + 2 s: neither side drops the other (PING/PING-OK work)"
             % label)
    mm, mz = m.mark(), z.mark()
    idle = EXPIRED_MS / 1000 + 2
    m.expect_none(lambda e: e.get("ev") == "exit", idle, "exit of zpeer while idle", since=mm)
    z.expect_none(lambda e: e.get("ev") in ("disconnect", "expired"), 0,
                  "zpeer dropping M while idle", since=mz)
    churn = len(m.find_ev("evasive", since=mm))
    if churn:
        mt.note("M reported zpeer evasive %d times while idle (zpeer beacons every %d ms)"
                % (churn, INTERVAL_MS))
    mt.ok("still connected after %.0f s" % idle)

    mt.check("[%s] whisper M -> zpeer (by id, then by name) and zpeer -> M: exact bytes" % label)
    for to in (z.id, "zpeer"):
        data = mt.payload("M-to-z")
        mz = z.mark()
        m.whisper(to, data)
        e = z.wait_ev("whisper", since=mz, id=m.id, what="whisper from M (to=%s)" % to)
        mt.expect(e.get("name") == "M", "zpeer: whisper sender name %r" % e.get("name"))
        mt.expect(mt.unb64(e["data"]) == data, "zpeer got %r, M sent %r" % (
            mt.unb64(e["data"]), data))
    data = mt.payload("z-to-M")
    mm = m.mark()
    z.whisper("M", data)
    e = m.wait_ev("whisper", since=mm, id=z.id, name="zpeer")
    mt.expect(mt.unb64(e["data"]) == data, "M got %r, zpeer sent %r" % (mt.unb64(e["data"]), data))
    mt.ok("both ways")

    mt.check("[%s] M joins sg -> zpeer sees it; zpeer joins sg -> M sees it" % label)
    mz = z.mark()
    m.join("sg")
    z.wait_ev("join", since=mz, id=m.id, group="sg", what="join sg by M")
    mm = m.mark()
    z.join("sg")
    m.wait_ev("join", since=mm, id=z.id, name="zpeer", group="sg", what="join sg by zpeer")
    mt.ok("joins seen")

    mt.check("[%s] shout into sg both ways: exact bytes" % label)
    data = mt.payload("M-shout")
    mz = z.mark()
    m.shout("sg", data)
    e = z.wait_ev("shout", since=mz, id=m.id, group="sg")
    mt.expect(mt.unb64(e["data"]) == data, "zpeer got %r" % mt.unb64(e["data"]))
    data = mt.payload("z-shout")
    mm = m.mark()
    z.shout("sg", data)
    e = m.wait_ev("shout", since=mm, id=z.id, name="zpeer", group="sg")
    mt.expect(mt.unb64(e["data"]) == data, "M got %r" % mt.unb64(e["data"]))
    mt.ok("both ways")

    if lab is not None:
        partition(label, lab, zhost, m, z)

    mt.check("[%s] meshctl peers --json lists zpeer (name, headers K=V) and M" % label)
    lst = run_meshctl_json("--json", "--wait", 5000)
    mt.expect(isinstance(lst, list), "meshctl output is not a JSON array: %r" % lst)
    by_id = {str(x.get("id", "")).lower(): x for x in lst}
    mt.expect(z.id.lower() in by_id, "meshctl did not list zpeer (%s): %s" % (z.id, lst))
    x = by_id[z.id.lower()]
    mt.expect(x.get("name") == "zpeer", "meshctl name of zpeer: %r" % x)
    mt.expect(isinstance(x.get("headers"), dict) and x["headers"].get("K") == "V",
              "meshctl headers of zpeer: %r" % x)
    mt.expect(str(x.get("endpoint", "")).startswith("tcp://%s:" % addr_z),
              "meshctl endpoint of zpeer: %r" % x)
    mt.expect(isinstance(x.get("groups"), list) and "sg" in x["groups"],
              "meshctl groups of zpeer: %r (joined sg)" % x)
    mt.expect(m.id.lower() in by_id, "meshctl did not list M (%s): %s" % (m.id, lst))
    mt.expect(len(lst) == 2, "meshctl listed %d peers, expected M and zpeer: %s" % (len(lst), lst))
    mt.ok("zpeer: %s" % x)

    mt.check("[%s] zpeer leaves sg -> M sees it; M leaves sg -> zpeer sees it" % label)
    mm = m.mark()
    z.leave("sg")
    m.wait_ev("leave", since=mm, id=z.id, group="sg", what="leave sg by zpeer")
    mz = z.mark()
    m.leave("sg")
    z.wait_ev("leave", since=mz, id=m.id, group="sg", what="leave sg by M")
    mt.ok("leaves seen")

    mt.check("[%s] SIGTERM zpeer: M reports exit (left) within %.0f s; zpeer exits 0"
             % (label, QUICK_S))
    mm = m.mark()
    t = z.term()
    e = mt.wait_exit_of(m, z, EXPIRED_MS / 1000 + 5, since=mm)
    dt = e["_t"] - t
    mt.expect(dt < QUICK_S, "M: exit of zpeer after %.2f s (reason %r), expected < %.0f s"
              % (dt, e.get("reason"), QUICK_S))
    mt.expect(e.get("reason") == "left", "M: exit of zpeer reason %r, expected left"
              % e.get("reason"))
    rc = z.wait_exit(10)
    mt.expect(rc == 0, "zpeer exit code %s" % rc)
    mt.ok("exit left after %.2f s" % dt)

    mt.check("[%s] a new zyre.js peer zpeer2 meets M" % label)
    z2 = spawn_z("zpeer2")
    z2.ready()
    mt.wait_enter(m, z2, timeout=20)
    mt.wait_enter(z2, m, timeout=20, ev="connect")
    mt.ok("both sides")

    mt.check("[%s] SIGTERM M: zpeer2 reports disconnect within %.0f s (no expiry); M exits 0"
             % (label, QUICK_S))
    mz = z2.mark()
    t = m.term()
    e = z2.wait_for(lambda e: e.get("ev") in ("disconnect", "expired")
                    and mt.same_id(e.get("id"), m.id),
                    EXPIRED_MS / 1000 + 5, "disconnect of M", since=mz)
    dt = e["_t"] - t
    mt.expect(e["ev"] == "disconnect", "zpeer2 reports M %s, expected disconnect (clean leave)"
              % e["ev"])
    mt.expect(dt < QUICK_S, "zpeer2: disconnect of M after %.2f s, expected < %.0f s"
              % (dt, QUICK_S))
    rc = m.wait_exit(10)
    mt.expect(rc == 0, "M exit code %s after SIGTERM\n%s" % (rc, m.describe()))
    mt.ok("disconnect after %.2f s; M exited 0" % dt)
    z2.stop()


def partition(label, lab, zhost, m, z):
    mt.check("[%s] cut zpeer's host: M reports exit expired, zpeer reports expired, "
             "within %d ms + margin" % (label, EXPIRED_MS))
    mm, mz = m.mark(), z.mark()
    t = lab.cut(zhost)
    limit = EXPIRED_MS / 1000 + 3.0
    e = mt.wait_exit_of(m, z, limit + 10, since=mm)
    dt = e["_t"] - t
    mt.expect(e.get("reason") == "expired" and dt <= limit,
              "M: exit of zpeer after %.2f s with reason %r; expected expired within %.1f s"
              % (dt, e.get("reason"), limit))
    mt.ok("M: zpeer expired after %.2f s" % dt)
    e = z.wait_for(lambda e: e.get("ev") in ("expired", "disconnect")
                   and mt.same_id(e.get("id"), m.id), limit + 10, "zpeer dropping M", since=mz)
    mt.ok("zpeer: M %s after %.2f s" % (e["ev"], e["_t"] - t))

    mt.check("[%s] heal: they meet again (M sees zpeer still in sg); whisper both ways works"
             % label)
    mm, mz = m.mark(), z.mark()
    t = lab.heal(zhost)
    e = mt.wait_enter(m, z, timeout=20, since=mm)
    mt.expect("sg" in (e.get("groups") or []) or m.find_ev("join", since=mm, id=z.id, group="sg"),
              "M: zpeer re-entered without its group sg: %s" % mt.fmt_event(e))
    mt.wait_enter(z, m, timeout=20, since=mz, ev="connect")
    mt.ok("both sides after %.2f s" % (e["_t"] - t))
    data = mt.payload("M-to-z-healed")
    m.whisper(z.id, data)
    e = z.wait_ev("whisper", since=mz, id=m.id)
    mt.expect(mt.unb64(e["data"]) == data, "zpeer got %r" % mt.unb64(e["data"]))
    data = mt.payload("z-to-M-healed")
    z.whisper("M", data)
    e = m.wait_ev("whisper", since=mm, id=z.id)
    mt.expect(mt.unb64(e["data"]) == data, "M got %r" % mt.unb64(e["data"]))
    mt.ok("whisper both ways after the heal")


def main():
    mt.ensure_interop()
    timers_m = ["--beacon-interval", INTERVAL_MS, "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS]
    timers_z = ["--interval", INTERVAL_MS, "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS]

    # (a) loopback
    port = mt.free_udp_port()
    mt.log("loopback: beacon port %d" % port)
    scenario(
        "loopback",
        lambda name: mt.spawn_meshd(name, "--iface", "lo", "--beacon-port", port, *timers_m),
        lambda name, *x: mt.spawn_zre_peer(name, "--iface", "lo", "--port-beacon", port,
                                           *timers_z, *x),
        lambda *a: mt.meshctl_json("peers", "--iface", "lo", "--beacon-port", port, *a),
        "127.0.0.1", "127.0.0.1")

    # (b) netlab: meshd on host 1, zyre.js on host 2, meshctl on host 3
    port = mt.free_udp_port()
    with mt.Netlab(3) as lab:
        mt.log("netlab %s: beacon port %d" % (lab.prefix, port))
        scenario(
            "netlab",
            lambda name: lab.spawn_meshd(1, name, "--iface", "eth0", "--beacon-port", port,
                                         *timers_m),
            lambda name, *x: lab.spawn_zre_peer(2, name, "--iface", "eth0", "--port-beacon",
                                                port, *timers_z, *x),
            lambda *a: lab.meshctl_json(3, "peers", "--iface", "eth0", "--beacon-port", port, *a),
            lab.addr(1), lab.addr(2), lab=lab, zhost=2)


if __name__ == "__main__":
    mt.run(main)
