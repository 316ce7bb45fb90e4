/*  builtin.c: the built-in agent every meshd hosts.

      /sys/ping   "pong"
      /sys/info   {name, id, version, realm, uptime_s, services: [path...],
                   status: {load, inflight}}
      /sys/stats  {requests_in, requests_out, replies_in, replies_out,
                   casts_in, casts_out, publishes_in, publishes_out, errors,
                   rejected_in, envelopes_dropped, zre_dropped, sends_dropped,
                   replies_late, peers,
                   agents: {NAME: {kind, requests, errors, timeouts, crashes,
                                   inflight}...},
                   ring: {NAME: {digest, agrees}...} (each member's last
                         announced ring digest, and whether it is ours),
                   tasks: {held, scheduled, running, standby, succeeded, failed,
                           started, lost_runs, takeovers, double_starts, rate_waits,
                           tokens_granted, journal_commits, journal_errors,
                           journal_loaded, quorum, ready} or nil (no task service)}

    Replies are msgpack (maps with string keys); the request payload is not
    looked at. Every handler answers at once, so nothing is ever in flight. */
#include "agent_impl.h"
#include "config.h"

#include <mesh/mesh.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_NAME MESHD_BUILTIN_AGENT

typedef struct {
    agent_t base; /* first: agent.c dispatches through it */
    mesh_peer_t *peer;
    agent_t *const *agents;
    const size_t *nagents;
    mesh_taskd_t *const *taskd;
    int64_t started_ms;
    bool exposed;
    agent_stats_t stats;
} s_builtin_t;

static const char *const s_paths[] = {"/" S_NAME "/ping", "/" S_NAME "/info", "/" S_NAME "/stats"};
#define S_NPATHS (sizeof s_paths / sizeof s_paths[0])

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    msgpack_pack_str_with_body(pk, s ? s : "", n);
}

static void s_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    s_str(pk, k);
    s_str(pk, v);
}

static void s_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    s_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void s_reply(s_builtin_t *self, mesh_request_t *req, msgpack_sbuffer *sb)
{
    self->stats.requests++;
    if (mesh_request_reply(req, sb->data, sb->size) != 0) {
        self->stats.errors++;
    }
    msgpack_sbuffer_destroy(sb);
}

/* ------------------------------------------------------------------------ */
/* /sys/ping */

static void s_on_ping(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    s_str(&pk, "pong");
    s_reply(arg, req, &sb);
}

/* ------------------------------------------------------------------------ */
/* /sys/info */

typedef struct {
    msgpack_packer *pk; /* NULL: counting */
    size_t nservices;
    double load;
    uint64_t inflight;
} s_self_t;

static void s_on_route(const mesh_route_info_t *r, void *arg)
{
    s_self_t *s = arg;
    if (!r->is_self) {
        return;
    }
    s->load = r->load;
    s->inflight = r->inflight;
    if (!r->path) {
        return;
    }
    if (s->pk) {
        s_str(s->pk, r->path);
    }
    s->nservices++;
}

static void s_on_info(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    s_builtin_t *self = arg;
    s_self_t count = {0};
    mesh_peer_routes(peer, s_on_route, &count);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 8);
    s_kv_str(&pk, "name", mesh_peer_name(peer));
    s_kv_str(&pk, "id", mesh_peer_id(peer));
    s_kv_str(&pk, "version", mesh_version());
    s_kv_str(&pk, "realm", mesh_peer_realm(peer));
    s_kv_u64(&pk, "uptime_s", (uint64_t)(s_now_ms() - self->started_ms) / 1000);
    s_str(&pk, "services");
    msgpack_pack_array(&pk, count.nservices);
    s_self_t list = {.pk = &pk};
    mesh_peer_routes(peer, s_on_route, &list);
    /* the table cannot change between the two walks (same loop turn) */
    s_str(&pk, "status");
    msgpack_pack_map(&pk, 2);
    s_str(&pk, "load");
    msgpack_pack_double(&pk, count.load);
    s_kv_u64(&pk, "inflight", count.inflight);
    s_kv_str(&pk, "endpoint", mesh_peer_endpoint(peer));
    s_reply(self, req, &sb);
}

/* ------------------------------------------------------------------------ */
/* /sys/stats */

static void s_agent_entry(msgpack_packer *pk, const char *kind, const agent_stats_t *st,
                          size_t inflight)
{
    msgpack_pack_map(pk, 6);
    s_kv_str(pk, "kind", kind);
    s_kv_u64(pk, "requests", st->requests);
    s_kv_u64(pk, "errors", st->errors);
    s_kv_u64(pk, "timeouts", st->timeouts);
    s_kv_u64(pk, "crashes", st->crashes);
    s_kv_u64(pk, "inflight", inflight);
}

