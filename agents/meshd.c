/*  meshd: runs one mesh peer in the foreground and hosts agents on it.

    See docs/meshd.md. Configuration: a ZPL file (--config, agents/config.c)
    and flags that override it; everything is validated before the peer is
    created. Logs go to stderr or syslog; with --events every ZRE event is
    one JSON line on stdout; with --stdin JSON commands are read from stdin.

    Stopping (SIGTERM, SIGINT, {"stop":true}) drains: every service is
    unexposed, requests in flight get --grace milliseconds to finish, then
    the agents are destroyed and the peer leaves. SIGHUP reloads the agents
    and the task rate limits from the configuration; a bad configuration
    leaves the running ones. A task data dir is checked before any thread
    starts (the check forks). */
#include "agent_impl.h"
#include "cli.h"
#include "jsonpack.h"
#include "codec.h"
#include "config.h"
#include "peer_internal.h"
#include "zre.h"

#include <mesh/mesh.h>

#include <czmq.h>
#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define S_PROG          "meshd"
#define S_LINE_MAX      (1024 * 1024) /* one stdin command line */
#define S_DRAIN_POLL_MS 50            /* how often a drain looks at what is in flight */
#define S_FLUSH_MS      100           /* announcements and last replies out, before leaving */
#define S_REALM_GROUP   "mesh:"       /* a realm's ZRE group is "mesh:REALM" (peer.c) */

typedef struct {
    meshd_config_t cfg;
    int argc;
    char **argv;
    bool events, use_stdin, print_config;
    struct ev_loop *loop;
    mesh_peer_t *peer;
    mesh_taskd_t *taskd; /* the task service (tasks/enabled), or NULL */
    mesh__zre_t *node;
    agent_t *builtin;
    agent_t *agents[MESHD_AGENTS_MAX]; /* the configured ones, as cfg.agents */
    size_t nagents;
    int64_t started_ms;
    char *line;
    size_t line_len;
    bool line_overflow;
    ev_io stdin_io;
    ev_signal sigterm, sigint, sighup;
    ev_timer drain_timer;
    bool draining, finished;
    bool drain_had_work; /* requests were in flight: let the last replies out */
    int64_t drain_deadline;
    ev_timer flush_timer;
    agent_t *retired[MESHD_AGENTS_MAX]; /* replaced by a reload, finishing their work */
    size_t nretired;
    ev_timer retire_timer;
    int64_t retire_deadline;
} s_daemon_t;

/* ------------------------------------------------------------------------ */
/* logging */

static void s_log(const s_daemon_t *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_log(const s_daemon_t *d, int level, const char *fmt, ...)
{
    if (level > d->cfg.log_level) {
        return;
    }
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (d->cfg.syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        syslog(prio[level], "%s", text);
    } else {
        fprintf(stderr, "%s[%d] %s: %s\n", S_PROG, (int)getpid(), meshd_log_level_name(level),
                text);
    }
}

static void s_agent_log(int level, const char *line, void *arg)
{
    s_log(arg, level, "%s", line);
}

/* ------------------------------------------------------------------------ */
/* events (--events) */

static void s_print(json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(text);
    }
    json_decref(obj);
}

static json_t *s_peer_event(const char *ev, const mesh__zre_peer_t *peer)
{
    const char *name = mesh__zre_peer_name(peer);
    return json_pack("{s:s, s:s, s:o}", "ev", ev, "id", mesh__zre_peer_uuid_str(peer), "name",
                     mesh_cli_json_bytes(name, strlen(name)));
}

/*  The mesh's own traffic (service lists, status pings, requests, replies,
    publishes between mesh peers) is not shown as whispers and shouts: a
    msgpack fixarray starting with a mesh envelope type and version. */
static bool s_is_envelope(const mesh__zre_event_t *ev)
{
    const uint8_t *p = ev->data;
    return mesh__zre_peer_is_mesh(ev->peer) && ev->size >= 3 && (p[0] & 0xf0) == 0x90 &&
           p[1] >= MESH_ENV_SERVICES && p[1] <= MESH_ENV_PUBLISH && p[2] == MESH_ENV_VERSION;
}

/*  Mesh peers join their realm's group: plumbing too, not reported as join
    and leave events (the group still shows in enter and peers). */
static bool s_is_realm_group(const mesh__zre_event_t *ev)
{
    return mesh__zre_peer_is_mesh(ev->peer) &&
           strncmp(ev->group, S_REALM_GROUP, strlen(S_REALM_GROUP)) == 0;
}

static void s_on_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    s_daemon_t *d = arg;
    const mesh__zre_peer_t *p = ev->peer;
    json_t *out = NULL;
    switch (ev->type) {
    case MESH_ZRE_EV_ENTER:
        s_log(d, MESHD_LOG_INFO, "peer %s (%s) entered at %s", mesh__zre_peer_name(p),
              mesh__zre_peer_uuid_str(p), mesh__zre_peer_endpoint(p));
        out = mesh_cli_peer_json(p);
        json_object_set_new(out, "ev", json_string("enter"));
        json_object_set_new(out, "ms", json_integer(mesh_cli_now_ms() - d->started_ms));
        break;
    case MESH_ZRE_EV_EXIT:
        s_log(d, MESHD_LOG_INFO, "peer %s (%s) exited: %s", mesh__zre_peer_name(p),
              mesh__zre_peer_uuid_str(p), ev->reason);
        out = s_peer_event("exit", p);
        json_object_set_new(out, "reason", json_string(ev->reason));
        break;
    case MESH_ZRE_EV_EVASIVE:
        s_log(d, MESHD_LOG_DEBUG, "peer %s is evasive", mesh__zre_peer_name(p));
        out = s_peer_event("evasive", p);
        break;
    case MESH_ZRE_EV_BACK:
        s_log(d, MESHD_LOG_DEBUG, "peer %s is back", mesh__zre_peer_name(p));
        out = s_peer_event("back", p);
        break;
    case MESH_ZRE_EV_JOIN:
    case MESH_ZRE_EV_LEAVE:
        if (s_is_realm_group(ev)) {
            break;
        }
        s_log(d, MESHD_LOG_DEBUG, "peer %s %s %s", mesh__zre_peer_name(p),
              ev->type == MESH_ZRE_EV_JOIN ? "joined" : "left", ev->group);
        out = s_peer_event(ev->type == MESH_ZRE_EV_JOIN ? "join" : "leave", p);
        json_object_set_new(out, "group", mesh_cli_json_bytes(ev->group, strlen(ev->group)));
        break;
    case MESH_ZRE_EV_WHISPER:
    case MESH_ZRE_EV_SHOUT: {
        if (s_is_envelope(ev)) {
            break;
        }
        char *b64 = jsonpack_base64_encode(ev->data, ev->size);
        out = s_peer_event(ev->type == MESH_ZRE_EV_WHISPER ? "whisper" : "shout", p);
        if (ev->group) {
            json_object_set_new(out, "group", mesh_cli_json_bytes(ev->group, strlen(ev->group)));
        }
        json_object_set_new(out, "data", json_string(b64 ? b64 : ""));
        free(b64);
        break;
    }
    }
    if (out && d->events) {
        s_print(out);
    } else {
        json_decref(out);
    }
}

