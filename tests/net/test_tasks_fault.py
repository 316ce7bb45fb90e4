#!/usr/bin/env python3
"""Tasks under faults (issue 5): 1,000 tasks on 5 netlab hosts, a SIGKILLed node, a cut host.

Hosts 1..5 run meshd (n1..n5, eth0) with the task service (replicas 2, replica offset 2 s)
and the recording agent agents/examples/record as exec agent `rec`: every invocation appends
a line to one shared log (node, meshd pid, caller, MESH_KEY, MESH_ATTEMPT, the payload's tag,
time) and performs its effect once per key (mkdir effects/<MESH_KEY>; a repeat logs `dup`).
Host 6 runs only meshctl.

  1. from host 6, `meshctl task submit /rec/run --batch - --json`: 1,000 tasks, countdowns
     spread over 5..25 s, a unique idempotency key each, a payload {"tag", "sleep"} (runs last
     0.2-0.5 s, so some are in flight when a host goes);
  2. t = 8 s after the submit: `netlab cut` of host C (n4) -- longer than the failure
     detection (expired 6 s) -- and t = 22 s: heal, before the last countdown;
  3. t = 11 s (about 1/3 of the countdowns passed): SIGKILL of n2's meshd, the ring owner of
     about 1/5 of the tasks (and replica of another 1/5);
  4. `meshctl task list` from host 6 until every task is final (at most 90 s after the last
     countdown), then a few seconds more for late runs.

Checked (every problem is gathered and reported before the test fails):
  * every one of the 1,000 ids is listed, and succeeded (any other state: its details);
  * each run carried its task id as MESH_KEY, and each task's effect happened exactly once
    (one effects/<id>, one `effect` line);
  * the count of tasks invoked more than once; every such task had an earlier invocation on
    the killed host or on the cut host while it was cut (a provider lost mid-run is the one
    case where the mesh re-invokes), or both of its holders faulted at once (its runner killed
    mid-run during the cut, and the re-run, after the heal, by a holder that never heard of
    that run: its attempt number is not past the killed runner's) --
    else the offending tasks' invocation lines are printed.

Needs root (netlab); 77 otherwise. Runs in about 1-2 minutes.
"""

import collections
import json
import os
import subprocess
import time

import meshtest as mt

RECORD_AGENT = os.path.join(mt.REPO, "agents", "examples", "record", "run")
N_TASKS = int(os.environ.get("MESH_FAULT_TASKS", "1000"))
MESHD_HOSTS = (1, 2, 3, 4, 5)
CTL_HOST = 6
KILL_HOST = 2
CUT_HOST = 4
COUNTDOWN_MIN_S, COUNTDOWN_MAX_S = 5.0, 25.0
CUT_AT_S, HEAL_AT_S, KILL_AT_S = 8.0, 22.0, 11.0  # after the submit returned
SLEEP_MIN_S, SLEEP_MAX_S = 0.2, 0.5                # each run's length
FINAL_WAIT_S = 90.0                                # after the last countdown
LATE_RUNS_S = 5.0                                  # look for late runs after all are final
CUT_MARGIN_S = SLEEP_MAX_S + 0.5                   # a run started this long before the cut
BEACON_MS, PING_MS, EVASIVE_MS, EXPIRED_MS = 250, 500, 2000, 6000
REPLICAS, OFFSET_MS = 2, 2000
WORKERS, AGENT_TIMEOUT_MS = 16, 20000
FINAL = ("succeeded", "failed", "expired", "cancelled")


def name_of(host):
    return "n%d" % host


