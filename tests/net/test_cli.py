#!/usr/bin/env python3
"""The command-line contract around the protocol (docs/meshd.md, docs/meshctl.md):
exit codes of meshd and meshctl (0 clean stop, 1 runtime failure, 2 usage),
SIGINT, the stdin commands (stats, stop, bad input -> error event), and
end of stdin being ignored. Loopback only, random ports."""

import json
import signal
import socket
import subprocess
import time

import meshtest as mt


def run_rc(argv, timeout=10):
    try:
        r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        mt.fail("%s did not exit within %d s" % (" ".join(map(str, argv)), timeout))
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def expect_rc(argv, want, why):
    rc, out, err = run_rc(argv)
    mt.expect(rc == want, "%s: exit %d, expected %d (%s)\nstdout: %s\nstderr: %s" % (
        " ".join(map(str, argv[1:])), rc, want, why, out, err))
    mt.ok("%s -> %d" % (why, rc))


def main():
    meshd, meshctl = mt.meshd_bin(), mt.meshctl_bin()
    port = mt.free_udp_port()

    mt.check("meshd usage errors exit 2")
    expect_rc([meshd], 2, "no --name")
    expect_rc([meshd, "--name", "x", "--no-such-option"], 2, "unknown option")
    expect_rc([meshd, "--name", "x", "--evasive", "abc"], 2, "--evasive abc")
    expect_rc([meshd, "--name", "x", "--beacon-port", "99999"], 2, "--beacon-port 99999")
    expect_rc([meshd, "--name", "x", "--log-level", "loud"], 2, "--log-level loud")

    mt.check("meshd runtime failures exit 1")
    expect_rc([meshd, "--name", "x", "--iface", "nosuch0", "--beacon-port", port], 1,
              "no such interface")
    busy = socket.socket()
    try:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        expect_rc([meshd, "--name", "x", "--no-beacon", "--port", busy.getsockname()[1]], 1,
                  "inbox port in use")
    finally:
        busy.close()

    mt.check("meshctl usage errors exit 2")
    expect_rc([meshctl], 2, "no command")
    expect_rc([meshctl, "no-such-command"], 2, "unknown command")
    expect_rc([meshctl, "peers", "--no-such-option"], 2, "unknown option")

    mt.check("meshctl peers on an empty mesh: exit 0, JSON []")
    rc, out, err = run_rc([meshctl, "peers", "--beacon-port", port, "--json", "--wait", 1500])
    try:
        got = json.loads(out)
    except ValueError:
        got = None
    if rc == 0 and got == []:
        mt.ok("[]")
    else:
        mt.note("meshctl peers with nobody around: rc %d, stdout %r, stderr %r" % (rc, out, err))

    timers = ["--beacon-port", port, "--beacon-interval", 200, "--evasive", 1000,
              "--expired", 3000]
    a = mt.spawn_meshd("A", *timers)
    b = mt.spawn_meshd("B", *timers)
    a.ready()
    b.ready()
    mt.all_see_all([a, b])

    mt.check("stdin: a bad JSON line gives an error event and A keeps working")
    m = a.mark()
    a.p.stdin.write(b"this is not json\n")
    a.p.stdin.flush()
    a.wait_ev("error", since=m, what="error event for a bad line")
    a.send({"peers": True})
    e = a.wait_ev("peers", since=m)
    mt.expect([mt.same_id(x.get("id"), b.id) for x in e.get("peers", [])] == [True],
              "A's peers after the bad line: %s" % e.get("peers"))
    mt.ok("error event, then peers still answered")

    mt.check("stdin: whisper to an unknown peer gives an error event")
    m = a.mark()
    a.whisper("nobody-here", b"x")
    a.wait_ev("error", since=m, what="error event for whisper to nobody")
    mt.expect(a.alive(), "A died")
    mt.ok("error event")

    mt.check("stdin: bad commands each give an error event; nothing reaches B; A keeps working")
    bad = [
        {"whisper": {"to": b.id, "data": ""}},        # empty content crashes some ZRE peers
        {"shout": {"group": "g", "data": ""}},
        {"whisper": {"to": b.id, "data": "!!not base64!!"}},
        {"join": "x" * 300},                           # ZRE strings are <= 255 bytes
        {"join": 5},
        {"no-such-command": True},
        [1, 2],
    ]
    m, mb = a.mark(), b.mark()
    for cmd in bad:
        a.send(cmd)
    a.send({"peers": True})
    a.wait_ev("peers", since=m, what="peers answer after the bad commands")
    errors = a.find_ev("error", since=m)
    mt.expect(len(errors) == len(bad), "%d bad commands, %d error events: %s" % (
        len(bad), len(errors), [e.get("error") for e in errors]))
    b.expect_none(lambda e: e.get("ev") in ("whisper", "shout", "join"), 0.5,
                  "something from A's bad commands", since=mb)
    mt.ok("%d error events: %s" % (len(errors), "; ".join(str(e.get("error")) for e in errors)))

    mt.check("stdin: stats gives a stats event")
    m = a.mark()
    a.send({"stats": True})
    e = a.wait_ev("stats", since=m)
    mt.ok("stats keys: %s" % sorted(k for k in e if not k.startswith("_") and k != "ev"))

    mt.check("end of stdin is ignored: B keeps running and still sees a newcomer")
    b.p.stdin.close()
    time.sleep(1.0)
    mt.expect(b.alive(), "B exited after its stdin closed (rc %s)\n%s" % (b.p.poll(), b.describe()))
    mb = b.mark()
    c = mt.spawn_meshd("C", *timers)
    c.ready()
    mt.wait_enter(b, c, since=mb)
    mt.ok("B alive, saw C")

    mt.check("stdin stop: C stops, exits 0, A and B see it leave")
    ma, mb = a.mark(), b.mark()
    c.send({"stop": True})
    rc = c.wait_exit(10)
    mt.expect(rc == 0, "C exit code %s after {\"stop\":true}\n%s" % (rc, c.describe()))
    for p, m in ((a, ma), (b, mb)):
        e = mt.wait_exit_of(p, c, 5, since=m)
        mt.expect(e.get("reason") == "left", "%s: exit of C reason %r" % (p.name, e.get("reason")))
    mt.ok("exit 0, left")

    mt.check("SIGINT: B exits 0, A sees it leave")
    ma = a.mark()
    b.signal(signal.SIGINT)
    rc = b.wait_exit(10)
    mt.expect(rc == 0, "B exit code %s after SIGINT\n%s" % (rc, b.describe()))
    e = mt.wait_exit_of(a, b, 5, since=ma)
    mt.expect(e.get("reason") == "left", "A: exit of B reason %r" % e.get("reason"))
    mt.ok("exit 0, left")

    a.stop()


if __name__ == "__main__":
    mt.run(main)