static void s_error_event(s_daemon_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_error_event(s_daemon_t *d, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_log(d, MESHD_LOG_WARN, "%s", text);
    if (d->events) {
        s_print(json_pack("{s:s, s:s}", "ev", "error", "error", text));
    }
}

/* ------------------------------------------------------------------------ */
/* agents */

static void s_agents_destroy(s_daemon_t *d, bool drain)
{
    while (d->nagents > 0) {
        agent_destroy(&d->agents[--d->nagents], drain);
    }
}

/*  Creates the agents of cfg. Returns 0, or -1 (the agent logged why) with
    none of them left. */
static int s_agents_create(s_daemon_t *d, const meshd_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nagents; i++) {
        const meshd_agent_conf_t *a = &cfg->agents[i];
        agent_config_t ac;
        meshd_config_agent(a, &ac);
        agent_t *agent = strcmp(a->kind, "exec") == 0 ? agent_exec_new(d->peer, d->loop, &ac)
                                                      : agent_plugin_new(d->peer, d->loop, &ac);
        if (!agent) {
            s_log(d, MESHD_LOG_ERROR, "agent %s (%s %s) could not be loaded", a->name, a->kind,
                  a->path);
            s_agents_destroy(d, false);
            return -1;
        }
        d->agents[d->nagents++] = agent; /* the agent logged what it offers */
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* command line and configuration */

enum {
    OPT_CONFIG = 1000,
    OPT_NAME,
    OPT_REALM,
    OPT_IFACE,
    OPT_BEACON_PORT,
    OPT_PORT,
    OPT_NO_BEACON,
    OPT_SEED,
    OPT_BEACON_INTERVAL,
    OPT_EVASIVE,
    OPT_EXPIRED,
    OPT_PING_INTERVAL,
    OPT_GROUP,
    OPT_HEADER,
    OPT_EXEC_AGENT,
    OPT_PLUGIN,
    OPT_GRACE,
    OPT_TASK_REPLICAS,
    OPT_TASK_REPLICA_OFFSET,
    OPT_NO_TASKS,
    OPT_DATA_DIR,
    OPT_JOURNAL_SYNC,
    OPT_TASK_RATELIMIT,
    OPT_TASK_QUORUM_MEMORY,
    OPT_TASK_STARTUP_GRACE,
    OPT_TASK_RUN_TIMEOUT,
    OPT_LOG_LEVEL,
    OPT_SYSLOG,
    OPT_EVENTS,
    OPT_STDIN,
    OPT_PRINT_CONFIG,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option s_options[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"name", required_argument, NULL, OPT_NAME},
    {"realm", required_argument, NULL, OPT_REALM},
    {"iface", required_argument, NULL, OPT_IFACE},
    {"beacon-port", required_argument, NULL, OPT_BEACON_PORT},
    {"port", required_argument, NULL, OPT_PORT},
    {"no-beacon", no_argument, NULL, OPT_NO_BEACON},
    {"seed", required_argument, NULL, OPT_SEED},
    {"beacon-interval", required_argument, NULL, OPT_BEACON_INTERVAL},
    {"evasive", required_argument, NULL, OPT_EVASIVE},
    {"expired", required_argument, NULL, OPT_EXPIRED},
    {"ping-interval", required_argument, NULL, OPT_PING_INTERVAL},
    {"group", required_argument, NULL, OPT_GROUP},
    {"header", required_argument, NULL, OPT_HEADER},
    {"exec-agent", required_argument, NULL, OPT_EXEC_AGENT},
    {"plugin", required_argument, NULL, OPT_PLUGIN},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"task-replicas", required_argument, NULL, OPT_TASK_REPLICAS},
    {"task-replica-offset", required_argument, NULL, OPT_TASK_REPLICA_OFFSET},
    {"no-tasks", no_argument, NULL, OPT_NO_TASKS},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"journal-sync", required_argument, NULL, OPT_JOURNAL_SYNC},
    {"task-ratelimit", required_argument, NULL, OPT_TASK_RATELIMIT},
    {"task-quorum-memory", required_argument, NULL, OPT_TASK_QUORUM_MEMORY},
    {"task-startup-grace", required_argument, NULL, OPT_TASK_STARTUP_GRACE},
    {"task-run-timeout", required_argument, NULL, OPT_TASK_RUN_TIMEOUT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"syslog", no_argument, NULL, OPT_SYSLOG},
    {"events", no_argument, NULL, OPT_EVENTS},
    {"stdin", no_argument, NULL, OPT_STDIN},
    {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/*  Flags that set one configuration key (value: the argument, or fixed). */
static const struct {
    int opt;
    const char *key;
    const char *fixed;
} s_flag_keys[] = {
    {OPT_NAME, "peer/name", NULL},
    {OPT_REALM, "peer/realm", NULL},
    {OPT_IFACE, "peer/iface", NULL},
    {OPT_BEACON_PORT, "peer/beacon-port", NULL},
    {OPT_PORT, "peer/port", NULL},
    {OPT_NO_BEACON, "peer/beacon", "false"},
    {OPT_SEED, "peer/seed", NULL},
    {OPT_BEACON_INTERVAL, "peer/beacon-interval", NULL},
    {OPT_EVASIVE, "peer/evasive", NULL},
    {OPT_EXPIRED, "peer/expired", NULL},
    {OPT_PING_INTERVAL, "peer/ping-interval", NULL},
    {OPT_GROUP, "peer/group", NULL},
    {OPT_GRACE, "daemon/grace", NULL},
    {OPT_TASK_REPLICAS, "tasks/replicas", NULL},
    {OPT_TASK_REPLICA_OFFSET, "tasks/replica-offset", NULL},
    {OPT_NO_TASKS, "tasks/enabled", "false"},
    {OPT_DATA_DIR, "tasks/data-dir", NULL},
    {OPT_JOURNAL_SYNC, "tasks/journal-sync", NULL},
    {OPT_TASK_RATELIMIT, "tasks/ratelimit", NULL},
    {OPT_TASK_QUORUM_MEMORY, "tasks/quorum-memory", NULL},
    {OPT_TASK_STARTUP_GRACE, "tasks/startup-grace", NULL},
    {OPT_TASK_RUN_TIMEOUT, "tasks/run-timeout", NULL},
    {OPT_LOG_LEVEL, "daemon/log-level", NULL},
    {OPT_SYSLOG, "daemon/syslog", "true"},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: meshd [--config FILE] [--name NAME] [--realm REALM] [--iface IFACE]\n"
            "             [--beacon-port PORT] [--port PORT] [--no-beacon]\n"
            "             [--seed tcp://HOST:PORT]... [--beacon-interval MS] [--evasive MS]\n"
            "             [--expired MS] [--ping-interval MS] [--group G]... [--header K=V]...\n"
            "             [--exec-agent NAME=DIR]... [--plugin NAME=FILE.so]... [--grace MS]\n"
            "             [--task-replicas N] [--task-replica-offset MS] [--no-tasks]\n"
            "             [--data-dir DIR] [--journal-sync full|meta|none]\n"
            "             [--task-ratelimit PATH=LIMIT]... [--task-quorum-memory MS|off]\n"
            "             [--task-startup-grace MS] [--task-run-timeout MS]\n"
            "             [--log-level error|warn|info|debug] [--syslog]\n"
            "             [--events] [--stdin] [--print-config]\n"
            "       meshd --help | --version\n"
            "Runs a mesh peer and its agents in the foreground until SIGTERM or SIGINT;\n"
            "SIGHUP reloads the agents. Flags override the config file. See meshd(1).\n");
}

static const char *s_flag_name(int opt)
{
    for (const struct option *o = s_options; o->name; o++) {
        if (o->val == opt) {
            return o->name;
        }
    }
    return "?";
}

/*  --exec-agent NAME=DIR, --plugin NAME=FILE: an agent from flags replaces
    the file's agent of that name. */
static int s_flag_agent(meshd_config_t *c, int opt, const char *arg, char *err, size_t errlen)
{
    const char *flag = s_flag_name(opt);
    const char *eq = strchr(arg, '=');
    char name[AGENT_NAME_MAX + 1];
    if (!eq || eq == arg || (size_t)(eq - arg) > AGENT_NAME_MAX || !eq[1]) {
        snprintf(err, errlen, "--%s '%s': expected NAME=%s", flag, arg,
                 opt == OPT_EXEC_AGENT ? "DIRECTORY" : "FILE.so");
        return -1;
    }
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg), arg);
    meshd_config_drop_agent(c, name);
    char key[AGENT_NAME_MAX + 32], what[MESHD_ERR_MAX];
    snprintf(key, sizeof key, "agents/%s/kind", name);
    if (meshd_config_set(c, key, opt == OPT_EXEC_AGENT ? "exec" : "plugin", 0, true, what,
                         sizeof what) != 0) {
        snprintf(err, errlen, "--%s '%.128s': %.300s", flag, arg, what);
        return -1;
    }
    snprintf(key, sizeof key, "agents/%s/path", name);
    if (meshd_config_set(c, key, eq + 1, 0, true, what, sizeof what) != 0) {
        snprintf(err, errlen, "--%s '%.128s': %.300s", flag, arg, what);
        return -1;
    }
    return 0;
}

