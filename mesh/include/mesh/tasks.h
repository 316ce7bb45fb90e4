/*  mesh/tasks.h: the task service (issue 5, section 2), built on the peer.

    A task is a request to a service path that runs later (a countdown or
    an ETA), at most once per attempt, with retries, a TTL and an optional
    idempotency key. There is no broker: the cluster ring (mesh/peer.h)
    places each task on its owner (rank 0) and replicas - 1 successors
    (rank k), which hold copies; the holder at rank k treats the task as due
    k x replica_offset_ms late, so the owner starts it, announces the start,
    and the others stand down. The task then runs as an ordinary call to a
    provider of its path chosen by the selector (not necessarily a holder).

    Every participating peer runs one mesh_taskd_t, which exposes the
    internal services /sys/task/{submit,put,started,done,status,cancel,list}
    (docs/protocol.md section 12, "Tasks").

    Threads. Everything here runs on the peer's loop thread, callbacks too.
    Ownership. mesh_taskd_new's result is the caller's (mesh_taskd_destroy),
    to destroy before the peer. Strings and buffers passed in are copied.
    Errors. 0 or a negative MESH_ERR_*; when a call with a callback returns
    an error, the callback is never called; otherwise it is called exactly
    once, never before the call has returned. */
#ifndef MESH_PUBLIC_TASKS_H
#define MESH_PUBLIC_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "peer.h"

