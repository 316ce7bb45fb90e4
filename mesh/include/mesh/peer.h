/*  mesh/peer.h: a mesh peer, the embeddable API.

    A peer joins a realm, offers services (handlers for paths such as
    "/image/resize"), learns from the mesh alone which peers offer which
    services and how busy they are, and sends requests straight to a peer
    chosen per request by a selector. There is no broker.

    Threads. A peer runs on one libev loop: either the caller's
    (mesh_peer_attach) or a thread of its own (mesh_peer_start_thread).
    Every function here must be called on that loop's thread, except the
    ones marked "any thread": mesh_peer_post (run a function on the loop
    thread), mesh_peer_call_sync (a blocking call for threaded programs),
    mesh_peer_stop and mesh_peer_destroy. All callbacks run on the loop
    thread. Data handed to a callback is valid only during the callback.

    Ownership. mesh_peer_new's result is the caller's (mesh_peer_destroy).
    Strings and buffers passed in are copied before the call returns.

    Errors. Functions return 0 or a negative MESH_ERR_* (mesh/error.h). When
    a call that takes a completion callback returns an error, the callback
    is never called; when it returns 0, the callback is called exactly once,
    never before the call has returned. */
#ifndef MESH_PEER_H
#define MESH_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
typedef struct mesh_peer mesh_peer_t;
typedef struct mesh_request mesh_request_t;

/* ------------------------------------------------------------------------ */
/* configuration */

typedef struct {
    const char *name;            /* default: the first 6 hex digits of the UUID */
    const char *realm;           /* default "default"; peers of other realms are ignored */
    const char *iface;           /* default "lo" */
    uint16_t beacon_port;        /* default 5670 */
    bool beacon_off;             /* discovery by seeds only */
    uint16_t port;               /* inbox TCP port; default ephemeral */
    const char *const *seeds;    /* "tcp://HOST:PORT" */
    size_t nseeds;
    int beacon_interval_ms;      /* default 1000 */
    int evasive_ms;              /* default 5000 */
    int expired_ms;              /* default 30000 */
    int ping_interval_ms;        /* status announcements; default 1000 */
    int ping_timeout_ms;         /* silent this long: out of dispatch; default 3 intervals */
    int call_timeout_ms;         /* default deadline of a call; default 5000 */
    int max_attempts;            /* reject -> next candidate, at most; default 3 */
} mesh_config_t;

/*  Fills c with the defaults (all zero / NULL means "default"). */
MESH_EXPORT void mesh_config_init(mesh_config_t *c);

/* ------------------------------------------------------------------------ */
/* life cycle */

/*  Creates a peer (no sockets yet). NULL on a bad configuration value. */
MESH_EXPORT mesh_peer_t *mesh_peer_new(const mesh_config_t *config);

/*  Stops the peer if running and frees it. Any thread but the loop's when
    the peer runs on its own thread; on the loop thread otherwise. Pending
    calls complete with MESH_ERR_CLOSED first. Requests a handler still
    holds are freed too: finish them first (replying later uses freed
    memory). Inside a callback it takes effect when the callback returns.
    Accepts NULL. */
MESH_EXPORT void mesh_peer_destroy(mesh_peer_t **self_p);

/*  Runs the peer on the caller's loop (the caller runs ev_run). Returns 0,
    MESH_ERR_STATE if already running, or a start error (MESH_ERR_NOIFACE,
    MESH_ERR_ADDRINUSE, MESH_ERR_SOCKET). */
MESH_EXPORT int mesh_peer_attach(mesh_peer_t *self, struct ev_loop *loop);

/*  Runs the peer on a thread of its own. Same returns as attach. */
MESH_EXPORT int mesh_peer_start_thread(mesh_peer_t *self);

/*  Leaves the mesh cleanly: stops being offered, fails pending calls with
    MESH_ERR_CLOSED, sends the leaving beacon. Any thread: from another
    thread it waits until the loop has run it (so the loop must be running,
    and not waiting on the caller). Inside a callback it takes effect when
    the callback returns. Idempotent. */
MESH_EXPORT void mesh_peer_stop(mesh_peer_t *self);

/*  Runs fn(peer, arg) on the peer's loop thread. Any thread. */
typedef void(mesh_peer_fn)(mesh_peer_t *peer, void *arg);
MESH_EXPORT int mesh_peer_post(mesh_peer_t *self, mesh_peer_fn *fn, void *arg);

MESH_EXPORT const char *mesh_peer_name(const mesh_peer_t *self);
MESH_EXPORT const char *mesh_peer_id(const mesh_peer_t *self);       /* 32 hex */
MESH_EXPORT const char *mesh_peer_endpoint(const mesh_peer_t *self); /* once running */
MESH_EXPORT const char *mesh_peer_realm(const mesh_peer_t *self);