static int s_flag(meshd_config_t *c, int opt, const char *arg, char *err, size_t errlen)
{
    char what[MESHD_ERR_MAX];
    if (opt == OPT_HEADER) {
        const char *eq = strchr(arg, '=');
        char key[MESH_ZRE_STRING_MAX + 16];
        if (!eq || eq == arg || (size_t)(eq - arg) > MESH_ZRE_STRING_MAX) {
            snprintf(err, errlen, "--header '%s': expected KEY=VALUE (key 1 to %d bytes)", arg,
                     MESH_ZRE_STRING_MAX);
            return -1;
        }
        snprintf(key, sizeof key, "peer/header/%.*s", (int)(eq - arg), arg);
        if (meshd_config_set(c, key, eq + 1, 0, true, what, sizeof what) != 0) {
            snprintf(err, errlen, "--header '%.128s': %.300s", arg, what);
            return -1;
        }
        return 0;
    }
    if (opt == OPT_EXEC_AGENT || opt == OPT_PLUGIN) {
        return s_flag_agent(c, opt, arg, err, errlen);
    }
    for (size_t i = 0; i < sizeof s_flag_keys / sizeof s_flag_keys[0]; i++) {
        if (s_flag_keys[i].opt != opt) {
            continue;
        }
        const char *value = s_flag_keys[i].fixed ? s_flag_keys[i].fixed : arg;
        if (meshd_config_set(c, s_flag_keys[i].key, value, 0, true, what, sizeof what) != 0) {
            snprintf(err, errlen, "--%s '%.128s': %.300s", s_flag_name(opt), value, what);
            return -1;
        }
        return 0;
    }
    return 1; /* not a configuration flag */
}

