/*  routing.c: the routing table. Members are found by UUID through a hash
    index; each path offered by some member has an entry holding its routes
    contiguously, the same routes ordered by load, and the selectors' per-path
    state. set_services and remove touch only the changed member's paths and
    topics; set_status moves the member's routes within each load order.

    Invariants, outside a call:
    - every path entry in by_path has n >= 1 routes, at most one per member;
    - a member's service s with s.entry != NULL owns routes[s.ri] of that
      entry, and aux[s.ri].si is s's index in the member's service array;
    - by_load is a permutation of 0..n-1 with loads[] ascending, and
      aux[by_load[k]].opos == k;
    - every topic entry in by_topic has n >= 1 members, each at most once. */
#include "routing.h"

#include <xxhash.h>

#include <mesh/defaults.h>
#include <mesh/error.h>

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_MAP_MIN_CAP 16 /* slots; a power of two */
#define S_VEC_MIN_CAP 4
#define S_NO_SLOT     SIZE_MAX
#define S_NO_ROUTE    UINT32_MAX

typedef struct s_path s_path_t;
typedef struct s_topic s_topic_t;

/*  One advertised service, in the member's block. */
typedef struct {
    char *path;
    size_t len;
    char **tags;
    size_t ntags;
    uint32_t flags;
    s_path_t *entry; /* index entry holding this member's route; NULL if not routed */
    uint32_t ri;     /* the route's index in entry */
} s_svc_t;

/*  One subscription, in the member's block. */
typedef struct {
    char *pattern;
    size_t len;
    bool prefix;
    s_topic_t *topic; /* exact subscriptions: the topic entry listing the member */
} s_sub_t;

struct mesh__member {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    char uuid_str[2 * MESH_ZRE_UUID_SIZE + 1];
    char *name;
    bool is_self;
    uint64_t hash;
    size_t slot;        /* in the table's member array */
    size_t prefix_slot; /* in the table's prefix-subscriber array, or S_NO_SLOT */
    int64_t last_heard;
    double load;
    double fitness;
    bool has_fitness;
    uint64_t inflight;
    uint64_t advertised_version; /* services_version of the last STATUS */
    uint64_t services_version;   /* version of the services held */
    void *block;                 /* one allocation: svcs, subs, tag arrays, strings */
    s_svc_t *svcs;
    size_t nsvcs;
    s_sub_t *subs;
    size_t nsubs;
};

typedef struct {
    uint32_t si;   /* the route's service index in its member */
    uint32_t opos; /* the route's position in by_load */
} s_aux_t;

struct s_path {
    uint64_t hash;
    size_t len;
    mesh__route_t *routes;
    s_aux_t *aux;
    uint32_t *by_load;
    double *loads;
    size_t n;
    size_t cap;
    uint64_t generation;
    size_t cursor;
    void *cache;
    uint64_t stamp;    /* the set_services pass that claimed this entry */
    uint32_t stamp_si; /* ... for that new service index */
    char path[];
};

struct s_topic {
    uint64_t hash;
    size_t len;
    mesh__member_t **members;
    size_t n;
    size_t cap;
    uint64_t stamp; /* the set_services pass that claimed this entry */
    char topic[];
};

/*  Open addressing, linear probing, backward-shift deletion. */
typedef struct {
    uint64_t hash;
    void *val; /* NULL: empty */
} s_slot_t;

typedef struct {
    s_slot_t *slots;
    size_t cap;
    size_t n;
} s_map_t;

typedef bool(s_key_eq_fn)(const void *val, const void *key, size_t len);

struct mesh__routing {
    int64_t ping_timeout;
    uint64_t rng;
    uint64_t stamp;      /* set_services passes */
    uint64_t generation; /* route-set changes, all paths */
    mesh__member_t **members;
    size_t nmembers;
    size_t members_cap;
    mesh__member_t **prefix_members; /* members with at least one prefix subscription */
    size_t nprefix;
    size_t prefix_cap;
    s_map_t by_uuid;
    s_map_t by_path;
    s_map_t by_topic;
};

/* ------------------------------------------------------------------------ */
/* hashing and small containers */

