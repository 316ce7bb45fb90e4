/*  agent.h: how meshd hosts agents. An agent is a set of handlers exposed
    on meshd's peer; three kinds exist:

      builtin  /sys/ping, /sys/info, /sys/stats          (agents/builtin.c)
      exec     a directory of executables, one per method (agents/exec.c)
      plugin   a shared object loaded with dlopen          (agents/plugin.c)

    meshd (agents/meshd.c) reads its configuration (agents/config.c), then
    creates each configured agent with agent_*_new(), which exposes the
    agent's services on the peer; agent_destroy() unexposes them and frees
    everything (SIGHUP reload destroys and re-creates every agent). All
    agent code runs on meshd's libev loop (ev_default_loop: exec agents use
    ev_child). Payloads on the mesh are msgpack; agents that speak JSON
    convert at the edge with tools/jsonpack.h. */
#ifndef MESH_AGENT_H
#define MESH_AGENT_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>

#include <mesh/mesh.h>

typedef struct agent agent_t;

/*  Settings of one configured agent (strings borrowed from the config). */
typedef struct {
    const char *name;         /* the agent's name: services are /<name>/<method> */
    const char *kind;         /* "exec" or "plugin" */
    const char *path;         /* exec: the directory; plugin: the .so file */
    int workers;              /* exec: worker pool size (processes at once); default 4 */
    int timeout_ms;           /* exec: a method running longer is killed; default 10000 */
    const char *filter;       /* exec: only methods whose file name matches (POSIX ERE) */
    const char *active_check; /* exec: a command; the agent is offered while it exits 0 */
    const char *const *tags;  /* "k=v" added to every service of the agent */
    size_t ntags;
    const char *config;       /* plugin: free-form text passed to its init */
} agent_config_t;

/*  Counters an agent adds to /sys/stats. */
typedef struct {
    unsigned long requests, errors, timeouts, crashes;
} agent_stats_t;

/*  Each returns NULL after logging a clear error (file, what is wrong). */
agent_t *agent_exec_new(mesh_peer_t *peer, struct ev_loop *loop, const agent_config_t *cfg);
agent_t *agent_plugin_new(mesh_peer_t *peer, struct ev_loop *loop, const agent_config_t *cfg);

/*  Stops an agent in one or two steps. With drain false: unexposes its
    services, fails what is still running with "agent unloaded", frees it
    and nulls *self_p. With drain true (meshd's graceful stop): unexposes
    the services and refuses new requests but lets running work finish;
    the agent stays allocated (watch agent_inflight) until a second call
    with drain false frees it. */
void agent_destroy(agent_t **self_p, bool drain);

const char *agent_name(const agent_t *self);
void agent_stats(const agent_t *self, agent_stats_t *out);
/*  Requests still running (meshd waits for 0 on a graceful stop). */
size_t agent_inflight(const agent_t *self);

/*  The built-in /sys agent: ping, info, stats. started_ms for uptime;
    agents/nagents and *taskd (NULL: no task service) are read at request
    time for /sys/info and /sys/stats. */
agent_t *agent_builtin_new(mesh_peer_t *peer, agent_t *const *agents, const size_t *nagents,
                           mesh_taskd_t *const *taskd);

#endif
