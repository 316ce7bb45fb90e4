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

Skipped (77) when meshctl has no `task` command yet."""

import json
import os
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


def run(args, timeout=30):
    p = subprocess.run([mt.meshctl_bin()] + args, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Cluster:
    def __init__(self, work, n=3):
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
                 "--exec-agent", "t=" + agent], stdout=out, stderr=subprocess.STDOUT))
        time.sleep(1.5)

    def ctl(self, *args):
        return run(["task"] + list(args) + ["--realm", self.realm, "--beacon-port", self.port,
                                             "--beacon-interval", str(BEACON_MS)])

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


if __name__ == "__main__":
    mt.run(main)