/* ------------------------------------------------------------------------ */
/* services */

/*  A handler receives each request for its path. It must finish the request
    exactly once, now or later, with mesh_request_reply, _error or _reject
    (for a cast these send nothing but still free the request). It may call
    other services before replying (nested calls). */
typedef void(mesh_handler_fn)(mesh_peer_t *peer, mesh_request_t *req, void *arg);

/*  An active predicate: while it returns false the service is not offered
    (re-checked every ping interval). */
typedef bool(mesh_active_fn)(mesh_peer_t *peer, void *arg);

typedef struct {
    const char *const *tags; /* "k=v", e.g. "zone=eu" */
    size_t ntags;
    mesh_active_fn *active;
    void *active_arg;
} mesh_expose_opts_t;

/*  Offers path (starts with '/', <= 255 bytes). opts may be NULL. Returns 0,
    MESH_ERR_EXISTS, MESH_ERR_INVAL, MESH_ERR_TOOLONG. Peers learn of the
    change at once (services are versioned). */
MESH_EXPORT int mesh_peer_expose(mesh_peer_t *self, const char *path, mesh_handler_fn *fn,
                                 void *arg, const mesh_expose_opts_t *opts);
MESH_EXPORT int mesh_peer_unexpose(mesh_peer_t *self, const char *path);

/*  About a request (valid until it is finished). */
MESH_EXPORT const char *mesh_request_path(const mesh_request_t *req);
MESH_EXPORT const void *mesh_request_data(const mesh_request_t *req);
MESH_EXPORT size_t mesh_request_size(const mesh_request_t *req);
MESH_EXPORT const char *mesh_request_from(const mesh_request_t *req);      /* peer id */
MESH_EXPORT const char *mesh_request_from_name(const mesh_request_t *req);
MESH_EXPORT bool mesh_request_is_cast(const mesh_request_t *req);
MESH_EXPORT const char *mesh_request_key(const mesh_request_t *req);       /* or NULL */
MESH_EXPORT unsigned mesh_request_attempt(const mesh_request_t *req);      /* 1, 2, ... */

/*  Finish a request: a reply (payload copied), a remote error carrying
    message, or a rejection (the caller moves on to its next candidate).
    Each frees req. */
MESH_EXPORT int mesh_request_reply(mesh_request_t *req, const void *data, size_t size);
MESH_EXPORT int mesh_request_error(mesh_request_t *req, const char *message);
MESH_EXPORT int mesh_request_reject(mesh_request_t *req);

/*  Custom fitness announced with every status ping (Nanite's status proc). */
typedef double(mesh_fitness_fn)(mesh_peer_t *peer, void *arg);
MESH_EXPORT void mesh_peer_set_fitness(mesh_peer_t *self, mesh_fitness_fn *fn, void *arg);

/* ------------------------------------------------------------------------ */
/* calls */

/*  A candidate as a custom selector sees it. */
typedef struct {
    const char *id;
    const char *name;
    double load;
    double fitness;
    bool has_fitness;
    uint64_t inflight;
    const char *const *tags;
    size_t ntags;
} mesh_candidate_t;

/*  Returns the index of the chosen candidate or -1. */
typedef int(mesh_selector_fn)(const mesh_candidate_t *cands, size_t n, const char *key,
                              void *arg);

/*  Registers a selector usable by name in mesh_call_opts_t.selector. */
MESH_EXPORT int mesh_peer_add_selector(mesh_peer_t *self, const char *name, mesh_selector_fn *fn,
                                       void *arg);

typedef struct {
    const char *selector;     /* "least_loaded" (default), "random", "round_robin",
                                 "key", "direct", or a registered custom name */
    const char *key;          /* for "key" (and passed to custom selectors) */
    const char *peer;         /* for "direct": a peer id (32 hex) or name */
    const char *const *tags;  /* only candidates carrying every "k=v" */
    size_t ntags;
    int timeout_ms;           /* 0: the peer's default */
    bool idempotent;          /* if its provider is lost, retry on another */
    unsigned attempt_base;    /* the handler's mesh_request_attempt() counts from
                                 attempt_base + 1 (a task's Nth run passes N - 1) */
    bool once;                /* with a key: the provider runs (path, key) at most once
                                 at a time and remembers a success: a repeat while it
                                 runs joins that run (its reply, whatever it is), a
                                 repeat after it succeeded gets the same reply without
                                 the handler (for MESH_ONCE_RETENTION_MS, less when the
                                 provider's ledger is full), a repeat after it failed
                                 runs again. The ledger is the provider's: send the
                                 repeats to the same one ("key", "direct"). Calls only;
                                 ignored without a key (docs/protocol.md §11.6.7) */
} mesh_call_opts_t;

