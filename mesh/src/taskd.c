/*  taskd.c: the task service on top of the public peer API (issue 5, §2).

    The scheduling core (tasks.h) decides what is due; this module wires it
    to the mesh: the ring places each task (owner rank 0, successors
    1..replicas-1), the /sys/task/ services carry records between holders,
    and a libev timer on the peer's loop drives the core. Wire formats:
    docs/protocol.md §12.

    Per task, besides the core's record, a holder keeps a small side entry
    (s_meta_t): the task's replica count (not part of the record) and the id
    of the peer running its current attempt (for takeover).

    The handler of a task's path learns the task's attempt number from
    mesh_request_attempt() (exec agents: MESH_ATTEMPT): the call carries
    attempt_base = attempt - 1. */
#include <mesh/mesh.h>

#include "tasks.h"

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
#define S_DUE_BATCH    64 /* tasks started per scheduler turn */

static const char *const s_paths[] = {S_PATH_SUBMIT, S_PATH_PUT,    S_PATH_STARTED, S_PATH_DONE,
                                      S_PATH_STATUS, S_PATH_CANCEL, S_PATH_LIST};
#define S_NPATHS (sizeof s_paths / sizeof s_paths[0])

typedef struct {
    unsigned replicas;
    char runner[MESH_TASK_ID_HEX + 1]; /* "" unknown */
} s_meta_t;

typedef struct s_pending s_pending_t;
typedef struct s_wait s_wait_t;

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
};

/*  A task run in flight (orphaned when the service is destroyed first). */
struct s_pending {
    s_pending_t *next, *prev;
    mesh_taskd_t *taskd; /* NULL: orphaned */
    uint8_t id[MESH_TASKS_ID_SIZE];
    uint32_t attempt;
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

typedef struct {
    const uint8_t *p;
    size_t len, off;
} s_r_t;

static bool s_r_be(s_r_t *r, size_t n, uint32_t *v)
{
    if (r->len - r->off < n) {
        return false;
    }
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x = (x << 8) | r->p[r->off++];
    }
    *v = x;
    return true;
}

static bool s_r_tag(s_r_t *r, uint8_t *tag)
{
    if (r->off >= r->len) {
        return false;
    }
    *tag = r->p[r->off++];
    return true;
}

static bool s_r_uint(s_r_t *r, uint32_t *v)
{
    uint8_t t;
    if (!s_r_tag(r, &t)) {
        return false;
    }
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    switch (t) {
    case 0xcc:
        return s_r_be(r, 1, v);
    case 0xcd:
        return s_r_be(r, 2, v);
    case 0xce:
        return s_r_be(r, 4, v);
    default:
        return false;
    }
}

static bool s_r_array(s_r_t *r, uint32_t *n)
{
    uint8_t t;
    if (!s_r_tag(r, &t)) {
        return false;
    }
    if ((t & 0xf0) == 0x90) {
        *n = t & 0x0f;
        return true;
    }
    switch (t) {
    case 0xdc:
        return s_r_be(r, 2, n);
    case 0xdd:
        return s_r_be(r, 4, n);
    default:
        return false;
    }
}

static bool s_r_body(s_r_t *r, uint32_t n, const uint8_t **p)
{
    if (r->len - r->off < n) {
        return false;
    }
    *p = r->p + r->off;
    r->off += n;
    return true;
}

static bool s_r_bin(s_r_t *r, const uint8_t **p, uint32_t *n)
{
    uint8_t t;
    if (!s_r_tag(r, &t)) {
        return false;
    }
    bool ok;
    switch (t) {
    case 0xc4:
        ok = s_r_be(r, 1, n);
        break;
    case 0xc5:
        ok = s_r_be(r, 2, n);
        break;
    case 0xc6:
        ok = s_r_be(r, 4, n);
        break;
    default:
        return false;
    }
    return ok && s_r_body(r, *n, p);
}

