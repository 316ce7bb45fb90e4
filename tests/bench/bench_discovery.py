#!/usr/bin/env python3
"""bench_discovery: how fast N meshd processes on loopback find each other.

    bench_discovery.py --meshd PATH [--sizes 2,10,50] [--runs 3] [--runs-large 3]
                       [--beacon-interval MS] [--timeout S]

Per run: one free UDP beacon port; N `meshd --events` processes spawned one
after another (the spawn start of each is recorded), all with the default
beacon interval (1 s) unless --beacon-interval is given. Stdout of every
process is read as it comes; a node is done when it has reported N-1
distinct `enter` events. Reported per run:

  converged   from the moment the last process was spawned until every
              node is done (the harness's clock), plus how long spawning took;
  own start   per node, from its own spawn start to being done (harness
              clock), median and max over nodes; and the same from meshd's
              own view (the `ms` field of its (N-1)-th enter: milliseconds
              since it started).

Then SIGTERM to all, and a check that each process printed
{"ev":"stopped"} and exited 0. The median of runs is compared with the target
(median <= 1.5 s at N=50). This is a benchmark: it reports and exits 0 unless
the harness itself cannot run (missing meshd, no free port); a run that does
not converge or a process that does not stop cleanly is reported as such.
Loopback only; Python 3 standard library only.
"""
import argparse
import json
import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_N = 50
TARGET_MEDIAN_S = 1.5
STOP_TIMEOUT_S = 10.0
READ_CHUNK = 65536


