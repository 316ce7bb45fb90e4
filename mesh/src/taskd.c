/*  taskd.c: the task service on top of the public peer API (issue 5, §2).

    The scheduling core (tasks.h) decides what is due; this module wires it
    to the mesh: the ring places each task (owner rank 0, successors
    1..replicas-1), the /sys/task/ services carry records between holders,
    and a libev timer on the peer's loop drives the core. Wire formats:
    docs/protocol.md §12.

    Per task, besides the core's record, a holder keeps a small side entry
    (s_meta_t): the task's replica count (not part of the record), the peer
    running its current attempt and the provider it went to (for takeover),
    and the state of a hand-off in flight.

    A run is a "once" call (peer.h) direct to a provider picked with the
    selector keyed by the task id, so the handler sees the task id as its
    key and the attempt number as mesh_request_attempt() (exec agents:
    MESH_KEY, MESH_ATTEMPT): the call carries attempt_base = attempt - 1.

    Each turn of the scheduler (s_tick) checks, at most every tick_ms, the
    ring (rebalance on change), who is alive, whether the ring views of the
    live members agree, and the quorum; it reconciles (sync) when needed
    and starts due tasks only when all of that allows. Cluster-wide rate
    limits take tokens from the owner of the limit's key; the journal
    commits what changed once per loop turn. docs/architecture.md, "The
    task service", has the overview. */
#include <mesh/mesh.h>

#include "journal.h"
#include "tasks.h"
#include "taskwire.h"
#include "tokenbucket.h"

#include <czmq.h>
#include <ev.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <xxhash.h>

#define S_PATH_SUBMIT  "/sys/task/submit"
#define S_PATH_PUT     "/sys/task/put"
#define S_PATH_STARTED "/sys/task/started"
#define S_PATH_DONE    "/sys/task/done"
#define S_PATH_STATUS  "/sys/task/status"
#define S_PATH_CANCEL  "/sys/task/cancel"
#define S_PATH_LIST    "/sys/task/list"
#define S_PATH_SYNC    "/sys/task/sync"
#define S_PATH_TOKEN   "/sys/task/token"
#define S_PATH_BYE     "/sys/task/bye"
#define S_DUE_BATCH    64   /* tasks started per scheduler turn */
#define S_RETRY_MS     1000 /* a run that found no provider, or lost it, waits this long */
#define S_TOKEN_RETRY_MS 500 /* a token request that failed is repeated after this */
#define S_LIMIT_KEY    "mesh-ratelimit:" /* + path: the ring key of a limit's owner */
#define S_RUNNER_LOST  "-" /* runner of a task taken back from the journal: gone */
#define S_TAKEOVER_SCAN_MS 1000 /* standby tasks scanned at least this often */
#define S_STALL_MS         2000 /* no check for this long: the process was stalled */
#define S_STALL_GRACE_MS   1500 /* after a stall, liveness is stale: start nothing this long */
#define S_UNSETTLED_MAX_MS 5000 /* ring views that still differ after this: go on anyway */
#define S_HANDOFF_RETRY_MS 1000 /* a hand-off not acknowledged by every holder: again */

static const char *const s_paths[] = {S_PATH_SUBMIT, S_PATH_PUT,  S_PATH_STARTED, S_PATH_DONE,
                                      S_PATH_STATUS, S_PATH_CANCEL, S_PATH_LIST,  S_PATH_SYNC,
                                      S_PATH_TOKEN,  S_PATH_BYE};
#define S_NPATHS (sizeof s_paths / sizeof s_paths[0])

typedef struct {
    unsigned replicas;
    char runner[MESH_TASK_ID_HEX + 1];   /* "" unknown */
    char provider[MESH_TASK_ID_HEX + 1]; /* of the current attempt; "" unknown */
    uint32_t handoff_gen; /* the hand-off in flight (no longer a holder: the copy goes
                             once every holder acknowledged it) */
    int handoff_acks;     /* acknowledgements still awaited */
    bool handoff_failed;
} s_meta_t;

/*  A cluster-wide limit, as a runner of its tasks sees it. */
typedef struct {
    mesh__ratelimit_t rl;
    char text[MESH_RATELIMIT_TEXT_MAX];
    bool asking;      /* a token request in flight */
    int64_t retry_at; /* no request before */
} s_limit_t;

/*  A limit's bucket, held by the owner of its key. */
typedef struct {
    mesh__ratelimit_t rl;
    mesh__tokenbucket_t tb;
} s_bucket_t;

#define S_DIRTY_PUT ((void *)1)
#define S_DIRTY_DEL ((void *)2)

typedef struct s_pending s_pending_t;
typedef struct s_wait s_wait_t;

typedef struct {
    char (*ids)[MESH_TASK_ID_HEX + 1];
    size_t n, cap;
} s_alive_t;

struct mesh_taskd {
    mesh_peer_t *peer;
    struct ev_loop *loop;
    mesh_taskd_config_t cfg;
    char selector[64];
    mesh__tasks_t *tasks;
    zhashx_t *meta; /* id hex -> s_meta_t */
    ev_timer timer;
    uint64_t digest;
    s_pending_t *pending; /* calls in flight: orphaned on destroy */
    s_wait_t *waits;      /* submits waiting for their replicas */
    /* the journal (data_dir): tasks changed in this loop turn, committed
       by a prepare watcher of top priority, before the turn's replies go */
    char *data_dir;
    mesh__journal_t *journal;
    zhashx_t *dirty; /* id hex -> S_DIRTY_PUT | S_DIRTY_DEL */
    ev_prepare commit;
    bool loading;
    /* rate limits */
    zhashx_t *limits;  /* path -> s_limit_t (this node's tasks of the path) */
    zhashx_t *buckets; /* path -> s_bucket_t (limits whose key this node owns) */
    /* the quorum and the startup gate */
    zhashx_t *seen; /* member id -> int64_t *: last time it was alive */
    bool quorum;
    bool ready;           /* startup grace over and held tasks reconciled */
    bool reconciled_once; /* a reconciliation ran since the quorum came back */
    int syncing;          /* sync calls of the current round in flight */
    uint32_t round;       /* reconciliation rounds started */
    const s_alive_t *alive; /* during a scheduler turn: &alive_set, for the gate */
    s_alive_t alive_set;  /* members alive at the last check */
    uint64_t alive_digest;
    int64_t last_check;     /* membership and quorum, every tick_ms */
    int64_t last_takeovers; /* the last scan of the standby tasks */
    int64_t stalled_until;  /* after a stall (a paused process), start nothing before */
    int64_t unsettled_since; /* alive members announce another ring than ours; 0: no */
    int64_t rebalance_at;    /* a hand-off failed: push again then; 0: no */
    int64_t timer_at;        /* when the armed timer fires (monotonic ms) */
    bool settled;            /* ring views agree (or have disagreed past the limit) */
    int64_t started_at;
    mesh_taskd_stats_t st;
};

/*  A call of the service in flight: a task run, a sync, a token request
    (orphaned when the service is destroyed first). */
struct s_pending {
    s_pending_t *next, *prev;
    mesh_taskd_t *taskd; /* NULL: orphaned */
    uint8_t id[MESH_TASKS_ID_SIZE];
    uint32_t attempt; /* a run's attempt; a sync's round */
    uint32_t wanted;  /* tokens asked for */
    char *path;       /* a token request's path */
};

/*  A submit whose reply waits for the replicas' copies (put as calls). */
struct s_wait {
    s_wait_t *next, *prev;
    mesh_taskd_t *taskd; /* NULL: orphaned (the submit was answered) */
    mesh_request_t *req;
    int outstanding;
    char hex[MESH_TASK_ID_HEX + 1];
};

/*  A client call in flight (submit, status, cancel, list). */
typedef struct {
    void *cb;
    void *arg;
} s_client_t;

/* ------------------------------------------------------------------------ */
/* time */

static int64_t s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* a tiny msgpack writer and reader (the subset of §12) */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} s_w_t;

static void s_w_raw(s_w_t *w, const void *p, size_t n)
{
    if (w->oom) {
        return;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) {
            cap *= 2;
        }
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w->oom = true;
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    if (n) {
        memcpy(w->buf + w->len, p, n);
    }
    w->len += n;
}