/*  Builds a configuration from the file named by --config and the flags
    (both passes over argv). startup: also takes the process flags (and
    answers --help / --version: returns 1). Returns 0, 1, or -1 with err. */
static int s_build(s_daemon_t *d, meshd_config_t *c, bool startup, char *err, size_t errlen)
{
    const char *file = NULL;
    int opt;
    opterr = 0;
    optind = 0;
    while ((opt = getopt_long(d->argc, d->argv, "", s_options, NULL)) != -1) {
        switch (opt) {
        case OPT_CONFIG:
            file = optarg;
            break;
        case OPT_HELP:
            if (startup) {
                s_usage(stdout);
                return 1;
            }
            break;
        case OPT_VERSION:
            if (startup) {
                printf("%s %s\n", S_PROG, mesh_version());
                return 1;
            }
            break;
        case '?':
        case ':':
            snprintf(err, errlen, "unknown option or missing value: '%s' (see --help)",
                     d->argv[optind - 1]);
            return -1;
        default:
            break;
        }
    }
    if (optind < d->argc) {
        snprintf(err, errlen, "unexpected argument '%s' (see --help)", d->argv[optind]);
        return -1;
    }
    if (file && meshd_config_load(c, file, err, errlen) != 0) {
        return -1;
    }
    optind = 0;
    while ((opt = getopt_long(d->argc, d->argv, "", s_options, NULL)) != -1) {
        if (s_flag(c, opt, optarg, err, errlen) < 0) {
            return -1;
        }
        if (!startup) {
            continue;
        }
        if (opt == OPT_EVENTS) {
            d->events = true;
        } else if (opt == OPT_STDIN) {
            d->use_stdin = true;
        } else if (opt == OPT_PRINT_CONFIG) {
            d->print_config = true;
        }
    }
    return meshd_config_check(c, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* stopping: drain, then leave */

/*  Requests still being handled: what the agents count (retired ones
    included), or what the peer holds open, whichever is more. */
static uint64_t s_inflight(s_daemon_t *d)
{
    uint64_t n = agent_inflight(d->builtin);
    for (size_t i = 0; i < d->nagents; i++) {
        n += agent_inflight(d->agents[i]);
    }
    for (size_t i = 0; i < d->nretired; i++) {
        n += agent_inflight(d->retired[i]);
    }
    uint64_t open = mesh__peer_open_requests(d->peer);
    return n > open ? n : open;
}

static void s_retired_destroy(s_daemon_t *d)
{
    while (d->nretired > 0) {
        agent_destroy(&d->retired[--d->nretired], false);
    }
    ev_timer_stop(d->loop, &d->retire_timer);
}

static void s_leave(s_daemon_t *d)
{
    ev_timer_stop(d->loop, &d->flush_timer);
    mesh_peer_stop(d->peer); /* the leaving beacon */
    ev_break(d->loop, EVBREAK_ALL);
}

static void s_on_flush_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_leave(w->data);
}

/*  Destroys every agent (what still runs fails with "agent unloaded"),
    then leaves: at once, or S_FLUSH_MS later when replies were going out
    (the UDP leaving beacon would overtake them, and callers would see the
    provider lost instead of its answer). */
static void s_finish(s_daemon_t *d)
{
    if (d->finished) {
        s_leave(d);
        return;
    }
    d->finished = true;
    ev_timer_stop(d->loop, &d->drain_timer);
    s_agents_destroy(d, false);
    s_retired_destroy(d);
    agent_destroy(&d->builtin, false);
    if (!d->drain_had_work) {
        s_leave(d);
        return;
    }
    ev_timer_init(&d->flush_timer, s_on_flush_timer, S_FLUSH_MS / 1000., 0.);
    d->flush_timer.data = d;
    ev_timer_start(d->loop, &d->flush_timer);
}

static void s_on_drain_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_daemon_t *d = w->data;
    uint64_t n = s_inflight(d);
    d->drain_had_work = d->drain_had_work || n > 0;
    if (n == 0) {
        s_log(d, MESHD_LOG_INFO, "drained: nothing in flight");
        s_finish(d);
    } else if (mesh_cli_now_ms() >= d->drain_deadline) {
        s_log(d, MESHD_LOG_WARN, "grace period over: %llu requests still in flight fail",
              (unsigned long long)n);
        s_finish(d);
    }
}

/*  Stop being offered (every agent drains: its services are unexposed, new
    requests are rejected, work in flight goes on), then wait for the work
    in flight, at most the grace period. */
static void s_drain_begin(s_daemon_t *d, const char *why)
{
    if (d->draining) {
        s_log(d, MESHD_LOG_WARN, "%s again: stopping without waiting", why);
        s_finish(d);
        return;
    }
    d->draining = true;
    if (d->taskd) {
        /* hand the tasks held here to their other holders before leaving */
        s_log(d, MESHD_LOG_INFO, "handing off %zu tasks", mesh_taskd_count(d->taskd, NULL));
        mesh_taskd_destroy(&d->taskd);
    }
    agent_destroy(&d->builtin, true);
    for (size_t i = 0; i < d->nagents; i++) {
        agent_destroy(&d->agents[i], true);
    }
    ev_timer_stop(d->loop, &d->retire_timer); /* the drain watches them now */
    s_log(d, MESHD_LOG_INFO,
          "stopping (%s): services unexposed, %llu requests in flight, "
          "grace %d ms",
          why, (unsigned long long)s_inflight(d), d->cfg.grace_ms);
    d->drain_deadline = mesh_cli_now_ms() + d->cfg.grace_ms;
    /* the first look after S_FLUSH_MS: the other peers have heard that the
       services are gone, and requests already on their way here got their
       "not found" (their callers move on) rather than finding us gone */
    ev_timer_init(&d->drain_timer, s_on_drain_timer, S_FLUSH_MS / 1000., S_DRAIN_POLL_MS / 1000.);
    d->drain_timer.data = d;
    ev_timer_start(d->loop, &d->drain_timer);
}

