#!/usr/bin/env python3
"""Tasks, black-box: 3 meshd on loopback (free beacon port, short timers) with an exec agent
whose method records every execution in a file, driven by `meshctl task`.

  1. submit --countdown: prints an id; status says scheduled, then succeeded with the result;
     the method ran once.
  2. --idempotency-key: three submits print one id; it runs once.
  3. --max-attempts 2 on a failing method: status failed, attempt 2, the error kept.
  4. cancel before the countdown: cancelled, never runs.
  5. hand-off: a countdown task, then SIGTERM of two of the three nodes, one after the other:
     each hands its tasks to the holders computed without itself, and the task still runs
     exactly once, on the survivor.
  6. list --state succeeded lists the tasks that ran.
  7. submit --batch: 40 lines (payloads, countdowns, keys; a blank line) -> 40 ids in input
     order, JSON with --json; the same batch again -> the same ids; each task runs once.
  8. submit --batch with bad lines: exit 2, every bad line named, nothing submitted.
  9. submit --batch on a ring with a node that runs no task service (--no-tasks): the lines it
     owns fail (exit 3, "-" in their place, their line numbers on stderr), the others succeed.

Skipped (77) when meshctl has no `task` command yet."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

import meshtest as mt

BEACON_MS = 200
PING_MS = 200
OFFSET_MS = 1000

METHOD = """#!/bin/sh
# records its execution: one line per run, the payload as read
payload=$(cat)
echo "$payload" >> "%(log)s"
case "$payload" in
  *fail*) echo "it failed" >&2; exit 3 ;;