static void s_w_tag32(s_w_t *w, uint8_t tag, uint32_t v)
{
    uint8_t b[5] = {tag, (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    s_w_raw(w, b, 5);
}

static void s_w_uint(s_w_t *w, uint32_t v)
{
    s_w_tag32(w, 0xce, v);
}

static void s_w_array(s_w_t *w, uint32_t n)
{
    s_w_tag32(w, 0xdd, n);
}

static void s_w_bin(s_w_t *w, const void *p, size_t n)
{
    s_w_tag32(w, 0xc6, (uint32_t)n);
    s_w_raw(w, p, n);
}

static void s_w_str(s_w_t *w, const char *s)
{
    size_t n = strlen(s);
    s_w_tag32(w, 0xdb, (uint32_t)n);
    s_w_raw(w, s, n);
}

static void s_w_nil(s_w_t *w)
{
    uint8_t b = 0xc0;
    s_w_raw(w, &b, 1);
}


/* ------------------------------------------------------------------------ */
/* side entries */

static s_meta_t *s_meta(mesh_taskd_t *self, const char *hex, bool create)
{
    s_meta_t *m = zhashx_lookup(self->meta, hex);
    if (!m && create) {
        m = calloc(1, sizeof *m);
        if (m) {
            m->replicas = self->cfg.replicas;
            zhashx_insert(self->meta, hex, m);
        }
    }
    return m;
}

static void s_meta_free(void **item)
{
    free(*item);
    *item = NULL;
}

static unsigned s_replicas_of(mesh_taskd_t *self, const char *hex)
{
    s_meta_t *m = s_meta(self, hex, false);
    return m ? m->replicas : self->cfg.replicas;
}

static void s_on_event(void *arg, const mesh__task_t *task, mesh__tasks_event_t ev)
{
    mesh_taskd_t *self = arg;
    const char *hex = mesh__task_id_hex(task);
    if (ev == MESH_TASKS_EV_REMOVED) {
        zhashx_delete(self->meta, hex);
    }
    if (self->journal && !self->loading) {
        /* journaled at the end of the loop turn, as it is then */
        zhashx_update(self->dirty, hex, ev == MESH_TASKS_EV_REMOVED ? S_DIRTY_DEL : S_DIRTY_PUT);
        ev_prepare_start(self->loop, &self->commit);
    }
}

/* ------------------------------------------------------------------------ */
/* pending calls */

static s_pending_t *s_pending_new(mesh_taskd_t *self)
{
    s_pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->taskd = self;
    p->next = self->pending;
    if (self->pending) {
        self->pending->prev = p;
    }
    self->pending = p;
    return p;
}

/*  Unlinks and frees p; returns its taskd (NULL when orphaned). */
static mesh_taskd_t *s_pending_end(s_pending_t *p)
{
    mesh_taskd_t *self = p->taskd;
    if (self) {
        if (p->prev) {
            p->prev->next = p->next;
        } else {
            self->pending = p->next;
        }
        if (p->next) {
            p->next->prev = p->prev;
        }
    }
    free(p->path);
    free(p);
    return self;
}

/* ------------------------------------------------------------------------ */
/* records */

/*  The task as a fresh record (free it), or NULL. */
static uint8_t *s_encode(const mesh__task_t *t, int64_t now, size_t *len)
{
    size_t cap = 4096;
    for (;;) {
        uint8_t *buf = malloc(cap);
        if (!buf) {
            return NULL;
        }
        size_t n = mesh__task_encode(t, now, buf, cap);
        if (n == 0) {
            free(buf);
            return NULL;
        }
        if (n <= cap) {
            *len = n;
            return buf;
        }
        free(buf);
        cap = n;
    }
}

/* ------------------------------------------------------------------------ */
/* the journal */

/*  Commits what changed in this loop turn (top-priority prepare: before
    the turn's replies are flushed). A failed batch leaves the tasks in
    memory; they are journaled again at their next change. */
static void s_journal_flush(mesh_taskd_t *self)
{
    if (!self->journal || zhashx_size(self->dirty) == 0) {
        return;
    }
    int64_t now = s_now(), wall = s_wall_ms();
    int rc = mesh__journal_begin(self->journal);
    if (rc == 0) {
        for (void *mark = zhashx_first(self->dirty); rc == 0 && mark;
             mark = zhashx_next(self->dirty)) {
            uint8_t id[MESH_TASKS_ID_SIZE];
            if (mesh__task_id_from_hex(zhashx_cursor(self->dirty), id) != 0) {
                continue;
            }
            mesh__task_t *t = mark == S_DIRTY_PUT ? mesh__tasks_find(self->tasks, id) : NULL;
            if (t) {
                size_t n;
                uint8_t *rec = s_encode(t, now, &n);
                rc = rec ? mesh__journal_put(self->journal, id, rec, n, wall) : MESH_ERR_NOMEM;
                free(rec);
            } else {
                int d = mesh__journal_del(self->journal, id);
                rc = d == MESH_ERR_NOTFOUND ? 0 : d;
            }
        }
        if (rc == 0) {
            rc = mesh__journal_commit(self->journal);
        } else {
            mesh__journal_abort(self->journal);
        }
    }
    if (rc == 0) {
        self->st.journal_commits++;
    } else {
        self->st.journal_errors++;
    }
    zhashx_purge(self->dirty);
}

static void s_on_commit(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    ev_prepare_stop(loop, w);
    s_journal_flush(w->data);
}

/*  A record of the journal back in the queue: its times moved by the
    wall-clock time the node was down. A task that was running here is a
    lost run: it stands by for a runner that is gone, so it is taken over
    once the service is ready. */
static int s_journal_load_one(void *arg, const uint8_t *id, const uint8_t *rec, size_t len,
                              int64_t wall_ms)
{
    (void)id;
    mesh_taskd_t *self = arg;
    int64_t now = s_now();
    int64_t down = s_wall_ms() - wall_ms;
    mesh__task_t *t = NULL;
    int rc = mesh__tasks_import(self->tasks, rec, len, -1, now - (down > 0 ? down : 0), &t);
    if (rc >= 0 && t) {
        self->st.journal_loaded++;
        if (mesh__task_state(t) == MESH_TASK_STANDBY) {
            s_meta_t *m = s_meta(self, mesh__task_id_hex(t), true);
            if (m) {
                snprintf(m->runner, sizeof m->runner, "%s", S_RUNNER_LOST);
            }
        }
    }
    return 0;
}

static int s_journal_open(mesh_taskd_t *self)
{
    mesh__journal_config_t jc;
    mesh__journal_config_default(&jc);
    jc.sync = self->cfg.journal_sync == MESH_TASK_SYNC_META   ? MESH_JOURNAL_SYNC_META
              : self->cfg.journal_sync == MESH_TASK_SYNC_NONE ? MESH_JOURNAL_SYNC_NONE
                                                              : MESH_JOURNAL_SYNC_FULL;
    int err = 0;
    self->journal = mesh__journal_open_config(self->data_dir, &jc, &err);
    if (!self->journal) {
        return err ? err : MESH_ERR_CONFIG;
    }
    self->loading = true;
    int rc = mesh__journal_foreach(self->journal, s_journal_load_one, self);
    self->loading = false;
    return rc;
}

/*  The tasks held here went to their other holders (a graceful leave):
    the journal forgets them, so a restart does not bring them back. */
static void s_journal_clear(mesh_taskd_t *self)
{
    if (!self->journal || mesh__journal_begin(self->journal) != 0) {
        return;
    }
    size_t pos = 0;
    mesh__task_t *t;
    while ((t = mesh__tasks_next(self->tasks, &pos))) {
        (void)mesh__journal_del(self->journal, mesh__task_id(t));
    }
    (void)mesh__journal_commit(self->journal);
    zhashx_purge(self->dirty);
}

int mesh_taskd_check_data_dir(const char *dir)
{
    return mesh__journal_check(dir);
}

/* ------------------------------------------------------------------------ */
/* sending */

static void s_cast(mesh_taskd_t *self, const char *path, const char *peer_id, const s_w_t *w)
{
    if (w->oom) {
        return;
    }
    mesh_call_opts_t o = {.selector = peer_id ? "direct" : "all", .peer = peer_id};
    (void)mesh_peer_cast(self->peer, path, w->buf, w->len, &o);
}

/*  put (and sync) [k, replicas, runner|nil, record, provider|nil]: a
    holder's copy of t. */
static bool s_put_body(mesh_taskd_t *self, const mesh__task_t *t, unsigned k, int64_t now, s_w_t *w)
{
    size_t n;
    uint8_t *rec = s_encode(t, now, &n);
    if (!rec) {
        return false;
    }
    s_meta_t *m = s_meta(self, mesh__task_id_hex(t), false);
    s_w_array(w, 5);
    s_w_uint(w, k);
    s_w_uint(w, m ? m->replicas : self->cfg.replicas);
    if (mesh__task_state(t) == MESH_TASK_RUNNING) {
        s_w_str(w, mesh_peer_id(self->peer));
    } else if (m && m->runner[0] && strcmp(m->runner, S_RUNNER_LOST) != 0) {
        s_w_str(w, m->runner);
    } else {
        s_w_nil(w);
    }
    s_w_bin(w, rec, n);
    free(rec);
    if (m && m->provider[0]) {
        s_w_str(w, m->provider);
    } else {
        s_w_nil(w);
    }
    return !w->oom;
}

static void s_on_put_ack(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg);

/*  Without wait, a cast; with it, a call that the submit's reply waits for. */
static void s_put_wait(mesh_taskd_t *self, const mesh__task_t *t, const char *peer_id, unsigned k,
                       int64_t now, s_wait_t *wait)
{
    s_w_t w = {0};
    if (!s_put_body(self, t, k, now, &w)) {
        free(w.buf);
        return;
    }
    if (wait) {
        mesh_call_opts_t o = {.selector = "direct", .peer = peer_id};
        if (mesh_peer_call(self->peer, S_PATH_PUT, w.buf, w.len, &o, s_on_put_ack, wait) == 0) {
            wait->outstanding++;
        }
    } else {
        s_cast(self, S_PATH_PUT, peer_id, &w);
    }
    free(w.buf);
}

static void s_put(mesh_taskd_t *self, const mesh__task_t *t, const char *peer_id, unsigned k,
                  int64_t now)
{
    s_put_wait(self, t, peer_id, k, now, NULL);
}

static void s_reply_str(mesh_request_t *req, const char *s);

static void s_wait_unlink(s_wait_t *w)
{
    if (w->taskd) {
        if (w->prev) {
            w->prev->next = w->next;
        } else {
            w->taskd->waits = w->next;
        }
        if (w->next) {
            w->next->prev = w->prev;
        }
        w->taskd = NULL;
    }
}

/*  Every replica answered (or failed): the submit gets its id. */
static void s_wait_check(s_wait_t *w)
{
    if (w->outstanding > 0) {
        return;
    }
    if (w->req) {
        s_reply_str(w->req, w->hex);
        w->req = NULL;
    }
    s_wait_unlink(w);
    free(w);
}

static void s_on_put_ack(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    (void)reply; /* a replica that failed to take it: the ring change will push again */
    s_wait_t *w = arg;
    w->outstanding--;
    s_wait_check(w);
}

static void s_to_holders(mesh_taskd_t *self, const mesh__task_t *t, const char *path,
                         const s_w_t *w);

/*  done [replicas, record] to the other holders. */
static void s_broadcast_done(mesh_taskd_t *self, const mesh__task_t *t, int64_t now)
{
    size_t n;
    uint8_t *rec = s_encode(t, now, &n);
    if (!rec) {
        return;
    }
    s_w_t w = {0};
    s_w_array(&w, 2);
    s_w_uint(&w, s_replicas_of(self, mesh__task_id_hex(t)));
    s_w_bin(&w, rec, n);
    free(rec);
    s_to_holders(self, t, S_PATH_DONE, &w);
    free(w.buf);
}

/* ------------------------------------------------------------------------ */
/* the ring */

typedef struct {
    const char *skip; /* an id left out (this peer, when leaving) */
    char ids[MESH_TASKS_REPLICAS_MAX][MESH_TASK_ID_HEX + 1];
    size_t n, want;
} s_holders_t;

static void s_holder_cb(const char *id, const char *name, size_t rank, void *arg)
{
    (void)name;
    (void)rank;
    s_holders_t *h = arg;
    if ((h->skip && strcmp(id, h->skip) == 0) || h->n >= h->want) {
        return;
    }
    snprintf(h->ids[h->n++], sizeof h->ids[0], "%s", id);
}

/*  The holders of id, in rank order (k = index), optionally without skip. */
static void s_holders_on(mesh_peer_t *peer, const uint8_t *id, unsigned replicas, const char *skip,
                         s_holders_t *h)
{
    memset(h, 0, sizeof *h);
    if (replicas == 0) {
        replicas = 1;
    }
    if (replicas > MESH_TASKS_REPLICAS_MAX - 1) {
        replicas = MESH_TASKS_REPLICAS_MAX - 1;
    }
    h->skip = skip;
    h->want = replicas;
    (void)mesh_peer_ring_owners(peer, id, MESH_TASKS_ID_SIZE, replicas + (skip ? 1 : 0),
                                s_holder_cb, h);
}

static void s_holders(mesh_taskd_t *self, const uint8_t *id, unsigned replicas, const char *skip,
                      s_holders_t *h)
{
    s_holders_on(self->peer, id, replicas, skip, h);
}

/*  A cast to each holder of t but this peer. */
static void s_to_holders(mesh_taskd_t *self, const mesh__task_t *t, const char *path,
                         const s_w_t *w)
{
    s_holders_t h;
    s_holders(self, mesh__task_id(t), s_replicas_of(self, mesh__task_id_hex(t)),
              mesh_peer_id(self->peer), &h);
    for (size_t j = 0; j < h.n; j++) {
        s_cast(self, path, h.ids[j], w);
    }
}

static int s_rank_of(const s_holders_t *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->ids[i], id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*  t's put body (as replica k) sent as a call to peer_id on path (put or
    sync); cb gets a pending entry with t's id and gen. 0, or an error
    (cb will not be called). */
static int s_put_call(mesh_taskd_t *self, const mesh__task_t *t, unsigned k, const char *peer_id,
                      const char *path, mesh_reply_fn *cb, uint32_t gen, int64_t now)
{
    s_w_t w = {0};
    s_pending_t *p = s_put_body(self, t, k, now, &w) ? s_pending_new(self) : NULL;
    int rc = MESH_ERR_NOMEM;
    if (p) {
        memcpy(p->id, mesh__task_id(t), MESH_TASKS_ID_SIZE);
        p->attempt = gen;
        mesh_call_opts_t o = {.selector = "direct", .peer = peer_id};
        rc = mesh_peer_call(self->peer, path, w.buf, w.len, &o, cb, p);
        if (rc != 0) {
            s_pending_end(p);
        }
    }
    free(w.buf);
    return rc;
}

static void s_on_handoff_ack(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    s_pending_t *p = arg;
    uint8_t id[MESH_TASKS_ID_SIZE];
    memcpy(id, p->id, sizeof id);
    uint32_t gen = p->attempt;
    mesh_taskd_t *self = s_pending_end(p);
    mesh__task_t *t = self ? mesh__tasks_find(self->tasks, id) : NULL;
    s_meta_t *m = t ? s_meta(self, mesh__task_id_hex(t), false) : NULL;
    if (!m || m->handoff_gen != gen) {
        return;
    }
    if (reply->status != 0) {
        m->handoff_failed = true;
    }
    if (--m->handoff_acks > 0) {
        return;
    }
    if (m->handoff_failed) {
        self->rebalance_at = s_now() + S_HANDOFF_RETRY_MS; /* push again, keep the copy */
        return;
    }
    s_holders_t h;
    s_holders(self, id, m->replicas, NULL, &h);
    if (s_rank_of(&h, mesh_peer_id(self->peer)) < 0 && mesh__task_state(t) != MESH_TASK_RUNNING) {
        mesh__tasks_remove(self->tasks, id); /* every holder has it */
    }
}

/*  This node no longer holds t: put it to each holder as a call; the copy
    here goes once all have acknowledged (a cast lost on the way to a node
    just back would lose the task). */
static void s_handoff(mesh_taskd_t *self, const mesh__task_t *t, const s_holders_t *h,
                      int64_t now)
{
    s_meta_t *m = s_meta(self, mesh__task_id_hex(t), true);
    if (!m) {
        return;
    }
    m->handoff_gen++;
    m->handoff_acks = 0;
    m->handoff_failed = false;
    for (size_t j = 0; j < h->n; j++) {
        if (s_put_call(self, t, (unsigned)j, h->ids[j], S_PATH_PUT, s_on_handoff_ack,
                       m->handoff_gen, now) == 0) {
            m->handoff_acks++;
        } else {
            m->handoff_failed = true;
        }
    }
    if (m->handoff_failed && m->handoff_acks == 0) {
        self->rebalance_at = now + S_HANDOFF_RETRY_MS;
    }
}

/*  The ring changed: push each task to its holders, hand off the ones this
    peer no longer holds, move the rest to their new rank. */
static void s_rebalance(mesh_taskd_t *self, int64_t now)
{
    size_t n = mesh__tasks_size(self->tasks);
    if (n == 0) {
        return;
    }
    uint8_t(*ids)[MESH_TASKS_ID_SIZE] = malloc(n * sizeof *ids);
    if (!ids) {
        return;
    }
    size_t pos = 0, k = 0;
    mesh__task_t *t;
    while (k < n && (t = mesh__tasks_next(self->tasks, &pos))) {
        memcpy(ids[k++], mesh__task_id(t), MESH_TASKS_ID_SIZE);
    }
    const char *me = mesh_peer_id(self->peer);
    for (size_t i = 0; i < k; i++) {
        t = mesh__tasks_find(self->tasks, ids[i]);
        if (!t) {
            continue;
        }
        s_holders_t h;
        s_holders(self, ids[i], s_replicas_of(self, mesh__task_id_hex(t)), NULL, &h);
        if (h.n == 0) {
            continue;
        }
        int rank = s_rank_of(&h, me);
        if (rank < 0) {
            /* kept until every holder has it (and a run here has ended) */
            s_handoff(self, t, &h, now);
            continue;
        }
        for (size_t j = 0; j < h.n; j++) {
            if (strcmp(h.ids[j], me) != 0) {
                s_put(self, t, h.ids[j], (unsigned)j, now);
            }
        }
        mesh__tasks_set_replica(self->tasks, ids[i], (unsigned)rank, now);
    }
    free(ids);
}

/* ------------------------------------------------------------------------ */
/* running */

static void s_arm(mesh_taskd_t *self, int64_t now);

/*  keep_provider: the next attempt goes to the same provider if it is still
    there (a timeout: its run may go on, and "once" joins it there). */
static void s_run_finish(mesh_taskd_t *self, const uint8_t *id, uint32_t attempt, bool ok,
                         const void *res, size_t size, bool keep_provider)
{
    int64_t now = s_now();
    if (size > MESH_TASKS_RESULT_MAX) {
        size = MESH_TASKS_RESULT_MAX;
    }
    if (mesh__tasks_finished(self->tasks, id, attempt, ok, res, size, now) == 0) {
        mesh__task_t *t = mesh__tasks_find(self->tasks, id);
        if (t) {
            if (ok) {
                self->st.succeeded++;
            } else {
                self->st.failed++;
                s_meta_t *m = s_meta(self, mesh__task_id_hex(t), false);
                if (m && !keep_provider) {
                    m->provider[0] = '\0'; /* a retry is a new choice */
                }
            }
            s_broadcast_done(self, t, now);
            s_holders_t h;
            s_holders(self, id, s_replicas_of(self, mesh__task_id_hex(t)), NULL, &h);
            if (h.n && s_rank_of(&h, mesh_peer_id(self->peer)) < 0) {
                s_handoff(self, t, &h, now); /* the ring moved it while it ran here */
            }
        }
    }
    s_arm(self, now);
}

/*  The run ended without an outcome: again later, after S_RETRY_MS.
    reached: the provider may have run the handler (it was lost mid-run). */
static void s_run_lost(mesh_taskd_t *self, const uint8_t *id, uint32_t attempt, bool reached)
{
    int64_t now = s_now();
    if (mesh__tasks_requeue(self->tasks, id, attempt, reached, S_RETRY_MS, now) == 0) {
        self->st.lost_runs++;
        s_meta_t *m = s_meta(self, mesh__task_id_hex(mesh__tasks_find(self->tasks, id)), false);
        if (m && !reached) {
            m->provider[0] = '\0'; /* it would not take it: choose again */
        }
    }
    s_arm(self, now);
}

static void s_on_run_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    s_pending_t *p = arg;
    uint8_t id[MESH_TASKS_ID_SIZE];
    memcpy(id, p->id, sizeof id);
    uint32_t attempt = p->attempt;
    mesh_taskd_t *self = s_pending_end(p);
    if (!self) {
        return;
    }
    switch (reply->status) {
    case 0:
        s_run_finish(self, id, attempt, true, reply->data, reply->size, false);
        break;
    case MESH_ERR_PEERLOST: /* the handler may have run: "once" covers a provider
                               that survives; one that is gone took its outcome along */
        s_run_lost(self, id, attempt, true);
        break;
    case MESH_ERR_REJECTED:
    case MESH_ERR_NOTFOUND: /* the provider no longer offers it */
    case MESH_ERR_NOPROVIDER:
    case MESH_ERR_AGAIN:
        s_run_lost(self, id, attempt, false);
        break;
    case MESH_ERR_CLOSED:
        break; /* this peer is stopping: the hand-off carries the task */
    default: {
        const char *err = reply->error ? reply->error : mesh_err_name(reply->status);
        s_run_finish(self, id, attempt, false, err, strlen(err),
                     reply->status == MESH_ERR_TIMEOUT);
        break;
    }
    }
}

/*  Runs attempt `attempt` of t: on the provider of the previous run of
    this attempt if it still serves the path (a takeover: with "once" it
    joins that run or replays its reply rather than running it again),
    else on the one the selector picks. The holders learn who runs it and
    where before the call leaves. */
static void s_start(mesh_taskd_t *self, mesh__task_t *t)
{
    mesh__task_info_t info;
    mesh__task_info(t, &info);
    s_meta_t *m = s_meta(self, info.id_hex, true);
    uint8_t id[MESH_TASKS_ID_SIZE];
    memcpy(id, info.id, sizeof id);
    uint32_t attempt = info.attempt;
    char provider[MESH_TASK_ID_HEX + 1];
    int rc = MESH_ERR_NOPROVIDER;
    if (m && m->provider[0]) {
        mesh_call_opts_t o = {.selector = "direct", .peer = m->provider};
        rc = mesh_peer_pick(self->peer, info.path, &o, provider);
    }
    if (rc != 0) {
        mesh_call_opts_t o = {.selector = self->selector, .key = info.id_hex};
        rc = mesh_peer_pick(self->peer, info.path, &o, provider);
    }
    if (rc != 0) {
        s_run_lost(self, id, attempt, false); /* no provider now: wait for one */
        return;
    }
    self->st.started++;
    if (m) {
        snprintf(m->runner, sizeof m->runner, "%s", mesh_peer_id(self->peer));
        snprintf(m->provider, sizeof m->provider, "%s", provider);
    }
    /* started [id, attempt, provider] to the holders: they stand down */
    s_w_t w = {0};
    s_w_array(&w, 3);
    s_w_str(&w, info.id_hex);
    s_w_uint(&w, attempt);
    s_w_str(&w, provider);
    s_to_holders(self, t, S_PATH_STARTED, &w);
    free(w.buf);

    s_pending_t *p = s_pending_new(self);
    rc = MESH_ERR_NOMEM;
    if (p) {
        memcpy(p->id, id, sizeof id);
        p->attempt = attempt;
        mesh_call_opts_t o = {.selector = "direct",
                              .peer = provider,
                              .key = info.id_hex,
                              .once = true,
                              .timeout_ms = self->cfg.run_timeout_ms,
                              .attempt_base = attempt - 1};
        rc = mesh_peer_call(self->peer, info.path, info.payload, info.payload_size, &o,
                            s_on_run_reply, p);
        if (rc != 0) {
            s_pending_end(p);
        }
    }
    if (rc == MESH_ERR_NOPROVIDER || rc == MESH_ERR_AGAIN) {
        s_run_lost(self, id, attempt, false);
    } else if (rc != 0) {
        const char *err = mesh_err_name(rc);
        s_run_finish(self, id, attempt, false, err, strlen(err), false);
    }
}


static void s_alive_cb(const mesh_route_info_t *r, void *arg)
{
    s_alive_t *a = arg;
    if (!r->alive && !r->is_self) {
        return;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->ids[i], r->id) == 0) {
            return;
        }
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void *ids = realloc(a->ids, cap * sizeof *a->ids);
        if (!ids) {
            return;
        }
        a->ids = ids;
        a->cap = cap;
    }
    snprintf(a->ids[a->n++], sizeof a->ids[0], "%s", r->id);
}