class Ctl:
    """meshctl inside host 6 with the lab's discovery flags."""

    def __init__(self, lab, port):
        self.lab = lab
        self.disc = ["--iface", "eth0", "--beacon-port", str(port),
                     "--beacon-interval", str(BEACON_MS)]

    def run(self, *args, stdin=None, timeout=60):
        argv = self.lab.wrap(CTL_HOST) + [mt.meshctl_bin()] + [str(a) for a in args] + self.disc
        mt.log("run@%d: meshctl %s%s" % (CTL_HOST, " ".join(map(str, args)),
                                         " (stdin: %d bytes)" % len(stdin) if stdin else ""))
        t = time.monotonic()
        try:
            r = subprocess.run(argv, input=stdin.encode() if stdin is not None else None,
                               stdin=None if stdin is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=self.lab.env, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            mt.fail("meshctl %s did not finish within %d s\nstderr: %s" % (
                " ".join(map(str, args)), timeout,
                (exc.stderr or b"").decode(errors="replace")[-3000:]))
        return (r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"), time.monotonic() - t)


def read_log(path):
    """The recording agent's lines, parsed (a torn or foreign line is reported)."""
    runs, bad = [], []
    if not os.path.exists(path):
        return runs, bad
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
                if not isinstance(e, dict) or "ev" not in e:
                    raise ValueError("not a record")
                runs.append(e)
            except ValueError:
                bad.append(line.rstrip("\n"))
    return runs, bad


def fmt_run(e, t0):
    return "  %-6s %-3s pid %-7s caller %-8s attempt %s key %s t=+%.3fs%s" % (
        e.get("ev"), e.get("node"), e.get("pid"), e.get("caller"), e.get("attempt"),
        e.get("key"), float(e.get("t", 0)) - t0,
        " (no payload)" if e.get("payload_lost") or e.get("tag") == "-" else "")


def list_tasks(ctl):
    """{id: status} from `meshctl task list` (None if the command failed)."""
    rc, out, err, dt = ctl.run("task", "list", "--wait", 5000, timeout=60)
    if rc != 0:
        mt.note("task list: exit %d (%.1f s): %s" % (rc, dt, err.strip()[-500:]))
        return None
    tasks = {}
    for line in out.splitlines():
        if line.strip():
            try:
                t = json.loads(line)
                tasks[t["id"]] = t
            except (ValueError, KeyError):
                mt.note("task list: a line that is not a task: %r" % line[:200])
    return tasks


def main():
    meshd = mt.meshd_bin()
    helptext = subprocess.run([meshd, "--help"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT).stdout.decode(errors="replace")
    if "--task-replica-offset" not in helptext or "--exec-agent" not in helptext:
        raise mt.Skip("this meshd has no task service or no exec agents")
    r = subprocess.run([mt.meshctl_bin(), "task", "submit", "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0 or b"--batch" not in r.stdout:
        raise mt.Skip("meshctl has no `task submit --batch`")
    port = mt.free_udp_port()
    work = os.path.join(mt.logdir(), "fault-%d" % os.getpid())  # kept when the test fails
    rec_dir = os.path.join(work, "records")
    os.makedirs(rec_dir)
    runs_log = os.path.join(rec_dir, "runs.log")
    effects_dir = os.path.join(rec_dir, "effects")

    with mt.Netlab(max(MESHD_HOSTS + (CTL_HOST,))) as lab:
        mt.check("meshd on hosts %s (beacon %d ms, ping %d ms, evasive %d ms, expired %d ms; "
                 "tasks: replicas %d, offset %d ms) with the recording agent"
                 % (",".join(map(str, MESHD_HOSTS)), BEACON_MS, PING_MS, EVASIVE_MS, EXPIRED_MS,
                    REPLICAS, OFFSET_MS))
        nodes = {}
        for h in MESHD_HOSTS:
            agent = os.path.join(work, "agent-%s" % name_of(h))
            os.makedirs(agent)
            os.symlink(RECORD_AGENT, os.path.join(agent, "run"))
            with open(os.path.join(agent, "record.conf"), "w") as f:
                f.write("dir=%s\nnode=%s\n" % (rec_dir, name_of(h)))
            cfg = os.path.join(work, "%s.cfg" % name_of(h))
            with open(cfg, "w") as f:
                f.write("agents\n    rec\n        kind = exec\n        path = %s\n"
                        "        workers = %d\n        timeout = %d\n"
                        % (agent, WORKERS, AGENT_TIMEOUT_MS))
            nodes[h] = lab.spawn_meshd(
                h, name_of(h), "--config", cfg, "--iface", "eth0", "--beacon-port", port,
                "--beacon-interval", BEACON_MS, "--ping-interval", PING_MS,
                "--evasive", EVASIVE_MS, "--expired", EXPIRED_MS,
                "--task-replicas", REPLICAS, "--task-replica-offset", OFFSET_MS)
        for p in nodes.values():
            p.ready()
        mt.all_see_all(list(nodes.values()), timeout=20)
        pids = {name_of(h): p.pid for h, p in nodes.items()}
        mt.ok("all see all; meshd pids %s" % pids)
        ctl = Ctl(lab, port)

        mt.check("submit %d tasks from host %d with --batch (countdowns %g..%g s, unique "
                 "idempotency keys)" % (N_TASKS, CTL_HOST, COUNTDOWN_MIN_S, COUNTDOWN_MAX_S))
        run_id = "f%d" % os.getpid()
        lines, tags = [], []
        span = COUNTDOWN_MAX_S - COUNTDOWN_MIN_S
        for i in range(N_TASKS):
            tag = "%s-%04d" % (run_id, i)
            tags.append(tag)
            frac = i / max(1, N_TASKS - 1)
            lines.append(json.dumps({
                "payload": {"tag": tag,
                            "sleep": round(SLEEP_MIN_S + (SLEEP_MAX_S - SLEEP_MIN_S)
                                           * ((i * 7919) % 100) / 99.0, 2)},
                "countdown": round(COUNTDOWN_MIN_S + span * frac, 3),
                "idempotency_key": "key-" + tag}))
        rc, out, err, dt = ctl.run("task", "submit", "/rec/run", "--batch", "-", "--json",
                                   "--wait", 10000, stdin="\n".join(lines) + "\n", timeout=120)
        t_submitted = time.monotonic()
        t_wall0 = time.time()
        results = [json.loads(l) for l in out.splitlines() if l.strip()]
        mt.expect(rc == 0 and len(results) == N_TASKS,
                  "submit --batch: exit %d, %d result lines for %d tasks\nstderr: %s\n"
                  "first lines: %s" % (rc, len(results), N_TASKS, err[-3000:], out[:1000]))
        id_of, tag_of = {}, {}
        for i, res in enumerate(results):
            mt.expect(res.get("line") == i + 1 and "id" in res and
                      res.get("idempotency_key") == "key-" + tags[i],
                      "submit --batch result %d out of order or failed: %r" % (i + 1, res))
            id_of[tags[i]] = res["id"]
            tag_of[res["id"]] = tags[i]
        mt.expect(len(tag_of) == N_TASKS, "%d distinct ids for %d tasks" % (len(tag_of), N_TASKS))
        mt.ok("%d ids in %.2f s (%.0f submits/s)" % (N_TASKS, dt, N_TASKS / dt))
        last_due = t_submitted + COUNTDOWN_MAX_S  # every countdown started before this

        # The faults, on a schedule relative to the end of the submit.
        killed, cut = name_of(KILL_HOST), name_of(CUT_HOST)
        events = [(CUT_AT_S, "cut"), (KILL_AT_S, "kill"), (HEAL_AT_S, "heal")]
        t_cut = t_heal = t_kill = None
        mt.check("faults: cut %s at +%gs, SIGKILL %s at +%gs, heal %s at +%gs"
                 % (cut, CUT_AT_S, killed, KILL_AT_S, cut, HEAL_AT_S))
        for at, what in sorted(events):
            left = t_submitted + at - time.monotonic()
            if left > 0:
                time.sleep(left)
            if what == "cut":
                lab.cut(CUT_HOST)
                t_cut = time.time()
            elif what == "heal":
                lab.heal(CUT_HOST)
                t_heal = time.time()
            else:
                nodes[KILL_HOST].kill()
                t_kill = time.time()
            ran, _ = read_log(runs_log)
            mt.log("  %s done at +%.1fs; %d runs started so far"
                   % (what, time.monotonic() - t_submitted,
                      sum(1 for e in ran if e.get("ev") == "start")))
        mt.ok("cut %.1f s (expired is %.1f s)" % (t_heal - t_cut, EXPIRED_MS / 1000.0))

        mt.check("every task final within %d s of the last countdown" % FINAL_WAIT_S)
        left = last_due - time.monotonic()
        if left > 0:
            time.sleep(left)
        deadline = last_due + FINAL_WAIT_S
        tasks, all_final = None, False
        while True:
            got = list_tasks(ctl)
            if got is not None:
                tasks = got
                mine = [t for i, t in tasks.items() if i in tag_of]
                states = collections.Counter(t["state"] for t in mine)
                mt.log("  list: %d of our %d tasks listed: %s" % (len(mine), N_TASKS,
                                                                   dict(states)))
                if len(mine) == N_TASKS and all(t["state"] in FINAL for t in mine):
                    all_final = True
                    break
            if time.monotonic() > deadline:
                break
            time.sleep(3)
        t_final = time.monotonic()
        if not all_final:
            # what each live task service thinks of itself, to tell why nothing starts
            for name in sorted(name_of(h) for h in nodes):
                if name == killed:
                    continue
                rc, out, err, dt = ctl.run("call", "/sys/stats", "--selector", "direct",
                                           "--peer", name, timeout=30)
                try:
                    doc = json.loads(out)
                    mt.log("  %s /sys/stats tasks: %s" % (name, doc.get("tasks")))
                except ValueError:
                    mt.log("  %s /sys/stats: exit %d %s" % (name, rc, err.strip()[-200:]))
            rc, out, err, dt = ctl.run("ring", timeout=30)
            mt.log("  meshctl ring (exit %d):\n%s" % (rc, out))
        time.sleep(LATE_RUNS_S)
        tasks = list_tasks(ctl) or tasks or {}

        # ---- the verdict: gather every problem, then report them all
        problems = []
        mine = {i: t for i, t in tasks.items() if i in tag_of}
        missing = sorted(set(tag_of) - set(mine))
        if missing:
            detail = []
            for i in missing[:10]:
                rc, out, err, _ = ctl.run("task", "status", i, "--wait", 5000)
                detail.append("    %s (%s): status exit %d %s%s" % (
                    i, tag_of[i], rc, out.strip(), err.strip()))
            problems.append("%d tasks not listed (lost?); task status of the first %d:\n%s"
                            % (len(missing), len(detail), "\n".join(detail)))
        not_ok = sorted((i for i, t in mine.items() if t["state"] != "succeeded"),
                        key=lambda i: tag_of[i])
        not_ok_errors = collections.Counter(
            "%s: %s" % (mine[i]["state"], mine[i].get("error", "-")) for i in not_ok)
        failures = sum(1 for t in mine.values() if t.get("failures"))
        attempts = collections.Counter(t.get("attempt") for t in mine.values())

        runs, torn = read_log(runs_log)
        if torn:
            problems.append("%d log lines are not whole records (interleaved writes?): %r"
                            % (len(torn), torn[:5]))
        # A run without the payload's tag: its method read an empty stdin (meshd killed between
        # starting it and writing the payload?); its key still says which task it was.
        untagged = [e for e in runs if e.get("tag") not in id_of and e.get("key") in tag_of]
        for e in untagged:
            e["tag"] = tag_of[e["key"]]
            e["payload_lost"] = True
        if untagged:
            mt.note("%d log lines of runs that got no payload (an empty stdin), on %s:\n%s" % (
                len(untagged), sorted({e["node"] for e in untagged}),
                "\n".join(fmt_run(e, t_wall0) for e in untagged[:10])))
        by_tag = collections.defaultdict(list)
        for e in runs:
            by_tag[e.get("tag")].append(e)
        starts = {tag: [e for e in by_tag.get(tag, []) if e["ev"] == "start"] for tag in tags}
        foreign = [e for e in runs if e.get("tag") not in id_of]
        if foreign:
            problems.append("%d log lines of no task of this test: %s" % (
                len(foreign), [fmt_run(e, t_wall0) for e in foreign[:5]]))

        # MESH_KEY is the task id, on every attempt
        nokey = sum(1 for e in runs if e.get("tag") in id_of and e.get("key") == "-")
        wrongkey = [e for e in runs if e.get("tag") in id_of and e.get("key") != "-"
                    and e.get("key") != id_of[e["tag"]]]
        if nokey:
            problems.append("%d log lines without MESH_KEY: the task service does not pass the "
                            "task id as the request key" % nokey)
        if wrongkey:
            problems.append("%d log lines whose MESH_KEY is not their task's id, e.g.\n%s" % (
                len(wrongkey), "\n".join("    %s (id %s)" % (fmt_run(e, t_wall0), id_of[e["tag"]])
                                         for e in wrongkey[:5])))

        # each effect once
        effects = set(os.listdir(effects_dir)) if os.path.isdir(effects_dir) else set()
        no_effect = [tag for tag in tags if id_of[tag] not in effects]
        effect_lines = collections.Counter(e["tag"] for e in runs if e.get("ev") == "effect")
        twice = [tag for tag in tags if effect_lines.get(tag, 0) > 1]
        if no_effect:
            problems.append("%d tasks without their effect (effects/<id>), e.g. %s" % (
                len(no_effect), no_effect[:10]))
        if twice:
            problems.append("%d tasks whose effect happened more than once:\n%s" % (
                len(twice), "\n".join("    %s:\n%s" % (tag, "\n".join(
                    fmt_run(e, t_wall0) for e in by_tag[tag])) for tag in twice[:10])))
        if not_ok:
            problems.append("%d tasks not succeeded (%s); the first 10, with their runs:\n%s" % (
                len(not_ok), dict(not_ok_errors), "\n".join(
                    "    %s %s\n%s" % (tag_of[i], json.dumps(mine[i]), "\n".join(
                        fmt_run(e, t_wall0) for e in sorted(
                            by_tag.get(tag_of[i], []), key=lambda e: float(e["t"])))
                        or "      (never invoked)")
                    for i in not_ok[:10])))
        never = [tag for tag in tags if not starts[tag]]
        if never:
            problems.append("%d tasks never invoked, e.g. %s" % (len(never), never[:10]))

        # invocations: more than one only after a provider was lost mid-run
        def excused(e):
            t = float(e["t"])
            if e["node"] == killed:
                return True
            return e["node"] == cut and t_cut - CUT_MARGIN_S <= t <= t_heal

        def while_cut(e):
            return e["node"] == cut and t_cut <= float(e["t"]) <= t_heal

        multi = [tag for tag in tags if len(starts[tag]) > 1]
        unexplained = []
        why = collections.Counter()
        for tag in multi:
            ss = sorted(starts[tag], key=lambda e: float(e["t"]))
            earlier = [e for e in ss[:-1] if excused(e)]
            if earlier:
                why["an earlier run on %s" % ("the killed host" if earlier[0]["node"] == killed
                                              else "the cut host while cut")] += 1
                continue
            # both holders faulted: the runner was killed mid-run while the task's other
            # holder was cut off, so no holder heard of the run; after the heal the cut one
            # (or the holder it hands the task to) runs it again, not knowing: its attempt
            # number is not past the killed runner's. Beyond the promise (one node lost);
            # the effect is still once.
            if (ss[0]["caller"] == killed and
                    int(ss[-1]["attempt"]) <= int(ss[0]["attempt"]) and
                    t_cut <= float(ss[0]["t"]) <= t_heal):
                why["both holders faulted: runner killed mid-run, the other holder cut"] += 1
                continue
            unexplained.append(tag)
            if any(while_cut(e) for e in ss[1:]):
                why["unexplained: run again by the cut host while cut (both sides ran it)"] += 1
            elif ss[0]["caller"] == killed:
                why["unexplained: the first run's runner (caller) was the killed host"] += 1
            elif ss[0]["caller"] == cut:
                why["unexplained: the first run's runner (caller) was the cut host"] += 1
            else:
                why["unexplained: other"] += 1
        invocations = collections.Counter(len(starts[tag]) for tag in tags)
        mt.log("RESULTS (t=0: end of the submit; cut %s +%.1f..+%.1fs, kill %s +%.1fs, %s +%.1fs)"
               % (cut, t_cut - t_wall0, t_heal - t_wall0, killed, t_kill - t_wall0,
                  "all final" if all_final else "gave up waiting for all final",
                  t_final - t_submitted))
        mt.log("  tasks listed %d/%d; states %s; tasks with failures > 0: %d; attempts %s"
               % (len(mine), N_TASKS, dict(collections.Counter(t["state"] for t in mine.values())),
                  failures, dict(sorted(attempts.items(), key=lambda kv: str(kv[0])))))
        mt.log("  invocations per task: %s; invoked more than once: %d"
               % (dict(sorted(invocations.items())), len(multi)))
        for reason, n in why.most_common():
            mt.log("    %4d  %s" % (n, reason))
        per_node = collections.Counter(e["node"] for e in runs if e["ev"] == "start")
        callers = collections.Counter(e["caller"] for e in runs if e["ev"] == "start")
        mt.log("  runs by provider %s; by caller (runner) %s; dup lines %d; attempts > 1 seen by "
               "the handler: %d" % (dict(sorted(per_node.items())), dict(sorted(callers.items())),
                                    sum(1 for e in runs if e["ev"] == "dup"),
                                    sum(1 for e in runs if e["ev"] == "start"
                                        and int(e.get("attempt", 0)) > 1)))
        if unexplained:
            problems.append(
                "%d tasks invoked more than once with no earlier invocation on the killed host "
                "(%s) or on the cut host (%s) while cut (t=0: end of the submit; cut +%.1f..+%.1f, "
                "kill +%.1f); their invocation lines (the first 20 tasks):\n%s" % (
                    len(unexplained), killed, cut, t_cut - t_wall0, t_heal - t_wall0,
                    t_kill - t_wall0,
                    "\n".join("    %s (id %s, final %s):\n%s" % (
                        tag, id_of[tag], json.dumps(mine.get(id_of[tag], {}).get("state")),
                        "\n".join(fmt_run(e, t_wall0) for e in sorted(
                            by_tag[tag], key=lambda e: float(e["t"]))))
                        for tag in unexplained[:20])))
        for p in nodes.values():
            for line in p.stderr_lines:
                if "runtime error:" in line or "Sanitizer" in line:
                    problems.append("%s: sanitizer report: %s" % (p.name, line))
                    break
        if problems:
            mt.fail("%d problem(s):\n- %s\nrecords: %s" % (len(problems), "\n- ".join(problems),
                                                           rec_dir))
        mt.ok("%d tasks succeeded, each effect once; %d invoked more than once, each after a "
              "provider was lost" % (N_TASKS, len(multi)))

        mt.check("SIGTERM: the surviving meshd exit 0")
        for h, p in nodes.items():
            if h != KILL_HOST:
                p.stop(timeout=20)
        mt.ok("exited")


if __name__ == "__main__":
    mt.run(main, describe_events=3)  # the verdict says what happened; events are whispers