/* ------------------------------------------------------------------------ */
/* SIGHUP: reload the agents */

/*  Agents replaced by a reload finish what they were doing (at most the
    grace period) before they are destroyed. */
static void s_on_retire_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_daemon_t *d = w->data;
    bool late = mesh_cli_now_ms() >= d->retire_deadline;
    size_t kept = 0;
    for (size_t i = 0; i < d->nretired; i++) {
        if (late || agent_inflight(d->retired[i]) == 0) {
            agent_destroy(&d->retired[i], false);
        } else {
            d->retired[kept++] = d->retired[i];
        }
    }
    d->nretired = kept;
    if (kept == 0) {
        ev_timer_stop(loop, w);
    }
}

static void s_retire_all(s_daemon_t *d)
{
    while (d->nagents > 0) {
        agent_t *a = d->agents[--d->nagents];
        agent_destroy(&a, true);
        if (d->nretired == MESHD_AGENTS_MAX) {
            agent_destroy(&a, false); /* reloads faster than work ends: no waiting */
        } else {
            d->retired[d->nretired++] = a;
        }
    }
    if (d->nretired > 0) {
        d->retire_deadline = mesh_cli_now_ms() + d->cfg.grace_ms;
        ev_timer_set(&d->retire_timer, S_DRAIN_POLL_MS / 1000., S_DRAIN_POLL_MS / 1000.);
        ev_timer_again(d->loop, &d->retire_timer);
    }
}

static char *s_print_sections(const meshd_config_t *c, unsigned sections)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        meshd_config_print(c, f, sections);
        fclose(f);
    }
    return text;
}

/*  A reload applies the new rate limits to the running task service
    (removed ones first, so that the table never overflows) and keeps them
    in d->cfg; next gets the old ones (its caller frees them). */
static void s_reload_ratelimits(s_daemon_t *d, meshd_config_t *next)
{
    const meshd_ratelimits_t *was = &d->cfg.ratelimits, *now = &next->ratelimits;
    for (size_t pass = 0; d->taskd && pass < 2; pass++) {
        const meshd_ratelimits_t *from = pass == 0 ? was : now, *to = pass == 0 ? now : was;
        for (size_t i = 0; i < from->n; i++) {
            size_t k = 0;
            while (k < to->n && strcmp(to->path[k], from->path[i]) != 0) {
                k++;
            }
            bool found = k < to->n;
            if (pass == 0 ? found : found && strcmp(to->limit[k], from->limit[i]) == 0) {
                continue; /* pass 0: still limited; pass 1: unchanged */
            }
            const char *limit = pass == 0 ? NULL : from->limit[i];
            int rc = mesh_taskd_set_ratelimit(d->taskd, from->path[i], limit);
            if (rc != 0) {
                s_log(d, MESHD_LOG_ERROR, "reload: rate limit %s: %s", from->path[i],
                      mesh_strerror(rc));
            } else {
                s_log(d, MESHD_LOG_INFO, "reload: rate limit %s: %s", from->path[i],
                      limit ? limit : "removed");
            }
        }
    }
    meshd_ratelimits_t tmp = d->cfg.ratelimits;
    d->cfg.ratelimits = next->ratelimits;
    next->ratelimits = tmp;
}

static void s_reload(s_daemon_t *d)
{
    if (d->draining) {
        return;
    }
    char err[MESHD_ERR_MAX];
    meshd_config_t next;
    meshd_config_init(&next);
    if (s_build(d, &next, false, err, sizeof err) != 0) {
        s_log(d, MESHD_LOG_ERROR, "reload refused: %s; the running agents stay", err);
        meshd_config_free(&next);
        return;
    }
    unsigned rest = MESHD_PRINT_PEER | MESHD_PRINT_DAEMON | MESHD_PRINT_TASKS;
    char *was = s_print_sections(&d->cfg, rest), *now = s_print_sections(&next, rest);
    if (was && now && strcmp(was, now) != 0) {
        s_log(d, MESHD_LOG_WARN,
              "reload: the peer, daemon or tasks settings changed; they take effect at the next "
              "start (SIGHUP reloads the agents and the task rate limits only)");
    }
    free(was);
    free(now);
    s_reload_ratelimits(d, &next);
    s_retire_all(d);
    if (s_agents_create(d, &next) != 0) {
        s_log(d, MESHD_LOG_ERROR, "reload failed: the previous agents are started again");
        if (s_agents_create(d, &d->cfg) != 0) {
            s_log(d, MESHD_LOG_ERROR, "the previous agents could not be started again either");
        }
        meshd_config_free(&next);
        return;
    }
    /* the running agents' settings move to d->cfg (their strings stay put) */
    while (d->cfg.nagents > 0) {
        meshd_config_drop_agent(&d->cfg, d->cfg.agents[0].name);
    }
    memcpy(d->cfg.agents, next.agents, sizeof next.agents);
    d->cfg.nagents = next.nagents;
    next.nagents = 0;
    meshd_config_free(&next);
    s_log(d, MESHD_LOG_INFO, "reloaded: %zu agents", d->nagents);
}

/* ------------------------------------------------------------------------ */
/* stdin commands */