static bool s_is_alive(const s_alive_t *a, const char *id)
{
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->ids[i], id) == 0) {
            return true;
        }
    }
    return false;
}

/*  STANDBY tasks whose runner is no longer alive are taken over; so are
    those whose runner is unknown, or this node (a run of its own that it
    no longer runs: it would stand by for itself for ever). */
static void s_takeovers(mesh_taskd_t *self, const s_alive_t *a, int64_t now)
{
    const char *me = mesh_peer_id(self->peer);
    size_t n = mesh__tasks_count(self->tasks, MESH_TASK_STANDBY);
    if (n == 0) {
        return;
    }
    mesh__task_t **list = malloc(n * sizeof *list);
    uint8_t(*lost)[MESH_TASKS_ID_SIZE] = malloc(n * sizeof *lost);
    size_t nlost = 0;
    if (list && lost) {
        n = mesh__tasks_list(self->tasks, MESH_TASK_STANDBY, list, n);
        for (size_t i = 0; i < n; i++) {
            s_meta_t *m = s_meta(self, mesh__task_id_hex(list[i]), false);
            if (!m || !m->runner[0] || strcmp(m->runner, me) == 0 || !s_is_alive(a, m->runner)) {
                memcpy(lost[nlost++], mesh__task_id(list[i]), MESH_TASKS_ID_SIZE);
            }
        }
        for (size_t i = 0; i < nlost; i++) {
            if (mesh__tasks_takeover(self->tasks, lost[i], now) == 0) {
                self->st.takeovers++;
            }
        }
    }
    free(lost);
    free(list);
}

