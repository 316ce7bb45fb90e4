/*  agent_impl.h: what each kind of agent implements behind agent.h, and the
    log every agent writes to.

    Every kind (builtin.c, exec.c, plugin.c) embeds agent_t as the first
    member of its own struct, fills it with agent_base_init() and a table of
    operations, and agent.c dispatches agent_destroy(), agent_name(),
    agent_stats() and agent_inflight() through that table.

    Stopping an agent is two steps (meshd's graceful stop):
      agent_destroy(&a, true)   drain: the agent's services are unexposed
                                and new requests are rejected (the caller
                                moves on to another provider), but work in
                                flight runs to its end. The agent stays
                                alive and *self_p is left as it was, so meshd
                                can poll agent_inflight(a).
      agent_destroy(&a, false)  unexposes (if not drained yet), finishes
                                whatever is still in flight with the error
                                "agent unloaded", frees, sets a = NULL.
    Every agent must end with the second call; the first is optional.
    All on meshd's loop thread. */
#ifndef MESH_AGENT_IMPL_H
#define MESH_AGENT_IMPL_H

#include <stdarg.h>

#include "agent.h"

/*  Limits and defaults of the exec agent. */
#define AGENT_EXEC_WORKERS_DEFAULT   4
#define AGENT_EXEC_WORKERS_MAX       1024
#define AGENT_EXEC_TIMEOUT_DEFAULT   10000              /* ms a method may run */
#define AGENT_EXEC_QUEUE_MAX         1024               /* waiting for a worker; more: reject */
#define AGENT_EXEC_STDOUT_MAX        (16 * 1024 * 1024) /* a method's reply, as JSON text */
#define AGENT_EXEC_STDERR_TAIL       4096               /* kept for the error's last line */
#define AGENT_EXEC_ERROR_MAX         1024               /* bytes of that line in the error */
#define AGENT_EXEC_READ_CHUNK        65536              /* bytes read per wake-up */
#define AGENT_EXEC_EXIT_REJECT       75                 /* EX_TEMPFAIL: mesh_request_reject */
#define AGENT_EXEC_CHECK_INTERVAL_MS 2000               /* active check period */
#define AGENT_EXEC_CHECK_TIMEOUT_MS  5000               /* a check running longer fails */
#define AGENT_EXEC_ENV_PATH          "/usr/local/bin:/usr/bin:/bin"
#define AGENT_NAME_MAX               64 /* [A-Za-z0-9._-] */

typedef struct {
    const char *kind; /* "builtin", "exec", "plugin" */
    /*  Stop being offered; let work in flight finish. May be NULL (nothing
        to drain). Called at most once, before destroy. */
    void (*drain)(agent_t *self);
    /*  Unexpose, finish work in flight with "agent unloaded", free self
        (agent_base_fini included). */
    void (*destroy)(agent_t *self);
    /*  Requests accepted and not yet finished. May be NULL (always 0). */
    size_t (*inflight)(const agent_t *self);
    /*  May be NULL (all zero). */
    void (*stats)(const agent_t *self, agent_stats_t *out);
} agent_ops_t;

struct agent {
    const agent_ops_t *ops;
    char *name;    /* owned */
    bool draining; /* agent_destroy(&a, true) was called */
};

/*  Sets ops and a copy of name. Returns 0, or -1 (out of memory). */
int agent_base_init(agent_t *self, const agent_ops_t *ops, const char *name);
void agent_base_fini(agent_t *self);

/*  True if name can be an agent's or an exec method's name: 1..max bytes
    of [A-Za-z0-9._-], not starting with '.'. */
bool agent_name_ok(const char *name, size_t max);

/*  The log. Levels match meshd's (error, warn, info, debug). By default
    lines go to stderr as "meshd: agent NAME: message" (debug dropped);
    meshd routes them with agent_set_log. */
enum { AGENT_LOG_ERROR, AGENT_LOG_WARN, AGENT_LOG_INFO, AGENT_LOG_DEBUG };

typedef void(agent_log_fn)(int level, const char *line, void *arg);
void agent_set_log(agent_log_fn *fn, void *arg);

/*  agent may be NULL (the line is then not prefixed with an agent's name). */
void agent_log(int level, const char *agent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