static uint64_t s_hash_bytes(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

uint64_t mesh__routing_hash(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

static bool s_member_eq(const void *val, const void *key, size_t len)
{
    return memcmp(((const mesh__member_t *)val)->uuid, key, MESH_ZRE_UUID_SIZE) == 0;
}

static bool s_path_eq(const void *val, const void *key, size_t len)
{
    const s_path_t *p = val;
    return p->len == len && memcmp(p->path, key, len) == 0;
}

static bool s_topic_eq(const void *val, const void *key, size_t len)
{
    const s_topic_t *t = val;
    return t->len == len && memcmp(t->topic, key, len) == 0;
}

static void *s_map_get(const s_map_t *map, uint64_t hash, const void *key, size_t len,
                       s_key_eq_fn *eq)
{
    if (map->cap == 0) {
        return NULL;
    }
    size_t mask = map->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const s_slot_t *s = &map->slots[i];
        if (!s->val) {
            return NULL;
        }
        if (s->hash == hash && eq(s->val, key, len)) {
            return s->val;
        }
    }
}

static void s_map_place(s_slot_t *slots, size_t cap, uint64_t hash, void *val)
{
    size_t mask = cap - 1;
    size_t i = hash & mask;
    while (slots[i].val) {
        i = (i + 1) & mask;
    }
    slots[i].hash = hash;
    slots[i].val = val;
}

/*  Room for one more entry (load factor kept at or below 3/4). */
static int s_map_reserve(s_map_t *map)
{
    if ((map->n + 1) * 4 <= map->cap * 3) {
        return 0;
    }
    size_t cap = map->cap ? map->cap * 2 : S_MAP_MIN_CAP;
    s_slot_t *slots = calloc(cap, sizeof *slots);
    if (!slots) {
        return MESH_ERR_NOMEM;
    }
    for (size_t i = 0; i < map->cap; i++) {
        if (map->slots[i].val) {
            s_map_place(slots, cap, map->slots[i].hash, map->slots[i].val);
        }
    }
    free(map->slots);
    map->slots = slots;
    map->cap = cap;
    return 0;
}

/*  After s_map_reserve; val must not be present. */
static void s_map_insert(s_map_t *map, uint64_t hash, void *val)
{
    assert((map->n + 1) * 4 <= map->cap * 3);
    s_map_place(map->slots, map->cap, hash, val);
    map->n++;
}

static void s_map_remove(s_map_t *map, uint64_t hash, const void *val)
{
    size_t mask = map->cap - 1;
    size_t i = hash & mask;
    while (map->slots[i].val != val) {
        assert(map->slots[i].val);
        i = (i + 1) & mask;
    }
    /*  Shift back every later entry of the cluster whose home slot is not
        cyclically within (i, j]. */
    for (size_t j = (i + 1) & mask; map->slots[j].val; j = (j + 1) & mask) {
        size_t home = map->slots[j].hash & mask;
        bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            map->slots[i] = map->slots[j];
            i = j;
        }
    }
    map->slots[i].val = NULL;
    map->n--;
}

/*  Grows *arr (elements of size el) to hold at least need. */
static int s_vec_reserve(void **arr, size_t *cap, size_t need, size_t el)
{
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : S_VEC_MIN_CAP;
    while (ncap < need) {
        ncap *= 2;
    }
    void *grown = realloc(*arr, ncap * el);
    if (!grown) {
        return MESH_ERR_NOMEM;
    }
    *arr = grown;
    *cap = ncap;
    return 0;
}

static uint64_t s_splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------------------ */
/* path entries: routes and their load order */

static s_path_t *s_path_find(const mesh__routing_t *self, const char *path, size_t len)
{
    return s_map_get(&self->by_path, s_hash_bytes(path, len), path, len, s_path_eq);
}

static s_path_t *s_path_get_or_new(mesh__routing_t *self, const char *path, size_t len)
{
    uint64_t hash = s_hash_bytes(path, len);
    s_path_t *p = s_map_get(&self->by_path, hash, path, len, s_path_eq);
    if (p) {
        return p;
    }
    if (s_map_reserve(&self->by_path)) {
        return NULL;
    }
    p = calloc(1, sizeof *p + len + 1);
    if (!p) {
        return NULL;
    }
    p->hash = hash;
    p->len = len;
    memcpy(p->path, path, len);
    p->path[len] = '\0';
    s_map_insert(&self->by_path, hash, p);
    return p;
}

static void s_path_free(mesh__routing_t *self, s_path_t *p)
{
    s_map_remove(&self->by_path, p->hash, p);
    free(p->routes);
    free(p->aux);
    free(p->by_load);
    free(p->loads);
    free(p->cache);
    free(p);
}