/*  A replica (rank k > 0) starts a task only when no holder ranked before
    it is alive: the replica offset covers an owner that died, not one that
    is late (a rate limit holds its tasks back, its loop is busy). The
    holders before it get the task again (one that lost it takes it back). */
static bool s_gate(void *arg, const mesh__task_t *t)
{
    mesh_taskd_t *self = arg;
    mesh__task_info_t info;
    mesh__task_info(t, &info);
    if (info.replica == 0 || !self->alive) {
        return true;
    }
    s_holders_t h;
    s_holders(self, info.id, s_replicas_of(self, info.id_hex), NULL, &h);
    const char *me = mesh_peer_id(self->peer);
    bool before_alive = false;
    int64_t now = s_now();
    for (size_t j = 0; j < h.n && strcmp(h.ids[j], me) != 0; j++) {
        if (s_is_alive(self->alive, h.ids[j])) {
            before_alive = true;
            s_put(self, t, h.ids[j], (unsigned)j, now);
        }
    }
    return !before_alive;
}

/* ------------------------------------------------------------------------ */
/* the quorum: a node that sees fewer than half of the members it saw
   within quorum_memory_ms starts nothing (cut off, it would run what the
   rest of the cluster runs too) */

typedef struct {
    mesh_taskd_t *self;
    const s_alive_t *alive;
    int64_t now;
} s_seen_t;

typedef struct {
    int64_t at; /* last seen alive */
    bool left;  /* said goodbye (left on purpose): not counted */
} s_seen_at_t;

static void s_seen_cb(const mesh_ring_member_t *mb, void *arg)
{
    s_seen_t *q = arg;
    if (!mb->is_self && !s_is_alive(q->alive, mb->id)) {
        return;
    }
    s_seen_at_t *at = zhashx_lookup(q->self->seen, mb->id);
    if (!at) {
        at = calloc(1, sizeof *at);
        if (!at) {
            return;
        }
        zhashx_insert(q->self->seen, mb->id, at);
    }
    if (!at->left) {
        at->at = q->now;
    }
}

static bool s_quorum(mesh_taskd_t *self, const s_alive_t *alive, int64_t now)
{
    if (self->cfg.quorum_memory_ms < 0) {
        return true;
    }
    s_seen_t q = {self, alive, now};
    mesh_peer_ring_members(self->peer, s_seen_cb, &q);
    size_t total = 0, live = 0;
    zlistx_t *stale = zlistx_new();
    if (stale) {
        zlistx_set_duplicator(stale, (zlistx_duplicator_fn *)strdup);
        zlistx_set_destructor(stale, (zlistx_destructor_fn *)zstr_free);
    }
    for (s_seen_at_t *at = zhashx_first(self->seen); at; at = zhashx_next(self->seen)) {
        if (now - at->at > self->cfg.quorum_memory_ms) {
            if (stale) {
                zlistx_add_end(stale, (void *)zhashx_cursor(self->seen));
            }
        } else if (!at->left) {
            total++;
            live += at->at == now;
        }
    }
    for (const char *id = stale ? zlistx_first(stale) : NULL; id; id = zlistx_next(stale)) {
        zhashx_delete(self->seen, id);
    }
    zlistx_destroy(&stale);
    return live * 2 >= total;
}

static void s_on_bye(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    s_seen_at_t *at = zhashx_lookup(self->seen, mesh_request_from(req));
    if (at) {
        at->left = true; /* left on purpose: out of the quorum's count */
    }
    mesh_request_reply(req, NULL, 0);
}

/* ------------------------------------------------------------------------ */
/* reconciliation: before it starts anything after a start or after it was
   cut off, a node asks the other holders of each task it holds for their
   copy (sync), so it does not start what ran meanwhile */

static void s_read_put_reply(mesh_taskd_t *self, const mesh_reply_t *reply);

static void s_on_sync_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    s_pending_t *p = arg;
    uint32_t round = p->attempt;
    mesh_taskd_t *self = s_pending_end(p);
    if (!self) {
        return;
    }
    if (reply->status == 0) {
        s_read_put_reply(self, reply);
    }
    if (round == self->round && --self->syncing == 0) {
        self->ready = true;
        s_arm(self, s_now());
    }
}

static void s_reconcile(mesh_taskd_t *self, int64_t now)
{
    self->round++;
    self->syncing = 0;
    const char *me = mesh_peer_id(self->peer);
    size_t pos = 0;
    mesh__task_t *t;
    while ((t = mesh__tasks_next(self->tasks, &pos))) {
        if (mesh__task_state_final(mesh__task_state(t))) {
            continue;
        }
        s_holders_t h;
        s_holders(self, mesh__task_id(t), s_replicas_of(self, mesh__task_id_hex(t)), NULL, &h);
        for (size_t j = 0; j < h.n; j++) {
            if (strcmp(h.ids[j], me) == 0) {
                continue;
            }
            if (s_put_call(self, t, (unsigned)j, h.ids[j], S_PATH_SYNC, s_on_sync_reply,
                           self->round, now) == 0) {
                self->syncing++;
            }
        }
    }
    self->ready = self->syncing == 0;
}

/* ------------------------------------------------------------------------ */
/* cluster-wide rate limits: tokens from the owner of the limit's key */

static void s_on_token_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    (void)peer;
    s_pending_t *p = arg;
    char *path = p->path;
    p->path = NULL;
    uint32_t wanted = p->wanted;
    mesh_taskd_t *self = s_pending_end(p);
    s_limit_t *l = self ? zhashx_lookup(self->limits, path) : NULL;
    if (l) {
        int64_t now = s_now();
        l->asking = false;
        l->retry_at = now + S_TOKEN_RETRY_MS;
        uint32_t granted, next_ms;
        if (reply->status == 0 &&
            mesh__tw_token_reply(reply->data, reply->size, &granted, &next_ms) == 0) {
            mesh__tasks_grant(self->tasks, path, granted);
            l->retry_at = granted >= wanted ? now : now + (next_ms > 0 ? next_ms : 1);
        }
        s_arm(self, now);
    }
    free(path);
}

static void s_ask_tokens(mesh_taskd_t *self, int64_t now)
{
    for (s_limit_t *l = zhashx_first(self->limits); l; l = zhashx_next(self->limits)) {
        const char *path = zhashx_cursor(self->limits);
        size_t waiting = mesh__tasks_waiting(self->tasks, path);
        if (waiting == 0 || l->asking || now < l->retry_at) {
            continue;
        }
        char key[sizeof S_LIMIT_KEY + MESH_TASKS_PATH_MAX];
        int klen = snprintf(key, sizeof key, "%s%s", S_LIMIT_KEY, path);
        s_holders_t h;
        memset(&h, 0, sizeof h);
        h.want = 1;
        (void)mesh_peer_ring_owners(self->peer, key, (size_t)klen, 1, s_holder_cb, &h);
        s_w_t w = {0};
        s_w_array(&w, 3);
        s_w_str(&w, path);
        s_w_str(&w, l->text);
        s_w_uint(&w, waiting > UINT32_MAX ? UINT32_MAX : (uint32_t)waiting);
        s_pending_t *p = h.n && !w.oom ? s_pending_new(self) : NULL;
        int rc = MESH_ERR_NOMEM;
        if (p && (p->path = strdup(path))) {
            p->wanted = waiting > UINT32_MAX ? UINT32_MAX : (uint32_t)waiting;
            mesh_call_opts_t o = {.selector = "direct", .peer = h.ids[0]};
            rc = mesh_peer_call(self->peer, S_PATH_TOKEN, w.buf, w.len, &o, s_on_token_reply, p);
        }
        if (rc == 0) {
            l->asking = true;
        } else {
            if (p) {
                s_pending_end(p);
            }
            l->retry_at = now + S_TOKEN_RETRY_MS;
        }
        free(w.buf);
    }
}

