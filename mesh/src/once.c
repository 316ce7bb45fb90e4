/*  once.c: the provider's ledger of "once" requests (see once.h). */
#include "once.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define S_BUCKETS_MIN 64 /* the table's first size (a power of two) */
#define S_WAITERS_MIN 4  /* a run's first room for waiters */

struct mesh__once_entry {
    uint64_t hash;
    mesh__once_entry_t *chain;       /* next in its bucket */
    mesh__once_entry_t *prev, *next; /* DONE: the expiry list, oldest first */
    bool done;                       /* false: RUNNING */
    int64_t expires;                 /* DONE: replayed until then (excluded) */
    uint8_t *data;                   /* DONE: a copy of the reply (NULL when empty) */
    size_t size;                     /* its length */
    mesh__once_waiter_t *waiters;    /* RUNNING: repeats that get the run's reply */
    size_t nwaiters, waiters_cap;    /* how many, and the array's room */
    size_t plen, klen;               /* path and key lengths */
    uint8_t text[];                  /* the path's plen octets, then the key's klen */
};

struct mesh__once {
    mesh__once_config_t cfg;
    mesh__once_entry_t **table;      /* (path, key) -> entry, chained; NULL until the first entry */
    size_t cap;                      /* buckets: 0 or a power of two */
    size_t count, running;           /* entries, and those RUNNING */
    mesh__once_entry_t *head, *tail; /* DONE entries in the order they finished */
    size_t bytes;                    /* reply bytes they keep */
    uint64_t expired, evicted, steps;
};

static uint64_t s_hash(const void *path, size_t plen, const void *key, size_t klen)
{
    return (XXH3_64bits(path, plen) * 0x9E3779B97F4A7C15ull) ^ XXH3_64bits(key, klen);
}

/*  memcmp that accepts a NULL pointer with a zero length. */
static bool s_same(const uint8_t *a, const void *b, size_t len)
{
    return len == 0 || memcmp(a, b, len) == 0;
}

static mesh__once_entry_t *s_find(const mesh__once_t *self, uint64_t hash, const void *path,
                                  size_t plen, const void *key, size_t klen)
{
    if (!self->cap) {
        return NULL;
    }
    for (mesh__once_entry_t *e = self->table[hash & (self->cap - 1)]; e; e = e->chain) {
        if (e->hash == hash && e->plen == plen && e->klen == klen && s_same(e->text, path, plen) &&
            s_same(e->text + plen, key, klen)) {
            return e;
        }
    }
    return NULL;
}

/*  Unlinks and frees an entry (RUNNING ones only once their run ended). */
static void s_delete(mesh__once_t *self, mesh__once_entry_t *e)
{
    mesh__once_entry_t **link = &self->table[e->hash & (self->cap - 1)];
    while (*link != e) {
        link = &(*link)->chain;
    }
    *link = e->chain;
    if (e->done) {
        if (e->prev) {
            e->prev->next = e->next;
        } else {
            self->head = e->next;
        }
        if (e->next) {
            e->next->prev = e->prev;
        } else {
            self->tail = e->prev;
        }
        self->bytes -= e->size;
    } else {
        self->running--;
    }
    self->count--;
    free(e->data);
    free(e->waiters);
    free(e);
}

/*  Evicts the DONE entry that finished first, before its retention ends. */
static void s_evict_oldest(mesh__once_t *self)
{
    assert(self->head);
    self->steps++;
    self->evicted++;
    s_delete(self, self->head);
}

size_t mesh__once_purge(mesh__once_t *self, int64_t now)
{
    assert(self);
    size_t n = 0;
    while (self->head) {
        self->steps++;
        if (self->head->expires > now) {
            break;
        }
        s_delete(self, self->head);
        n++;
    }
    self->expired += n;
    return n;
}

static bool s_grow(mesh__once_t *self)
{
    size_t cap = self->cap ? self->cap * 2 : S_BUCKETS_MIN;
    mesh__once_entry_t **t = calloc(cap, sizeof *t);
    if (!t) {
        return false;
    }
    for (size_t i = 0; i < self->cap; i++) {
        mesh__once_entry_t *e = self->table[i];
        while (e) {
            mesh__once_entry_t *next = e->chain;
            e->chain = t[e->hash & (cap - 1)];
            t[e->hash & (cap - 1)] = e;
            e = next;
        }
    }
    free(self->table);
    self->table = t;
    self->cap = cap;
    return true;
}

/*  A new RUNNING entry, or NULL (out of memory, or the ledger is full of
    RUNNING entries). */