typedef struct {
    int status;              /* 0, or MESH_ERR_TIMEOUT, _NOPROVIDER, _REMOTE, _PEERLOST,
                                _REJECTED (every candidate rejected), _CLOSED */
    const void *data;        /* the reply payload when status is 0 */
    size_t size;
    const char *error;       /* the handler's message for MESH_ERR_REMOTE, else NULL */
    const char *peer_id;     /* who answered or failed, or NULL */
    const char *peer_name;
} mesh_reply_t;

typedef void(mesh_reply_fn)(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg);

/*  Request/reply. Returns 0 (cb follows), MESH_ERR_NOPROVIDER at once when
    no candidate qualifies (nothing was sent), MESH_ERR_INVAL. opts may be
    NULL. */
MESH_EXPORT int mesh_peer_call(mesh_peer_t *self, const char *path, const void *data, size_t size,
                               const mesh_call_opts_t *opts, mesh_reply_fn *cb, void *arg);

/*  The peer a call to path with opts would be sent to now: the selector
    runs as for mesh_peer_call's first attempt (a round robin advances),
    nothing is sent. opts may be NULL. Returns 0 with id_out (33 bytes: the
    32 hex of the peer id and a NUL) filled, MESH_ERR_NOPROVIDER (no
    candidate, or a "direct" peer that is not a member), MESH_ERR_INVAL (a
    bad path or option, id_out NULL, selector "all"), MESH_ERR_TOOLONG,
    MESH_ERR_STATE (not running) or MESH_ERR_NOMEM; id_out is written only
    on success. Pair it with selector "direct" to know where a call went
    before its reply comes. */
MESH_EXPORT int mesh_peer_pick(mesh_peer_t *self, const char *path, const mesh_call_opts_t *opts,
                               char *id_out);

/*  Fire-and-forget to one selected peer, or to every candidate when
    opts->selector is "all". Returns 0, MESH_ERR_NOPROVIDER, or
    MESH_ERR_AGAIN when every chosen peer's send queue was full (nothing
    sent; see mesh_stats_t.sends_dropped). */
MESH_EXPORT int mesh_peer_cast(mesh_peer_t *self, const char *path, const void *data, size_t size,
                               const mesh_call_opts_t *opts);

/*  Fan-out and gather: the request goes to every candidate; cb runs once
    every one has answered or the deadline passed, with every reply and the
    peers that did not answer. A candidate whose send queue is full counts
    as answered with MESH_ERR_AGAIN. Returns 0, MESH_ERR_NOPROVIDER, or
    MESH_ERR_AGAIN when no candidate could be sent the request. */
typedef struct {
    const mesh_reply_t *replies; /* one per peer that answered (status 0 or an error) */
    size_t nreplies;
    const char *const *missing_ids; /* peers that did not answer in time */
    const char *const *missing_names;
    size_t nmissing;
} mesh_gather_t;

typedef void(mesh_gather_fn)(mesh_peer_t *peer, const mesh_gather_t *g, void *arg);

MESH_EXPORT int mesh_peer_fanout(mesh_peer_t *self, const char *path, const void *data,
                                 size_t size, const mesh_call_opts_t *opts, mesh_gather_fn *cb,
                                 void *arg);

/*  Blocking call for threaded programs: the peer must run on its own
    thread, and this must not be called from it. On status 0, *reply is a
    fresh buffer (free it) of *size bytes; on MESH_ERR_REMOTE, *error is a
    fresh string (free it). Any thread. */
MESH_EXPORT int mesh_peer_call_sync(mesh_peer_t *self, const char *path, const void *data,
                                    size_t size, const mesh_call_opts_t *opts, void **reply,
                                    size_t *reply_size, char **error);

/* ------------------------------------------------------------------------ */
/* streams */

typedef void(mesh_message_fn)(mesh_peer_t *peer, const char *topic, const void *data,
                              size_t size, const char *from_id, void *arg);

/*  Subscribes to an exact topic, or to every topic starting with pattern
    when prefix is true. Returns 0, MESH_ERR_EXISTS, MESH_ERR_INVAL. */
MESH_EXPORT int mesh_peer_subscribe(mesh_peer_t *self, const char *pattern, bool prefix,
                                    mesh_message_fn *cb, void *arg);
MESH_EXPORT int mesh_peer_unsubscribe(mesh_peer_t *self, const char *pattern);

/*  Publishes to every subscriber in the realm (this peer's own included). */
MESH_EXPORT int mesh_peer_publish(mesh_peer_t *self, const char *topic, const void *data,
                                  size_t size);

/* ------------------------------------------------------------------------ */
/* the routing table */

typedef struct {
    const char *id;
    const char *name;
    bool is_self;
    bool alive;            /* heard within the ping timeout */
    double load;
    double fitness;
    bool has_fitness;
    uint64_t inflight;
    int64_t heard_ms_ago;
    const char *path;      /* one service of this peer */
    const char *const *tags;
    size_t ntags;
} mesh_route_info_t;