#ifdef __cplusplus
extern "C" {
#endif

struct ev_loop;
typedef struct mesh_taskd mesh_taskd_t;

#define MESH_TASK_DEFAULT_REPLICAS          2
#define MESH_TASK_DEFAULT_REPLICA_OFFSET_MS 5000
#define MESH_TASK_DEFAULT_RETENTION_MS      3600000
#define MESH_TASK_DEFAULT_IDEM_WINDOW_MS    3600000
#define MESH_TASK_DEFAULT_BACKOFF_BASE_MS   1000
#define MESH_TASK_DEFAULT_TICK_MS           250 /* ring and runner checks at least this often */
#define MESH_TASK_ID_HEX                    32
#define MESH_TASK_DEFAULT_QUORUM_MEMORY_MS  300000 /* a silent member counts this long */
#define MESH_TASK_DEFAULT_STARTUP_GRACE_MS  3000   /* discover, reconcile, then start */
#define MESH_TASK_DEFAULT_RUN_TIMEOUT_MS    60000  /* a run's call deadline */
#define MESH_TASK_RATELIMITS_MAX            256    /* rate-limited paths per service */

/*  Journal durability (mesh_taskd_config_t.journal_sync): see docs/tasks.md. */
typedef enum {
    MESH_TASK_SYNC_FULL = 0, /* every commit flushed: survives a power cut */
    MESH_TASK_SYNC_META,     /* an OS crash may undo the last commits */
    MESH_TASK_SYNC_NONE,     /* a process kill loses nothing; an OS crash may */
} mesh_task_sync_t;

/*  A cluster-wide rate limit: tasks of path start at most `limit` ("10/s",
    "600/m", "N/h") across the realm; the ring owner of the path's limit
    key holds the token bucket. Over the limit, tasks wait. */
typedef struct {
    const char *path;
    const char *limit;
} mesh_task_ratelimit_t;

typedef struct {
    struct ev_loop *loop;      /* the loop the peer is attached to (required) */
    unsigned replicas;         /* holders of a task by default; 0: 2 */
    int64_t replica_offset_ms; /* replica k waits k x this; < 0: 5000 (0 is allowed) */
    int64_t retention_ms;      /* final tasks kept; 0: 1 h */
    int64_t idem_window_ms;    /* idempotency keys held; 0: 1 h */
    int64_t backoff_base_ms;   /* retry after the 1st failure; 0: 1 s (doubling, jittered) */
    int tick_ms;               /* 0: MESH_TASK_DEFAULT_TICK_MS */
    const char *selector;      /* provider selection for runs, keyed by the task id;
                                  NULL: "key" (a consistent hash over the path's
                                  providers: every holder that runs a task picks the same
                                  provider, whose "once" ledger then joins or replays a
                                  run instead of running it again) */
    int run_timeout_ms;        /* a run without a reply by then is a failed attempt (the
                                  next goes to the same provider: "once" joins a run still
                                  going on there); 0: MESH_TASK_DEFAULT_RUN_TIMEOUT_MS */
    const char *data_dir;      /* journal the tasks held here in this directory (LMDB)
                                  and resume them after a restart; NULL: memory only */
    mesh_task_sync_t journal_sync;
    const mesh_task_ratelimit_t *ratelimits; /* nratelimits entries, copied */
    size_t nratelimits;
    int64_t quorum_memory_ms; /* a member gone silent still counts toward the quorum
                                 this long; 0: MESH_TASK_DEFAULT_QUORUM_MEMORY_MS;
                                 < 0: no quorum (a partition may run a task twice) */
    int64_t startup_grace_ms; /* nothing starts before this (discovery, then the held
                                 tasks are reconciled with the other holders);
                                 0: MESH_TASK_DEFAULT_STARTUP_GRACE_MS; < 0: none */
} mesh_taskd_config_t;

/*  Fills c with the defaults (replica_offset_ms -1: the default). */
MESH_EXPORT void mesh_taskd_config_init(mesh_taskd_config_t *c);

/*  The task service of a running peer (attached to cfg->loop): exposes the
    /sys/task/ services and starts the scheduler; with a data_dir, opens
    the journal there and takes back the tasks it holds. NULL on a bad
    argument (a rate limit that does not parse included), if the services
    cannot be exposed, the journal cannot be opened, or out of memory. */
MESH_EXPORT mesh_taskd_t *mesh_taskd_new(mesh_peer_t *peer, const mesh_taskd_config_t *cfg);

/*  Checks that dir can hold a journal: opens it and reads every record in a
    forked child (LMDB does not survive every kind of damage, the child may
    die in its place). Call before the process starts threads. 0, or
    MESH_ERR_CONFIG (cannot be created or used), MESH_ERR_STATE (open by
    another process), MESH_ERR_MALFORMED (not a mesh journal, damaged). */
MESH_EXPORT int mesh_taskd_check_data_dir(const char *dir);

/*  Sets (limit "10/s"...) or removes (NULL) a cluster-wide rate limit.
    0, MESH_ERR_INVAL (path or limit malformed), MESH_ERR_AGAIN (too many). */
MESH_EXPORT int mesh_taskd_set_ratelimit(mesh_taskd_t *self, const char *path, const char *limit);

typedef struct {
    size_t held;              /* tasks held here, final ones included */
    uint64_t started;         /* runs started here */
    uint64_t succeeded, failed;
    uint64_t lost_runs;       /* runs whose provider or runner was lost: run again */
    uint64_t takeovers;       /* runs of a lost runner taken over here */
    uint64_t double_starts;   /* another holder started an attempt running here */
    uint64_t rate_waits;      /* tasks that waited for a cluster-wide token */
    uint64_t tokens_granted;  /* tokens this node's buckets granted (as limit owner) */
    uint64_t journal_commits; /* journal batches committed */
    uint64_t journal_errors;  /* journal batches that failed (the tasks stay in memory) */
    uint64_t journal_loaded;  /* tasks taken back from the journal at start */
    uint64_t stalls;          /* the loop stood still for seconds: starts held back */
    bool quorum;              /* enough of the cluster is in sight to start tasks */
    bool ready;               /* the startup grace and reconciliation are over */
    bool settled;             /* the members alive announce our ring (or differ for long) */
    unsigned syncing;         /* reconciliation calls in flight */
    unsigned disagreeing;     /* members alive announcing another ring, at the last check */
    uint64_t ring_changes;    /* ring digest changes seen (each one reconciles) */
    int64_t unsettled_ms;     /* how long the views have differed (0: they agree) */
    int64_t checked_ms_ago;   /* the last membership and quorum check */
    uint64_t ticks;           /* scheduler turns */
    int64_t next_tick_ms;     /* the next one is due in (-1: none armed) */
} mesh_taskd_stats_t;

MESH_EXPORT void mesh_taskd_stats(const mesh_taskd_t *self, mesh_taskd_stats_t *out);

/*  Hands every task held here to its holders computed without this peer
    (casts queued before the call returns), unexposes the services and
    frees. Call before mesh_peer_stop / mesh_peer_destroy. Accepts NULL. */
MESH_EXPORT void mesh_taskd_destroy(mesh_taskd_t **self_p);

/*  Options of a submit; all zero / NULL: run now, defaults. */
typedef struct {
    int64_t countdown_ms;        /* run this long from now */
    int64_t eta_unix_ms;         /* or at this wall-clock time (ms since 1970); 0: unset */
    unsigned replicas;           /* 0: the service's default */
    const char *idempotency_key; /* same key within the window: the same task */
    int64_t ttl_ms;              /* expires unless started within; 0: none */
    unsigned max_attempts;       /* 0: 1 */
} mesh_task_opts_t;

/*  The client side below works from any peer attached to a loop, one that
    runs no task service (a control peer such as meshctl's) included: it
    talks to the services of the realm. */

/*  status 0 with the id (32 hex), or an error (id NULL; error: the
    service's message for MESH_ERR_REMOTE, else NULL). */
typedef void(mesh_task_submit_fn)(mesh_peer_t *peer, int status, const char *id, const char *error,
                                  void *arg);

/*  Submits a task to the owner of its id (the id is XXH3-128 of the
    idempotency key when there is one, so a repeated key reaches the same
    owner and returns the existing id). The owner replies once it holds
    the task and every replica has answered its copy. Returns 0 (cb
    follows), MESH_ERR_INVAL, MESH_ERR_TOOLONG, MESH_ERR_NOTFOUND (empty
    ring), MESH_ERR_NOPROVIDER (the owner runs no task service). */
MESH_EXPORT int mesh_task_submit(mesh_peer_t *peer, const char *path, const void *payload,
                                 size_t size, const mesh_task_opts_t *opts, mesh_task_submit_fn *cb,
                                 void *arg);

/*  A task as status and list report it (valid during the callback). */
typedef struct {
    const char *id; /* 32 hex */
    const char *path;
    const char *idempotency_key; /* or NULL */
    const char *state;           /* "scheduled", "running", "standby", "succeeded", "failed",
                                    "expired", "cancelled" */
    uint32_t attempt;            /* attempts started */
    uint32_t failures;
    uint32_t max_attempts;
    const void *result; /* the result (succeeded) or the last error; NULL: none */
    size_t result_size;
    int64_t due_in_ms; /* negative: overdue (scheduled) or past */
    int64_t created_ms_ago;
    int64_t finished_ms_ago; /* -1: not final */
} mesh_task_status_t;

/*  status 0 and the task, or MESH_ERR_NOTFOUND (task NULL). */
typedef void(mesh_task_status_fn)(mesh_peer_t *peer, int status, const mesh_task_status_t *task,
                                  void *arg);

/*  Asks every task service for id and reports the most advanced copy. */
MESH_EXPORT int mesh_task_status(mesh_peer_t *peer, const char *id, mesh_task_status_fn *cb,
                                 void *arg);

/*  Cancels id on every holder; cb gets the resulting status (a running
    attempt finishes; no further attempt starts). */
MESH_EXPORT int mesh_task_cancel(mesh_peer_t *peer, const char *id, mesh_task_status_fn *cb,
                                 void *arg);

typedef void(mesh_task_list_fn)(mesh_peer_t *peer, int status, const mesh_task_status_t *tasks,
                                size_t n, void *arg);

/*  Every task held in the realm (state NULL: any, else a state name),
    merged by id, the most advanced copy of each (each service replies
    with as many of its tasks as fit in one reply). */
MESH_EXPORT int mesh_task_list(mesh_peer_t *peer, const char *state, mesh_task_list_fn *cb,
                               void *arg);

/*  This service's peer. */
MESH_EXPORT mesh_peer_t *mesh_taskd_peer(const mesh_taskd_t *self);

/*  Tasks held here in a state (NULL: any), for tests and meshd's status. */
MESH_EXPORT size_t mesh_taskd_count(const mesh_taskd_t *self, const char *state);

#ifdef __cplusplus
}
#endif
#endif