/*  token [path, limit, wanted] -> [granted, next_ms]: as the owner of the
    path's limit key, from its bucket (made full at the first request, and
    again when the limit asked for changes). */
static void s_on_token(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    mesh__tw_token_t tk;
    if (mesh__tw_token(mesh_request_data(req), mesh_request_size(req), &tk) != 0) {
        mesh_request_error(req, "malformed token");
        return;
    }
    const char *path = tk.path;
    const mesh__ratelimit_t rl = tk.rl;
    uint32_t wanted = tk.wanted;
    int64_t now = s_now();
    s_bucket_t *b = zhashx_lookup(self->buckets, path);
    if (!b || b->rl.count != rl.count || b->rl.period_ms != rl.period_ms) {
        if (!b && zhashx_size(self->buckets) >= MESH_TASKS_RATELIMITS_MAX) {
            mesh_request_error(req, "too many rate limits");
            return;
        }
        if (!b && !(b = calloc(1, sizeof *b))) {
            mesh_request_error(req, "out of memory");
            return;
        }
        if (!zhashx_lookup(self->buckets, path)) {
            zhashx_insert(self->buckets, path, b);
        }
        b->rl = rl;
        mesh__tokenbucket_init(&b->tb, &rl, now);
    }
    uint32_t granted = 0;
    while (granted < wanted && mesh__tokenbucket_take(&b->tb, now)) {
        granted++;
    }
    int64_t next = mesh__tokenbucket_next(&b->tb) - now;
    self->st.tokens_granted += granted;
    s_w_t w = {0};
    s_w_array(&w, 2);
    s_w_uint(&w, granted);
    s_w_uint(&w, next <= 0 ? 0 : next > UINT32_MAX ? UINT32_MAX : (uint32_t)next);
    if (w.oom) {
        mesh_request_error(req, "out of memory");
    } else {
        mesh_request_reply(req, w.buf, w.len);
    }
    free(w.buf);
}