/*  Decodes {"data": BASE64} into a buffer. */
static uint8_t *s_data(s_daemon_t *d, json_t *obj, size_t *len)
{
    const char *b64 = json_string_value(json_object_get(obj, "data"));
    uint8_t *data = b64 ? jsonpack_base64_decode(b64, len) : NULL;
    if (!data || *len == 0) {
        free(data);
        s_error_event(d, "\"data\" must be non-empty base64");
        return NULL;
    }
    return data;
}

static json_t *s_stats_json(const mesh__zre_t *node)
{
    const mesh__zre_stats_t *s = mesh__zre_stats(node);
    json_t *o = json_object();
    json_object_set_new(o, "ev", json_string("stats"));
#define S_STAT(f) json_object_set_new(o, #f, json_integer((json_int_t)s->f))
    S_STAT(beacons_sent);
    S_STAT(beacons_received);
    S_STAT(beacons_bad);
    S_STAT(beacons_foreign);
    S_STAT(msgs_received);
    S_STAT(msgs_malformed);
    S_STAT(msgs_unknown_sender);
    S_STAT(msgs_ignored);
    S_STAT(msgs_not_member);
    S_STAT(sequence_gaps);
    S_STAT(send_dropped);
    S_STAT(gossip_received);
    S_STAT(gossip_bad);
    S_STAT(peers_entered);
    S_STAT(peers_exited);
    S_STAT(peers_refused);
#undef S_STAT
    json_object_set_new(o, "peers", json_integer((json_int_t)mesh__zre_peer_count(node)));
    return o;
}

static void s_command(s_daemon_t *d, const char *line, size_t len)
{
    json_error_t err;
    json_t *cmd = json_loadb(line, len, 0, &err);
    if (!cmd || !json_is_object(cmd)) {
        s_error_event(d, "bad command: %s", cmd ? "not an object" : err.text);
        json_decref(cmd);
        return;
    }
    json_t *v;
    size_t n = 0;
    if ((v = json_object_get(cmd, "whisper"))) {
        const char *to = json_string_value(json_object_get(v, "to"));
        const mesh__zre_peer_t *peer = to ? mesh__zre_peer_lookup(d->node, to) : NULL;
        uint8_t *data = NULL;
        if (!peer) {
            s_error_event(d, "no peer %s", to ? to : "(missing \"to\")");
        } else if ((data = s_data(d, v, &n))) {
            int rc = mesh__zre_whisper(d->node, mesh__zre_peer_uuid(peer), data, n);
            if (rc != 0) {
                s_error_event(d, "whisper: %s", mesh_strerror(rc));
            }
        }
        free(data);
    } else if ((v = json_object_get(cmd, "shout"))) {
        const char *group = json_string_value(json_object_get(v, "group"));
        uint8_t *data = NULL;
        if (!group) {
            s_error_event(d, "shout needs \"group\"");
        } else if ((data = s_data(d, v, &n))) {
            int rc = mesh__zre_shout(d->node, group, data, n);
            if (rc != 0) {
                s_error_event(d, "shout: %s", mesh_strerror(rc));
            }
        }
        free(data);
    } else if ((v = json_object_get(cmd, "join")) || (v = json_object_get(cmd, "leave"))) {
        bool join = json_object_get(cmd, "join") != NULL;
        const char *group = json_string_value(v);
        int rc = group ? (join ? mesh__zre_join(d->node, group) : mesh__zre_leave(d->node, group))
                       : MESH_ERR_INVAL;
        if (rc != 0) {
            s_error_event(d, "%s: %s", join ? "join" : "leave", mesh_strerror(rc));
        }
    } else if (json_object_get(cmd, "peers")) {
        json_t *list = json_array();
        size_t pos = 0;
        const mesh__zre_peer_t *p;
        while ((p = mesh__zre_peer_next(d->node, &pos))) {
            json_array_append_new(list, mesh_cli_peer_json(p));
        }
        s_print(json_pack("{s:s, s:o}", "ev", "peers", "peers", list));
    } else if (json_object_get(cmd, "stats")) {
        s_print(s_stats_json(d->node));
    } else if (json_object_get(cmd, "stop")) {
        s_drain_begin(d, "stop command");
    } else {
        s_error_event(d, "unknown command");
    }
    json_decref(cmd);
}

static void s_on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    s_daemon_t *d = w->data;
    char buf[65536];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        ev_io_stop(loop, w); /* end of input: keep running */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (d->line_overflow) {
                s_error_event(d, "command line longer than %d bytes dropped", S_LINE_MAX);
            } else if (d->line_len > 0) {
                s_command(d, d->line, d->line_len);
            }
            d->line_len = 0;
            d->line_overflow = false;
        } else if (d->line_len < S_LINE_MAX) {
            d->line[d->line_len++] = buf[i];
        } else {
            d->line_overflow = true;
        }
    }
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    s_daemon_t *d = w->data;
    if (w->signum == SIGHUP) {
        s_log(d, MESHD_LOG_INFO, "SIGHUP: reloading the agents and the task rate limits");
        s_reload(d);
    } else {
        s_drain_begin(d, w->signum == SIGTERM ? "SIGTERM" : "SIGINT");
    }
}

/* ------------------------------------------------------------------------ */
/* start */

/*  Creates the peer, its headers and groups, and every agent. Returns an
    exit code, MESH_EXIT_OK when all is ready to attach. */