static int s_path_reserve(s_path_t *p, size_t need)
{
    if (need <= p->cap) {
        return 0;
    }
    size_t ncap = p->cap ? p->cap * 2 : S_VEC_MIN_CAP;
    while (ncap < need) {
        ncap *= 2;
    }
    /*  Each array keeps its new block as soon as it has one; cap moves last. */
    void *grown = realloc(p->routes, ncap * sizeof *p->routes);
    if (!grown) {
        return MESH_ERR_NOMEM;
    }
    p->routes = grown;
    if (!(grown = realloc(p->aux, ncap * sizeof *p->aux))) {
        return MESH_ERR_NOMEM;
    }
    p->aux = grown;
    if (!(grown = realloc(p->by_load, ncap * sizeof *p->by_load))) {
        return MESH_ERR_NOMEM;
    }
    p->by_load = grown;
    if (!(grown = realloc(p->loads, ncap * sizeof *p->loads))) {
        return MESH_ERR_NOMEM;
    }
    p->loads = grown;
    p->cap = ncap;
    return 0;
}

/*  First position in loads[lo, hi) holding a load above `load`. */
static size_t s_upper_bound(const double *loads, size_t lo, size_t hi, double load)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (loads[mid] <= load) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static void s_fix_opos(s_path_t *p, size_t from, size_t to)
{
    for (size_t k = from; k < to; k++) {
        p->aux[p->by_load[k]].opos = (uint32_t)k;
    }
}

/*  Adds m's route (its service si, the record svc) after s_path_reserve. */
static void s_path_add_route(mesh__routing_t *self, s_path_t *p, mesh__member_t *m, s_svc_t *svc,
                             size_t si)
{
    assert(p->n < p->cap);
    uint32_t ri = (uint32_t)p->n;
    p->routes[ri].member = m;
    p->routes[ri].tags = svc->tags;
    p->routes[ri].ntags = svc->ntags;
    p->aux[ri].si = (uint32_t)si;
    size_t pos = s_upper_bound(p->loads, 0, p->n, m->load);
    memmove(p->by_load + pos + 1, p->by_load + pos, (p->n - pos) * sizeof *p->by_load);
    memmove(p->loads + pos + 1, p->loads + pos, (p->n - pos) * sizeof *p->loads);
    p->by_load[pos] = ri;
    p->loads[pos] = m->load;
    p->n++;
    s_fix_opos(p, pos, p->n);
    svc->ri = ri;
    p->generation = ++self->generation;
}

/*  Removes route ri; the last route takes its index. */
static void s_path_remove_route(mesh__routing_t *self, s_path_t *p, uint32_t ri)
{
    assert(ri < p->n);
    size_t pos = p->aux[ri].opos;
    size_t last = p->n - 1;
    memmove(p->by_load + pos, p->by_load + pos + 1, (last - pos) * sizeof *p->by_load);
    memmove(p->loads + pos, p->loads + pos + 1, (last - pos) * sizeof *p->loads);
    s_fix_opos(p, pos, last);
    if (ri != last) {
        p->routes[ri] = p->routes[last];
        p->aux[ri] = p->aux[last];
        p->by_load[p->aux[ri].opos] = ri;
        mesh__member_t *owner = p->routes[ri].member;
        owner->svcs[p->aux[ri].si].ri = ri;
    }
    p->n = last;
    p->generation = ++self->generation;
}

/*  Moves route ri to its place in the load order for a new load. */
static void s_path_reorder(s_path_t *p, uint32_t ri, double load)
{
    size_t from = p->aux[ri].opos;
    size_t to;
    if (load >= p->loads[from]) {
        to = s_upper_bound(p->loads, from + 1, p->n, load) - 1;
        memmove(p->by_load + from, p->by_load + from + 1, (to - from) * sizeof *p->by_load);
        memmove(p->loads + from, p->loads + from + 1, (to - from) * sizeof *p->loads);
        p->by_load[to] = ri;
        p->loads[to] = load;
        s_fix_opos(p, from, to + 1);
    } else {
        to = s_upper_bound(p->loads, 0, from, load);
        memmove(p->by_load + to + 1, p->by_load + to, (from - to) * sizeof *p->by_load);
        memmove(p->loads + to + 1, p->loads + to, (from - to) * sizeof *p->loads);
        p->by_load[to] = ri;
        p->loads[to] = load;
        s_fix_opos(p, to, from + 1);
    }
}