int mesh_taskd_set_ratelimit(mesh_taskd_t *self, const char *path, const char *limit)
{
    if (!self || !path || path[0] != '/' || strlen(path) > MESH_TASKS_PATH_MAX) {
        return MESH_ERR_INVAL;
    }
    int64_t now = s_now();
    if (!limit) {
        zhashx_delete(self->limits, path);
        mesh__tasks_set_ratelimit(self->tasks, path, NULL, now);
        s_arm(self, now);
        return 0;
    }
    mesh__ratelimit_t rl;
    if (mesh__ratelimit_parse(limit, &rl) != 0) {
        return MESH_ERR_INVAL;
    }
    s_limit_t *l = zhashx_lookup(self->limits, path);
    if (!l) {
        if (zhashx_size(self->limits) >= MESH_TASK_RATELIMITS_MAX) {
            return MESH_ERR_AGAIN;
        }
        if (!(l = calloc(1, sizeof *l))) {
            return MESH_ERR_NOMEM;
        }
        int rc = mesh__tasks_set_granted(self->tasks, path, now);
        if (rc != 0) {
            free(l);
            return rc;
        }
        zhashx_insert(self->limits, path, l);
    }
    l->rl = rl;
    mesh__ratelimit_format(&rl, l->text, sizeof l->text);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the scheduler turn */

typedef struct {
    const s_alive_t *alive;
    bool agree;
    unsigned disagreeing;
} s_agree_t;

static void s_agree_cb(const mesh_ring_member_t *mb, void *arg)
{
    s_agree_t *g = arg;
    if (!mb->is_self && s_is_alive(g->alive, mb->id) && !mb->agrees) {
        g->agree = false;
        g->disagreeing++;
    }
}

/*  A digest of who is alive (order-independent), to notice a change. */
static uint64_t s_alive_digest(const s_alive_t *a)
{
    uint64_t d = a->n;
    for (size_t i = 0; i < a->n; i++) {
        d += XXH3_64bits(a->ids[i], strlen(a->ids[i]));
    }
    return d;
}

static void s_tick(mesh_taskd_t *self)
{
    int64_t now = s_now();
    self->st.ticks++;
    /* membership, liveness and the quorum at most every tick_ms: a turn with
       due tasks comes back at once, and need not walk the routes again */
    bool periodic = now - self->last_check >= self->cfg.tick_ms;
    bool alive_changed = false;
    if (periodic) {
        if (self->last_check && now - self->last_check > S_STALL_MS) {
            /* the loop did not turn for a while (the process was stopped, the
               machine suspended): every member looks silent until the messages
               that waited are read. Judging liveness now would take over what
               the others run. */
            self->stalled_until = now + S_STALL_GRACE_MS;
            self->st.stalls++;
        }
        self->last_check = now;
        uint64_t digest = mesh_peer_ring_digest(self->peer);
        if (self->rebalance_at && now >= self->rebalance_at) {
            self->rebalance_at = 0;
            s_rebalance(self, now); /* a hand-off failed: again */
        }
        if (digest != self->digest) {
            self->digest = digest;
            self->st.ring_changes++;
            s_rebalance(self, now);
            /* who holds what changed: once every member sees the same ring,
               merge with the (new) other holders before starting anything */
            self->ready = false;
            self->syncing = 0;
            self->round++;
        }
        s_alive_t *a = &self->alive_set;
        a->n = 0;
        mesh_peer_routes(self->peer, s_alive_cb, a);
        /* the members alive announce the ring we compute: two nodes with
           different views would each think itself the owner */
        s_agree_t g = {a, true, 0};
        mesh_peer_ring_members(self->peer, s_agree_cb, &g);
        self->st.disagreeing = g.disagreeing;
        if (g.agree) {
            self->unsettled_since = 0;
        } else if (!self->unsettled_since) {
            self->unsettled_since = now;
        }
        self->settled = g.agree || now - self->unsettled_since >= S_UNSETTLED_MAX_MS;
        uint64_t ad = s_alive_digest(a);
        alive_changed = ad != self->alive_digest;
        self->alive_digest = ad;
        bool quorum = s_quorum(self, a, now);
        if (!quorum && self->quorum) {
            self->ready = false; /* cut off: once back, reconcile first */
            self->syncing = 0;
            self->round++;
        }
        self->quorum = quorum;
    }
    if (self->quorum && self->settled && !self->ready && self->syncing == 0 &&
        (self->cfg.startup_grace_ms < 0 || now - self->started_at >= self->cfg.startup_grace_ms)) {
        s_reconcile(self, now);
    }
    if (self->quorum && self->ready && self->settled && now >= self->stalled_until) {
        self->alive = &self->alive_set;
        /* a scan of the standby tasks when someone came or went, else now and then */
        if (alive_changed || now - self->last_takeovers >= S_TAKEOVER_SCAN_MS) {
            self->last_takeovers = now;
            s_takeovers(self, &self->alive_set, now);
        }
        mesh__tasks_on_tick(self->tasks, now);
        mesh__task_t *due[S_DUE_BATCH];
        size_t n;
        do {
            n = mesh__tasks_due(self->tasks, now, due, S_DUE_BATCH);
            /* ids, since starting may finish (and purge) synchronously */
            uint8_t ids[S_DUE_BATCH][MESH_TASKS_ID_SIZE];
            for (size_t i = 0; i < n; i++) {
                memcpy(ids[i], mesh__task_id(due[i]), MESH_TASKS_ID_SIZE);
            }
            for (size_t i = 0; i < n; i++) {
                mesh__task_t *t = mesh__tasks_find(self->tasks, ids[i]);
                if (t && mesh__task_state(t) == MESH_TASK_RUNNING) {
                    s_start(self, t);
                }
            }
        } while (n == S_DUE_BATCH);
        /* after the starts: what still waits needs tokens (granted ones are used) */
        s_ask_tokens(self, now);
        self->alive = NULL;
    }
    s_arm(self, s_now());
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    s_tick(w->data);
}

/*  Arms the scheduler's timer for the next thing to do, at most tick_ms
    away; never later than it is armed already (events come in all the time:
    re-arming each time for tick_ms would put the turn off for ever). */
static void s_arm(mesh_taskd_t *self, int64_t now)
{
    int64_t delay = self->cfg.tick_ms;
    if (self->quorum && self->ready && self->settled && now >= self->stalled_until) {
        int64_t next = mesh__tasks_next_deadline(self->tasks, now);
        for (s_limit_t *l = zhashx_first(self->limits); l; l = zhashx_next(self->limits)) {
            if (!l->asking && l->retry_at < next &&
                mesh__tasks_waiting(self->tasks, zhashx_cursor(self->limits)) > 0) {
                next = l->retry_at;
            }
        }
        if (next != INT64_MAX && next - now < delay) {
            delay = next - now;
        }
    } else if (self->stalled_until > now && self->stalled_until - now < delay) {
        delay = self->stalled_until - now;
    }
    if (delay < 0) {
        delay = 0;
    }
    if (ev_is_active(&self->timer) && self->timer_at <= now + delay) {
        return; /* due sooner already */
    }
    self->timer_at = now + delay;
    ev_timer_stop(self->loop, &self->timer);
    ev_timer_set(&self->timer, (double)delay / 1000.0, 0.);
    ev_timer_start(self->loop, &self->timer);
}

/* ------------------------------------------------------------------------ */
/* the services */


static void s_reply_str(mesh_request_t *req, const char *s)
{
    s_w_t w = {0};
    s_w_str(&w, s);
    if (w.oom) {
        mesh_request_error(req, "out of memory");
    } else {
        mesh_request_reply(req, w.buf, w.len);
    }
    free(w.buf);
}

static void s_reply_record(mesh_request_t *req, const mesh__task_t *t)
{
    size_t n;
    uint8_t *rec = s_encode(t, s_now(), &n);
    s_w_t w = {0};
    if (rec) {
        s_w_bin(&w, rec, n);
    }
    if (!rec || w.oom) {
        mesh_request_error(req, "out of memory");
    } else {
        mesh_request_reply(req, w.buf, w.len);
    }
    free(rec);
    free(w.buf);
}

/*  submit [replicas, record]: the owner takes it (k = 0), replicates. */
static void s_on_submit(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    mesh__tw_submit_t sm;
    if (mesh__tw_submit(mesh_request_data(req), mesh_request_size(req), &sm) != 0 ||
        sm.r.rec.state != MESH_TASK_SCHEDULED || sm.r.rec.attempt != 0) {
        mesh_request_error(req, "malformed submit");
        return;
    }
    uint32_t replicas = sm.replicas;
    mesh__task_record_t rec = sm.r.rec;
    const uint8_t *p = sm.r.raw;
    size_t n = sm.r.len;
    if (replicas == 0) {
        replicas = self->cfg.replicas;
    }
    /* a submitter leaves the backoff to the service */
    uint8_t *patched = NULL;
    if (rec.backoff_base_ms == 0 || rec.backoff_max_ms == 0) {
        rec.backoff_base_ms = rec.backoff_base_ms ? rec.backoff_base_ms : self->cfg.backoff_base_ms;
        rec.backoff_max_ms =
            rec.backoff_max_ms ? rec.backoff_max_ms : MESH_TASKS_DEFAULT_BACKOFF_MAX_MS;
        if (rec.backoff_max_ms < rec.backoff_base_ms) {
            rec.backoff_max_ms = rec.backoff_base_ms;
        }
        patched = malloc(n);
        if (!patched || mesh__task_record_encode(&rec, patched, n) != n) {
            free(patched);
            mesh_request_error(req, "malformed submit");
            return;
        }
        p = patched;
    }
    int64_t now = s_now();
    mesh__task_t *t = NULL;
    int rc = mesh__tasks_import(self->tasks, p, n, 0, now, &t);
    free(patched);
    if (rc == MESH_ERR_EXISTS && rec.key.ptr) {
        char key[MESH_TASKS_KEY_MAX + 1];
        memcpy(key, rec.key.ptr, rec.key.len);
        key[rec.key.len] = '\0';
        t = mesh__tasks_find_key(self->tasks, key);
        rc = t ? MESH_TASKS_EXISTING : MESH_ERR_NOTFOUND;
    }
    if (rc < 0 || !t) {
        mesh_request_error(req, mesh_err_name(rc < 0 ? rc : MESH_ERR_STATE));
        return;
    }
    char hex[MESH_TASK_ID_HEX + 1];
    snprintf(hex, sizeof hex, "%s", mesh__task_id_hex(t));
    if (rc == MESH_TASKS_ADDED) {
        s_meta_t *m = s_meta(self, hex, true);
        if (m) {
            m->replicas = replicas;
        }
        s_wait_t *w = calloc(1, sizeof *w);
        s_holders_t h;
        s_holders(self, mesh__task_id(t), replicas, NULL, &h);
        if (w) {
            w->taskd = self;
            w->req = req;
            memcpy(w->hex, hex, sizeof hex);
            w->next = self->waits;
            if (self->waits) {
                self->waits->prev = w;
            }
            self->waits = w;
        }
        for (size_t j = 0; j < h.n; j++) {
            if (strcmp(h.ids[j], mesh_peer_id(self->peer)) != 0) {
                s_put_wait(self, t, h.ids[j], (unsigned)j, now, w);
            }
        }
        s_arm(self, now);
        if (w) {
            s_wait_check(w); /* replies at once when no replica was asked */
            return;
        }
    }
    s_reply_str(req, hex);
}

/*  put or sync [k, replicas, runner|nil, record(, provider|nil)]: a holder
    takes a copy (merged with its own: the most advanced wins). Returns the
    task held, or NULL (the error is answered). */
static mesh__task_t *s_take_copy(mesh_taskd_t *self, mesh_request_t *req)
{
    mesh__tw_put_t pt;
    if (mesh__tw_put(mesh_request_data(req), mesh_request_size(req), &pt) != 0) {
        mesh_request_error(req, "malformed put");
        return NULL;
    }
    const uint8_t *p = pt.r.raw;
    size_t n = pt.r.len;
    uint32_t k = pt.k, replicas = pt.replicas;
    const mesh__task_record_t rec = pt.r.rec;
    const char *runner = pt.runner, *provider = pt.provider;
    bool nil = !runner[0], pnil = !provider[0];
    int64_t now = s_now();
    mesh__task_t *t = NULL;
    int rc = mesh__tasks_import(self->tasks, p, n, (int)k, now, &t);
    if (rc < 0 || !t) {
        mesh_request_error(req, mesh_err_name(rc < 0 ? rc : MESH_ERR_STATE));
        return NULL;
    }
    char hex[MESH_TASK_ID_HEX + 1];
    snprintf(hex, sizeof hex, "%s", mesh__task_id_hex(t));
    s_meta_t *m = s_meta(self, hex, true);
    if (m) {
        m->replicas = replicas;
        if (!nil && mesh__task_state(t) == MESH_TASK_STANDBY) {
            snprintf(m->runner, sizeof m->runner, "%s", runner);
        }
        if (!pnil && !m->provider[0]) {
            snprintf(m->provider, sizeof m->provider, "%s", provider);
        }
    }
    mesh__tasks_set_replica(self->tasks, rec.id, k, now);
    s_arm(self, now);
    return t;
}

static void s_on_put(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    if (s_take_copy(arg, req)) {
        mesh_request_reply(req, NULL, 0);
    }
}

/*  sync: as put, and the answer is the copy held after the merge, as a put
    body (so its runner and provider come along). */
static void s_on_sync(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    mesh__task_t *t = s_take_copy(self, req);
    if (!t) {
        return;
    }
    mesh__task_info_t info;
    mesh__task_info(t, &info);
    s_w_t w = {0};
    if (s_put_body(self, t, info.replica, s_now(), &w)) {
        mesh_request_reply(req, w.buf, w.len);
    } else {
        mesh_request_error(req, "out of memory");
    }
    free(w.buf);
}

/*  A sync's answer: the other holder's copy, merged into ours. */
static void s_read_put_reply(mesh_taskd_t *self, const mesh_reply_t *reply)
{
    mesh__tw_put_t pt;
    if (mesh__tw_put(reply->data, reply->size, &pt) != 0) {
        return;
    }
    mesh__task_t *t = mesh__tasks_find(self->tasks, pt.r.rec.id);
    if (!t) {
        return;
    }
    mesh__task_info_t info;
    mesh__task_info(t, &info);
    int64_t now = s_now();
    mesh__tasks_import(self->tasks, pt.r.raw, pt.r.len, (int)info.replica, now, NULL);
    s_meta_t *m = s_meta(self, info.id_hex, true);
    if (m && mesh__task_state(t) == MESH_TASK_STANDBY) {
        /* who runs it, as the other holder knows */
        if (pt.runner[0]) {
            snprintf(m->runner, sizeof m->runner, "%s", pt.runner);
        }
        if (pt.provider[0]) {
            snprintf(m->provider, sizeof m->provider, "%s", pt.provider);
        }
    }
}

/*  started [id, attempt(, provider|nil)]: the others stand down. */
static void s_on_started(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    mesh_taskd_t *self = arg;
    mesh__tw_started_t sd;
    const char *from = mesh_request_from(req);
    if (mesh__tw_started(mesh_request_data(req), mesh_request_size(req), &sd) != 0) {
        mesh_request_error(req, "malformed started");
        return;
    }
    const uint8_t *id = sd.id;
    uint32_t attempt = sd.attempt;
    const char *provider = sd.provider;
    bool pnil = !provider[0];
    int64_t now = s_now();
    if (from && strcmp(from, mesh_peer_id(peer)) != 0) {
        int rc = mesh__tasks_standdown(self->tasks, id, attempt, now);
        mesh__task_t *t = mesh__tasks_find(self->tasks, id);
        if (rc == MESH_ERR_STATE && t && mesh__task_state(t) == MESH_TASK_RUNNING &&
            mesh__task_attempt(t) == attempt) {
            self->st.double_starts++;
        }
        if (rc == 0 && t) {
            s_meta_t *m = s_meta(self, mesh__task_id_hex(t), true);
            if (m) {
                snprintf(m->runner, sizeof m->runner, "%s", from);
                snprintf(m->provider, sizeof m->provider, "%s", pnil ? "" : provider);
            }
            s_arm(self, now);
        }
    }
    mesh_request_reply(req, NULL, 0);
}

/*  done [replicas, record]: holders merge the runner's record. */
static void s_on_done(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    mesh_taskd_t *self = arg;
    mesh__tw_done_t dn;
    const char *from = mesh_request_from(req);
    if (mesh__tw_done(mesh_request_data(req), mesh_request_size(req), &dn) != 0) {
        mesh_request_error(req, "malformed done");
        return;
    }
    const mesh__task_record_t rec = dn.r.rec;
    const uint8_t *p = dn.r.raw;
    size_t n = dn.r.len;
    mesh__task_t *t = mesh__tasks_find(self->tasks, rec.id);
    if (t && from && strcmp(from, mesh_peer_id(peer)) != 0) {
        mesh__task_info_t info;
        mesh__task_info(t, &info);
        int64_t now = s_now();
        mesh__tasks_import(self->tasks, p, n, (int)info.replica, now, NULL);
        s_meta_t *m = s_meta(self, info.id_hex, false);
        if (m && rec.state != MESH_TASK_RUNNING) {
            m->provider[0] = '\0'; /* that attempt is over */
        }
        s_arm(self, now);
    }
    mesh_request_reply(req, NULL, 0);
}

static bool s_read_id(mesh_request_t *req, uint8_t *id)
{
    char hex[MESH_TW_ID_HEX + 1];
    return mesh__tw_id(mesh_request_data(req), mesh_request_size(req), id, hex) == 0;
}

static void s_on_status(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    uint8_t id[MESH_TASKS_ID_SIZE];
    if (!s_read_id(req, id)) {
        mesh_request_error(req, "malformed status");
        return;
    }
    mesh__task_t *t = mesh__tasks_find(self->tasks, id);
    if (!t) {
        mesh_request_error(req, "not found");
        return;
    }
    s_reply_record(req, t);
}

static void s_on_cancel(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    uint8_t id[MESH_TASKS_ID_SIZE];
    if (!s_read_id(req, id)) {
        mesh_request_error(req, "malformed cancel");
        return;
    }
    int64_t now = s_now();
    bool cancelled = mesh__tasks_cancel(self->tasks, id, now) == 0;
    mesh__task_t *t = mesh__tasks_find(self->tasks, id);
    if (!t) {
        mesh_request_error(req, "not found");
        return;
    }
    if (cancelled && mesh__task_state(t) == MESH_TASK_CANCELLED) {
        s_broadcast_done(self, t, now); /* holders the fan-out missed */
    }
    s_arm(self, now);
    s_reply_record(req, t);
}

/*  list state|nil -> [record, ...] (as many as fit in a reply). */
static void s_on_list(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    int state;
    if (mesh__tw_state(mesh_request_data(req), mesh_request_size(req), &state) != 0) {
        mesh_request_error(req, "malformed list");
        return;
    }
    int64_t now = s_now();
    size_t n = mesh__tasks_count(self->tasks, state);
    mesh__task_t **list = malloc((n ? n : 1) * sizeof *list);
    if (!list) {
        mesh_request_error(req, "out of memory");
        return;
    }
    n = mesh__tasks_list(self->tasks, state, list, n);
    s_w_t body = {0};
    uint32_t count = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *rec = s_encode(list[i], now, &len);
        if (!rec) {
            continue;
        }
        if (body.len + len + 5 > MESH_PAYLOAD_MAX - 16) {
            free(rec);
            break;
        }
        s_w_bin(&body, rec, len);
        free(rec);
        count++;
    }
    free(list);
    s_w_t w = {0};
    s_w_array(&w, count);
    s_w_raw(&w, body.buf, body.len);
    free(body.buf);
    if (w.oom) {
        mesh_request_error(req, "out of memory");
    } else {
        mesh_request_reply(req, w.buf, w.len);
    }
    free(w.buf);
}