def free_udp_port():
    """A UDP port free on 0.0.0.0 a moment ago (meshd binds its beacon there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, index, proc, spawn_start, errfile):
        self.index = index
        self.proc = proc
        self.spawn_start = spawn_start
        self.errfile = errfile
        self.buf = b""
        self.id = None
        self.entered = set()
        self.exits = []
        self.done_at = None   # harness monotonic time when N-1 peers were seen
        self.done_ms = None   # meshd's own "ms" of that enter
        self.stopped = False
        self.eof = False

    def feed(self, data, now, want):
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self.line(line, now, want)

    def line(self, raw, now, want):
        try:
            ev = json.loads(raw)
        except ValueError:
            return
        kind = ev.get("ev")
        if kind == "ready":
            self.id = ev.get("id")
        elif kind == "enter":
            self.entered.add(ev.get("id"))
            if self.done_at is None and len(self.entered) >= want:
                self.done_at = now
                self.done_ms = ev.get("ms")
        elif kind == "exit":
            self.exits.append(ev.get("reason"))
        elif kind == "stopped":
            self.stopped = True


def read_available(sel, nodes_by_fd, want, deadline, until):
    """Reads stdout of the nodes until until() is true, EOF everywhere, or deadline."""
    while not until():
        left = deadline - time.monotonic()
        if left <= 0 or not sel.get_map():
            return
        for key, _ in sel.select(timeout=min(left, 0.2)):
            node = nodes_by_fd[key.fd]
            data = os.read(key.fd, READ_CHUNK)
            now = time.monotonic()
            if not data:
                node.eof = True
                sel.unregister(key.fd)
                continue
            node.feed(data, now, want)


def one_run(meshd, n, run, beacon_interval, timeout):
    port = free_udp_port()
    want = n - 1
    nodes = []
    sel = selectors.DefaultSelector()
    nodes_by_fd = {}
    args_common = ["--beacon-port", str(port), "--events", "--log-level", "warn"]
    if beacon_interval:
        args_common += ["--beacon-interval", str(beacon_interval)]
    for i in range(n):
        errfile = tempfile.TemporaryFile()
        start = time.monotonic()
        proc = subprocess.Popen([meshd, "--name", "d%d-%d-%d" % (n, run, i)] + args_common,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=errfile)
        os.set_blocking(proc.stdout.fileno(), False)
        node = Node(i, proc, start, errfile)
        nodes.append(node)
        nodes_by_fd[proc.stdout.fileno()] = node
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ)
    all_spawned = time.monotonic()
    spawn_s = all_spawned - nodes[0].spawn_start

    read_available(sel, nodes_by_fd, want, all_spawned + timeout,
                   lambda: all(nd.done_at is not None for nd in nodes))
    done = [nd for nd in nodes if nd.done_at is not None]
    converged = len(done) == n
    conv_s = max(nd.done_at for nd in nodes) - all_spawned if converged else None
    own = [nd.done_at - nd.spawn_start for nd in done]
    own_ms = [nd.done_ms / 1000.0 for nd in done if isinstance(nd.done_ms, (int, float))]
    exits_before_stop = sum(len(nd.exits) for nd in nodes)

    # Stop: SIGTERM everyone, drain stdout to EOF, collect exit codes.
    for nd in nodes:
        if nd.proc.poll() is None:
            nd.proc.send_signal(signal.SIGTERM)
    stop_deadline = time.monotonic() + STOP_TIMEOUT_S
    read_available(sel, nodes_by_fd, want, stop_deadline,
                   lambda: all(nd.eof for nd in nodes))
    clean = 0
    problems = []
    for nd in nodes:
        try:
            rc = nd.proc.wait(timeout=max(0.1, stop_deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            nd.proc.kill()
            rc = nd.proc.wait()
            problems.append("node %d did not stop within %.0f s (killed)" % (nd.index,
                                                                               STOP_TIMEOUT_S))
        if rc == 0 and nd.stopped:
            clean += 1
        elif rc is not None and rc != -signal.SIGKILL:
            problems.append("node %d: exit %s, stopped event %s" % (nd.index, rc, nd.stopped))
        if rc != 0:
            nd.errfile.seek(0)
            tail = nd.errfile.read()[-400:].decode(errors="replace").strip()
            if tail:
                problems.append("node %d stderr: %s" % (nd.index, tail))
        nd.proc.stdout.close()
        nd.errfile.close()
    sel.close()
    return {
        "n": n, "port": port, "spawn_s": spawn_s, "converged": converged, "conv_s": conv_s,
        "done": len(done), "own": own, "own_ms": own_ms, "clean": clean,
        "exits_before_stop": exits_before_stop, "problems": problems,
        "missing": [] if converged else
        ["node %d saw %d/%d" % (nd.index, len(nd.entered), want) for nd in nodes
         if nd.done_at is None][:10],
    }


def fmt_s(v):
    return "%.3f s" % v if v is not None else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--meshd", required=True, help="path to the meshd binary")
    ap.add_argument("--sizes", default="2,10,50", help="comma-separated N values")
    ap.add_argument("--runs", type=int, default=3, help="runs per N (>= 3 for a median)")
    ap.add_argument("--runs-large", type=int, default=3,
                    help="runs for N >= 50 (kept separately: those runs are the slow ones)")
    ap.add_argument("--beacon-interval", type=int, default=0,
                    help="meshd --beacon-interval in ms (default: meshd's own, 1000)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per run, seconds")
    opts = ap.parse_args()
    if not os.access(opts.meshd, os.X_OK):
        print("bench_discovery: no meshd at %s" % opts.meshd, file=sys.stderr)
        return 1
    sizes = [int(x) for x in opts.sizes.split(",") if x]
    print("# discovery convergence: N meshd --events on loopback, beacon interval %s, "
          "one free beacon port per run" %
          ("%d ms" % opts.beacon_interval if opts.beacon_interval else "default (1000 ms)"))
    summary = []
    for n in sizes:
        runs = opts.runs_large if n >= TARGET_N else opts.runs
        results = []
        for r in range(runs):
            res = one_run(opts.meshd, n, r, opts.beacon_interval, opts.timeout)
            results.append(res)
            own = res["own"]
            own_ms = res["own_ms"]
            print("N=%-3d run %d: converged %s after the last spawn (spawning took %.3f s"
                  "%s); "
                  "own start -> all seen: median %s max %s (meshd's view: median %s max %s); "
                  "clean exits %d/%d%s" % (
                      n, r + 1, fmt_s(res["conv_s"]) if res["converged"] else
                      "NOT (%d/%d nodes done in %.0f s)" % (res["done"], n, opts.timeout),
                      res["spawn_s"],
                      ", %.3f s after the first" % (res["spawn_s"] + res["conv_s"])
                      if res["converged"] else "",
                      fmt_s(statistics.median(own)) if own else "-",
                      fmt_s(max(own)) if own else "-",
                      fmt_s(statistics.median(own_ms)) if own_ms else "-",
                      fmt_s(max(own_ms)) if own_ms else "-",
                      res["clean"], n,
                      "; %d exit events before stop" % res["exits_before_stop"]
                      if res["exits_before_stop"] else ""))
            for p in res["problems"][:10] + res["missing"]:
                print("    " + p)
            sys.stdout.flush()
        conv = [x["conv_s"] for x in results if x["converged"]]
        med = statistics.median(conv) if conv else None
        summary.append((n, med, conv, len(results)))
    print("\n== summary ==")
    for n, med, conv, runs in summary:
        line = "N=%-3d median %s over %d/%d converged runs (%s)" % (
            n, fmt_s(med), len(conv), runs, ", ".join("%.3f" % c for c in conv))
        if n == TARGET_N:
            line += "   target <= %.1f s: %s" % (
                TARGET_MEDIAN_S, "met" if med is not None and med <= TARGET_MEDIAN_S
                else "NOT met")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