static int s_create(s_daemon_t *d)
{
    const meshd_config_t *c = &d->cfg;
    mesh_config_t mc;
    mesh_config_init(&mc);
    mc.name = c->name;
    mc.realm = c->realm;
    mc.iface = c->iface;
    mc.beacon_port = (uint16_t)c->beacon_port;
    mc.beacon_off = !c->beacon;
    mc.port = (uint16_t)c->port;
    mc.seeds = (const char *const *)c->seeds;
    mc.nseeds = c->nseeds;
    mc.beacon_interval_ms = c->beacon_interval_ms;
    mc.evasive_ms = c->evasive_ms;
    mc.expired_ms = c->expired_ms;
    mc.ping_interval_ms = c->ping_interval_ms;
    d->peer = mesh_peer_new(&mc);
    if (!d->peer) {
        fprintf(stderr, "%s: the peer cannot be created with these settings\n", S_PROG);
        return MESH_EXIT_USAGE;
    }
    d->node = mesh__peer_zre(d->peer);
    for (size_t i = 0; i < c->nheaders; i++) {
        if (mesh__zre_set_header(d->node, c->header_keys[i], c->header_values[i]) != 0) {
            fprintf(stderr, "%s: header '%s': refused\n", S_PROG, c->header_keys[i]);
            return MESH_EXIT_USAGE;
        }
    }
    for (size_t i = 0; i < c->ngroups; i++) {
        if (mesh__zre_join(d->node, c->groups[i]) != 0) {
            fprintf(stderr, "%s: group '%s': refused\n", S_PROG, c->groups[i]);
            return MESH_EXIT_USAGE;
        }
    }
    mesh__peer_set_observer(d->peer, s_on_event, d);
    d->builtin = agent_builtin_new(d->peer, d->agents, &d->nagents, &d->taskd);
    if (!d->builtin) {
        s_log(d, MESHD_LOG_ERROR, "the built-in agent could not be created");
        return MESH_EXIT_FAILURE;
    }
    if (s_agents_create(d, c) != 0) {
        return MESH_EXIT_USAGE;
    }
    return MESH_EXIT_OK;
}

/*  Why the data dir check said MESH_ERR_CONFIG, as far as stat and access
    tell (the journal creates the directory and its missing parents). */
static const char *s_data_dir_why(const char *dir, char *buf, size_t len)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            return "not a directory";
        }
        if (access(dir, R_OK | W_OK | X_OK) != 0) {
            snprintf(buf, len, "cannot be used: %s", strerror(errno));
            return buf;
        }
        return "cannot be used (the journal's files there cannot be created or opened)";
    }
    char up[PATH_MAX];
    snprintf(up, sizeof up, "%s", dir);
    do { /* the nearest ancestor that exists */
        const char *parent = dirname(up);
        memmove(up, parent, strlen(parent) + 1);
    } while (stat(up, &st) != 0 && strcmp(up, "/") != 0);
    if (access(up, W_OK | X_OK) != 0) {
        snprintf(buf, len, "cannot be created in %s: %s", up, strerror(errno));
        return buf;
    }
    return "cannot be created";
}

/*  The task journal's directory, checked before the process has any
    thread (the check forks). Returns an exit code: a directory that
    cannot hold the journal is a configuration error. */
static int s_check_data_dir(const meshd_config_t *c)
{
    if (!c->tasks_enabled || !c->data_dir) {
        return MESH_EXIT_OK;
    }
    int rc = mesh_taskd_check_data_dir(c->data_dir);
    if (rc == 0) {
        return MESH_EXIT_OK;
    }
    char buf[PATH_MAX + 64];
    const char *why;
    switch (rc) {
    case MESH_ERR_CONFIG:
        why = s_data_dir_why(c->data_dir, buf, sizeof buf);
        break;
    case MESH_ERR_STATE:
        why = "in use by another process (a data dir belongs to one meshd)";
        break;
    case MESH_ERR_MALFORMED:
        why = "not a mesh task journal, or damaged";
        break;
    default:
        why = mesh_strerror(rc);
        break;
    }
    fprintf(stderr, "%s: data dir %s: %s\n", S_PROG, c->data_dir, why);
    return MESH_EXIT_USAGE;
}

/*  The task service (tasks/enabled), on the attached peer. Returns an exit
    code. */
static int s_tasks_start(s_daemon_t *d)
{
    const meshd_config_t *c = &d->cfg;
    mesh_task_ratelimit_t limits[MESH_TASK_RATELIMITS_MAX];
    for (size_t i = 0; i < c->ratelimits.n; i++) {
        limits[i].path = c->ratelimits.path[i];
        limits[i].limit = c->ratelimits.limit[i];
    }
    mesh_taskd_config_t tc;
    mesh_taskd_config_init(&tc);
    tc.loop = d->loop;
    tc.replicas = (unsigned)c->task_replicas;
    tc.replica_offset_ms = c->task_replica_offset_ms;
    tc.data_dir = c->data_dir;
    tc.journal_sync = (mesh_task_sync_t)c->journal_sync;
    tc.ratelimits = limits;
    tc.nratelimits = c->ratelimits.n;
    tc.quorum_memory_ms = c->quorum_memory_ms; /* MESHD_QUORUM_OFF (< 0): none */
    tc.startup_grace_ms = c->startup_grace_ms > 0 ? c->startup_grace_ms : -1; /* < 0: none */
    tc.run_timeout_ms = c->run_timeout_ms;
    d->taskd = mesh_taskd_new(d->peer, &tc);
    if (!d->taskd) {
        s_log(d, MESHD_LOG_ERROR, "the task service could not be started%s%s",
              c->data_dir ? " with its journal in " : "", c->data_dir ? c->data_dir : "");
        return MESH_EXIT_FAILURE;
    }
    char quorum[32], journal[PATH_MAX + 32];
    if (c->quorum_memory_ms == MESHD_QUORUM_OFF) {
        snprintf(quorum, sizeof quorum, "off");
    } else {
        snprintf(quorum, sizeof quorum, "%d ms", c->quorum_memory_ms);
    }
    if (c->data_dir) {
        snprintf(journal, sizeof journal, "journal in %s (sync %s)", c->data_dir,
                 meshd_journal_sync_name(c->journal_sync));
    } else {
        snprintf(journal, sizeof journal, "no journal (memory only)");
    }
    s_log(d, MESHD_LOG_INFO, "tasks: %s, %zu rate limits, quorum memory %s, startup grace %d ms",
          journal, c->ratelimits.n, quorum, c->startup_grace_ms);
    return MESH_EXIT_OK;
}