typedef void(mesh_route_fn)(const mesh_route_info_t *route, void *arg);

/*  Calls fn for every (peer, service) pair in the table, and once with
    path NULL for a member that offers no service. Returns the number of
    members. */
MESH_EXPORT size_t mesh_peer_routes(mesh_peer_t *self, mesh_route_fn *fn, void *arg);

/*  Counters: requests in and out, errors, envelopes dropped. */
typedef struct {
    uint64_t requests_in, requests_out, replies_in, replies_out;
    uint64_t casts_in, casts_out, publishes_in, publishes_out;
    uint64_t errors_out;          /* calls completed with an error */
    uint64_t rejected_in;         /* requests this peer rejected */
    uint64_t envelopes_dropped;   /* failed validation, counted and logged at debug */
    uint64_t replies_late;        /* replies to calls already finished */
    uint64_t zre_dropped;         /* ZRE frames dropped (malformed, unknown sender, gaps) */
    uint64_t sends_dropped;       /* envelopes not sent: the peer's queue was full */
    uint64_t peers;               /* members in the table, self included */
    uint64_t ring_mismatches;     /* a member's ring digest went from agreeing with ours to
                                     differing (counted once per episode: see the ring) */
    uint64_t once_joined;         /* "once" requests that waited on the same run under way
                                     here instead of reaching the handler */
    uint64_t once_replayed;       /* "once" requests answered with a remembered success */
} mesh_stats_t;

MESH_EXPORT void mesh_peer_stats(const mesh_peer_t *self, mesh_stats_t *out);

/* ------------------------------------------------------------------------ */
/* the ring */

/*  The cluster ring: consistent hashing with virtual nodes (1024 per
    member) over the realm's members, deciding which member owns a key and
    which members hold its replicas (docs/protocol.md, "The ring").

    Membership, not liveness: the ring holds every member of the routing
    table, this peer included, except short-lived control peers (meshctl:
    HELLO header X-MESH-ROLE=ctl), so every peer that sees the same members
    computes the same ring, with no coordinator. A member that falls silent
    stays on the ring until it leaves the table (LEAVE, or its ZRE expiry).

    The ring's digest (64 bits, from the members' UUIDs) travels in every
    STATUS. A member whose last STATUS carried another digest than ours
    sees another membership: it "disagrees". mesh_stats_t.ring_mismatches
    counts each member's turn from agreeing to disagreeing, once it has
    disagreed in two STATUS in a row (a join or a leave reaches peers a few
    milliseconds apart; such blips are not counted).

    The ring is rebuilt lazily, at the first use after the membership
    changed. All of these run on the loop thread only; their callbacks run
    before the call returns, with strings valid only during the callback;
    a callback must not destroy the peer. */

/*  This peer's view: its digest, as announced in STATUS. A peer with no
    ring member at all (a control peer alone) has the digest of the empty
    ring, which is not 0 (0 on the wire means "no ring"). */
MESH_EXPORT uint64_t mesh_peer_ring_digest(mesh_peer_t *self);

/*  One owner of a key: the member's id (32 hex) and name, and its rank in
    the list, 0 for the owner, then 1, 2, ... for the replicas. */
typedef void(mesh_ring_owner_fn)(const char *id, const char *name, size_t rank, void *arg);

/*  The owner of key (keylen bytes; key may be NULL when keylen is 0) and
    its first replicas - 1 distinct successors clockwise: fn is called for
    each, in that order, min(replicas, members) times. Returns 0,
    MESH_ERR_NOTFOUND when the ring is empty (fn is not called),
    MESH_ERR_INVAL (replicas 0, fn NULL, key NULL with keylen > 0), or
    MESH_ERR_NOMEM. */
MESH_EXPORT int mesh_peer_ring_owners(mesh_peer_t *self, const void *key, size_t keylen,
                                      size_t replicas, mesh_ring_owner_fn *fn, void *arg);

/*  A member of the ring, as mesh_peer_ring_members reports it. */
typedef struct {
    const char *id; /* 32 hex */
    const char *name;
    bool is_self;
    unsigned vnodes; /* its virtual nodes (the same for every member) */
    double share;    /* fraction of the hash space it owns, 0..1; all sum to 1 */
    uint64_t digest; /* the digest of its last STATUS; 0 until one arrived. Self: ours */
    bool agrees;     /* digest equals ours now (self: always true) */
} mesh_ring_member_t;

typedef void(mesh_ring_member_fn)(const mesh_ring_member_t *member, void *arg);

/*  Calls fn for every member of the ring, in ring rank order (by UUID),
    if fn is not NULL. Returns the number of members. */
MESH_EXPORT size_t mesh_peer_ring_members(mesh_peer_t *self, mesh_ring_member_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