static mesh__once_entry_t *s_new_entry(mesh__once_t *self, uint64_t hash, const void *path,
                                       size_t plen, const void *key, size_t klen)
{
    while (self->count >= self->cfg.entries_max && self->head) {
        s_evict_oldest(self);
    }
    if (self->count >= self->cfg.entries_max || (self->count >= self->cap && !s_grow(self))) {
        return NULL;
    }
    mesh__once_entry_t *e = calloc(1, sizeof *e + plen + klen);
    if (!e) {
        return NULL;
    }
    e->hash = hash;
    e->plen = plen;
    e->klen = klen;
    if (plen) {
        memcpy(e->text, path, plen);
    }
    if (klen) {
        memcpy(e->text + plen, key, klen);
    }
    mesh__once_entry_t **bucket = &self->table[hash & (self->cap - 1)];
    e->chain = *bucket;
    *bucket = e;
    self->count++;
    self->running++;
    return e;
}

static bool s_add_waiter(mesh__once_entry_t *e, const uint8_t *uuid, uint64_t id)
{
    if (e->nwaiters == e->waiters_cap) {
        size_t cap = e->waiters_cap ? e->waiters_cap * 2 : S_WAITERS_MIN;
        mesh__once_waiter_t *w = realloc(e->waiters, cap * sizeof *w);
        if (!w) {
            return false;
        }
        e->waiters = w;
        e->waiters_cap = cap;
    }
    mesh__once_waiter_t *w = &e->waiters[e->nwaiters++];
    memcpy(w->uuid, uuid, MESH_ZRE_UUID_SIZE);
    w->id = id;
    return true;
}

mesh__once_t *mesh__once_new(const mesh__once_config_t *cfg)
{
    assert(cfg);
    if (cfg->retention_ms < 0) {
        return NULL;
    }
    mesh__once_t *self = calloc(1, sizeof *self);
    if (self) {
        self->cfg = *cfg;
    }
    return self;
}

void mesh__once_destroy(mesh__once_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__once_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->cap; i++) {
        while (self->table[i]) {
            mesh__once_entry_t *e = self->table[i];
            self->table[i] = e->chain;
            free(e->data);
            free(e->waiters);
            free(e);
        }
    }
    free(self->table);
    free(self);
}

mesh__once_outcome_t mesh__once_admit(mesh__once_t *self, const void *path, size_t plen,
                                      const void *key, size_t klen, const uint8_t *uuid,
                                      uint64_t id, int64_t now, mesh__once_result_t *out)
{
    assert(self && (path || !plen) && (key || !klen) && uuid && out);
    *out = (mesh__once_result_t){0};
    mesh__once_purge(self, now);
    uint64_t hash = s_hash(path, plen, key, klen);
    mesh__once_entry_t *e = s_find(self, hash, path, plen, key, klen);
    if (e && e->done) {
        out->data = e->data;
        out->size = e->size;
        return MESH__ONCE_REPLAY;
    }
    if (e) {
        return s_add_waiter(e, uuid, id) ? MESH__ONCE_JOINED : MESH__ONCE_DROPPED;
    }
    out->entry = s_new_entry(self, hash, path, plen, key, klen);
    return out->entry ? MESH__ONCE_RUN : MESH__ONCE_UNTRACKED;
}

bool mesh__once_finish(mesh__once_t *self, mesh__once_entry_t **entry_p, int32_t status,
                       const void *data, size_t size, int64_t now, mesh__once_waiter_t **waiters,
                       size_t *nwaiters)
{
    assert(self && entry_p && *entry_p && !(*entry_p)->done && (data || !size) && waiters &&
           nwaiters);
    mesh__once_entry_t *e = *entry_p;
    *entry_p = NULL;
    *waiters = e->waiters;
    *nwaiters = e->nwaiters;
    e->waiters = NULL;
    e->nwaiters = e->waiters_cap = 0;
    uint8_t *copy = NULL;
    if (status != 0 || size > self->cfg.bytes_max || (size && !(copy = malloc(size)))) {
        s_delete(self, e);
        return false;
    }
    if (size) {
        memcpy(copy, data, size);
    }
    while (self->bytes + size > self->cfg.bytes_max && self->head) {
        s_evict_oldest(self);
    }
    e->done = true;
    e->data = copy;
    e->size = size;
    e->expires = now + self->cfg.retention_ms;
    e->next = NULL;
    e->prev = self->tail;
    if (self->tail) {
        self->tail->next = e;
    } else {
        self->head = e;
    }
    self->tail = e;
    self->bytes += size;
    self->running--;
    return true;
}

void mesh__once_stats(const mesh__once_t *self, mesh__once_stats_t *out)
{
    assert(self && out);
    *out = (mesh__once_stats_t){.entries = self->count,
                                .running = self->running,
                                .bytes = self->bytes,
                                .expired = self->expired,
                                .evicted = self->evicted,
                                .steps = self->steps};
}