/* ------------------------------------------------------------------------ */
/* topic entries: members with an exact subscription */

static s_topic_t *s_topic_get_or_new(mesh__routing_t *self, const char *topic, size_t len)
{
    uint64_t hash = s_hash_bytes(topic, len);
    s_topic_t *t = s_map_get(&self->by_topic, hash, topic, len, s_topic_eq);
    if (t) {
        return t;
    }
    if (s_map_reserve(&self->by_topic)) {
        return NULL;
    }
    t = calloc(1, sizeof *t + len + 1);
    if (!t) {
        return NULL;
    }
    t->hash = hash;
    t->len = len;
    memcpy(t->topic, topic, len);
    t->topic[len] = '\0';
    s_map_insert(&self->by_topic, hash, t);
    return t;
}

static void s_topic_free(mesh__routing_t *self, s_topic_t *t)
{
    s_map_remove(&self->by_topic, t->hash, t);
    free(t->members);
    free(t);
}

static void s_topic_remove_member(s_topic_t *t, const mesh__member_t *m)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->members[i] == m) {
            t->members[i] = t->members[--t->n];
            return;
        }
    }
    assert(!"member missing from its topic");
}

static void s_prefix_remove(mesh__routing_t *self, mesh__member_t *m)
{
    if (m->prefix_slot == S_NO_SLOT) {
        return;
    }
    mesh__member_t *moved = self->prefix_members[--self->nprefix];
    self->prefix_members[m->prefix_slot] = moved;
    moved->prefix_slot = m->prefix_slot;
    m->prefix_slot = S_NO_SLOT;
}

/* ------------------------------------------------------------------------ */
/* table */

mesh__routing_t *mesh__routing_new(int ping_timeout_ms, uint64_t rng_seed)
{
    mesh__routing_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->ping_timeout = ping_timeout_ms;
    self->rng = rng_seed;
    return self;
}

static void s_member_free(mesh__member_t *m)
{
    free(m->block);
    free(m->name);
    free(m);
}

void mesh__routing_destroy(mesh__routing_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__routing_t *self = *self_p;
    for (size_t i = 0; i < self->by_path.cap; i++) {
        s_path_t *p = self->by_path.slots[i].val;
        if (p) {
            free(p->routes);
            free(p->aux);
            free(p->by_load);
            free(p->loads);
            free(p->cache);
            free(p);
        }
    }
    for (size_t i = 0; i < self->by_topic.cap; i++) {
        s_topic_t *t = self->by_topic.slots[i].val;
        if (t) {
            free(t->members);
            free(t);
        }
    }
    for (size_t i = 0; i < self->nmembers; i++) {
        s_member_free(self->members[i]);
    }
    free(self->by_path.slots);
    free(self->by_topic.slots);
    free(self->by_uuid.slots);
    free(self->members);
    free(self->prefix_members);
    free(self);
    *self_p = NULL;
}

static void s_touch(mesh__member_t *m, int64_t now)
{
    if (now > m->last_heard) {
        m->last_heard = now;
    }
}

mesh__member_t *mesh__routing_add(mesh__routing_t *self, const uint8_t *uuid, const char *name,
                                  bool is_self, int64_t now)
{
    assert(self);
    if (!uuid) {
        return NULL;
    }
    mesh__member_t *m = mesh__routing_find(self, uuid);
    if (m) {
        s_touch(m, now);
        return m;
    }
    if (!name) {
        name = "";
    }
    if (strlen(name) > MESH_ZRE_STRING_MAX) {
        return NULL;
    }
    if (s_map_reserve(&self->by_uuid) || s_vec_reserve((void **)&self->members, &self->members_cap,
                                                       self->nmembers + 1, sizeof *self->members)) {
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m || !(m->name = strdup(name))) {
        free(m);
        return NULL;
    }
    memcpy(m->uuid, uuid, MESH_ZRE_UUID_SIZE);
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < MESH_ZRE_UUID_SIZE; i++) {
        m->uuid_str[2 * i] = hex[uuid[i] >> 4];
        m->uuid_str[2 * i + 1] = hex[uuid[i] & 0x0f];
    }
    m->uuid_str[2 * MESH_ZRE_UUID_SIZE] = '\0';
    m->is_self = is_self;
    m->hash = s_hash_bytes(uuid, MESH_ZRE_UUID_SIZE);
    m->prefix_slot = S_NO_SLOT;
    m->last_heard = now;
    m->slot = self->nmembers;
    self->members[self->nmembers++] = m;
    s_map_insert(&self->by_uuid, m->hash, m);
    return m;
}

