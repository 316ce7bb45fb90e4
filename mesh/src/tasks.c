/*  tasks.c: the scheduling core of the task queue (see tasks.h).

    Layout. Each task is one allocation: the struct, then its path, key and
    payload (the result, which comes later, is a second one). The queue
    indexes tasks four ways:
      - by id and by idempotency key: open addressing with linear probing
        and backward-shift deletion (no tombstones), load <= 1/2, hashed
        with XXH3 under a seed drawn from the config seed;
      - a min-heap by effective due time of the SCHEDULED tasks not waiting
        for a rate token (due, next_deadline);
      - a min-heap of housekeeping times: TTL expiry of never-started
        SCHEDULED tasks, purge time of final ones (on_tick).
    Both heaps are 4-ary with the keys inline, break ties by insertion
    order, and each task knows its position in each, so removal is
    O(log n). Their capacity is kept at the
    task count, so a push never allocates and a state change never fails.

    Rate limits: a limiter per path (found through a small table by path)
    holds a token bucket and a FIFO of waiting tasks, linked through the
    tasks; limiters with waiting tasks are on a list that due() and
    next_deadline() walk (there are few rate-limited paths).

    Every state change goes through s_set_state, which keeps the per-state
    counts; s_unplace / s_place take a task out of and put it back into the
    heaps and queues its state calls for. */
#include "tasks.h"
#include "zre.h"

#include <mesh/error.h>

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define S_HEAP_DUE    0
#define S_HEAP_HK     1 /* housekeeping: TTL expiry, purge */
#define S_HEAPS       2
#define S_HEAP_ARITY  4 /* a pop reads 4 keys on one or two cache lines a level */
#define S_NOWHERE     UINT32_MAX
#define S_TABLE_MIN   64
#define S_ATTEMPT_MAX INT32_MAX /* attempt numbers stay below this */
#define S_GOLDEN      0x9e3779b97f4a7c15ULL

typedef struct s_limiter s_limiter_t;

struct mesh__task {
    uint8_t id[MESH_TASKS_ID_SIZE];
    char id_hex[MESH_TASKS_ID_HEX + 1];
    uint8_t state;
    uint8_t replica;
    uint8_t jitter_pct;
    bool waiting;
    bool cancel_requested;
    bool keyed; /* in the key table */
    uint16_t path_len;
    uint16_t key_len;
    uint32_t attempt;
    uint32_t failures;
    uint32_t max_attempts;
    uint32_t hpos[S_HEAPS];
    int64_t due;
    int64_t eff_due;
    int64_t created;
    int64_t started;
    int64_t finished;
    int64_t ttl_ms;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    uint64_t seq;
    uint64_t id_hash;
    uint64_t key_hash;
    uint64_t path_hash;
    s_limiter_t *limiter; /* while waiting */
    mesh__task_t *wprev, *wnext;
    uint8_t *result;
    size_t result_size;
    size_t payload_size;
    char *path;
    char *key; /* NULL: none */
    uint8_t *payload;
};

struct s_limiter {
    char *path;
    size_t path_len;
    uint64_t hash;
    bool active;
    bool granted;     /* tokens come from mesh__tasks_grant, not the bucket */
    uint32_t credits; /* granted tokens not used yet */
    size_t nwaiting;
    mesh__tokenbucket_t bucket;
    mesh__task_t *head, *tail;  /* waiting, oldest first */
    s_limiter_t *bprev, *bnext; /* on the blocked list while head != NULL */
};

typedef struct {
    void **slot;
    size_t cap; /* 0 or a power of two */
    size_t n;
} s_table_t;

typedef struct {
    int64_t key;
    uint64_t seq; /* ties: insertion order */
    mesh__task_t *task;
} s_hent_t;

typedef struct {
    s_hent_t *v;
    size_t n;
    size_t cap;
} s_heap_t;

struct mesh__tasks {
    mesh__tasks_config_t cfg;
    uint64_t rng;       /* splitmix64 state: ids */
    uint64_t hash_seed; /* table hashing */
    uint64_t seq;
    s_table_t by_id;
    s_table_t by_key;
    s_table_t limiters;
    size_t active_limiters;
    s_limiter_t *blocked;
    s_heap_t heap[S_HEAPS];
    size_t count[MESH_TASK_STATE_COUNT];
    mesh__tasks_gate_fn *gate;
    void *gate_arg;
    int64_t gate_delay_ms;
    mesh__tasks_stats_t stats;
};

/* ------------------------------------------------------------------------ */
/* small helpers */

