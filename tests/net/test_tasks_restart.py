#!/usr/bin/env python3
"""Tasks survive a crash with a data directory, black-box (loopback, free beacon port):

  1. one meshd with --data-dir: a task that already ran, and three with a countdown; SIGKILL
     before they are due; a new meshd on the same directory runs the three at their time
     (not at the restart), and not the one that had finished.
  2. three meshd with a data directory each: tasks with countdowns (and idempotency keys);
     SIGKILL of all three (a power cut of the whole LAN) before any is due; all three restart
     (new peer ids, so a new ring): every task runs exactly once, none is lost.
  3. the same with no data directory is the control: after the crash the tasks are gone (the
     docs say replication is then the only protection), so case 2 tests the journal.

The exec agent appends "<payload> <wall ms>" to a log for every run."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import meshtest as mt

BEACON_MS = 200
PING_MS = 200
OFFSET_MS = 1000
GRACE_MS = 1500

METHOD = """#!/bin/sh
payload=$(cat)
echo "$payload $(date +%%s%%3N)" >> "%(log)s"
echo '{"ok":true}'
"""


class Nodes:
    def __init__(self, work, n, journal=True, extra=()):
        self.port = str(mt.free_udp_port())
        self.realm = "restart-%d-%s" % (os.getpid(), os.path.basename(work))
        self.work = work
        self.n = n
        self.journal = journal
        self.extra = list(extra)
        self.log = os.path.join(work, "runs.log")
        self.agent = os.path.join(work, "agent")
        os.makedirs(self.agent, exist_ok=True)
        m = os.path.join(self.agent, "rec")
        with open(m, "w") as f:
            f.write(METHOD % {"log": self.log})
        os.chmod(m, 0o755)
        self.procs = [None] * n
        self.lives = 0

    def start(self):
        self.lives += 1
        for i in range(self.n):
            args = [mt.meshd_bin(), "--name", "n%d" % i, "--realm", self.realm,
                    "--beacon-port", self.port, "--beacon-interval", str(BEACON_MS),
                    "--ping-interval", str(PING_MS), "--task-replica-offset", str(OFFSET_MS),
                    "--task-startup-grace", str(GRACE_MS), "--exec-agent", "t=" + self.agent]
            if self.journal:
                args += ["--data-dir", os.path.join(self.work, "data-n%d" % i)]
            args += self.extra
            out = open(os.path.join(self.work, "n%d-life%d.log" % (i, self.lives)), "w")
            self.procs[i] = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        time.sleep(1.5)

    def kill(self):
        for p in self.procs:
            p.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait(timeout=10)

    def stop(self):
        for p in self.procs:
            if p and p.poll() is None:
                p.kill()
                p.wait(timeout=10)

    def ctl(self, *args):
        p = subprocess.run([mt.meshctl_bin(), "task"] + list(args) +
                           ["--realm", self.realm, "--beacon-port", self.port,
                            "--beacon-interval", str(BEACON_MS)],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def submit(self, tag, countdown, key=None):
        args = ["submit", "/t/rec", json.dumps({"tag": tag}), "--countdown", str(countdown)]
        if key:
            args += ["--idempotency-key", key]
        rc, out, err = self.ctl(*args)
        mt.expect(rc == 0 and len(out.strip()) == 32, "submit %s: exit %d %r %r" % (
            tag, rc, out, err))
        return out.strip()

    def runs(self):
        """tag -> [wall ms of each run]"""
        got = {}
        if os.path.exists(self.log):
            with open(self.log) as f:
                for line in f:
                    payload, _, ms = line.rstrip("\n").rpartition(" ")
                    try:
                        tag = json.loads(payload)["tag"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    got.setdefault(tag, []).append(int(ms))
        return got

    def wait_runs(self, tags, timeout):
        end = time.time() + timeout
        while time.time() < end:
            r = self.runs()
            if all(t in r for t in tags):
                return r
            time.sleep(0.2)
        return self.runs()


def one_node():
    mt.check("one meshd, --data-dir, SIGKILL: its tasks run after the restart, at their time")
    work = tempfile.mkdtemp(prefix="mesh-restart-1-")
    c = Nodes(work, 1)
    try:
        c.start()
        time.sleep(GRACE_MS / 1000.0)
        c.submit("done-before", 0)
        r = c.wait_runs(["done-before"], 10)
        mt.expect("done-before" in r, "the first task did not run: %r" % r)
        t0 = int(time.time() * 1000)
        ids = [c.submit("later-%d" % i, 6) for i in range(3)]
        time.sleep(0.5)
        c.kill()
        time.sleep(1.0)
        mt.expect(not any(k.startswith("later") for k in c.runs()), "ran before the crash")
        c.start()
        tags = ["later-%d" % i for i in range(3)]
        r = c.wait_runs(tags, 20)
        mt.expect(all(len(r.get(t, [])) == 1 for t in tags), "after the restart: %r" % r)
        early = [t for t in tags if r[t][0] < t0 + 5800]
        mt.expect(not early, "ran before their countdown: %r (submitted at %d)" % (r, t0))
        time.sleep(OFFSET_MS * 2 / 1000.0)
        r = c.runs()
        mt.expect(len(r["done-before"]) == 1, "the finished task ran again: %r" % r)
        for tid in ids:
            rc, out, err = c.ctl("status", tid)
            mt.expect(rc == 0 and json.loads(out)["state"] == "succeeded",
                      "status %s: %d %s %s" % (tid, rc, out, err))
        mt.ok("3 tasks back and run once at their time; the finished one not again")
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)


def whole_cluster(journal):
    what = "journals" if journal else "no data dir (control)"
    mt.check("three meshd, all SIGKILLed and restarted, %s" % what)
    work = tempfile.mkdtemp(prefix="mesh-restart-3-")
    c = Nodes(work, 3, journal=journal)
    try:
        c.start()
        time.sleep(GRACE_MS / 1000.0 + 0.5)
        tags = ["all-%02d" % i for i in range(20)]
        for i, t in enumerate(tags):
            c.submit(t, 8, key=("key-%s" % t) if i % 2 else None)
        time.sleep(0.5)
        c.kill()
        time.sleep(1.0)
        c.start()
        r = c.wait_runs(tags, 25 if journal else 12)
        if journal:
            missing = [t for t in tags if t not in r]
            twice = {t: v for t, v in r.items() if len(v) > 1}
            mt.expect(not missing, "lost after the crash: %r" % missing)
            time.sleep(OFFSET_MS * 3 / 1000.0)
            r = c.runs()
            twice = {t: v for t, v in r.items() if len(v) > 1}
            mt.expect(not twice, "ran more than once: %r" % twice)
            mt.ok("20 tasks, each run once after the restart")
        else:
            mt.expect(not r, "without a data dir the tasks should be gone: %r" % r)
            mt.ok("gone, as documented")
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    one_node()
    whole_cluster(True)
    whole_cluster(False)


if __name__ == "__main__":
    mt.run(main)
