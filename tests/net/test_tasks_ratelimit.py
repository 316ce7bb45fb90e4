#!/usr/bin/env python3
"""A cluster-wide rate limit, black-box: 3 meshd on loopback, each started with
--task-ratelimit /t/rec=4/s; 20 tasks due at once, submitted through every node. The
recording method notes when each run starts: never more than the bucket allows across the
three nodes together (4 at once, then one per 250 ms), and none is dropped (all 20 run, once).
A control run without the limit starts them all within a second or so (so the test can
tell a limit from slow starts)."""

import json
import shutil
import subprocess
import tempfile
import time

import meshtest as mt
from test_tasks_restart import GRACE_MS, Nodes

LIMIT_PER_S = 4
N = 20


def run_batch(c, tag):
    """N tasks in one `submit --batch`, all due 2 s later (so they come due together)."""
    tags = ["%s-%02d" % (tag, i) for i in range(N)]
    lines = "".join(json.dumps({"payload": {"tag": t}, "countdown": 2}) + "\n" for t in tags)
    p = subprocess.run([mt.meshctl_bin(), "task", "submit", "/t/rec", "--batch", "-",
                        "--realm", c.realm, "--beacon-port", c.port, "--beacon-interval", "200"],
                       input=lines, capture_output=True, text=True, timeout=60)
    mt.expect(p.returncode == 0 and len(p.stdout.splitlines()) == N,
              "submit --batch: exit %d %r %r" % (p.returncode, p.stdout, p.stderr))
    r = c.wait_runs(tags, 30)
    missing = [t for t in tags if t not in r]
    mt.expect(not missing, "never ran: %r" % missing)
    twice = {t: v for t, v in r.items() if t in tags and len(v) > 1}
    mt.expect(not twice, "ran more than once: %r" % twice)
    return sorted(r[t][0] for t in tags)


def main():
    mt.check("--task-ratelimit /t/rec=4/s on 3 nodes: 20 tasks start at most 4 + 4/s, all run")
    work = tempfile.mkdtemp(prefix="mesh-ratelimit-")
    c = Nodes(work, 3, journal=False,
              extra=["--task-ratelimit", "/t/rec=%d/s" % LIMIT_PER_S])
    try:
        c.start()
        time.sleep(GRACE_MS / 1000.0 + 0.5)
        starts = run_batch(c, "rl")
        first = starts[0]
        # run k (from 0) needs k + 1 tokens: 4 in the full bucket, then one per 250 ms
        # (minus scheduling slack: the owner grants, the runners start a little later)
        early = [(k, starts[k] - first) for k in range(LIMIT_PER_S, N)
                 if starts[k] - first < (k + 1 - LIMIT_PER_S) * 1000 // LIMIT_PER_S - 100]
        mt.expect(not early, "runs came faster than the limit (run, ms after the first): %r"
                  % early)
        span = starts[-1] - first
        mt.ok("20 runs over %d ms (the limit allows no less than %d)" % (
            span, (N - LIMIT_PER_S) * 1000 // LIMIT_PER_S))
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)

    mt.check("control: without the limit the same 20 tasks start within about a second")
    work = tempfile.mkdtemp(prefix="mesh-ratelimit-ctl-")
    c = Nodes(work, 3, journal=False)
    try:
        c.start()
        time.sleep(GRACE_MS / 1000.0 + 0.5)
        starts = run_batch(c, "free")
        mt.expect(starts[-1] - starts[0] < 2500, "unlimited runs spread over %d ms" % (
            starts[-1] - starts[0]))
        mt.ok("spread %d ms" % (starts[-1] - starts[0]))
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    mt.run(main)