/*  A string or nil (*p NULL) into out (NUL-terminated, at most cap - 1). */
static bool s_r_str(s_r_t *r, char *out, size_t cap, bool *nil)
{
    uint8_t t;
    if (!s_r_tag(r, &t)) {
        return false;
    }
    uint32_t n;
    bool ok = true;
    *nil = false;
    if (t == 0xc0) {
        *nil = true;
        out[0] = '\0';
        return true;
    }
    if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else if (t == 0xd9) {
        ok = s_r_be(r, 1, &n);
    } else if (t == 0xda) {
        ok = s_r_be(r, 2, &n);
    } else if (t == 0xdb) {
        ok = s_r_be(r, 4, &n);
    } else {
        return false;
    }
    const uint8_t *p;
    if (!ok || n >= cap || !s_r_body(r, n, &p) || memchr(p, 0, n)) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static bool s_r_end(const s_r_t *r)
{
    return r->off == r->len;
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
    if (ev == MESH_TASKS_EV_REMOVED) {
        zhashx_delete(self->meta, mesh__task_id_hex(task));
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

static void s_cast(mesh_taskd_t *self, const char *path, const char *peer_id, const s_w_t *w)
{
    if (w->oom) {
        return;
    }
    mesh_call_opts_t o = {.selector = peer_id ? "direct" : "all", .peer = peer_id};
    (void)mesh_peer_cast(self->peer, path, w->buf, w->len, &o);
}

/*  put [k, replicas, runner|nil, record] to one holder. */
static void s_on_put_ack(mesh_peer_t *peer, const mesh_reply_t *reply, void *arg);

/*  Without wait, a cast; with it, a call that the submit's reply waits for. */
static void s_put_wait(mesh_taskd_t *self, const mesh__task_t *t, const char *peer_id, unsigned k,
                       int64_t now, s_wait_t *wait)
{
    size_t n;
    uint8_t *rec = s_encode(t, now, &n);
    if (!rec) {
        return;
    }
    s_meta_t *m = s_meta(self, mesh__task_id_hex(t), false);
    s_w_t w = {0};
    s_w_array(&w, 4);
    s_w_uint(&w, k);
    s_w_uint(&w, m ? m->replicas : self->cfg.replicas);
    if (mesh__task_state(t) == MESH_TASK_RUNNING) {
        s_w_str(&w, mesh_peer_id(self->peer));
    } else if (m && m->runner[0]) {
        s_w_str(&w, m->runner);
    } else {
        s_w_nil(&w);
    }
    s_w_bin(&w, rec, n);
    free(rec);
    if (wait && !w.oom) {
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

/*  done [replicas, record] to every task service (non-holders ignore it). */
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
    s_cast(self, S_PATH_DONE, NULL, &w);
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

static int s_rank_of(const s_holders_t *h, const char *id)
{
    for (size_t i = 0; i < h->n; i++) {
        if (strcmp(h->ids[i], id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/*  The ring changed: push each task to its holders, drop the ones this
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
        for (size_t j = 0; j < h.n; j++) {
            if (strcmp(h.ids[j], me) != 0) {
                s_put(self, t, h.ids[j], (unsigned)j, now);
            }
        }
        int rank = s_rank_of(&h, me);
        if (rank < 0) {
            /* a task running here stays until its attempt ends */
            if (mesh__task_state(t) != MESH_TASK_RUNNING) {
                mesh__tasks_remove(self->tasks, ids[i]);
            }
        } else {
            mesh__tasks_set_replica(self->tasks, ids[i], (unsigned)rank, now);
        }
    }
    free(ids);
}

/* ------------------------------------------------------------------------ */
/* running */

static void s_arm(mesh_taskd_t *self, int64_t now);

static void s_run_finish(mesh_taskd_t *self, const uint8_t *id, uint32_t attempt, bool ok,
                         const void *res, size_t size)
{
    int64_t now = s_now();
    if (size > MESH_TASKS_RESULT_MAX) {
        size = MESH_TASKS_RESULT_MAX;
    }
    if (mesh__tasks_finished(self->tasks, id, attempt, ok, res, size, now) == 0) {
        mesh__task_t *t = mesh__tasks_find(self->tasks, id);
        if (t) {
            s_broadcast_done(self, t, now);
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
    if (reply->status == 0) {
        s_run_finish(self, id, attempt, true, reply->data, reply->size);
    } else {
        const char *err = reply->error ? reply->error : mesh_err_name(reply->status);
        s_run_finish(self, id, attempt, false, err, strlen(err));
    }
}

static void s_start(mesh_taskd_t *self, mesh__task_t *t)
{
    mesh__task_info_t info;
    mesh__task_info(t, &info);
    s_meta_t *m = s_meta(self, info.id_hex, true);
    if (m) {
        snprintf(m->runner, sizeof m->runner, "%s", mesh_peer_id(self->peer));
    }
    /* started [id, attempt] to every task service: the holders stand down */
    s_w_t w = {0};
    s_w_array(&w, 2);
    s_w_str(&w, info.id_hex);
    s_w_uint(&w, info.attempt);
    s_cast(self, S_PATH_STARTED, NULL, &w);
    free(w.buf);

    uint8_t id[MESH_TASKS_ID_SIZE];
    memcpy(id, info.id, sizeof id);
    uint32_t attempt = info.attempt;
    s_pending_t *p = s_pending_new(self);
    int rc = MESH_ERR_NOMEM;
    if (p) {
        memcpy(p->id, id, sizeof id);
        p->attempt = attempt;
        mesh_call_opts_t o = {.selector = self->selector, .attempt_base = attempt - 1};
        rc = mesh_peer_call(self->peer, info.path, info.payload, info.payload_size, &o,
                            s_on_run_reply, p);
        if (rc != 0) {
            s_pending_end(p);
        }
    }
    if (rc != 0) {
        const char *err = mesh_err_name(rc);
        s_run_finish(self, id, attempt, false, err, strlen(err));
    }
}

typedef struct {
    char (*ids)[MESH_TASK_ID_HEX + 1];
    size_t n, cap;
} s_alive_t;

static void s_alive_cb(const mesh_route_info_t *r, void *arg)
{
    s_alive_t *a = arg;
    if (!r->alive) {
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

/*  STANDBY tasks whose runner is no longer alive are taken over. */
static void s_takeovers(mesh_taskd_t *self, int64_t now)
{
    if (mesh__tasks_count(self->tasks, MESH_TASK_STANDBY) == 0) {
        return;
    }
    s_alive_t a = {0};
    mesh_peer_routes(self->peer, s_alive_cb, &a);
    size_t n = mesh__tasks_count(self->tasks, MESH_TASK_STANDBY);
    mesh__task_t **list = malloc(n * sizeof *list);
    if (list) {
        n = mesh__tasks_list(self->tasks, MESH_TASK_STANDBY, list, n);
        uint8_t(*lost)[MESH_TASKS_ID_SIZE] = malloc(n * sizeof *lost);
        size_t nlost = 0;
        for (size_t i = 0; lost && i < n; i++) {
            s_meta_t *m = s_meta(self, mesh__task_id_hex(list[i]), false);
            bool alive = false;
            for (size_t j = 0; m && m->runner[0] && j < a.n; j++) {
                alive = alive || strcmp(a.ids[j], m->runner) == 0;
            }
            if (m && m->runner[0] && !alive) {
                memcpy(lost[nlost++], mesh__task_id(list[i]), MESH_TASKS_ID_SIZE);
            }
        }
        for (size_t i = 0; i < nlost; i++) {
            mesh__tasks_takeover(self->tasks, lost[i], now);
        }
        free(lost);
        free(list);
    }
    free(a.ids);
}

static void s_tick(mesh_taskd_t *self)
{
    int64_t now = s_now();
    uint64_t digest = mesh_peer_ring_digest(self->peer);
    if (digest != self->digest) {
        self->digest = digest;
        s_rebalance(self, now);
    }
    s_takeovers(self, now);
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
    s_arm(self, s_now());
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    s_tick(w->data);
}

static void s_arm(mesh_taskd_t *self, int64_t now)
{
    int64_t next = mesh__tasks_next_deadline(self->tasks, now);
    int64_t delay = self->cfg.tick_ms;
    if (next != INT64_MAX && next - now < delay) {
        delay = next - now;
    }
    if (delay < 0) {
        delay = 0;
    }
    ev_timer_stop(self->loop, &self->timer);
    ev_timer_set(&self->timer, (double)delay / 1000.0, 0.);
    ev_timer_start(self->loop, &self->timer);
}

/* ------------------------------------------------------------------------ */
/* the services */

/*  Decodes [uint..., bin record] after the leading uints. */
static bool s_read_record(s_r_t *r, mesh__task_record_t *rec, const uint8_t **p, uint32_t *n)
{
    return s_r_bin(r, p, n) && s_r_end(r) && mesh__task_record_decode(*p, *n, rec) == 0;
}

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
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    uint32_t nf, replicas, n;
    const uint8_t *p;
    mesh__task_record_t rec;
    if (!s_r_array(&r, &nf) || nf != 2 || !s_r_uint(&r, &replicas) ||
        replicas >= MESH_TASKS_REPLICAS_MAX || !s_read_record(&r, &rec, &p, &n) ||
        rec.state != MESH_TASK_SCHEDULED || rec.attempt != 0) {
        mesh_request_error(req, "malformed submit");
        return;
    }
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

/*  put [k, replicas, runner|nil, record]: a holder takes a copy. */
static void s_on_put(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    (void)peer;
    mesh_taskd_t *self = arg;
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    uint32_t nf, k, replicas, n;
    char runner[MESH_TASK_ID_HEX + 1];
    bool nil;
    const uint8_t *p;
    mesh__task_record_t rec;
    if (!s_r_array(&r, &nf) || nf != 4 || !s_r_uint(&r, &k) || k >= MESH_TASKS_REPLICAS_MAX ||
        !s_r_uint(&r, &replicas) || replicas == 0 || replicas >= MESH_TASKS_REPLICAS_MAX ||
        !s_r_str(&r, runner, sizeof runner, &nil) || !s_read_record(&r, &rec, &p, &n)) {
        mesh_request_error(req, "malformed put");
        return;
    }
    int64_t now = s_now();
    mesh__task_t *t = NULL;
    int rc = mesh__tasks_import(self->tasks, p, n, (int)k, now, &t);
    if (rc >= 0 && t) {
        char hex[MESH_TASK_ID_HEX + 1];
        snprintf(hex, sizeof hex, "%s", mesh__task_id_hex(t));
        s_meta_t *m = s_meta(self, hex, true);
        if (m) {
            m->replicas = replicas;
            if (!nil && mesh__task_state(t) == MESH_TASK_STANDBY) {
                snprintf(m->runner, sizeof m->runner, "%s", runner);
            }
        }
        mesh__tasks_set_replica(self->tasks, rec.id, k, now);
        s_arm(self, now);
    }
    mesh_request_reply(req, NULL, 0);
}

/*  started [id, attempt]: the others stand down. */
static void s_on_started(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    mesh_taskd_t *self = arg;
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    uint32_t nf, attempt;
    char hex[MESH_TASK_ID_HEX + 1];
    bool nil;
    uint8_t id[MESH_TASKS_ID_SIZE];
    const char *from = mesh_request_from(req);
    if (!s_r_array(&r, &nf) || nf != 2 || !s_r_str(&r, hex, sizeof hex, &nil) || nil ||
        !s_r_uint(&r, &attempt) || !s_r_end(&r) || mesh__task_id_from_hex(hex, id) != 0) {
        mesh_request_error(req, "malformed started");
        return;
    }
    if (from && strcmp(from, mesh_peer_id(peer)) != 0 &&
        mesh__tasks_standdown(self->tasks, id, attempt, s_now()) == 0) {
        s_meta_t *m = s_meta(self, mesh__task_id_hex(mesh__tasks_find(self->tasks, id)), true);
        if (m) {
            snprintf(m->runner, sizeof m->runner, "%s", from);
        }
        s_arm(self, s_now());
    }
    mesh_request_reply(req, NULL, 0);
}

/*  done [replicas, record]: holders merge the runner's record. */
static void s_on_done(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    mesh_taskd_t *self = arg;
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    uint32_t nf, replicas, n;
    const uint8_t *p;
    mesh__task_record_t rec;
    const char *from = mesh_request_from(req);
    if (!s_r_array(&r, &nf) || nf != 2 || !s_r_uint(&r, &replicas) ||
        !s_read_record(&r, &rec, &p, &n)) {
        mesh_request_error(req, "malformed done");
        return;
    }
    mesh__task_t *t = mesh__tasks_find(self->tasks, rec.id);
    if (t && from && strcmp(from, mesh_peer_id(peer)) != 0) {
        mesh__task_info_t info;
        mesh__task_info(t, &info);
        int64_t now = s_now();
        mesh__tasks_import(self->tasks, p, n, (int)info.replica, now, NULL);
        s_arm(self, now);
    }
    mesh_request_reply(req, NULL, 0);
}

static bool s_read_id(mesh_request_t *req, uint8_t *id)
{
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    char hex[MESH_TASK_ID_HEX + 1];
    bool nil;
    return s_r_str(&r, hex, sizeof hex, &nil) && !nil && s_r_end(&r) &&
           mesh__task_id_from_hex(hex, id) == 0;
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
    s_r_t r = {mesh_request_data(req), mesh_request_size(req), 0};
    char name[32];
    bool nil;
    int state = -1;
    if (!s_r_str(&r, name, sizeof name, &nil) || !s_r_end(&r) ||
        (!nil && (state = mesh__task_state_from_name(name)) < 0)) {
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
                                              s_on_status, s_on_cancel, s_on_list};

/* ------------------------------------------------------------------------ */
/* life cycle */

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
    snprintf(self->selector, sizeof self->selector, "%s",
             cfg->selector ? cfg->selector : "least_loaded");
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
    if (!self->tasks || !self->meta) {
        mesh_taskd_destroy(&self);
        return NULL;
    }
    zhashx_set_destructor(self->meta, s_meta_free);
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
        mesh__tasks_destroy(&self->tasks);
        zhashx_destroy(&self->meta);
        free(self);
        return NULL;
    }
    self->digest = mesh_peer_ring_digest(peer);
    ev_timer_init(&self->timer, s_on_timer, 0., 0.);
    self->timer.data = self;
    s_arm(self, s_now());
    return self;
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
        for (size_t i = 0; i < S_NPATHS; i++) {
            mesh_peer_unexpose(self->peer, s_paths[i]);
        }
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
    mesh__tasks_destroy(&self->tasks);
    zhashx_destroy(&self->meta);
    free(self);
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
    char hex[MESH_TASK_ID_HEX + 1];
    bool nil;
    int status = reply->status;
    if (status == 0) {
        s_r_t r = {reply->data, reply->size, 0};
        if (!s_r_str(&r, hex, sizeof hex, &nil) || nil || !s_r_end(&r)) {
            status = MESH_ERR_MALFORMED;
        }
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
        s_r_t r = {rp->data, rp->size, 0};
        const uint8_t *b;
        uint32_t n;
        mesh__task_record_t rec;
        if (s_read_record(&r, &rec, &b, &n) && (!have || s_ahead(&rec, &best))) {
            best = rec;
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
    for (size_t i = 0; i < g->nreplies; i++) {
        const mesh_reply_t *rp = &g->replies[i];
        if (rp->status != 0) {
            continue;
        }
        s_r_t r = {rp->data, rp->size, 0};
        uint32_t count;
        if (!s_r_array(&r, &count)) {
            continue;
        }
        for (uint32_t j = 0; j < count; j++) {
            const uint8_t *b;
            uint32_t len;
            mesh__task_record_t rec;
            if (!s_r_bin(&r, &b, &len) || mesh__task_record_decode(b, len, &rec) != 0) {
                break;
            }
            size_t k;
            for (k = 0; k < n && memcmp(recs[k].id, rec.id, MESH_TASKS_ID_SIZE) != 0; k++) {
            }
            if (k < n) {
                if (s_ahead(&rec, &recs[k])) {
                    recs[k] = rec;
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
        }
    }
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