static void s_ring_entry(const mesh_ring_member_t *mb, void *arg)
{
    msgpack_packer *pk = arg;
    s_str(pk, mb->name);
    msgpack_pack_map(pk, 2);
    s_kv_u64(pk, "digest", mb->digest);
    s_str(pk, "agrees");
    mb->agrees ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void s_on_stats(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    s_builtin_t *self = arg;
    mesh_stats_t ms;
    mesh_peer_stats(peer, &ms);
    size_t nagents = *self->nagents;

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 18);
    s_kv_u64(&pk, "requests_in", ms.requests_in);
    s_kv_u64(&pk, "requests_out", ms.requests_out);
    s_kv_u64(&pk, "replies_in", ms.replies_in);
    s_kv_u64(&pk, "replies_out", ms.replies_out);
    s_kv_u64(&pk, "casts_in", ms.casts_in);
    s_kv_u64(&pk, "casts_out", ms.casts_out);
    s_kv_u64(&pk, "publishes_in", ms.publishes_in);
    s_kv_u64(&pk, "publishes_out", ms.publishes_out);
    s_kv_u64(&pk, "errors", ms.errors_out);
    s_kv_u64(&pk, "rejected_in", ms.rejected_in);
    s_kv_u64(&pk, "envelopes_dropped", ms.envelopes_dropped);
    s_kv_u64(&pk, "zre_dropped", ms.zre_dropped);
    s_kv_u64(&pk, "sends_dropped", ms.sends_dropped);
    s_kv_u64(&pk, "replies_late", ms.replies_late);
    s_kv_u64(&pk, "peers", ms.peers);
    s_str(&pk, "agents");
    msgpack_pack_map(&pk, nagents + 1);
    agent_stats_t own = self->stats;
    own.requests++; /* this one */
    s_str(&pk, S_NAME);
    s_agent_entry(&pk, "builtin", &own, 0);
    for (size_t i = 0; i < nagents; i++) {
        const agent_t *a = self->agents[i];
        agent_stats_t st;
        agent_stats(a, &st);
        s_str(&pk, agent_name(a));
        s_agent_entry(&pk, a->ops->kind, &st, agent_inflight(a));
    }
    s_str(&pk, "ring"); /* each member's announced digest, as this node sees it */
    msgpack_pack_map(&pk, mesh_peer_ring_members(peer, NULL, NULL));
    mesh_peer_ring_members(peer, s_ring_entry, &pk);
    s_str(&pk, "tasks");
    const mesh_taskd_t *td = self->taskd ? *self->taskd : NULL;
    if (!td) {
        msgpack_pack_nil(&pk);
    } else {
        mesh_taskd_stats_t ts;
        mesh_taskd_stats(td, &ts);
        msgpack_pack_map(&pk, 26);
        s_kv_u64(&pk, "held", ts.held);
        s_kv_u64(&pk, "ticks", ts.ticks);
        s_str(&pk, "next_tick_ms");
        msgpack_pack_int64(&pk, ts.next_tick_ms);
        s_kv_u64(&pk, "unsettled_ms", (uint64_t)ts.unsettled_ms);
        s_kv_u64(&pk, "checked_ms_ago", (uint64_t)ts.checked_ms_ago);
        s_kv_u64(&pk, "disagreeing", ts.disagreeing);
        s_kv_u64(&pk, "ring_changes", ts.ring_changes);
        s_kv_u64(&pk, "stalls", ts.stalls);
        s_kv_u64(&pk, "syncing", ts.syncing);
        static const char *const states[] = {"scheduled", "running", "standby", "succeeded",
                                             "failed"};
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
            s_kv_u64(&pk, states[i], mesh_taskd_count(td, states[i]));
        }
        s_kv_u64(&pk, "started", ts.started);
        s_kv_u64(&pk, "lost_runs", ts.lost_runs);
        s_kv_u64(&pk, "takeovers", ts.takeovers);
        s_kv_u64(&pk, "double_starts", ts.double_starts);
        s_kv_u64(&pk, "rate_waits", ts.rate_waits);
        s_kv_u64(&pk, "tokens_granted", ts.tokens_granted);
        s_kv_u64(&pk, "journal_commits", ts.journal_commits);
        s_kv_u64(&pk, "journal_errors", ts.journal_errors);
        s_kv_u64(&pk, "journal_loaded", ts.journal_loaded);
        s_str(&pk, "quorum");
        ts.quorum ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        s_str(&pk, "ready");
        ts.ready ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        s_str(&pk, "settled");
        ts.settled ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
    }
    s_reply(self, req, &sb);
}

/* ------------------------------------------------------------------------ */
/* the agent */

static void s_unexpose(s_builtin_t *self)
{
    if (!self->exposed) {
        return;
    }
    for (size_t i = 0; i < S_NPATHS; i++) {
        mesh_peer_unexpose(self->peer, s_paths[i]);
    }
    self->exposed = false;
}

static void s_drain(agent_t *base)
{
    s_unexpose((s_builtin_t *)base);
}

static void s_destroy(agent_t *base)
{
    s_builtin_t *self = (s_builtin_t *)base;
    s_unexpose(self);
    agent_base_fini(base);
    free(self);
}

static void s_stats(const agent_t *base, agent_stats_t *out)
{
    *out = ((const s_builtin_t *)base)->stats;
}

static const agent_ops_t s_ops = {
    .kind = "builtin",
    .drain = s_drain,
    .destroy = s_destroy,
    .inflight = NULL, /* every answer is immediate */
    .stats = s_stats,
};

agent_t *agent_builtin_new(mesh_peer_t *peer, agent_t *const *agents, const size_t *nagents,
                           mesh_taskd_t *const *taskd)
{
    s_builtin_t *self = calloc(1, sizeof *self);
    if (!self || agent_base_init(&self->base, &s_ops, S_NAME) != 0) {
        free(self);
        agent_log(AGENT_LOG_ERROR, S_NAME, "out of memory");
        return NULL;
    }
    self->peer = peer;
    self->agents = agents;
    self->nagents = nagents;
    self->taskd = taskd;
    self->started_ms = s_now_ms();
    static mesh_handler_fn *const fns[] = {s_on_ping, s_on_info, s_on_stats};
    for (size_t i = 0; i < S_NPATHS; i++) {
        int rc = mesh_peer_expose(peer, s_paths[i], fns[i], self, NULL);
        if (rc != 0) {
            agent_log(AGENT_LOG_ERROR, S_NAME, "cannot offer %s: %s", s_paths[i],
                      mesh_strerror(rc));
            for (size_t k = 0; k < i; k++) {
                mesh_peer_unexpose(peer, s_paths[k]);
            }
            agent_base_fini(&self->base);
            free(self);
            return NULL;
        }
    }
    self->exposed = true;
    return &self->base;
}