void mesh__routing_remove(mesh__routing_t *self, const uint8_t *uuid)
{
    assert(self);
    mesh__member_t *m = uuid ? mesh__routing_find(self, uuid) : NULL;
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->nsvcs; i++) {
        s_path_t *p = m->svcs[i].entry;
        if (p) {
            s_path_remove_route(self, p, m->svcs[i].ri);
            if (p->n == 0) {
                s_path_free(self, p);
            }
        }
    }
    for (size_t i = 0; i < m->nsubs; i++) {
        s_topic_t *t = m->subs[i].topic;
        if (t) {
            s_topic_remove_member(t, m);
            if (t->n == 0) {
                s_topic_free(self, t);
            }
        }
    }
    s_prefix_remove(self, m);
    s_map_remove(&self->by_uuid, m->hash, m);
    mesh__member_t *moved = self->members[--self->nmembers];
    self->members[m->slot] = moved;
    moved->slot = m->slot;
    s_member_free(m);
}

mesh__member_t *mesh__routing_find(const mesh__routing_t *self, const uint8_t *uuid)
{
    assert(self);
    if (!uuid) {
        return NULL;
    }
    return s_map_get(&self->by_uuid, s_hash_bytes(uuid, MESH_ZRE_UUID_SIZE), uuid,
                     MESH_ZRE_UUID_SIZE, s_member_eq);
}

size_t mesh__routing_count(const mesh__routing_t *self)
{
    assert(self);
    return self->nmembers;
}

mesh__member_t *mesh__routing_next(const mesh__routing_t *self, size_t *pos)
{
    assert(self && pos);
    if (*pos >= self->nmembers) {
        return NULL;
    }
    return self->members[(*pos)++];
}

/* ------------------------------------------------------------------------ */
/* services and subscriptions */

/*  A slice that can become a C string of at most max bytes. */
static int s_check_slice(mesh__slice_t s, size_t max)
{
    if (s.len > max) {
        return MESH_ERR_TOOLONG;
    }
    if (s.len > 0 && (!s.ptr || memchr(s.ptr, '\0', s.len))) {
        return MESH_ERR_INVAL;
    }
    return 0;
}

/*  Checks every limit and counts what the member's block needs. */
static int s_validate(const mesh__svc_entry_t *svcs, size_t nsvcs, const mesh__sub_entry_t *subs,
                      size_t nsubs, size_t *ntags_total, size_t *chars)
{
    if (nsvcs > MESH_CODEC_SERVICES_MAX || nsubs > MESH_CODEC_SUBS_MAX) {
        return MESH_ERR_TOOLONG;
    }
    if ((nsvcs && !svcs) || (nsubs && !subs)) {
        return MESH_ERR_INVAL;
    }
    *ntags_total = 0;
    *chars = 0;
    for (size_t i = 0; i < nsvcs; i++) {
        const mesh__svc_entry_t *e = &svcs[i];
        int rc = s_check_slice(e->path, MESH_CODEC_PATH_MAX);
        if (rc) {
            return rc;
        }
        if (e->path.len == 0) {
            return MESH_ERR_INVAL;
        }
        if (e->ntags > MESH_CODEC_TAGS_MAX) {
            return MESH_ERR_TOOLONG;
        }
        *chars += e->path.len + 1;
        for (size_t k = 0; k < e->ntags; k++) {
            if ((rc = s_check_slice(e->tags[k], MESH_CODEC_TAG_MAX))) {
                return rc;
            }
            *chars += e->tags[k].len + 1;
        }
        *ntags_total += e->ntags;
    }
    for (size_t i = 0; i < nsubs; i++) {
        int rc = s_check_slice(subs[i].pattern, MESH_CODEC_PATH_MAX);
        if (rc) {
            return rc;
        }
        if (subs[i].pattern.len == 0 && !subs[i].prefix) {
            return MESH_ERR_INVAL;
        }
        *chars += subs[i].pattern.len + 1;
    }
    return 0;
}