static mesh_handler_fn *const s_handlers[] = {s_on_submit, s_on_put,    s_on_started, s_on_done,
                                              s_on_status, s_on_cancel, s_on_list,    s_on_sync,
                                              s_on_token,  s_on_bye};

/* ------------------------------------------------------------------------ */
/* life cycle */

static void s_free(mesh_taskd_t *self);

void mesh_taskd_config_init(mesh_taskd_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->replicas = MESH_TASK_DEFAULT_REPLICAS;
    c->replica_offset_ms = -1;
}

mesh_taskd_t *mesh_taskd_new(mesh_peer_t *peer, const mesh_taskd_config_t *cfg)
{
    if (!peer || !cfg || !cfg->loop) {
        return NULL;
    }
    mesh_taskd_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->peer = peer;
    self->loop = cfg->loop;
    self->cfg = *cfg;
    if (self->cfg.replicas == 0) {
        self->cfg.replicas = MESH_TASK_DEFAULT_REPLICAS;
    }
    if (self->cfg.replica_offset_ms < 0) {
        self->cfg.replica_offset_ms = MESH_TASK_DEFAULT_REPLICA_OFFSET_MS;
    }
    if (self->cfg.retention_ms <= 0) {
        self->cfg.retention_ms = MESH_TASK_DEFAULT_RETENTION_MS;
    }
    if (self->cfg.idem_window_ms <= 0) {
        self->cfg.idem_window_ms = MESH_TASK_DEFAULT_IDEM_WINDOW_MS;
    }
    if (self->cfg.backoff_base_ms <= 0) {
        self->cfg.backoff_base_ms = MESH_TASK_DEFAULT_BACKOFF_BASE_MS;
    }
    if (self->cfg.tick_ms <= 0) {
        self->cfg.tick_ms = MESH_TASK_DEFAULT_TICK_MS;
    }
    if (self->cfg.run_timeout_ms <= 0) {
        self->cfg.run_timeout_ms = MESH_TASK_DEFAULT_RUN_TIMEOUT_MS;
    }
    if (self->cfg.quorum_memory_ms == 0) {
        self->cfg.quorum_memory_ms = MESH_TASK_DEFAULT_QUORUM_MEMORY_MS;
    }
    if (self->cfg.startup_grace_ms == 0) {
        self->cfg.startup_grace_ms = MESH_TASK_DEFAULT_STARTUP_GRACE_MS;
    }
    self->cfg.ratelimits = NULL; /* applied below */
    self->cfg.nratelimits = 0;
    self->cfg.data_dir = NULL;
    snprintf(self->selector, sizeof self->selector, "%s",
             cfg->selector ? cfg->selector : "key");
    self->cfg.selector = self->selector;
    if (self->cfg.replicas >= MESH_TASKS_REPLICAS_MAX) {
        free(self);
        return NULL;
    }

    mesh__tasks_config_t tc;
    mesh__tasks_config_default(&tc);
    tc.replica_offset_ms = self->cfg.replica_offset_ms;
    tc.retention_ms = self->cfg.retention_ms;
    tc.idem_window_ms = self->cfg.idem_window_ms;
    tc.backoff_base_ms = self->cfg.backoff_base_ms;
    if (getrandom(&tc.seed, sizeof tc.seed, 0) != sizeof tc.seed) {
        tc.seed = (uint64_t)s_wall_ms() ^ (uint64_t)(uintptr_t)self;
    }
    tc.on_event = s_on_event;
    tc.event_arg = self;
    self->tasks = mesh__tasks_new(&tc);
    self->meta = zhashx_new();
    self->dirty = zhashx_new();
    self->limits = zhashx_new();
    self->buckets = zhashx_new();
    self->seen = zhashx_new();
    self->quorum = true;
    self->started_at = s_now();
    ev_prepare_init(&self->commit, s_on_commit);
    self->commit.data = self;
    ev_set_priority(&self->commit, EV_MAXPRI);
    if (!self->tasks || !self->meta || !self->dirty || !self->limits || !self->buckets ||
        !self->seen || (cfg->data_dir && !(self->data_dir = strdup(cfg->data_dir)))) {
        s_free(self);
        return NULL;
    }
    zhashx_set_destructor(self->meta, s_meta_free);
    mesh__tasks_set_gate(self->tasks, s_gate, self,
                         self->cfg.replica_offset_ms > self->cfg.tick_ms
                             ? self->cfg.replica_offset_ms
                             : self->cfg.tick_ms);
    zhashx_set_destructor(self->limits, s_meta_free);
    zhashx_set_destructor(self->buckets, s_meta_free);
    zhashx_set_destructor(self->seen, s_meta_free);
    for (size_t i = 0; i < cfg->nratelimits; i++) {
        const mesh_task_ratelimit_t *rl = &cfg->ratelimits[i];
        if (mesh_taskd_set_ratelimit(self, rl->path, rl->limit) != 0) {
            s_free(self);
            return NULL;
        }
    }
    if (self->data_dir && s_journal_open(self) != 0) {
        s_free(self);
        return NULL;
    }
    size_t i;
    for (i = 0; i < S_NPATHS; i++) {
        if (mesh_peer_expose(peer, s_paths[i], s_handlers[i], self, NULL) != 0) {
            break;
        }
    }
    if (i < S_NPATHS) {
        while (i-- > 0) {
            mesh_peer_unexpose(peer, s_paths[i]);
        }
        s_free(self);
        return NULL;
    }
    self->digest = mesh_peer_ring_digest(peer);
    ev_timer_init(&self->timer, s_on_timer, 0., 0.);
    self->timer.data = self;
    s_arm(self, s_now());
    return self;
}

/*  Frees what mesh_taskd_new made (no hand-off, nothing sent). */
static void s_free(mesh_taskd_t *self)
{
    ev_prepare_stop(self->loop, &self->commit);
    ev_timer_stop(self->loop, &self->timer);
    mesh__journal_close(&self->journal);
    mesh__tasks_destroy(&self->tasks);
    zhashx_destroy(&self->meta);
    zhashx_destroy(&self->dirty);
    zhashx_destroy(&self->limits);
    zhashx_destroy(&self->buckets);
    zhashx_destroy(&self->seen);
    free(self->alive_set.ids);
    free(self->data_dir);
    free(self);
}

void mesh_taskd_destroy(mesh_taskd_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh_taskd_t *self = *self_p;
    *self_p = NULL;
    if (self->tasks && self->meta) {
        ev_timer_stop(self->loop, &self->timer);
        /* hand every task off to its holders computed without this peer */
        int64_t now = s_now();
        const char *me = mesh_peer_id(self->peer);
        size_t pos = 0;
        mesh__task_t *t;
        while ((t = mesh__tasks_next(self->tasks, &pos))) {
            s_holders_t h;
            s_holders(self, mesh__task_id(t), s_replicas_of(self, mesh__task_id_hex(t)), me, &h);
            for (size_t j = 0; j < h.n; j++) {
                s_put(self, t, h.ids[j], (unsigned)j, now);
            }
        }
        /* leaving on purpose: out of the others' quorum count */
        s_w_t w = {0};
        s_w_nil(&w);
        s_cast(self, S_PATH_BYE, NULL, &w);
        free(w.buf);
        for (size_t i = 0; i < S_NPATHS; i++) {
            mesh_peer_unexpose(self->peer, s_paths[i]);
        }
        s_journal_clear(self); /* handed off: a restart must not bring them back */
    }
    for (s_pending_t *p = self->pending; p; p = p->next) {
        p->taskd = NULL;
    }
    while (self->waits) {
        s_wait_t *w = self->waits;
        if (w->req) {
            s_reply_str(w->req, w->hex);
            w->req = NULL;
        }
        s_wait_unlink(w); /* freed by its last put's callback */
    }
    s_free(self);
}

mesh_peer_t *mesh_taskd_peer(const mesh_taskd_t *self)
{
    return self->peer;
}

size_t mesh_taskd_count(const mesh_taskd_t *self, const char *state)
{
    int s = -1;
    if (state && (s = mesh__task_state_from_name(state)) < 0) {
        return 0;
    }
    return mesh__tasks_count(self->tasks, s);
}

/* ------------------------------------------------------------------------ */
/* the client side: any peer (a control peer too), through the services */

static s_client_t *s_client_new(void *cb, void *arg)
{
    s_client_t *c = malloc(sizeof *c);
    if (c) {
        c->cb = cb;
        c->arg = arg;
    }
    return c;
}

static void s_on_submit_reply(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg)
{
    s_client_t *c = arg;
    mesh_task_submit_fn *cb = (mesh_task_submit_fn *)c->cb;
    void *cb_arg = c->arg;
    free(c);
    char hex[MESH_TW_ID_HEX + 1];
    uint8_t id[MESH_TASKS_ID_SIZE];
    int status = reply->status;
    if (status == 0 && mesh__tw_id(reply->data, reply->size, id, hex) != 0) {
        status = MESH_ERR_MALFORMED;
    }
    cb(peer, status, status == 0 ? hex : NULL, reply->error, cb_arg);
}

