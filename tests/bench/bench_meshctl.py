#!/usr/bin/env python3
"""bench_meshctl: `meshctl call` against a running 3-node mesh, process start to exit.

    bench_meshctl.py --meshd PATH --meshctl PATH [--runs 30] [--nodes 3] [--path /sys/ping]
                     [--beacon-interval MS] [--trace-runs 10]

On loopback, one free beacon port: NODES `meshd --events` processes (default
beacon interval, 1 s, unless --beacon-interval), each hosting the built-in
/sys agent. Once every node serves PATH (checked with `meshctl services`),
each series runs its command RUNS times after 3 warm-up runs, timing
fork/exec to exit (time.perf_counter around subprocess.run):

  true                 a bare process start (the floor of any command)
  meshctl --help       meshctl's own start: dynamic linking, no network
  meshctl peers --wait 1   join and leave at once: peer, sockets, beacon,
                       port-0 beacon, BYE; no discovery (the baseline)
  meshctl call PATH    the benchmark: join, find a provider, call, print, leave
  meshctl call PATH --no-beacon --seed A   the same, discovery by a seed

Reported per series: median, p90, min, max (ms), and the ratio of medians
to the two baselines. Then TRACE-RUNS more `meshctl call` runs with
MESH_DEBUG set, whose timeline (meshctl's "+N ms" lines) shows where the
time goes inside the process: first HELLO (enter), provider known (the
SERVICES whisper), call sent, reply. The nodes' beacons are a second apart,
so a first HELLO within a few ms shows that they connect on meshctl's own
beacon (sent at start) rather than meshctl waiting for theirs.

Target: median <= 100 ms for `meshctl call`. A benchmark: it reports and
exits 0 unless the harness cannot run (no meshd/meshctl, nodes that never
serve PATH). Python 3 standard library only.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_MEDIAN_MS = 100.0
WARMUP = 3
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def p90(xs):
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(0.9 * (len(s) - 1))))]


def timed(argv, env=None):
    """(ms, rc, stdout, stderr) of one run, fork/exec to exit."""
    t = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env)
    return (time.perf_counter() - t) * 1000.0, r.returncode, r.stdout, r.stderr


def series(name, argv, runs, want_rc=0):
    for _ in range(WARMUP):
        timed(argv)
    ms, bad = [], []
    for _ in range(runs):
        t, rc, out, err = timed(argv)
        if rc != want_rc:
            bad.append((rc, err.decode(errors="replace").strip()[-200:]))
        ms.append(t)
    res = {"name": name, "ms": ms, "median": statistics.median(ms), "p90": p90(ms),
           "min": min(ms), "max": max(ms), "bad": bad}
    print("%-34s median %7.2f  p90 %7.2f  min %7.2f  max %7.2f ms  (%d runs%s)" % (
        name, res["median"], res["p90"], res["min"], res["max"], runs,
        ", %d failed: %s" % (len(bad), bad[0]) if bad else ""))
    sys.stdout.flush()
    return res


def start_nodes(meshd, n, port, beacon_interval):
    """Spawns the nodes, their events going to temporary files; returns (procs, ready events)."""
    procs, ready = [], []
    for i in range(n):
        argv = [meshd, "--name", "bench%d" % i, "--beacon-port", str(port), "--events",
                "--log-level", "warn"]
        if beacon_interval:
            argv += ["--beacon-interval", str(beacon_interval)]
        out = tempfile.TemporaryFile()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.DEVNULL)
        p.events = out
        procs.append(p)
    deadline = time.monotonic() + READY_TIMEOUT_S
    for p in procs:
        while time.monotonic() < deadline:
            p.events.seek(0)
            ev = next((e for e in map(s_json, p.events.read().splitlines())
                       if e.get("ev") == "ready"), None)
            if ev or p.poll() is not None:
                break
            time.sleep(0.05)
        if ev:
            ready.append(ev)
    return procs, ready


def s_json(line):
    try:
        e = json.loads(line)
        return e if isinstance(e, dict) else {}
    except ValueError:
        return {}


def stop_nodes(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    clean = 0
    for p in procs:
        try:
            rc = p.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        clean += rc == 0
        p.events.close()
    return clean


TRACE_RE = re.compile(r"^meshctl: \+(\d+) ms: (.*)$")


def trace_runs(argv, runs):
    """Timeline of meshctl's own MESH_DEBUG lines: first enter, provider found, reply."""
    env = dict(os.environ, MESH_DEBUG="1")
    marks = {"first enter": [], "provider known": [], "call sent": [], "reply": [],
             "process": []}
    for _ in range(runs):
        t, rc, out, err = timed(argv, env)
        got = {}
        for line in err.decode(errors="replace").splitlines():
            m = TRACE_RE.match(line)
            if not m:
                continue
            ms, what = int(m.group(1)), m.group(2)
            if what.startswith("enter ") and "first enter" not in got:
                got["first enter"] = ms
            elif re.search(r"routing: .* [1-9]\d* providers", what) and \
                    "provider known" not in got:
                got["provider known"] = ms
            elif what == "acted":
                got["call sent"] = ms
            elif what.startswith("reply from"):
                got["reply"] = ms
        got["process"] = t
        for k, v in got.items():
            marks[k].append(v)
    print("timeline inside `meshctl call` (MESH_DEBUG, %d runs; ms since the peer started, "
          "median [max]):" % runs)
    for k in ("first enter", "provider known", "call sent", "reply", "process"):
        v = marks[k]
        print("  %-16s %s" % (k, "%.1f [%.1f]" % (statistics.median(v), max(v)) if v
                              else "never seen"))
    return marks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meshd", required=True)
    ap.add_argument("--meshctl", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--path", default="/sys/ping")
    ap.add_argument("--beacon-interval", type=int, default=0,
                    help="the nodes' beacon interval in ms (default: meshd's, 1000)")
    ap.add_argument("--trace-runs", type=int, default=10)
    o = ap.parse_args()
    for b in (o.meshd, o.meshctl):
        if not os.access(b, os.X_OK):
            print("bench_meshctl: not executable: %s" % b, file=sys.stderr)
            return 1

    port = free_udp_port()
    disc = ["--beacon-port", str(port)]
    print("# meshctl call, process start to exit: %d meshd on loopback (beacon interval %s), "
          "%d runs per series after %d warm-up runs" % (
              o.nodes, "%d ms" % o.beacon_interval if o.beacon_interval else "1000 ms (default)",
              o.runs, WARMUP))
    procs, ready = start_nodes(o.meshd, o.nodes, port, o.beacon_interval)
    try:
        if len(ready) != o.nodes:
            print("bench_meshctl: only %d of %d meshd started" % (len(ready), o.nodes),
                  file=sys.stderr)
            return 1
        deadline = time.monotonic() + READY_TIMEOUT_S
        providers = 0
        while time.monotonic() < deadline:
            _, rc, out, _ = timed([o.meshctl, "services", "--json"] + disc)
            if rc == 0:
                providers = len({x["id"] for x in json.loads(out) if x["path"] == o.path})
                if providers >= o.nodes:
                    break
            time.sleep(0.2)
        if providers < o.nodes:
            print("bench_meshctl: %d of %d nodes serve %s (does meshd host /sys?)" % (
                providers, o.nodes, o.path), file=sys.stderr)
            return 1
        seed = ready[0].get("endpoint")

        base_true = series("true", ["true"], o.runs)
        base_help = series("meshctl --help", [o.meshctl, "--help"], o.runs)
        base_join = series("meshctl peers --wait 1", [o.meshctl, "peers", "--wait", "1"] + disc,
                           o.runs)
        call = series("meshctl call %s" % o.path, [o.meshctl, "call", o.path] + disc, o.runs)
        seeded = None
        if seed:
            seeded = series("meshctl call (--no-beacon --seed)",
                            [o.meshctl, "call", o.path, "--no-beacon", "--seed", seed] + disc,
                            o.runs)
        print()
        trace_runs([o.meshctl, "call", o.path] + disc, o.trace_runs)

        print("\n== summary ==")
        print("meshctl call %s: median %.1f ms, p90 %.1f ms (target median <= %.0f ms: %s)" % (
            o.path, call["median"], call["p90"], TARGET_MEDIAN_MS,
            "met" if call["median"] <= TARGET_MEDIAN_MS and not call["bad"] else "NOT met"))
        print("  = %.1fx a bare process start (true, %.2f ms), %.1fx meshctl --help (%.2f ms), "
              "%.2fx join+leave (peers --wait 1, %.1f ms)" % (
                  call["median"] / base_true["median"], base_true["median"],
                  call["median"] / base_help["median"], base_help["median"],
                  call["median"] / base_join["median"], base_join["median"]))
        if seeded:
            print("with --no-beacon --seed: median %.1f ms, p90 %.1f ms" % (
                seeded["median"], seeded["p90"]))
    finally:
        clean = stop_nodes(procs)
        print("meshd stopped cleanly: %d/%d" % (clean, len(procs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