static char *s_put_str(char **cursor, mesh__slice_t s)
{
    char *at = *cursor;
    if (s.len) {
        memcpy(at, s.ptr, s.len);
    }
    at[s.len] = '\0';
    *cursor += s.len + 1;
    return at;
}

/*  One block: svcs, subs, tag pointer arrays, then the strings. */
static void *s_copy_block(const mesh__svc_entry_t *svcs, size_t nsvcs,
                          const mesh__sub_entry_t *subs, size_t nsubs, size_t ntags_total,
                          size_t chars, s_svc_t **svcs_out, s_sub_t **subs_out)
{
    size_t size =
        nsvcs * sizeof(s_svc_t) + nsubs * sizeof(s_sub_t) + ntags_total * sizeof(char *) + chars;
    uint8_t *block = malloc(size ? size : 1);
    if (!block) {
        return NULL;
    }
    s_svc_t *sv = (s_svc_t *)block;
    s_sub_t *sb = (s_sub_t *)(block + nsvcs * sizeof(s_svc_t));
    char **tagp = (char **)(block + nsvcs * sizeof(s_svc_t) + nsubs * sizeof(s_sub_t));
    char *str = (char *)(tagp + ntags_total);
    for (size_t i = 0; i < nsvcs; i++) {
        sv[i].path = s_put_str(&str, svcs[i].path);
        sv[i].len = svcs[i].path.len;
        sv[i].tags = tagp;
        sv[i].ntags = svcs[i].ntags;
        for (size_t k = 0; k < svcs[i].ntags; k++) {
            *tagp++ = s_put_str(&str, svcs[i].tags[k]);
        }
        sv[i].flags = svcs[i].flags;
        sv[i].entry = NULL;
        sv[i].ri = S_NO_ROUTE;
    }
    for (size_t i = 0; i < nsubs; i++) {
        sb[i].pattern = s_put_str(&str, subs[i].pattern);
        sb[i].len = subs[i].pattern.len;
        sb[i].prefix = subs[i].prefix;
        sb[i].topic = NULL;
    }
    *svcs_out = sv;
    *subs_out = sb;
    return block;
}

/*  Claims the index entries the new lists need and reserves room in them,
    so that the commit cannot fail. Duplicates (a path or an exact pattern
    listed twice) keep only their first occurrence indexed. */
static int s_prepare(mesh__routing_t *self, const mesh__member_t *m, s_svc_t *sv, size_t nsv,
                     s_sub_t *sb, size_t nsb, uint64_t stamp)
{
    for (size_t i = 0; i < nsv; i++) {
        if (sv[i].flags & MESH_SVC_INACTIVE) {
            continue;
        }
        s_path_t *p = s_path_get_or_new(self, sv[i].path, sv[i].len);
        if (!p) {
            return MESH_ERR_NOMEM;
        }
        if (p->stamp == stamp) {
            continue;
        }
        p->stamp = stamp;
        p->stamp_si = (uint32_t)i;
        sv[i].entry = p;
        if (s_path_reserve(p, p->n + 1)) {
            return MESH_ERR_NOMEM;
        }
    }
    bool prefix = false;
    for (size_t i = 0; i < nsb; i++) {
        if (sb[i].prefix) {
            prefix = true;
            continue;
        }
        s_topic_t *t = s_topic_get_or_new(self, sb[i].pattern, sb[i].len);
        if (!t) {
            return MESH_ERR_NOMEM;
        }
        if (t->stamp == stamp) {
            continue;
        }
        t->stamp = stamp;
        sb[i].topic = t;
        if (s_vec_reserve((void **)&t->members, &t->cap, t->n + 1, sizeof *t->members)) {
            return MESH_ERR_NOMEM;
        }
    }
    if (prefix && m->prefix_slot == S_NO_SLOT &&
        s_vec_reserve((void **)&self->prefix_members, &self->prefix_cap, self->nprefix + 1,
                      sizeof *self->prefix_members)) {
        return MESH_ERR_NOMEM;
    }
    return 0;
}

/*  After a failed s_prepare: drops the entries it created (still empty). */
static void s_unprepare(mesh__routing_t *self, s_svc_t *sv, size_t nsv, s_sub_t *sb, size_t nsb)
{
    for (size_t i = 0; i < nsv; i++) {
        if (sv[i].entry && sv[i].entry->n == 0) {
            s_path_free(self, sv[i].entry);
        }
    }
    for (size_t i = 0; i < nsb; i++) {
        if (sb[i].topic && sb[i].topic->n == 0) {
            s_topic_free(self, sb[i].topic);
        }
    }
}