int mesh_task_submit(mesh_peer_t *peer, const char *path, const void *payload, size_t size,
                     const mesh_task_opts_t *opts, mesh_task_submit_fn *cb, void *arg)
{
    mesh_task_opts_t none = {0};
    if (!opts) {
        opts = &none;
    }
    if (!peer || !path || path[0] != '/' || !cb || (size && !payload) || opts->countdown_ms < 0 ||
        opts->ttl_ms < 0 || opts->replicas >= MESH_TASKS_REPLICAS_MAX ||
        opts->max_attempts > MESH_TASKS_ATTEMPTS_MAX) {
        return MESH_ERR_INVAL;
    }
    const char *key = opts->idempotency_key;
    if (strlen(path) > MESH_TASKS_PATH_MAX || size > MESH_TASKS_PAYLOAD_MAX ||
        (key && strlen(key) > MESH_TASKS_KEY_MAX)) {
        return MESH_ERR_TOOLONG;
    }
    if (key && !key[0]) {
        return MESH_ERR_INVAL;
    }
    mesh__task_record_t rec = {0};
    rec.state = MESH_TASK_SCHEDULED;
    rec.jitter_pct = MESH_TASKS_DEFAULT_JITTER_PCT;
    if (key) {
        XXH128_hash_t h = XXH3_128bits(key, strlen(key));
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, h);
        memcpy(rec.id, c.digest, MESH_TASKS_ID_SIZE);
        rec.flags |= MESH_TASKS_REC_KEY;
        rec.key.ptr = (const uint8_t *)key;
        rec.key.len = strlen(key);
    } else if (getrandom(rec.id, sizeof rec.id, 0) != sizeof rec.id) {
        return MESH_ERR_NOMEM;
    }
    rec.max_attempts = opts->max_attempts ? opts->max_attempts : 1;
    rec.due_in = opts->countdown_ms;
    if (opts->eta_unix_ms) {
        rec.due_in = opts->eta_unix_ms - s_wall_ms();
        if (rec.due_in < 0) {
            rec.due_in = 0;
        }
    }
    if (rec.due_in > MESH_TASKS_TIME_MAX_MS || opts->ttl_ms > MESH_TASKS_TIME_MAX_MS) {
        return MESH_ERR_INVAL;
    }
    rec.ttl_ms = opts->ttl_ms;
    /* backoff 0: the owner's service fills in its own */
    rec.path.ptr = (const uint8_t *)path;
    rec.path.len = strlen(path);
    rec.payload.ptr = payload;
    rec.payload.len = size;
    size_t cap = MESH_TASKS_RECORD_HEADER + rec.path.len + rec.key.len + size;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        return MESH_ERR_NOMEM;
    }
    size_t n = mesh__task_record_encode(&rec, buf, cap);
    if (n == 0 || n > cap) {
        free(buf);
        return MESH_ERR_INVAL;
    }
    s_w_t w = {0};
    s_w_array(&w, 2);
    s_w_uint(&w, opts->replicas); /* 0: the owner's default */
    s_w_bin(&w, buf, n);
    free(buf);
    if (w.oom) {
        free(w.buf);
        return MESH_ERR_NOMEM;
    }
    s_holders_t h;
    s_holders_on(peer, rec.id, 1, NULL, &h);
    if (h.n == 0) {
        free(w.buf);
        return MESH_ERR_NOTFOUND;
    }
    s_client_t *c = s_client_new((void *)cb, arg);
    if (!c) {
        free(w.buf);
        return MESH_ERR_NOMEM;
    }
    mesh_call_opts_t o = {.selector = "direct", .peer = h.ids[0]};
    int rc = mesh_peer_call(peer, S_PATH_SUBMIT, w.buf, w.len, &o, s_on_submit_reply, c);
    free(w.buf);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

/*  The most advanced of two copies: a final one, then more attempts, more
    failures, running over scheduled or standby. */
static bool s_ahead(const mesh__task_record_t *a, const mesh__task_record_t *b)
{
    bool af = mesh__task_state_final(a->state), bf = mesh__task_state_final(b->state);
    if (af != bf) {
        return af;
    }
    if (a->attempt != b->attempt) {
        return a->attempt > b->attempt;
    }
    if (a->failures != b->failures) {
        return a->failures > b->failures;
    }
    return a->state == MESH_TASK_RUNNING && b->state != MESH_TASK_RUNNING;
}

typedef struct {
    char id[MESH_TASK_ID_HEX + 1];
    char path[MESH_TASKS_PATH_MAX + 1];
    char key[MESH_TASKS_KEY_MAX + 1];
} s_view_t;

static void s_view(s_view_t *v, const mesh__task_record_t *rec, mesh_task_status_t *st)
{
    mesh__task_id_to_hex(rec->id, v->id);
    memcpy(v->path, rec->path.ptr, rec->path.len);
    v->path[rec->path.len] = '\0';
    if (rec->key.ptr) {
        memcpy(v->key, rec->key.ptr, rec->key.len);
    }
    v->key[rec->key.ptr ? rec->key.len : 0] = '\0';
    memset(st, 0, sizeof *st);
    st->id = v->id;
    st->path = v->path;
    st->idempotency_key = rec->key.ptr ? v->key : NULL;
    st->state = mesh__task_state_name(rec->state);
    st->attempt = rec->attempt;
    st->failures = rec->failures;
    st->max_attempts = rec->max_attempts;
    st->result = rec->result.len ? rec->result.ptr : NULL;
    st->result_size = rec->result.len;
    st->due_in_ms = rec->due_in;
    st->created_ms_ago = rec->created_age;
    st->finished_ms_ago = (rec->flags & MESH_TASKS_REC_FINISHED) ? rec->finished_age : -1;
}

static void s_on_status_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg)
{
    s_client_t *c = arg;
    mesh_task_status_fn *cb = (mesh_task_status_fn *)c->cb;
    void *cb_arg = c->arg;
    free(c);
    mesh__task_record_t best;
    bool have = false;
    for (size_t i = 0; i < g->nreplies; i++) {
        const mesh_reply_t *rp = &g->replies[i];
        if (rp->status != 0) {
            continue;
        }
        mesh__tw_record_t tr;
        if (mesh__tw_record(rp->data, rp->size, &tr) == 0 && (!have || s_ahead(&tr.rec, &best))) {
            best = tr.rec;
            have = true;
        }
    }
    if (!have) {
        cb(peer, MESH_ERR_NOTFOUND, NULL, cb_arg);
        return;
    }
    s_view_t v;
    mesh_task_status_t st;
    s_view(&v, &best, &st);
    cb(peer, 0, &st, cb_arg);
}

static int s_ask(mesh_peer_t *peer, const char *path, const char *id, mesh_task_status_fn *cb,
                 void *arg)
{
    uint8_t raw[MESH_TASKS_ID_SIZE];
    if (!peer || !id || !cb || strlen(id) != MESH_TASK_ID_HEX ||
        mesh__task_id_from_hex(id, raw) != 0) {
        return MESH_ERR_INVAL;
    }
    s_w_t w = {0};
    s_w_str(&w, id);
    s_client_t *c = w.oom ? NULL : s_client_new((void *)cb, arg);
    if (!c) {
        free(w.buf);
        return MESH_ERR_NOMEM;
    }
    int rc = mesh_peer_fanout(peer, path, w.buf, w.len, NULL, s_on_status_gather, c);
    free(w.buf);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

int mesh_task_status(mesh_peer_t *peer, const char *id, mesh_task_status_fn *cb, void *arg)
{
    return s_ask(peer, S_PATH_STATUS, id, cb, arg);
}

int mesh_task_cancel(mesh_peer_t *peer, const char *id, mesh_task_status_fn *cb, void *arg)
{
    return s_ask(peer, S_PATH_CANCEL, id, cb, arg);
}

static void s_on_list_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg)
{
    s_client_t *c = arg;
    mesh_task_list_fn *cb = (mesh_task_list_fn *)c->cb;
    void *cb_arg = c->arg;
    free(c);
    mesh__task_record_t *recs = NULL;
    size_t n = 0, cap = 0;
    zhashx_t *seen = zhashx_new(); /* id hex -> index + 1 in recs */
    for (size_t i = 0; seen && i < g->nreplies; i++) {
        const mesh_reply_t *rp = &g->replies[i];
        if (rp->status != 0) {
            continue;
        }
        mesh__tw_reader_t r;
        uint32_t count;
        if (mesh__tw_list_begin(&r, rp->data, rp->size, &count) != 0) {
            continue;
        }
        for (uint32_t j = 0; j < count; j++) {
            mesh__tw_record_t tr;
            if (mesh__tw_list_next(&r, &tr) != 0) {
                break;
            }
            mesh__task_record_t rec = tr.rec;
            char hex[MESH_TASKS_ID_HEX + 1];
            mesh__task_id_to_hex(rec.id, hex);
            size_t k = (size_t)(uintptr_t)zhashx_lookup(seen, hex);
            if (k > 0) {
                if (s_ahead(&rec, &recs[k - 1])) {
                    recs[k - 1] = rec;
                }
                continue;
            }
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 16;
                void *nr = realloc(recs, ncap * sizeof *recs);
                if (!nr) {
                    break;
                }
                recs = nr;
                cap = ncap;
            }
            recs[n++] = rec;
            zhashx_insert(seen, hex, (void *)(uintptr_t)n);
        }
    }
    zhashx_destroy(&seen);
    s_view_t *views = calloc(n ? n : 1, sizeof *views);
    mesh_task_status_t *st = calloc(n ? n : 1, sizeof *st);
    if (!views || !st) {
        cb(peer, MESH_ERR_NOMEM, NULL, 0, cb_arg);
    } else {
        for (size_t i = 0; i < n; i++) {
            s_view(&views[i], &recs[i], &st[i]);
        }
        cb(peer, 0, st, n, cb_arg);
    }
    free(views);
    free(st);
    free(recs);
}

int mesh_task_list(mesh_peer_t *peer, const char *state, mesh_task_list_fn *cb, void *arg)
{
    if (!peer || !cb || (state && mesh__task_state_from_name(state) < 0)) {
        return MESH_ERR_INVAL;
    }
    s_w_t w = {0};
    if (state) {
        s_w_str(&w, state);
    } else {
        s_w_nil(&w);
    }
    s_client_t *c = w.oom ? NULL : s_client_new((void *)cb, arg);
    if (!c) {
        free(w.buf);
        return MESH_ERR_NOMEM;
    }
    int rc = mesh_peer_fanout(peer, S_PATH_LIST, w.buf, w.len, NULL, s_on_list_gather, c);
    free(w.buf);
    if (rc != 0) {
        free(c);
    }
    return rc;
}

void mesh_taskd_stats(const mesh_taskd_t *self, mesh_taskd_stats_t *out)
{
    *out = self->st;
    const mesh__tasks_stats_t *ts = mesh__tasks_stats(self->tasks);
    out->held = mesh__tasks_size(self->tasks);
    out->double_starts += ts->double_starts;
    out->rate_waits = ts->rate_waits;
    out->quorum = self->quorum;
    out->ready = self->ready;
    out->settled = self->settled;
    int64_t now = s_now();
    out->unsettled_ms = self->unsettled_since ? now - self->unsettled_since : 0;
    out->checked_ms_ago = now - self->last_check;
    out->next_tick_ms = ev_is_active(&self->timer)
                            ? (int64_t)(ev_timer_remaining(self->loop, (ev_timer *)&self->timer) * 1000)
                            : -1;
    out->syncing = self->syncing > 0 ? (unsigned)self->syncing : 0;
}