static uint64_t s_splitmix(uint64_t *state)
{
    uint64_t z = (*state += S_GOLDEN);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t s_clamp(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/*  a + b, saturating (times near the int64 edges never wrap). */
static int64_t s_add(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

static int64_t s_sub(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_sub_overflow(a, b, &r)) {
        return b < 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

static bool s_time_ok(int64_t v)
{
    return v >= -MESH_TASKS_TIME_MAX_MS && v <= MESH_TASKS_TIME_MAX_MS;
}

static bool s_span_ok(int64_t v)
{
    return v >= 0 && v <= MESH_TASKS_TIME_MAX_MS;
}

static uint64_t s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint8_t *s_put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

bool mesh__task_state_final(int state)
{
    return state == MESH_TASK_SUCCEEDED || state == MESH_TASK_FAILED ||
           state == MESH_TASK_EXPIRED || state == MESH_TASK_CANCELLED;
}

static const char *const s_state_names[MESH_TASK_STATE_COUNT] = {
    "scheduled", "running", "standby", "succeeded", "failed", "expired", "cancelled",
};

const char *mesh__task_state_name(int state)
{
    if (state < 0 || state >= MESH_TASK_STATE_COUNT) {
        return "?";
    }
    return s_state_names[state];
}

int mesh__task_state_from_name(const char *name)
{
    for (int i = 0; name && i < MESH_TASK_STATE_COUNT; i++) {
        if (strcmp(name, s_state_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void mesh__task_id_to_hex(const uint8_t *id, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < MESH_TASKS_ID_SIZE; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 15];
    }
    out[MESH_TASKS_ID_HEX] = '\0';
}

int mesh__task_id_from_hex(const char *hex, uint8_t *id)
{
    /* a task id has a UUID's size: one parser for both (any case) */
    _Static_assert(MESH_TASKS_ID_SIZE == MESH_ZRE_UUID_SIZE, "task ids are UUID-sized");
    return mesh__uuid_from_hex(hex, id);
}

int64_t mesh__tasks_backoff(const uint8_t *id, uint32_t failures, int64_t base_ms, int64_t max_ms,
                            unsigned jitter_pct)
{
    base_ms = s_clamp(base_ms, 0, MESH_TASKS_TIME_MAX_MS);
    max_ms = s_clamp(max_ms, 0, MESH_TASKS_TIME_MAX_MS);
    if (jitter_pct > MESH_TASKS_JITTER_PCT_MAX) {
        jitter_pct = MESH_TASKS_JITTER_PCT_MAX;
    }
    int64_t d = base_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++) {
        d *= 2; /* <= 2 x TIME_MAX: no overflow */
    }
    if (d > max_ms) {
        d = max_ms;
    }
    if (jitter_pct > 0 && d > 0) {
        int64_t span = d * (int64_t)jitter_pct / 100;
        uint64_t st = s_be(id, 8) ^ ((uint64_t)failures * S_GOLDEN);
        uint64_t r = s_splitmix(&st);
        d += (int64_t)(r % (uint64_t)(2 * span + 1)) - span;
        d = s_clamp(d, 0, max_ms);
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* tables */

typedef uint64_t(s_hash_of_fn)(const void *entry);

static uint64_t s_hash_of_id(const void *e)
{
    return ((const mesh__task_t *)e)->id_hash;
}

static uint64_t s_hash_of_key(const void *e)
{
    return ((const mesh__task_t *)e)->key_hash;
}

static uint64_t s_hash_of_limiter(const void *e)
{
    return ((const s_limiter_t *)e)->hash;
}

static void s_table_put(s_table_t *tb, void *entry, uint64_t h)
{
    size_t mask = tb->cap - 1;
    size_t i = (size_t)h & mask;
    while (tb->slot[i]) {
        i = (i + 1) & mask;
    }
    tb->slot[i] = entry;
    tb->n++;
}

/*  Room for `more` entries at load <= 1/2. 0 or MESH_ERR_NOMEM. */
static int s_table_reserve(s_table_t *tb, size_t more, s_hash_of_fn *hash_of)
{
    size_t want = (tb->n + more) * 2;
    if (want <= tb->cap) {
        return 0;
    }
    size_t cap = tb->cap ? tb->cap : S_TABLE_MIN;
    while (cap < want) {
        cap *= 2;
    }
    void **slot = calloc(cap, sizeof *slot);
    if (!slot) {
        return MESH_ERR_NOMEM;
    }
    s_table_t grown = {slot, cap, 0};
    for (size_t i = 0; i < tb->cap; i++) {
        if (tb->slot[i]) {
            s_table_put(&grown, tb->slot[i], hash_of(tb->slot[i]));
        }
    }
    free(tb->slot);
    *tb = grown;
    return 0;
}

static void s_table_del(s_table_t *tb, const void *entry, uint64_t h, s_hash_of_fn *hash_of)
{
    size_t mask = tb->cap - 1;
    size_t i = (size_t)h & mask;
    while (tb->slot[i] != entry) {
        assert(tb->slot[i] != NULL);
        i = (i + 1) & mask;
    }
    tb->slot[i] = NULL;
    tb->n--;
    /* backward shift: pull later entries of the cluster into the hole when
       their home is not cyclically in (hole, j] */
    for (size_t j = (i + 1) & mask; tb->slot[j]; j = (j + 1) & mask) {
        size_t home = (size_t)hash_of(tb->slot[j]) & mask;
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            tb->slot[i] = tb->slot[j];
            tb->slot[j] = NULL;
            i = j;
        }
    }
}

static uint64_t s_hash(const mesh__tasks_t *self, const void *data, size_t len)
{
    return XXH3_64bits_withSeed(data, len, self->hash_seed);
}

static mesh__task_t *s_find_id(const mesh__tasks_t *self, const uint8_t *id, uint64_t h)
{
    const s_table_t *tb = &self->by_id;
    if (!tb->cap) {
        return NULL;
    }
    for (size_t i = (size_t)h & (tb->cap - 1);; i = (i + 1) & (tb->cap - 1)) {
        mesh__task_t *t = tb->slot[i];
        if (!t || (t->id_hash == h && memcmp(t->id, id, MESH_TASKS_ID_SIZE) == 0)) {
            return t;
        }
    }
}

static mesh__task_t *s_find_key(const mesh__tasks_t *self, const char *key, size_t len, uint64_t h)
{
    const s_table_t *tb = &self->by_key;
    if (!tb->cap) {
        return NULL;
    }
    for (size_t i = (size_t)h & (tb->cap - 1);; i = (i + 1) & (tb->cap - 1)) {
        mesh__task_t *t = tb->slot[i];
        if (!t || (t->key_hash == h && t->key_len == len && memcmp(t->key, key, len) == 0)) {
            return t;
        }
    }
}

static s_limiter_t *s_find_limiter(const mesh__tasks_t *self, const char *path, size_t len,
                                   uint64_t h)
{
    const s_table_t *tb = &self->limiters;
    if (!tb->cap) {
        return NULL;
    }
    for (size_t i = (size_t)h & (tb->cap - 1);; i = (i + 1) & (tb->cap - 1)) {
        s_limiter_t *l = tb->slot[i];
        if (!l || (l->hash == h && l->path_len == len && memcmp(l->path, path, len) == 0)) {
            return l;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* heaps: 4-ary, keys inline, so that sifting compares within the array and
   touches a task only to record its new position */

static bool s_before(const s_hent_t *a, const s_hent_t *b)
{
    return a->key < b->key || (a->key == b->key && a->seq < b->seq);
}

static void s_heap_set(s_heap_t *h, int w, size_t i, s_hent_t e)
{
    h->v[i] = e;
    e.task->hpos[w] = (uint32_t)i;
}

static void s_sift_up(s_heap_t *h, int w, size_t i)
{
    s_hent_t e = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / S_HEAP_ARITY;
        if (!s_before(&e, &h->v[parent])) {
            break;
        }
        s_heap_set(h, w, i, h->v[parent]);
        i = parent;
    }
    s_heap_set(h, w, i, e);
}

static void s_sift_down(s_heap_t *h, int w, size_t i)
{
    s_hent_t e = h->v[i];
    for (;;) {
        size_t first = S_HEAP_ARITY * i + 1;
        if (first >= h->n) {
            break;
        }
        size_t last = first + S_HEAP_ARITY < h->n ? first + S_HEAP_ARITY : h->n;
        size_t c = first;
        for (size_t k = first + 1; k < last; k++) {
            if (s_before(&h->v[k], &h->v[c])) {
                c = k;
            }
        }
        if (!s_before(&h->v[c], &e)) {
            break;
        }
        s_heap_set(h, w, i, h->v[c]);
        i = c;
    }
    s_heap_set(h, w, i, e);
}

/*  Never allocates: capacity is reserved per task at insertion. */
static void s_heap_push(mesh__tasks_t *self, int w, mesh__task_t *t, int64_t key)
{
    s_heap_t *h = &self->heap[w];
    assert(t->hpos[w] == S_NOWHERE && h->n < h->cap);
    h->v[h->n] = (s_hent_t){key, t->seq, t};
    h->n++;
    s_sift_up(h, w, h->n - 1);
}

static void s_heap_remove(mesh__tasks_t *self, int w, mesh__task_t *t)
{
    s_heap_t *h = &self->heap[w];
    size_t i = t->hpos[w];
    if (i == S_NOWHERE) {
        return;
    }
    t->hpos[w] = S_NOWHERE;
    h->n--;
    if (i == h->n) {
        return;
    }
    s_heap_set(h, w, i, h->v[h->n]);
    if (i > 0 && s_before(&h->v[i], &h->v[(i - 1) / S_HEAP_ARITY])) {
        s_sift_up(h, w, i);
    } else {
        s_sift_down(h, w, i);
    }
}

/*  The first entry (its task and key), or NULL. */
static const s_hent_t *s_heap_top(const mesh__tasks_t *self, int w)
{
    return self->heap[w].n ? &self->heap[w].v[0] : NULL;
}

static int s_heap_reserve(s_heap_t *h, size_t want)
{
    if (want <= h->cap) {
        return 0;
    }
    size_t cap = h->cap ? h->cap : S_TABLE_MIN;
    while (cap < want) {
        cap *= 2;
    }
    s_hent_t *v = realloc(h->v, cap * sizeof *v);
    if (!v) {
        return MESH_ERR_NOMEM;
    }
    h->v = v;
    h->cap = cap;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* rate-limit wait queues */

static void s_blocked_unlink(mesh__tasks_t *self, s_limiter_t *l)
{
    if (l->bprev) {
        l->bprev->bnext = l->bnext;
    } else {
        self->blocked = l->bnext;
    }
    if (l->bnext) {
        l->bnext->bprev = l->bprev;
    }
    l->bprev = l->bnext = NULL;
}

static void s_wait_push(mesh__tasks_t *self, s_limiter_t *l, mesh__task_t *t)
{
    assert(!t->waiting);
    if (!l->head) {
        l->bprev = NULL;
        l->bnext = self->blocked;
        if (self->blocked) {
            self->blocked->bprev = l;
        }
        self->blocked = l;
    }
    t->waiting = true;
    t->limiter = l;
    l->nwaiting++;
    t->wnext = NULL;
    t->wprev = l->tail;
    if (l->tail) {
        l->tail->wnext = t;
    } else {
        l->head = t;
    }
    l->tail = t;
}

static void s_wait_remove(mesh__tasks_t *self, mesh__task_t *t)
{
    if (!t->waiting) {
        return;
    }
    s_limiter_t *l = t->limiter;
    if (t->wprev) {
        t->wprev->wnext = t->wnext;
    } else {
        l->head = t->wnext;
    }
    if (t->wnext) {
        t->wnext->wprev = t->wprev;
    } else {
        l->tail = t->wprev;
    }
    t->wprev = t->wnext = NULL;
    t->waiting = false;
    t->limiter = NULL;
    l->nwaiting--;
    if (!l->head) {
        s_blocked_unlink(self, l);
        l->credits = 0; /* grants are for the tasks that waited, not for later ones */
    }
}

/*  A token for one start: from the bucket, or from the grants. */
static bool s_token(s_limiter_t *l, int64_t now)
{
    if (l->granted) {
        if (l->credits == 0) {
            return false;
        }
        l->credits--;
        return true;
    }
    return mesh__tokenbucket_take(&l->bucket, now);
}

static s_limiter_t *s_limiter_of(const mesh__tasks_t *self, const mesh__task_t *t)
{
    if (self->active_limiters == 0) {
        return NULL;
    }
    s_limiter_t *l = s_find_limiter(self, t->path, t->path_len, t->path_hash);
    return l && l->active ? l : NULL;
}

/* ------------------------------------------------------------------------ */
/* placement by state */

static void s_emit(mesh__tasks_t *self, const mesh__task_t *t, mesh__tasks_event_t ev)
{
    if (self->cfg.on_event) {
        self->cfg.on_event(self->cfg.event_arg, t, ev);
    }
}

static void s_set_state(mesh__tasks_t *self, mesh__task_t *t, int state)
{
    self->count[t->state]--;
    t->state = (uint8_t)state;
    self->count[state]++;
}

static void s_update_eff(const mesh__tasks_t *self, mesh__task_t *t)
{
    t->eff_due = s_add(t->due, (int64_t)t->replica * self->cfg.replica_offset_ms);
}

static bool s_ttl_applies(const mesh__task_t *t)
{
    return t->state == MESH_TASK_SCHEDULED && t->attempt == 0 && t->ttl_ms > 0;
}

static int64_t s_expiry(const mesh__task_t *t)
{
    return s_add(t->created, t->ttl_ms);
}

static int64_t s_purge_time(const mesh__tasks_t *self, const mesh__task_t *t)
{
    int64_t at = s_add(t->finished, self->cfg.retention_ms);
    if (t->keyed) {
        int64_t window_end = s_add(t->created, self->cfg.idem_window_ms);
        if (window_end > at) {
            at = window_end;
        }
    }
    return at;
}

/*  Out of every heap and queue. */
static void s_unplace(mesh__tasks_t *self, mesh__task_t *t)
{
    s_heap_remove(self, S_HEAP_DUE, t);
    s_heap_remove(self, S_HEAP_HK, t);
    s_wait_remove(self, t);
}

/*  Into the heaps its state calls for (a task not waiting). */
static void s_place(mesh__tasks_t *self, mesh__task_t *t)
{
    if (t->state == MESH_TASK_SCHEDULED) {
        s_heap_push(self, S_HEAP_DUE, t, t->eff_due);
        if (s_ttl_applies(t)) {
            s_heap_push(self, S_HEAP_HK, t, s_expiry(t));
        }
    } else if (mesh__task_state_final(t->state)) {
        s_heap_push(self, S_HEAP_HK, t, s_purge_time(self, t));
    }
}

/*  To a final state at now. */
static void s_finalize(mesh__tasks_t *self, mesh__task_t *t, int state, int64_t now)
{
    s_unplace(self, t);
    s_set_state(self, t, state);
    t->finished = now;
    switch (state) {
    case MESH_TASK_SUCCEEDED:
        self->stats.succeeded++;
        break;
    case MESH_TASK_FAILED:
        self->stats.failed++;
        break;
    case MESH_TASK_EXPIRED:
        self->stats.expired++;
        break;
    case MESH_TASK_CANCELLED:
        self->stats.cancelled++;
        break;
    }
    s_place(self, t);
    s_emit(self, t, MESH_TASKS_EV_CHANGED);
}

/*  SCHEDULED again (retry, takeover), due at `due`. */
static void s_reschedule(mesh__tasks_t *self, mesh__task_t *t, int64_t due)
{
    s_unplace(self, t);
    s_set_state(self, t, MESH_TASK_SCHEDULED);
    t->due = due;
    s_update_eff(self, t);
    s_place(self, t);
    s_emit(self, t, MESH_TASKS_EV_CHANGED);
}

static void s_start(mesh__tasks_t *self, mesh__task_t *t, int64_t now)
{
    s_unplace(self, t);
    s_set_state(self, t, MESH_TASK_RUNNING);
    if (t->attempt < S_ATTEMPT_MAX) {
        t->attempt++;
    }
    t->started = now;
    self->stats.started++;
    s_emit(self, t, MESH_TASKS_EV_CHANGED);
}

static bool s_expired(const mesh__task_t *t, int64_t now)
{
    return s_ttl_applies(t) && now >= s_expiry(t);
}

/* ------------------------------------------------------------------------ */
/* creation and destruction */

void mesh__tasks_config_default(mesh__tasks_config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_tasks = MESH_TASKS_MAX;
    cfg->replica_offset_ms = MESH_TASKS_DEFAULT_REPLICA_OFFSET_MS;
    cfg->retention_ms = MESH_TASKS_DEFAULT_RETENTION_MS;
    cfg->idem_window_ms = MESH_TASKS_DEFAULT_IDEM_WINDOW_MS;
    cfg->default_ttl_ms = 0;
    cfg->default_max_attempts = MESH_TASKS_DEFAULT_MAX_ATTEMPTS;
    cfg->backoff_base_ms = MESH_TASKS_DEFAULT_BACKOFF_BASE_MS;
    cfg->backoff_max_ms = MESH_TASKS_DEFAULT_BACKOFF_MAX_MS;
    cfg->jitter_pct = MESH_TASKS_DEFAULT_JITTER_PCT;
}

static bool s_config_ok(const mesh__tasks_config_t *c)
{
    return c->max_tasks >= 1 && c->max_tasks <= MESH_TASKS_MAX && c->replica_offset_ms >= 0 &&
           c->replica_offset_ms <= MESH_TASKS_TIME_MAX_MS / MESH_TASKS_REPLICAS_MAX &&
           s_span_ok(c->retention_ms) && s_span_ok(c->idem_window_ms) &&
           s_span_ok(c->default_ttl_ms) && c->default_max_attempts >= 1 &&
           c->default_max_attempts <= MESH_TASKS_ATTEMPTS_MAX && s_span_ok(c->backoff_base_ms) &&
           s_span_ok(c->backoff_max_ms) && c->jitter_pct <= MESH_TASKS_JITTER_PCT_MAX;
}

mesh__tasks_t *mesh__tasks_new(const mesh__tasks_config_t *cfg)
{
    mesh__tasks_config_t def;
    if (!cfg) {
        mesh__tasks_config_default(&def);
        cfg = &def;
    }
    if (!s_config_ok(cfg)) {
        return NULL;
    }
    mesh__tasks_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = *cfg;
    self->rng = cfg->seed;
    uint64_t st = cfg->seed ^ 0x5bd1e9955bd1e995ULL;
    self->hash_seed = s_splitmix(&st);
    return self;
}

static void s_task_free(mesh__task_t *t)
{
    if (t) {
        free(t->result);
        free(t);
    }
}

void mesh__tasks_destroy(mesh__tasks_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__tasks_t *self = *self_p;
    for (size_t i = 0; i < self->by_id.cap; i++) {
        s_task_free(self->by_id.slot[i]);
    }
    for (size_t i = 0; i < self->limiters.cap; i++) {
        s_limiter_t *l = self->limiters.slot[i];
        if (l) {
            free(l->path);
            free(l);
        }
    }
    free(self->by_id.slot);
    free(self->by_key.slot);
    free(self->limiters.slot);
    for (int w = 0; w < S_HEAPS; w++) {
        free(self->heap[w].v);
    }
    free(self);
    *self_p = NULL;
}

/*  One block: the struct, then path, key, payload. Fields not set here are
    zero, positions S_NOWHERE, times NEVER. */
static mesh__task_t *s_alloc(const mesh__tasks_t *self, const uint8_t *id, const char *path,
                             size_t path_len, const char *key, size_t key_len, const void *payload,
                             size_t size)
{
    size_t extra = path_len + 1 + (key ? key_len + 1 : 0) + size;
    mesh__task_t *t = calloc(1, sizeof *t + extra);
    if (!t) {
        return NULL;
    }
    memcpy(t->id, id, MESH_TASKS_ID_SIZE);
    mesh__task_id_to_hex(id, t->id_hex);
    char *p = (char *)(t + 1);
    t->path = p;
    memcpy(p, path, path_len);
    p[path_len] = '\0';
    t->path_len = (uint16_t)path_len;
    p += path_len + 1;
    if (key) {
        t->key = p;
        memcpy(p, key, key_len);
        p[key_len] = '\0';
        t->key_len = (uint16_t)key_len;
        t->key_hash = s_hash(self, key, key_len);
        p += key_len + 1;
    }
    t->payload = (uint8_t *)p;
    if (size) {
        memcpy(p, payload, size);
    }
    t->payload_size = size;
    t->id_hash = s_hash(self, id, MESH_TASKS_ID_SIZE);
    t->path_hash = s_hash(self, path, path_len);
    t->hpos[S_HEAP_DUE] = t->hpos[S_HEAP_HK] = S_NOWHERE;
    t->started = t->finished = MESH_TASKS_NEVER;
    t->state = MESH_TASK_SCHEDULED;
    return t;
}

/*  Room in every index for one more task (so inserting cannot fail). */
static int s_reserve_one(mesh__tasks_t *self, bool keyed)
{
    if (self->by_id.n >= self->cfg.max_tasks) {
        return MESH_ERR_AGAIN;
    }
    if (s_table_reserve(&self->by_id, 1, s_hash_of_id) != 0 ||
        (keyed && s_table_reserve(&self->by_key, 1, s_hash_of_key) != 0)) {
        return MESH_ERR_NOMEM;
    }
    for (int w = 0; w < S_HEAPS; w++) {
        if (s_heap_reserve(&self->heap[w], self->by_id.n + 1) != 0) {
            return MESH_ERR_NOMEM;
        }
    }
    return 0;
}

/*  Indexes a fresh task (room reserved) in its state, placed. */
static void s_insert(mesh__tasks_t *self, mesh__task_t *t)
{
    t->seq = self->seq++;
    s_table_put(&self->by_id, t, t->id_hash);
    if (t->key) {
        s_table_put(&self->by_key, t, t->key_hash);
        t->keyed = true;
    }
    self->count[t->state]++;
    s_update_eff(self, t);
    s_place(self, t);
}

/*  Unindexes and frees (REMOVED told first). */
static void s_purge(mesh__tasks_t *self, mesh__task_t *t)
{
    s_unplace(self, t);
    s_emit(self, t, MESH_TASKS_EV_REMOVED);
    s_table_del(&self->by_id, t, t->id_hash, s_hash_of_id);
    if (t->keyed) {
        s_table_del(&self->by_key, t, t->key_hash, s_hash_of_key);
    }
    self->count[t->state]--;
    s_task_free(t);
}

/*  The task holding a key at now, or NULL. A final task past its window
    lets its key go (it stays, unkeyed, until its purge). */
static mesh__task_t *s_key_holder(mesh__tasks_t *self, const char *key, size_t len, int64_t now)
{
    uint64_t h = s_hash(self, key, len);
    mesh__task_t *t = s_find_key(self, key, len, h);
    if (!t) {
        return NULL;
    }
    if (!mesh__task_state_final(t->state) || now < s_add(t->created, self->cfg.idem_window_ms)) {
        return t;
    }
    s_table_del(&self->by_key, t, t->key_hash, s_hash_of_key);
    t->keyed = false;
    return NULL;
}

static size_t s_text_len(const char *s, size_t max, bool *too_long)
{
    size_t n = strnlen(s, max + 1);
    *too_long = n > max;
    return n;
}

int mesh__tasks_add(mesh__tasks_t *self, const mesh__task_spec_t *spec, int64_t now,
                    mesh__task_t **task_out)
{
    assert(self);
    if (task_out) {
        *task_out = NULL;
    }
    if (!spec || !spec->path || (spec->size && !spec->payload)) {
        return MESH_ERR_INVAL;
    }
    bool too_long;
    size_t path_len = s_text_len(spec->path, MESH_TASKS_PATH_MAX, &too_long);
    if (too_long) {
        return MESH_ERR_TOOLONG;
    }
    size_t key_len = 0;
    if (spec->idem_key) {
        key_len = s_text_len(spec->idem_key, MESH_TASKS_KEY_MAX, &too_long);
        if (too_long) {
            return MESH_ERR_TOOLONG;
        }
    }
    if (spec->size > MESH_TASKS_PAYLOAD_MAX) {
        return MESH_ERR_TOOLONG;
    }
    uint32_t max_attempts =
        spec->max_attempts ? spec->max_attempts : self->cfg.default_max_attempts;
    int64_t ttl = spec->ttl_ms ? spec->ttl_ms : self->cfg.default_ttl_ms;
    int64_t base = spec->backoff_base_ms ? spec->backoff_base_ms : self->cfg.backoff_base_ms;
    int64_t max = spec->backoff_max_ms ? spec->backoff_max_ms : self->cfg.backoff_max_ms;
    if (path_len == 0 || (spec->idem_key && key_len == 0) || max_attempts < 1 ||
        max_attempts > MESH_TASKS_ATTEMPTS_MAX || !s_span_ok(ttl) || !s_span_ok(base) ||
        !s_span_ok(max) || spec->replica >= MESH_TASKS_REPLICAS_MAX ||
        spec->due > s_add(now, MESH_TASKS_TIME_MAX_MS)) {
        return MESH_ERR_INVAL;
    }

    if (spec->idem_key) {
        mesh__task_t *held = s_key_holder(self, spec->idem_key, key_len, now);
        if (held) {
            self->stats.deduplicated++;
            if (task_out) {
                *task_out = held;
            }
            return MESH_TASKS_EXISTING;
        }
    }

    uint8_t id[MESH_TASKS_ID_SIZE];
    if (spec->id) {
        memcpy(id, spec->id, sizeof id);
        if (s_find_id(self, id, s_hash(self, id, sizeof id))) {
            return MESH_ERR_EXISTS;
        }
    } else {
        do {
            uint64_t a = s_splitmix(&self->rng), b = s_splitmix(&self->rng);
            s_put_be(s_put_be(id, a, 8), b, 8);
        } while (s_find_id(self, id, s_hash(self, id, sizeof id)));
    }

    int rc = s_reserve_one(self, spec->idem_key != NULL);
    if (rc != 0) {
        return rc;
    }
    mesh__task_t *t =
        s_alloc(self, id, spec->path, path_len, spec->idem_key, key_len, spec->payload, spec->size);
    if (!t) {
        return MESH_ERR_NOMEM;
    }
    t->replica = (uint8_t)spec->replica;
    t->jitter_pct = (uint8_t)self->cfg.jitter_pct;
    t->max_attempts = max_attempts;
    t->created = now;
    t->due = spec->due < s_sub(now, MESH_TASKS_TIME_MAX_MS) ? now : spec->due;
    t->ttl_ms = ttl;
    t->backoff_base_ms = base;
    t->backoff_max_ms = max;
    s_insert(self, t);
    self->stats.added++;
    s_emit(self, t, MESH_TASKS_EV_ADDED);
    if (task_out) {
        *task_out = t;
    }
    return MESH_TASKS_ADDED;
}

/* ------------------------------------------------------------------------ */
/* lookups */

mesh__task_t *mesh__tasks_find(const mesh__tasks_t *self, const uint8_t *id)
{
    if (!id) {
        return NULL;
    }
    return s_find_id(self, id, s_hash(self, id, MESH_TASKS_ID_SIZE));
}

mesh__task_t *mesh__tasks_find_hex(const mesh__tasks_t *self, const char *hex)
{
    uint8_t id[MESH_TASKS_ID_SIZE];
    if (mesh__task_id_from_hex(hex, id) != 0) {
        return NULL;
    }
    return mesh__tasks_find(self, id);
}

mesh__task_t *mesh__tasks_find_key(const mesh__tasks_t *self, const char *idem_key)
{
    if (!idem_key) {
        return NULL;
    }
    size_t len = strnlen(idem_key, MESH_TASKS_KEY_MAX + 1);
    if (len > MESH_TASKS_KEY_MAX) {
        return NULL;
    }
    return s_find_key(self, idem_key, len, s_hash(self, idem_key, len));
}

size_t mesh__tasks_count(const mesh__tasks_t *self, int state)
{
    if (state < 0) {
        return self->by_id.n;
    }
    return state < MESH_TASK_STATE_COUNT ? self->count[state] : 0;
}

size_t mesh__tasks_size(const mesh__tasks_t *self)
{
    return self->by_id.n;
}

mesh__task_t *mesh__tasks_next(const mesh__tasks_t *self, size_t *pos)
{
    while (*pos < self->by_id.cap) {
        mesh__task_t *t = self->by_id.slot[(*pos)++];
        if (t) {
            return t;
        }
    }
    return NULL;
}

size_t mesh__tasks_list(const mesh__tasks_t *self, int state, mesh__task_t **out, size_t cap)
{
    size_t n = 0, pos = 0;
    mesh__task_t *t;
    while ((t = mesh__tasks_next(self, &pos))) {
        if (state < 0 || t->state == state) {
            if (n < cap) {
                out[n] = t;
            }
            n++;
        }
    }
    return n;
}

const mesh__tasks_stats_t *mesh__tasks_stats(const mesh__tasks_t *self)
{
    return &self->stats;
}

/* ------------------------------------------------------------------------ */
/* driving */

int64_t mesh__tasks_next_deadline(const mesh__tasks_t *self, int64_t now)
{
    (void)now;
    int64_t d = INT64_MAX;
    for (int w = 0; w < S_HEAPS; w++) {
        const s_hent_t *top = s_heap_top(self, w);
        if (top && top->key < d) {
            d = top->key;
        }
    }
    for (const s_limiter_t *l = self->blocked; l; l = l->bnext) {
        if (l->granted) {
            if (l->credits > 0 && now < d) {
                d = now; /* granted tokens wait for due() */
            }
            continue;
        }
        int64_t at = mesh__tokenbucket_next(&l->bucket);
        if (at < d) {
            d = at;
        }
    }
    return d;
}

size_t mesh__tasks_on_tick(mesh__tasks_t *self, int64_t now)
{
    size_t n = 0;
    const s_hent_t *top;
    while ((top = s_heap_top(self, S_HEAP_HK)) && top->key <= now) {
        mesh__task_t *t = top->task;
        if (t->state == MESH_TASK_SCHEDULED) {
            s_finalize(self, t, MESH_TASK_EXPIRED, now);
        } else {
            self->stats.purged++;
            s_purge(self, t);
        }
        n++;
    }
    return n;
}

/*  The gate says no: due again after its delay, whatever the rank. */
static bool s_gated(mesh__tasks_t *self, mesh__task_t *t, int64_t now)
{
    if (!self->gate || self->gate(self->gate_arg, t)) {
        return false;
    }
    self->stats.deferred++;
    s_reschedule(self, t, now + self->gate_delay_ms - (int64_t)t->replica * self->cfg.replica_offset_ms);
    return true;
}

void mesh__tasks_set_gate(mesh__tasks_t *self, mesh__tasks_gate_fn *fn, void *arg,
                          int64_t delay_ms)
{
    self->gate = fn;
    self->gate_arg = arg;
    self->gate_delay_ms = delay_ms < 1 ? 1 : delay_ms > MESH_TASKS_TIME_MAX_MS ? MESH_TASKS_TIME_MAX_MS : delay_ms;
}

size_t mesh__tasks_due(mesh__tasks_t *self, int64_t now, mesh__task_t **out, size_t max)
{
    size_t n = 0;
    /* waiting tasks first: they came due before anything still in the heap */
    s_limiter_t *next;
    for (s_limiter_t *l = self->blocked; l && n < max; l = next) {
        next = l->bnext;
        while (l->head && n < max) {
            mesh__task_t *t = l->head;
            if (s_expired(t, now)) {
                s_finalize(self, t, MESH_TASK_EXPIRED, now);
                continue;
            }
            if (s_gated(self, t, now)) {
                continue;
            }
            if (!s_token(l, now)) {
                break;
            }
            s_start(self, t, now);
            out[n++] = t;
        }
    }
    const s_hent_t *top;
    while (n < max && (top = s_heap_top(self, S_HEAP_DUE)) && top->key <= now) {
        mesh__task_t *t = top->task;
        if (s_expired(t, now)) {
            s_finalize(self, t, MESH_TASK_EXPIRED, now);
            continue;
        }
        if (s_gated(self, t, now)) {
            continue;
        }
        s_limiter_t *l = s_limiter_of(self, t);
        if (l && (l->head || !s_token(l, now))) {
            s_heap_remove(self, S_HEAP_DUE, t);
            s_wait_push(self, l, t);
            self->stats.rate_waits++;
            continue;
        }
        s_start(self, t, now);
        out[n++] = t;
    }
    return n;
}

static int s_lookup(const mesh__tasks_t *self, const uint8_t *id, mesh__task_t **t)
{
    assert(self);
    *t = mesh__tasks_find(self, id);
    return *t ? 0 : MESH_ERR_NOTFOUND;
}

int mesh__tasks_finished(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, bool ok,
                         const void *result, size_t size, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    if (size > MESH_TASKS_RESULT_MAX) {
        return MESH_ERR_TOOLONG;
    }
    if (size && !result) {
        return MESH_ERR_INVAL;
    }
    bool accept = attempt < S_ATTEMPT_MAX &&
                  ((t->state == MESH_TASK_RUNNING && attempt == t->attempt) ||
                   (t->state == MESH_TASK_STANDBY && attempt >= t->attempt && attempt > 0) ||
                   (t->state == MESH_TASK_SCHEDULED && attempt > t->attempt));
    if (!accept) {
        return MESH_ERR_STATE;
    }
    uint8_t *copy = NULL;
    if (size) {
        copy = malloc(size);
        if (!copy) {
            return MESH_ERR_NOMEM;
        }
        memcpy(copy, result, size);
    }
    free(t->result);
    t->result = copy;
    t->result_size = size;
    if (t->state == MESH_TASK_SCHEDULED) {
        t->started = now; /* the start announcement was missed */
    }
    t->attempt = attempt;
    if (ok) {
        s_finalize(self, t, MESH_TASK_SUCCEEDED, now);
        return 0;
    }
    if (t->failures < t->max_attempts) {
        t->failures++;
    }
    if (t->cancel_requested) {
        s_finalize(self, t, MESH_TASK_CANCELLED, now);
    } else if (t->failures < t->max_attempts) {
        int64_t delay = mesh__tasks_backoff(t->id, t->failures, t->backoff_base_ms,
                                            t->backoff_max_ms, t->jitter_pct);
        self->stats.retried++;
        s_reschedule(self, t, s_add(now, delay));
    } else {
        s_finalize(self, t, MESH_TASK_FAILED, now);
    }
    return 0;
}

int mesh__tasks_cancel(mesh__tasks_t *self, const uint8_t *id, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    switch (t->state) {
    case MESH_TASK_SCHEDULED:
        t->cancel_requested = true;
        s_finalize(self, t, MESH_TASK_CANCELLED, now);
        return 0;
    case MESH_TASK_RUNNING:
    case MESH_TASK_STANDBY:
        if (!t->cancel_requested) {
            t->cancel_requested = true;
            s_emit(self, t, MESH_TASKS_EV_CHANGED);
        }
        return 0;
    default:
        return MESH_ERR_STATE;
    }
}

int mesh__tasks_standdown(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    if (attempt == 0 || attempt >= S_ATTEMPT_MAX) {
        return MESH_ERR_STATE;
    }
    switch (t->state) {
    case MESH_TASK_SCHEDULED:
        if (attempt <= t->attempt) {
            return MESH_ERR_STATE; /* an earlier attempt's news */
        }
        s_unplace(self, t);
        s_set_state(self, t, MESH_TASK_STANDBY);
        t->attempt = attempt;
        t->started = now;
        self->stats.standdowns++;
        s_emit(self, t, MESH_TASKS_EV_CHANGED);
        return 0;
    case MESH_TASK_STANDBY:
        if (attempt < t->attempt) {
            return MESH_ERR_STATE;
        }
        if (attempt > t->attempt) {
            t->attempt = attempt;
            t->started = now;
            s_emit(self, t, MESH_TASKS_EV_CHANGED);
        }
        return 0;
    case MESH_TASK_RUNNING:
        if (attempt == t->attempt) {
            self->stats.double_starts++;
        }
        return MESH_ERR_STATE;
    default:
        return MESH_ERR_STATE;
    }
}

int mesh__tasks_takeover(mesh__tasks_t *self, const uint8_t *id, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    if (t->state != MESH_TASK_STANDBY) {
        return MESH_ERR_STATE;
    }
    self->stats.takeovers++;
    if (t->cancel_requested) {
        s_finalize(self, t, MESH_TASK_CANCELLED, now);
    } else {
        s_reschedule(self, t, now);
    }
    return 0;
}

int mesh__tasks_set_replica(mesh__tasks_t *self, const uint8_t *id, unsigned k, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    if (k >= MESH_TASKS_REPLICAS_MAX) {
        return MESH_ERR_INVAL;
    }
    if (k == t->replica) {
        return 0;
    }
    t->replica = (uint8_t)k;
    s_update_eff(self, t);
    if (t->state == MESH_TASK_SCHEDULED) {
        if (t->waiting && t->eff_due > now) {
            s_wait_remove(self, t); /* no longer due here: back in line */
            s_heap_push(self, S_HEAP_DUE, t, t->eff_due);
        } else if (!t->waiting) {
            s_heap_remove(self, S_HEAP_DUE, t);
            s_heap_push(self, S_HEAP_DUE, t, t->eff_due);
        }
    }
    s_emit(self, t, MESH_TASKS_EV_CHANGED);
    return 0;
}

int mesh__tasks_remove(mesh__tasks_t *self, const uint8_t *id)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    s_purge(self, t);
    return 0;
}

int mesh__tasks_set_ratelimit(mesh__tasks_t *self, const char *path, const mesh__ratelimit_t *rl,
                              int64_t now)
{
    assert(self);
    if (!path || (rl && !mesh__ratelimit_valid(rl))) {
        return MESH_ERR_INVAL;
    }
    size_t len = strnlen(path, MESH_TASKS_PATH_MAX + 1);
    if (len > MESH_TASKS_PATH_MAX) {
        return MESH_ERR_TOOLONG;
    }
    if (len == 0) {
        return MESH_ERR_INVAL;
    }
    uint64_t h = s_hash(self, path, len);
    s_limiter_t *l = s_find_limiter(self, path, len, h);
    if (!rl) {
        if (l && l->active) {
            /* release the waiting: due at once, in their order */
            while (l->head) {
                mesh__task_t *t = l->head;
                s_wait_remove(self, t);
                s_heap_push(self, S_HEAP_DUE, t, t->eff_due);
            }
            l->active = false;
            l->granted = false;
            l->credits = 0;
            self->active_limiters--;
        }
        return 0;
    }
    if (!l) {
        if (self->limiters.n >= MESH_TASKS_RATELIMITS_MAX) {
            return MESH_ERR_AGAIN;
        }
        if (s_table_reserve(&self->limiters, 1, s_hash_of_limiter) != 0) {
            return MESH_ERR_NOMEM;
        }
        l = calloc(1, sizeof *l);
        char *copy = strndup(path, len);
        if (!l || !copy) {
            free(l);
            free(copy);
            return MESH_ERR_NOMEM;
        }
        l->path = copy;
        l->path_len = len;
        l->hash = h;
        s_table_put(&self->limiters, l, h);
    }
    if (!l->active) {
        l->active = true;
        self->active_limiters++;
    }
    l->granted = false;
    l->credits = 0;
    mesh__tokenbucket_init(&l->bucket, rl, now);
    return 0;
}

static s_limiter_t *s_limiter_named(const mesh__tasks_t *self, const char *path)
{
    size_t len = path ? strnlen(path, MESH_TASKS_PATH_MAX + 1) : 0;
    if (len == 0 || len > MESH_TASKS_PATH_MAX) {
        return NULL;
    }
    s_limiter_t *l = s_find_limiter(self, path, len, s_hash(self, path, len));
    return l && l->active ? l : NULL;
}

int mesh__tasks_set_granted(mesh__tasks_t *self, const char *path, int64_t now)
{
    static const mesh__ratelimit_t any = {.count = 1, .period_ms = 1000};
    int rc = mesh__tasks_set_ratelimit(self, path, &any, now);
    if (rc == 0) {
        s_limiter_named(self, path)->granted = true;
    }
    return rc;
}

int mesh__tasks_grant(mesh__tasks_t *self, const char *path, uint32_t n)
{
    s_limiter_t *l = s_limiter_named(self, path);
    if (!l || !l->granted) {
        return MESH_ERR_NOTFOUND;
    }
    if (l->head) { /* with nobody waiting, tokens would serve later tasks: dropped */
        l->credits = n > UINT32_MAX - l->credits ? UINT32_MAX : l->credits + n;
    }
    return 0;
}

size_t mesh__tasks_waiting(const mesh__tasks_t *self, const char *path)
{
    const s_limiter_t *l = s_limiter_named(self, path);
    return l ? l->nwaiting : 0;
}

int mesh__tasks_requeue(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, bool reached,
                        int64_t delay_ms, int64_t now)
{
    mesh__task_t *t;
    int rc = s_lookup(self, id, &t);
    if (rc != 0) {
        return rc;
    }
    if (t->state != MESH_TASK_RUNNING || t->attempt != attempt || delay_ms < 0 ||
        delay_ms > MESH_TASKS_TIME_MAX_MS) {
        return t->state != MESH_TASK_RUNNING || t->attempt != attempt ? MESH_ERR_STATE
                                                                      : MESH_ERR_INVAL;
    }
    self->stats.requeued++;
    if (!reached && t->attempt > t->failures) {
        t->attempt--; /* no handler saw it: the next start is this attempt again */
    }
    if (t->cancel_requested) {
        s_finalize(self, t, MESH_TASK_CANCELLED, now);
    } else {
        /* due at now + delay here, whatever this holder's rank */
        s_reschedule(self, t, now + delay_ms - (int64_t)t->replica * self->cfg.replica_offset_ms);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* one task */

void mesh__task_info(const mesh__task_t *t, mesh__task_info_t *out)
{
    out->id = t->id;
    out->id_hex = t->id_hex;
    out->path = t->path;
    out->idem_key = t->key;
    out->payload = t->payload;
    out->payload_size = t->payload_size;
    out->result = t->result;
    out->result_size = t->result_size;
    out->state = (mesh__task_state_t)t->state;
    out->waiting = t->waiting;
    out->cancel_requested = t->cancel_requested;
    out->attempt = t->attempt;
    out->failures = t->failures;
    out->max_attempts = t->max_attempts;
    out->replica = t->replica;
    out->jitter_pct = t->jitter_pct;
    out->due = t->due;
    out->effective_due = t->eff_due;
    out->created = t->created;
    out->started = t->started;
    out->finished = t->finished;
    out->ttl_ms = t->ttl_ms;
    out->backoff_base_ms = t->backoff_base_ms;
    out->backoff_max_ms = t->backoff_max_ms;
}

const uint8_t *mesh__task_id(const mesh__task_t *t)
{
    return t->id;
}

const char *mesh__task_id_hex(const mesh__task_t *t)
{
    return t->id_hex;
}

const char *mesh__task_path(const mesh__task_t *t)
{
    return t->path;
}

mesh__task_state_t mesh__task_state(const mesh__task_t *t)
{
    return (mesh__task_state_t)t->state;
}

uint32_t mesh__task_attempt(const mesh__task_t *t)
{
    return t->attempt;
}

const void *mesh__task_placement_key(const mesh__task_t *t, size_t *len)
{
    if (t->key) {
        *len = t->key_len;
        return t->key;
    }
    *len = MESH_TASKS_ID_SIZE;
    return t->id;
}

/* ------------------------------------------------------------------------ */
/* records */

static bool s_text_ok(mesh__slice_t s, size_t max)
{
    return s.ptr && s.len >= 1 && s.len <= max && !memchr(s.ptr, 0, s.len);
}

/*  The rules of tasks.h, shared by the decoder and the encoder. */
static bool s_record_ok(const mesh__task_record_t *r)
{
    bool final = mesh__task_state_final(r->state);
    bool has_key = r->flags & MESH_TASKS_REC_KEY;
    bool started = r->flags & MESH_TASKS_REC_STARTED;
    bool finished = r->flags & MESH_TASKS_REC_FINISHED;
    return r->state < MESH_TASK_STATE_COUNT &&
           (r->flags & ~(MESH_TASKS_REC_KEY | MESH_TASKS_REC_CANCEL | MESH_TASKS_REC_STARTED |
                         MESH_TASKS_REC_FINISHED)) == 0 &&
           r->replica < MESH_TASKS_REPLICAS_MAX && r->jitter_pct <= MESH_TASKS_JITTER_PCT_MAX &&
           r->max_attempts >= 1 && r->max_attempts <= MESH_TASKS_ATTEMPTS_MAX &&
           r->failures <= r->max_attempts && r->attempt >= r->failures &&
           r->attempt < S_ATTEMPT_MAX &&
           ((r->state != MESH_TASK_RUNNING && r->state != MESH_TASK_STANDBY) ||
            (r->attempt >= 1 && started)) &&
           finished == final && (started || r->started_age == 0) &&
           (finished || r->finished_age == 0) && s_time_ok(r->due_in) &&
           s_time_ok(r->created_age) && s_time_ok(r->started_age) && s_time_ok(r->finished_age) &&
           s_span_ok(r->ttl_ms) && s_span_ok(r->backoff_base_ms) && s_span_ok(r->backoff_max_ms) &&
           s_text_ok(r->path, MESH_TASKS_PATH_MAX) &&
           (has_key ? s_text_ok(r->key, MESH_TASKS_KEY_MAX) : (!r->key.ptr && r->key.len == 0)) &&
           r->payload.len <= MESH_TASKS_PAYLOAD_MAX && r->result.len <= MESH_TASKS_RESULT_MAX &&
           (r->payload.ptr || r->payload.len == 0) && (r->result.ptr || r->result.len == 0);
}

int mesh__task_record_decode(const uint8_t *buf, size_t len, mesh__task_record_t *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len < MESH_TASKS_RECORD_HEADER || buf[0] != MESH_TASKS_RECORD_MAGIC_0 ||
        buf[1] != MESH_TASKS_RECORD_MAGIC_1 || buf[2] != MESH_TASKS_RECORD_VERSION || buf[7] != 0) {
        return MESH_ERR_MALFORMED;
    }
    mesh__task_record_t r;
    memset(&r, 0, sizeof r);
    r.state = buf[3];
    r.flags = buf[4];
    r.replica = buf[5];
    r.jitter_pct = buf[6];
    memcpy(r.id, buf + 8, MESH_TASKS_ID_SIZE);
    r.attempt = (uint32_t)s_be(buf + 24, 4);
    r.failures = (uint32_t)s_be(buf + 28, 4);
    r.max_attempts = (uint32_t)s_be(buf + 32, 4);
    r.due_in = (int64_t)s_be(buf + 36, 8);
    r.created_age = (int64_t)s_be(buf + 44, 8);
    r.started_age = (int64_t)s_be(buf + 52, 8);
    r.finished_age = (int64_t)s_be(buf + 60, 8);
    r.ttl_ms = (int64_t)s_be(buf + 68, 8);
    r.backoff_base_ms = (int64_t)s_be(buf + 76, 8);
    r.backoff_max_ms = (int64_t)s_be(buf + 84, 8);
    size_t path_len = (size_t)s_be(buf + 92, 2);
    size_t key_len = (size_t)s_be(buf + 94, 2);
    size_t payload_len = (size_t)s_be(buf + 96, 4);
    size_t result_len = (size_t)s_be(buf + 100, 4);
    /* each length is checked against its limit before any sum is formed */
    if (path_len > MESH_TASKS_PATH_MAX || key_len > MESH_TASKS_KEY_MAX ||
        payload_len > MESH_TASKS_PAYLOAD_MAX || result_len > MESH_TASKS_RESULT_MAX ||
        len - MESH_TASKS_RECORD_HEADER != path_len + key_len + payload_len + result_len) {
        return MESH_ERR_MALFORMED;
    }
    const uint8_t *p = buf + MESH_TASKS_RECORD_HEADER;
    r.path = (mesh__slice_t){p, path_len};
    p += path_len;
    if (r.flags & MESH_TASKS_REC_KEY) {
        r.key = (mesh__slice_t){p, key_len};
    } else if (key_len != 0) {
        return MESH_ERR_MALFORMED;
    }
    p += key_len;
    r.payload = (mesh__slice_t){p, payload_len};
    p += payload_len;
    r.result = (mesh__slice_t){p, result_len};
    if (!s_record_ok(&r)) {
        return MESH_ERR_MALFORMED;
    }
    *out = r;
    return 0;
}

size_t mesh__task_record_encode(const mesh__task_record_t *r, uint8_t *buf, size_t cap)
{
    if (!s_record_ok(r)) {
        return 0;
    }
    size_t size =
        MESH_TASKS_RECORD_HEADER + r->path.len + r->key.len + r->payload.len + r->result.len;
    if (size > cap) {
        return size;
    }
    uint8_t *p = buf;
    *p++ = MESH_TASKS_RECORD_MAGIC_0;
    *p++ = MESH_TASKS_RECORD_MAGIC_1;
    *p++ = MESH_TASKS_RECORD_VERSION;
    *p++ = r->state;
    *p++ = r->flags;
    *p++ = r->replica;
    *p++ = r->jitter_pct;
    *p++ = 0;
    memcpy(p, r->id, MESH_TASKS_ID_SIZE);
    p += MESH_TASKS_ID_SIZE;
    p = s_put_be(p, r->attempt, 4);
    p = s_put_be(p, r->failures, 4);
    p = s_put_be(p, r->max_attempts, 4);
    p = s_put_be(p, (uint64_t)r->due_in, 8);
    p = s_put_be(p, (uint64_t)r->created_age, 8);
    p = s_put_be(p, (uint64_t)r->started_age, 8);
    p = s_put_be(p, (uint64_t)r->finished_age, 8);
    p = s_put_be(p, (uint64_t)r->ttl_ms, 8);
    p = s_put_be(p, (uint64_t)r->backoff_base_ms, 8);
    p = s_put_be(p, (uint64_t)r->backoff_max_ms, 8);
    p = s_put_be(p, r->path.len, 2);
    p = s_put_be(p, r->key.len, 2);
    p = s_put_be(p, r->payload.len, 4);
    p = s_put_be(p, r->result.len, 4);
    const mesh__slice_t *parts[] = {&r->path, &r->key, &r->payload, &r->result};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i]->len) {
            memcpy(p, parts[i]->ptr, parts[i]->len);
            p += parts[i]->len;
        }
    }
    assert((size_t)(p - buf) == size);
    return size;
}

static int64_t s_rel(int64_t v)
{
    return s_clamp(v, -MESH_TASKS_TIME_MAX_MS, MESH_TASKS_TIME_MAX_MS);
}

static void s_to_record(const mesh__task_t *t, int64_t now, mesh__task_record_t *r)
{
    memset(r, 0, sizeof *r);
    r->state = t->state;
    r->flags = (uint8_t)((t->key ? MESH_TASKS_REC_KEY : 0) |
                         (t->cancel_requested ? MESH_TASKS_REC_CANCEL : 0) |
                         (t->started != MESH_TASKS_NEVER ? MESH_TASKS_REC_STARTED : 0) |
                         (t->finished != MESH_TASKS_NEVER ? MESH_TASKS_REC_FINISHED : 0));
    r->replica = t->replica;
    r->jitter_pct = t->jitter_pct;
    memcpy(r->id, t->id, MESH_TASKS_ID_SIZE);
    r->attempt = t->attempt;
    r->failures = t->failures;
    r->max_attempts = t->max_attempts;
    r->due_in = s_rel(s_sub(t->due, now));
    r->created_age = s_rel(s_sub(now, t->created));
    r->started_age = t->started != MESH_TASKS_NEVER ? s_rel(s_sub(now, t->started)) : 0;
    r->finished_age = t->finished != MESH_TASKS_NEVER ? s_rel(s_sub(now, t->finished)) : 0;
    r->ttl_ms = t->ttl_ms;
    r->backoff_base_ms = t->backoff_base_ms;
    r->backoff_max_ms = t->backoff_max_ms;
    r->path = (mesh__slice_t){(const uint8_t *)t->path, t->path_len};
    if (t->key) {
        r->key = (mesh__slice_t){(const uint8_t *)t->key, t->key_len};
    }
    r->payload = (mesh__slice_t){t->payload, t->payload_size};
    r->result = (mesh__slice_t){t->result, t->result_size};
}

size_t mesh__task_encode(const mesh__task_t *t, int64_t now, uint8_t *buf, size_t cap)
{
    mesh__task_record_t r;
    s_to_record(t, now, &r);
    return mesh__task_record_encode(&r, buf, cap);
}

static int s_state_rank(int state)
{
    return state == MESH_TASK_SCHEDULED ? 0 : mesh__task_state_final(state) ? 2 : 1;
}

/*  The record's progress (state, attempts, times, result) onto t. */
static int s_adopt(mesh__tasks_t *self, mesh__task_t *t, const mesh__task_record_t *r, int64_t now)
{
    uint8_t *copy = NULL;
    if (r->result.len) {
        copy = malloc(r->result.len);
        if (!copy) {
            return MESH_ERR_NOMEM;
        }
        memcpy(copy, r->result.ptr, r->result.len);
    }
    free(t->result);
    t->result = copy;
    t->result_size = r->result.len;
    s_unplace(self, t);
    int state = r->state == MESH_TASK_RUNNING ? MESH_TASK_STANDBY : r->state;
    s_set_state(self, t, state);
    t->attempt = r->attempt;
    t->failures = r->failures;
    t->cancel_requested = t->cancel_requested || (r->flags & MESH_TASKS_REC_CANCEL);
    t->due = s_add(now, r->due_in);
    t->started = r->flags & MESH_TASKS_REC_STARTED ? s_sub(now, r->started_age) : MESH_TASKS_NEVER;
    t->finished =
        r->flags & MESH_TASKS_REC_FINISHED ? s_sub(now, r->finished_age) : MESH_TASKS_NEVER;
    s_update_eff(self, t);
    s_place(self, t);
    return 0;
}

int mesh__tasks_import(mesh__tasks_t *self, const uint8_t *buf, size_t len, int replica,
                       int64_t now, mesh__task_t **task_out)
{
    assert(self);
    if (task_out) {
        *task_out = NULL;
    }
    mesh__task_record_t r;
    if (replica >= MESH_TASKS_REPLICAS_MAX) {
        return MESH_ERR_INVAL;
    }
    if (mesh__task_record_decode(buf, len, &r) != 0) {
        self->stats.malformed++;
        return MESH_ERR_MALFORMED;
    }
    mesh__task_t *t = mesh__tasks_find(self, r.id);
    if (t) {
        if (t->path_len != r.path.len || memcmp(t->path, r.path.ptr, r.path.len) != 0 ||
            t->key_len != r.key.len || (r.key.len && memcmp(t->key, r.key.ptr, r.key.len))) {
            return MESH_ERR_EXISTS; /* another task under this id */
        }
        if (task_out) {
            *task_out = t;
        }
        bool changed = false;
        /* progress is ordered by (attempt, failures, state rank): a retry
           scheduled after attempt a failed is ahead of attempt a running */
        bool ahead = r.attempt != t->attempt     ? r.attempt > t->attempt
                     : r.failures != t->failures ? r.failures > t->failures
                                                 : s_state_rank(r.state) > s_state_rank(t->state);
        if (!mesh__task_state_final(t->state) && ahead) {
            int rc = s_adopt(self, t, &r, now);
            if (rc != 0) {
                return rc;
            }
            changed = true;
        } else {
            self->stats.import_stale++;
            if ((r.flags & MESH_TASKS_REC_CANCEL) && !mesh__task_state_final(t->state)) {
                /* a cancel travels even in an older record */
                t->cancel_requested = true;
                if (t->state == MESH_TASK_SCHEDULED) {
                    s_finalize(self, t, MESH_TASK_CANCELLED, now);
                    return MESH_TASKS_EXISTING;
                }
                changed = true;
            }
        }
        if (replica >= 0 && (unsigned)replica != t->replica) {
            t->replica = (uint8_t)replica;
            s_update_eff(self, t);
            if (t->state == MESH_TASK_SCHEDULED && !t->waiting) {
                s_heap_remove(self, S_HEAP_DUE, t);
                s_heap_push(self, S_HEAP_DUE, t, t->eff_due);
            }
            changed = true;
        }
        if (changed) {
            s_emit(self, t, MESH_TASKS_EV_CHANGED);
        }
        return MESH_TASKS_EXISTING;
    }

    const char *key = (const char *)r.key.ptr;
    if (key) {
        /* the key must be free; keys are NUL-free, so compare by slice */
        mesh__task_t *held = s_find_key(self, key, r.key.len, s_hash(self, key, r.key.len));
        if (held && (!mesh__task_state_final(held->state) ||
                     now < s_add(held->created, self->cfg.idem_window_ms))) {
            if (task_out) {
                *task_out = held;
            }
            return MESH_ERR_EXISTS;
        }
        if (held) {
            s_table_del(&self->by_key, held, held->key_hash, s_hash_of_key);
            held->keyed = false;
        }
    }
    int rc = s_reserve_one(self, key != NULL);
    if (rc != 0) {
        return rc;
    }
    t = s_alloc(self, r.id, (const char *)r.path.ptr, r.path.len, key, r.key.len, r.payload.ptr,
                r.payload.len);
    if (!t) {
        return MESH_ERR_NOMEM;
    }
    if (r.result.len) {
        t->result = malloc(r.result.len);
        if (!t->result) {
            s_task_free(t);
            return MESH_ERR_NOMEM;
        }
        memcpy(t->result, r.result.ptr, r.result.len);
        t->result_size = r.result.len;
    }
    t->state = (uint8_t)(r.state == MESH_TASK_RUNNING ? MESH_TASK_STANDBY : r.state);
    t->replica = (uint8_t)(replica >= 0 ? replica : r.replica);
    t->jitter_pct = r.jitter_pct;
    t->cancel_requested = r.flags & MESH_TASKS_REC_CANCEL;
    t->attempt = r.attempt;
    t->failures = r.failures;
    t->max_attempts = r.max_attempts;
    t->due = s_add(now, r.due_in);
    t->created = s_sub(now, r.created_age);
    t->started = r.flags & MESH_TASKS_REC_STARTED ? s_sub(now, r.started_age) : MESH_TASKS_NEVER;
    t->finished = r.flags & MESH_TASKS_REC_FINISHED ? s_sub(now, r.finished_age) : MESH_TASKS_NEVER;
    t->ttl_ms = r.ttl_ms;
    t->backoff_base_ms = r.backoff_base_ms;
    t->backoff_max_ms = r.backoff_max_ms;
    s_insert(self, t);
    self->stats.imported++;
    s_emit(self, t, MESH_TASKS_EV_ADDED);
    if (task_out) {
        *task_out = t;
    }
    return MESH_TASKS_ADDED;
}