static void s_commit(mesh__routing_t *self, mesh__member_t *m, s_svc_t *sv, size_t nsv, s_sub_t *sb,
                     size_t nsb, uint64_t stamp)
{
    /*  Paths the member keeps keep their route (and place in the load order);
        dropped paths lose it; new paths gain one. */
    for (size_t i = 0; i < m->nsvcs; i++) {
        s_path_t *p = m->svcs[i].entry;
        if (!p) {
            continue;
        }
        uint32_t ri = m->svcs[i].ri;
        if (p->stamp == stamp) {
            s_svc_t *keep = &sv[p->stamp_si];
            keep->ri = ri;
            p->routes[ri].tags = keep->tags;
            p->routes[ri].ntags = keep->ntags;
            p->aux[ri].si = p->stamp_si;
        } else {
            s_path_remove_route(self, p, ri);
            if (p->n == 0) {
                s_path_free(self, p);
            }
        }
    }
    for (size_t i = 0; i < nsv; i++) {
        if (sv[i].entry && sv[i].ri == S_NO_ROUTE) {
            s_path_add_route(self, sv[i].entry, m, &sv[i], i);
        }
    }
    for (size_t i = 0; i < m->nsubs; i++) {
        s_topic_t *t = m->subs[i].topic;
        if (t) {
            s_topic_remove_member(t, m);
            if (t->n == 0 && t->stamp != stamp) {
                s_topic_free(self, t);
            }
        }
    }
    bool prefix = false;
    for (size_t i = 0; i < nsb; i++) {
        if (sb[i].topic) {
            assert(sb[i].topic->n < sb[i].topic->cap);
            sb[i].topic->members[sb[i].topic->n++] = m;
        }
        prefix = prefix || sb[i].prefix;
    }
    if (prefix && m->prefix_slot == S_NO_SLOT) {
        assert(self->nprefix < self->prefix_cap);
        m->prefix_slot = self->nprefix;
        self->prefix_members[self->nprefix++] = m;
    } else if (!prefix) {
        s_prefix_remove(self, m);
    }
}

int mesh__routing_set_services(mesh__routing_t *self, mesh__member_t *m, uint64_t version,
                               const mesh__svc_entry_t *svcs, size_t nsvcs,
                               const mesh__sub_entry_t *subs, size_t nsubs, int64_t now)
{
    assert(self && m);
    if (version < m->services_version) {
        return 0;
    }
    size_t ntags_total, chars;
    int rc = s_validate(svcs, nsvcs, subs, nsubs, &ntags_total, &chars);
    if (rc) {
        return rc;
    }
    s_svc_t *sv;
    s_sub_t *sb;
    void *block = s_copy_block(svcs, nsvcs, subs, nsubs, ntags_total, chars, &sv, &sb);
    if (!block) {
        return MESH_ERR_NOMEM;
    }
    uint64_t stamp = ++self->stamp;
    if ((rc = s_prepare(self, m, sv, nsvcs, sb, nsubs, stamp))) {
        s_unprepare(self, sv, nsvcs, sb, nsubs);
        free(block);
        return rc;
    }
    s_commit(self, m, sv, nsvcs, sb, nsubs, stamp);
    free(m->block);
    m->block = block;
    m->svcs = sv;
    m->nsvcs = nsvcs;
    m->subs = sb;
    m->nsubs = nsubs;
    m->services_version = version;
    s_touch(m, now);
    return 0;
}

void mesh__routing_set_status(mesh__routing_t *self, mesh__member_t *m, double load,
                              const double *fitness, uint64_t services_version, uint64_t inflight,
                              int64_t now)
{
    assert(self && m);
    if (isnan(load)) {
        load = HUGE_VAL; /* keeps the load orders sorted; chosen last */
    }
    if (load != m->load) {
        m->load = load;
        for (size_t i = 0; i < m->nsvcs; i++) {
            if (m->svcs[i].entry) {
                s_path_reorder(m->svcs[i].entry, m->svcs[i].ri, load);
            }
        }
    }
    m->has_fitness = fitness != NULL;
    m->fitness = fitness ? *fitness : 0.0;
    m->advertised_version = services_version;
    m->inflight = inflight;
    s_touch(m, now);
}