esac
echo '{"ok":true}'
"""


def run(args, timeout=30, stdin=None):
    p = subprocess.run([mt.meshctl_bin()] + args, capture_output=True, text=True,
                       timeout=timeout, input=stdin,
                       stdin=None if stdin is not None else subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


class Cluster:
    def __init__(self, work, n=3, no_tasks=0):
        """n meshd; the last no_tasks of them with --no-tasks (on the ring, no task service)."""
        self.port = str(mt.free_udp_port())
        self.realm = "tasks-%d" % os.getpid()
        self.work = work
        self.log = os.path.join(work, "runs.log")
        agent = os.path.join(work, "agent")
        os.makedirs(agent, exist_ok=True)
        m = os.path.join(agent, "rec")
        with open(m, "w") as f:
            f.write(METHOD % {"log": self.log})
        os.chmod(m, 0o755)
        self.procs = []
        for i in range(n):
            out = open(os.path.join(work, "n%d.log" % i), "w")
            self.procs.append(subprocess.Popen(
                [mt.meshd_bin(), "--name", "n%d" % i, "--realm", self.realm,
                 "--beacon-port", self.port, "--beacon-interval", str(BEACON_MS),
                 "--ping-interval", str(PING_MS), "--task-replica-offset", str(OFFSET_MS),
                 "--exec-agent", "t=" + agent] + (["--no-tasks"] if i >= n - no_tasks else []),
                stdout=out, stderr=subprocess.STDOUT))
        time.sleep(1.5)

    def ctl(self, *args, stdin=None):
        return run(["task"] + list(args) + ["--realm", self.realm, "--beacon-port", self.port,
                                             "--beacon-interval", str(BEACON_MS)], stdin=stdin)

    def runs(self, tag):
        if not os.path.exists(self.log):
            return 0
        with open(self.log) as f:
            return sum(1 for line in f if tag in line)

    def status(self, tid):
        rc, out, err = self.ctl("status", tid)
        mt.expect(rc == 0, "task status %s: exit %d: %s" % (tid, rc, err))
        return json.loads(out)

    def wait_state(self, tid, state, timeout):
        end = time.time() + timeout
        st = None
        while time.time() < end:
            st = self.status(tid)
            if st["state"] == state:
                return st
            time.sleep(0.3)
        mt.fail("task %s: %s, expected %s" % (tid, st and st["state"], state))

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()

def batch_lines(prefix, n):
    return "".join(json.dumps({"payload": {"tag": "%s-%03d" % (prefix, i)},
                               "countdown": 1 + (i % 3) * 0.5,
                               "idempotency_key": "%s-key-%d" % (prefix, i)}) + "\n"
                   + ("\n" if i == 4 else "")  # a blank line: skipped, counted
                   for i in range(n))


def check_batch(c):
    mt.check("submit --batch: 40 tasks, one id a line in input order; again: the same ids")
    text = batch_lines("bt", 40)
    rc, out, err = c.ctl("submit", "/t/rec", "--batch", "-", stdin=text)
    mt.expect(rc == 0, "submit --batch: exit %d: %s" % (rc, err))
    rows = [line.split(" ") for line in out.splitlines()]
    mt.expect(len(rows) == 40 and all(len(r) == 2 and len(r[0]) == 32 for r in rows) and
              [r[1] for r in rows] == ["bt-key-%d" % i for i in range(40)],
              "submit --batch output (ID KEY per line, in order):\n%s" % out)
    ids = [r[0] for r in rows]
    mt.expect(len(set(ids)) == 40, "submit --batch: %d distinct ids" % len(set(ids)))
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(text)
    try:
        rc, out, err = c.ctl("submit", "/t/rec", "--batch", f.name, "--json")
    finally:
        os.unlink(f.name)
    mt.expect(rc == 0, "submit --batch FILE --json: exit %d: %s" % (rc, err))
    docs = [json.loads(line) for line in out.splitlines()]
    want = [{"line": i + 1 + (i > 4), "id": ids[i], "idempotency_key": "bt-key-%d" % i}
            for i in range(40)]
    mt.expect(docs == want, "submit --batch --json, same keys: %s\nexpected %s" % (
        docs[:3], want[:3]))
    end = time.time() + 20
    while time.time() < end:
        rc, out, err = c.ctl("list", "--state", "succeeded")
        done = {json.loads(line)["id"] for line in out.splitlines() if line.strip()}
        if set(ids) <= done:
            break
        time.sleep(0.5)
    mt.expect(set(ids) <= done, "%d of 40 batch tasks succeeded" % len(set(ids) & done))
    time.sleep(OFFSET_MS * 3 / 1000.0)
    counts = [c.runs('"bt-%03d"' % i) for i in range(40)]
    mt.expect(counts == [1] * 40, "runs per batch task: %r" % counts)
    mt.ok("40 ids, the same twice (--json with line numbers), each ran once")

    mt.check("submit --batch with bad lines: exit 2, each named, nothing submitted")
    rc, out, err = c.ctl("list")
    before = len(out.splitlines())
    bad = ('{"payload": {"tag": "bad-1"}, "countdown": 1}\n'
           '{"countdown": -1}\n'
           'not json\n'
           '{"payload": 1, "colour": "red"}\n'
           '[1, 2]\n'
           '{"payload": {"tag": "bad-2"}, "countdown": 1, "eta": "2030-01-01T00:00:00Z"}\n'
           '{"idempotency_key": ""}\n'
           '{"replicas": 99}\n'
           '{"max_attempts": 1.5}\n')
    rc, out, err = c.ctl("submit", "/t/rec", "--batch", "-", stdin=bad)
    named = [line for line in err.splitlines() if re.match(r"meshctl task: stdin:\d+: ", line)]
    mt.expect(rc == 2 and out == "" and [l.split(":")[2] for l in named[:8]] ==
              [str(i) for i in range(2, 10)] and "8 bad lines: nothing submitted" in err,
              "bad batch: exit %d\nstdout: %s\nstderr: %s" % (rc, out, err))
    time.sleep(1.5 + OFFSET_MS / 1000.0)
    rc, out, _ = c.ctl("list")
    mt.expect(len(out.splitlines()) == before and c.runs("bad-") == 0,
              "after a bad batch: %d tasks listed (%d before), %d runs" % (
                  len(out.splitlines()), before, c.runs("bad-")))
    for args, why in ((["/t/rec", '{"x": 1}', "--batch", "-"], "a JSON argument"),
                      (["/t/rec", "--batch", "-", "--idempotency-key", "k"], "--idempotency-key"),
                      (["/t/rec", "--json"], "--json without --batch"),
                      (["/t/rec", "--batch", "/nonexistent/batch.jsonl"], "no such file")):
        rc, out, err = c.ctl("submit", *args, stdin="")
        mt.expect(rc == 2 and out == "" and err.startswith("meshctl task:"),
                  "submit %s (%s): exit %d, stderr %r" % (" ".join(args), why, rc, err))
    rc, out, err = c.ctl("submit", "/t/rec", "--batch", "-", stdin="\n\n")
    mt.expect(rc == 0 and out == "", "an empty batch: exit %d %r %r" % (rc, out, err))
    mt.ok("%d lines named; usage errors exit 2; an empty batch exits 0" % len(named))


def check_batch_partial():
    mt.check("submit --batch, one node of three runs no task service: its lines fail (exit 3)")
    work = tempfile.mkdtemp(prefix="mesh-tasks-batch-")
    c = Cluster(work, n=3, no_tasks=1)
    try:
        text = batch_lines("pt", 30)
        rc, out, err = c.ctl("submit", "/t/rec", "--batch", "-", "--wait", "1500", stdin=text)
        rows = [line.split(" ") for line in out.splitlines()]
        failed = [i for i, r in enumerate(rows) if r[0] == "-"]
        named = sorted(int(l.split(":")[2]) for l in err.splitlines()
                       if l.startswith("meshctl task: stdin:") and ": submit: " in l)
        mt.expect(rc == 3 and len(rows) == 30 and
                  [r[1] for r in rows] == ["pt-key-%d" % i for i in range(30)] and
                  0 < len(failed) < 30 and
                  all(len(r[0]) == 32 for i, r in enumerate(rows) if i not in failed) and
                  named == [i + 1 + (i > 4) for i in failed] and
                  "%d of 30 submits failed" % len(failed) in err,
                  "partial batch: exit %d\nstdout:\n%s\nstderr:\n%s" % (rc, out, err))
        mt.ok("%d of 30 failed (NOPROVIDER), in place, exit 3" % len(failed))
    finally:
        c.stop()


def main():
    rc, out, err = run(["task", "--help"])
    if rc != 0:
        raise mt.Skip("meshctl has no task command yet")
    work = tempfile.mkdtemp(prefix="mesh-tasks-")
    c = Cluster(work)
    try:
        mt.check("submit --countdown: an id, scheduled, then succeeded once")
        rc, out, err = c.ctl("submit", "/t/rec", '{"tag":"one"}', "--countdown", "3")
        mt.expect(rc == 0 and len(out.strip()) == 32, "submit: exit %d %r %s" % (rc, out, err))
        tid = out.strip()
        st = c.status(tid)
        mt.expect(st["state"] == "scheduled", "status right after submit: %r" % st)
        st = c.wait_state(tid, "succeeded", 15)
        mt.expect(st.get("result") == {"ok": True}, "result: %r" % st)
        time.sleep(OFFSET_MS * 3 / 1000.0)
        mt.expect(c.runs("one") == 1, "ran %d times" % c.runs("one"))
        mt.ok(tid)

        mt.check("--idempotency-key: one id, one run")
        ids = set()
        for _ in range(3):
            rc, out, err = c.ctl("submit", "/t/rec", '{"tag":"idem"}', "--idempotency-key", "k-1")
            mt.expect(rc == 0, "submit: exit %d %s" % (rc, err))
            ids.add(out.strip())
        mt.expect(len(ids) == 1, "ids: %r" % ids)
        c.wait_state(ids.pop(), "succeeded", 15)
        time.sleep(OFFSET_MS * 3 / 1000.0)
        mt.expect(c.runs("idem") == 1, "ran %d times" % c.runs("idem"))
        mt.ok("1")

        mt.check("--max-attempts 2 on a failing method: failed after 2 attempts")
        rc, out, err = c.ctl("submit", "/t/rec", '{"tag":"fail"}', "--max-attempts", "2")
        mt.expect(rc == 0, "submit: exit %d %s" % (rc, err))
        st = c.wait_state(out.strip(), "failed", 20)
        mt.expect(st["attempt"] == 2 and "failed" in st.get("error", ""), "status: %r" % st)
        mt.expect(c.runs("fail") == 2, "ran %d times" % c.runs("fail"))
        mt.ok("2")

        mt.check("cancel before the countdown: cancelled, never runs")
        rc, out, err = c.ctl("submit", "/t/rec", '{"tag":"cancel"}', "--countdown", "4")
        tid = out.strip()
        rc, out, err = c.ctl("cancel", tid)
        mt.expect(rc == 0 and json.loads(out)["state"] == "cancelled", "cancel: %s %s" % (out, err))
        time.sleep(4 + OFFSET_MS * 2 / 1000.0)
        mt.expect(c.runs("cancel") == 0, "ran %d times" % c.runs("cancel"))
        mt.ok("0")

        check_batch(c)

        mt.check("SIGTERM hands tasks off: two of three nodes leave, the task runs once")
        rc, out, err = c.ctl("submit", "/t/rec", '{"tag":"handoff"}', "--countdown", "8")
        tid = out.strip()
        for p in c.procs[:2]:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=15)
            time.sleep(1.5)
        st = c.wait_state(tid, "succeeded", 20)
        time.sleep(OFFSET_MS * 3 / 1000.0)
        mt.expect(c.runs("handoff") == 1, "ran %d times" % c.runs("handoff"))
        mt.ok(st["state"])

        mt.check("list --state succeeded")
        rc, out, err = c.ctl("list", "--state", "succeeded")
        mt.expect(rc == 0, "list: exit %d %s" % (rc, err))
        listed = [json.loads(line) for line in out.splitlines() if line.strip()]
        mt.expect(any(t["id"] == tid for t in listed), "list: %r" % listed)
        mt.ok("%d tasks" % len(listed))
    finally:
        c.stop()
    check_batch_partial()


if __name__ == "__main__":
    mt.run(main)