static void s_cleanup(s_daemon_t *d)
{
    mesh_taskd_destroy(&d->taskd);
    s_agents_destroy(d, false);
    if (d->loop) {
        s_retired_destroy(d);
    }
    agent_destroy(&d->builtin, false);
    mesh_peer_destroy(&d->peer);
    if (d->loop) {
        ev_io_stop(d->loop, &d->stdin_io);
        ev_timer_stop(d->loop, &d->drain_timer);
        ev_timer_stop(d->loop, &d->flush_timer);
        ev_signal_stop(d->loop, &d->sigterm);
        ev_signal_stop(d->loop, &d->sigint);
        ev_signal_stop(d->loop, &d->sighup);
        ev_loop_destroy(d->loop);
    }
    free(d->line);
    meshd_config_free(&d->cfg);
}

int main(int argc, char **argv)
{
    /* czmq must not install its SIGINT/SIGTERM handlers: libev owns signals */
    zsys_handler_set(NULL);
    static s_daemon_t d; /* large (the configuration): not on the stack */
    d.argc = argc;
    d.argv = argv;
    meshd_config_init(&d.cfg);
    char err[MESHD_ERR_MAX];
    int rc = s_build(&d, &d.cfg, true, err, sizeof err);
    if (rc != 0) {
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", S_PROG, err);
        }
        meshd_config_free(&d.cfg);
        return rc < 0 ? MESH_EXIT_USAGE : MESH_EXIT_OK;
    }
    if (d.print_config) {
        printf("# meshd %s: effective configuration\n", mesh_version());
        meshd_config_print(&d.cfg, stdout, MESHD_PRINT_ALL);
        meshd_config_free(&d.cfg);
        return MESH_EXIT_OK;
    }
    /* before anything starts a thread: the check forks */
    rc = s_check_data_dir(&d.cfg);
    if (rc != MESH_EXIT_OK) {
        meshd_config_free(&d.cfg);
        return rc;
    }
    if (d.cfg.syslog) {
        openlog(S_PROG, LOG_PID, LOG_DAEMON);
    }
    if (d.cfg.log_level >= MESHD_LOG_DEBUG) {
        setenv("MESH_DEBUG", "1", 1);
    }
    signal(SIGPIPE, SIG_IGN);
    d.loop = ev_default_loop(EVFLAG_AUTO);
    if (!d.loop) {
        fprintf(stderr, "%s: cannot create the event loop\n", S_PROG);
        meshd_config_free(&d.cfg);
        return MESH_EXIT_FAILURE;
    }
    d.started_ms = mesh_cli_now_ms();
    ev_init(&d.drain_timer, s_on_drain_timer);
    ev_init(&d.flush_timer, s_on_flush_timer);
    ev_init(&d.retire_timer, s_on_retire_timer);
    d.retire_timer.data = &d;
    agent_set_log(s_agent_log, &d);
    rc = s_create(&d);
    if (rc == MESH_EXIT_OK) {
        rc = mesh_peer_attach(d.peer, d.loop);
        if (rc != 0) {
            s_log(&d, MESHD_LOG_ERROR, "cannot start on interface '%s': %s",
                  d.cfg.iface ? d.cfg.iface : MESH_DEFAULT_IFACE, mesh_strerror(rc));
            rc = MESH_EXIT_FAILURE;
        }
    }
    if (rc == MESH_EXIT_OK && d.cfg.tasks_enabled) {
        rc = s_tasks_start(&d);
    } else if (rc == MESH_EXIT_OK && d.cfg.data_dir) {
        s_log(&d, MESHD_LOG_WARN, "tasks/enabled is false: tasks/data-dir %s is not used",
              d.cfg.data_dir);
    }
    if (rc == MESH_EXIT_OK && d.use_stdin && !(d.line = malloc(S_LINE_MAX))) {
        rc = MESH_EXIT_FAILURE;
    }
    if (rc != MESH_EXIT_OK) {
        s_cleanup(&d);
        return rc;
    }
    s_log(&d, MESHD_LOG_INFO, "%s (%s) started at %s in realm %s, beacons %s, %zu agents",
          mesh_peer_name(d.peer), mesh_peer_id(d.peer), mesh_peer_endpoint(d.peer),
          mesh_peer_realm(d.peer), d.cfg.beacon ? "on" : "off", d.nagents);
    if (d.events) {
        s_print(json_pack("{s:s, s:s, s:s, s:s, s:s}", "ev", "ready", "id", mesh_peer_id(d.peer),
                          "name", mesh_peer_name(d.peer), "endpoint", mesh_peer_endpoint(d.peer),
                          "realm", mesh_peer_realm(d.peer)));
    }
    ev_signal_init(&d.sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&d.sigint, s_on_signal, SIGINT);
    ev_signal_init(&d.sighup, s_on_signal, SIGHUP);
    d.sigterm.data = d.sigint.data = d.sighup.data = &d;
    ev_signal_start(d.loop, &d.sigterm);
    ev_signal_start(d.loop, &d.sigint);
    ev_signal_start(d.loop, &d.sighup);
    if (d.use_stdin) {
        ev_io_init(&d.stdin_io, s_on_stdin, STDIN_FILENO, EV_READ);
        d.stdin_io.data = &d;
        ev_io_start(d.loop, &d.stdin_io);
    }

    ev_run(d.loop, 0);

    s_log(&d, MESHD_LOG_INFO, "stopped");
    mesh_taskd_destroy(&d.taskd);
    mesh__peer_set_observer(d.peer, NULL, NULL);
    mesh_peer_destroy(&d.peer);
    if (d.events) {
        s_print(json_pack("{s:s}", "ev", "stopped"));
    }
    if (d.cfg.syslog) {
        closelog();
    }
    s_cleanup(&d);
    return MESH_EXIT_OK;
}