void mesh__routing_heard(mesh__routing_t *self, mesh__member_t *m, int64_t now)
{
    assert(self && m);
    s_touch(m, now);
}

const mesh__route_t *mesh__routing_routes(const mesh__routing_t *self, const char *path,
                                          size_t *count)
{
    assert(self);
    const s_path_t *p = path ? s_path_find(self, path, strlen(path)) : NULL;
    if (count) {
        *count = p ? p->n : 0;
    }
    return p ? p->routes : NULL;
}

static bool s_prefix_match(const mesh__member_t *m, const char *topic)
{
    for (size_t i = 0; i < m->nsubs; i++) {
        if (m->subs[i].prefix && strncmp(topic, m->subs[i].pattern, m->subs[i].len) == 0) {
            return true;
        }
    }
    return false;
}

size_t mesh__routing_subscribers(const mesh__routing_t *self, const char *topic, int64_t now,
                                 mesh__member_t **out, size_t cap)
{
    assert(self);
    if (!topic) {
        return 0;
    }
    size_t found = 0;
    /*  Each member once: prefix subscribers first, then exact subscribers
        that no prefix of theirs already matched. */
    for (size_t i = 0; i < self->nprefix; i++) {
        mesh__member_t *m = self->prefix_members[i];
        if (mesh__member_alive(self, m, now) && s_prefix_match(m, topic)) {
            if (found < cap) {
                out[found] = m;
            }
            found++;
        }
    }
    size_t len = strlen(topic);
    const s_topic_t *t =
        s_map_get(&self->by_topic, s_hash_bytes(topic, len), topic, len, s_topic_eq);
    for (size_t i = 0; t && i < t->n; i++) {
        mesh__member_t *m = t->members[i];
        if (!mesh__member_alive(self, m, now)) {
            continue;
        }
        if (m->prefix_slot != S_NO_SLOT && s_prefix_match(m, topic)) {
            continue;
        }
        if (found < cap) {
            out[found] = m;
        }
        found++;
    }
    return found;
}

/* ------------------------------------------------------------------------ */
/* members */

const uint8_t *mesh__member_uuid(const mesh__member_t *m)
{
    return m->uuid;
}

const char *mesh__member_uuid_str(const mesh__member_t *m)
{
    return m->uuid_str;
}

const char *mesh__member_name(const mesh__member_t *m)
{
    return m->name;
}

bool mesh__member_is_self(const mesh__member_t *m)
{
    return m->is_self;
}

bool mesh__member_alive(const mesh__routing_t *rt, const mesh__member_t *m, int64_t now)
{
    return m->is_self || now - m->last_heard <= rt->ping_timeout;
}

double mesh__member_load(const mesh__member_t *m)
{
    return m->load;
}

bool mesh__member_fitness(const mesh__member_t *m, double *fitness)
{
    if (m->has_fitness && fitness) {
        *fitness = m->fitness;
    }
    return m->has_fitness;
}

uint64_t mesh__member_inflight(const mesh__member_t *m)
{
    return m->inflight;
}

uint64_t mesh__member_services_version(const mesh__member_t *m)
{
    return m->services_version;
}

int64_t mesh__member_last_heard(const mesh__member_t *m)
{
    return m->last_heard;
}

size_t mesh__member_service_count(const mesh__member_t *m)
{
    return m->nsvcs;
}

const char *mesh__member_service_at(const mesh__member_t *m, size_t i, const char *const **tags,
                                    size_t *ntags)
{
    if (i >= m->nsvcs) {
        return NULL;
    }
    if (tags) {
        *tags = (const char *const *)m->svcs[i].tags;
    }
    if (ntags) {
        *ntags = m->svcs[i].ntags;
    }
    return m->svcs[i].path;
}

/* ------------------------------------------------------------------------ */
/* for selector.c */

bool mesh__routing_path_state(mesh__routing_t *rt, const char *path, mesh__path_state_t *out)
{
    assert(rt && out);
    s_path_t *p = path ? s_path_find(rt, path, strlen(path)) : NULL;
    if (!p) {
        return false;
    }
    out->routes = p->routes;
    out->n = p->n;
    out->by_load = p->by_load;
    out->loads = p->loads;
    out->generation = p->generation;
    out->cursor = &p->cursor;
    out->cache = &p->cache;
    return true;
}

uint64_t mesh__routing_random(mesh__routing_t *rt)
{
    assert(rt);
    return s_splitmix(&rt->rng);
}
