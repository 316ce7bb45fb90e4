/*  selector.c: choosing a route for a path among the alive members that
    offer it. Every kind applies the same filters (alive, every requested
    tag present, not excluded) and works on the table's per-path state:

    - LEAST_LOADED walks the path's load order from the front to the first
      route that qualifies, finds the end of its equal-load run by binary
      search, and draws one of the run at random (a random probe, then a
      reservoir draw over the run if the probe does not qualify): O(log n)
      when the front qualifies.
    - ROUND_ROBIN keeps a cursor per path and takes the next route that
      qualifies: O(1) when it does.
    - KEY looks the key's hash up on a per-path consistent-hash ring
      (MESH_SEL_KEY_VNODES virtual nodes per member, placed by the member's
      UUID alone; bucketed by the top bits of the hash, so a lookup touches
      a bucket table entry and a node or two) and walks clockwise to the
      first route that qualifies. The ring is rebuilt lazily, in linear
      time, when the path's route set has changed. A member
      that leaves (or falls silent, or is filtered out) hands over only its
      own keys, each to the next member clockwise.
    - RANDOM probes one route at random, then draws among those that qualify.
    - DIRECT finds the member by UUID, then its route.
    - CUSTOM hands the qualifying candidates to a callback. */
#include "routing.h"

#include <mesh/defaults.h>

#include <stdlib.h>
#include <string.h>

#define S_GOLDEN        0x9e3779b97f4a7c15ULL
#define S_RING_BITS_MAX 26 /* ring buckets: at most 2^26 (256 MiB of table) */

typedef struct {
    mesh__routing_t *rt;
    const mesh__select_t *sel;
    int64_t now;
    bool plain; /* no tag or exclusion filter */
} s_filter_t;

/*  A virtual node of the KEY ring. */
typedef struct {
    uint64_t hash;
    uint32_t ri; /* route index */
} s_vnode_t;

/*  The ring, sorted by hash and bucketed by the top bits of the hash (about
    one virtual node per bucket): bucket b holds v[start[b], start[b + 1]),
    so a lookup reads start[] once and then one or two nodes. One block:
    this header, v[n], then start[nbuckets + 1]. */
typedef struct {
    uint64_t generation; /* of the route set it was built from */
    size_t n;
    unsigned shift; /* the bucket of a hash is hash >> shift */
    uint32_t *start;
    s_vnode_t v[];
} s_ring_t;

/* ------------------------------------------------------------------------ */
/* filters and randomness */

static bool s_has_tag(const mesh__route_t *r, const char *tag)
{
    for (size_t i = 0; i < r->ntags; i++) {
        if (strcmp(r->tags[i], tag) == 0) {
            return true;
        }
    }
    return false;
}

static bool s_pass(const s_filter_t *f, const mesh__route_t *r)
{
    if (!mesh__member_alive(f->rt, r->member, f->now)) {
        return false;
    }
    if (f->plain) {
        return true;
    }
    const mesh__select_t *sel = f->sel;
    for (size_t i = 0; i < sel->nexclude; i++) {
        if (sel->exclude[i] == r->member) {
            return false;
        }
    }
    for (size_t i = 0; i < sel->ntags; i++) {
        if (!s_has_tag(r, sel->tags[i])) {
            return false;
        }
    }
    return true;
}

/*  Uniform in [0, n), n < 2^32. */
static size_t s_below(mesh__routing_t *rt, size_t n)
{
    return (size_t)(((mesh__routing_random(rt) >> 32) * (uint64_t)n) >> 32);
}

static uint64_t s_mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t s_hash(const void *data, size_t len)
{
    return mesh__routing_hash(data, len);
}

/*  One route drawn uniformly among those of positions [lo, hi) of `order`
    (or of the routes themselves when order is NULL) that pass the filter:
    a probe, then a reservoir draw if the probe fails. */
static const mesh__route_t *s_draw(const mesh__path_state_t *ps, const uint32_t *order, size_t lo,
                                   size_t hi, const s_filter_t *f)
{
    size_t k = lo + s_below(f->rt, hi - lo);
    const mesh__route_t *r = &ps->routes[order ? order[k] : k];
    if (s_pass(f, r)) {
        return r;
    }
    const mesh__route_t *chosen = NULL;
    size_t seen = 0;
    for (k = lo; k < hi; k++) {
        r = &ps->routes[order ? order[k] : k];
        if (s_pass(f, r) && s_below(f->rt, ++seen) == 0) {
            chosen = r;
        }
    }
    return chosen;
}

/* ------------------------------------------------------------------------ */
/* the kinds */

static const mesh__route_t *s_least_loaded(const mesh__path_state_t *ps, const s_filter_t *f)
{
    size_t k = 0;
    while (k < ps->n && !s_pass(f, &ps->routes[ps->by_load[k]])) {
        k++;
    }
    if (k == ps->n) {
        return NULL;
    }
    /*  End of the run of loads equal to loads[k]. */
    double load = ps->loads[k];
    size_t lo = k + 1;
    size_t hi = ps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ps->loads[mid] <= load) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == k + 1) {
        return &ps->routes[ps->by_load[k]];
    }
    return s_draw(ps, ps->by_load, k, lo, f);
}

static const mesh__route_t *s_round_robin(const mesh__path_state_t *ps, const s_filter_t *f)
{
    size_t c = *ps->cursor < ps->n ? *ps->cursor : 0;
    for (size_t i = 0; i < ps->n; i++) {
        const mesh__route_t *r = &ps->routes[c];
        if (s_pass(f, r)) {
            *ps->cursor = c + 1;
            return r;
        }
        if (++c == ps->n) {
            c = 0;
        }
    }
    return NULL;
}

/*  Ring order: by hash, then (vanishingly rare) by member UUID, so that the
    ring depends on the members alone, not on the order of their routes. */
static bool s_vnode_less(const mesh__path_state_t *ps, const s_vnode_t *a, const s_vnode_t *b)
{
    if (a->hash != b->hash) {
        return a->hash < b->hash;
    }
    return memcmp(mesh__member_uuid(ps->routes[a->ri].member),
                  mesh__member_uuid(ps->routes[b->ri].member), MESH_ZRE_UUID_SIZE) < 0;
}

/*  The path's ring, rebuilt if its route set changed: a counting sort on
    the top bits of the hashes (they are uniform), then an insertion sort
    within each bucket. NULL if out of memory. */
static const s_ring_t *s_ring(const mesh__path_state_t *ps)
{
    s_ring_t *ring = *ps->cache;
    if (ring && ring->generation == ps->generation) {
        return ring;
    }
    size_t n = ps->n * MESH_SEL_KEY_VNODES;
    if (n >= UINT32_MAX) {
        return NULL;
    }
    unsigned bits = 1;
    while (bits < S_RING_BITS_MAX && ((size_t)2 << bits) <= n) {
        bits++;
    }
    size_t nb = (size_t)1 << bits;
    s_vnode_t *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        return NULL;
    }
    free(ring);
    *ps->cache = ring = malloc(sizeof *ring + n * sizeof ring->v[0] + (nb + 1) * sizeof(uint32_t));
    if (!ring) {
        free(tmp);
        return NULL;
    }
    ring->generation = ps->generation;
    ring->n = n;
    ring->shift = 64 - bits;
    ring->start = (uint32_t *)(ring->v + n);
    uint32_t *start = ring->start;
    memset(start, 0, (nb + 1) * sizeof *start);
    for (size_t ri = 0; ri < ps->n; ri++) {
        uint64_t base = s_hash(mesh__member_uuid(ps->routes[ri].member), MESH_ZRE_UUID_SIZE);
        for (size_t i = 0; i < MESH_SEL_KEY_VNODES; i++) {
            s_vnode_t *vn = &tmp[ri * MESH_SEL_KEY_VNODES + i];
            vn->hash = s_mix64(base + (i + 1) * S_GOLDEN);
            vn->ri = (uint32_t)ri;
            start[(vn->hash >> ring->shift) + 1]++;
        }
    }
    for (size_t b = 1; b <= nb; b++) {
        start[b] += start[b - 1];
    }
    /*  Scatter with start[b] as bucket b's cursor; it ends at bucket b + 1's
        start, so shifting the table by one restores it. */
    for (size_t i = 0; i < n; i++) {
        ring->v[start[tmp[i].hash >> ring->shift]++] = tmp[i];
    }
    memmove(start + 1, start, nb * sizeof *start);
    start[0] = 0;
    free(tmp);
    for (size_t b = 0; b < nb; b++) {
        for (size_t i = start[b] + 1; i < start[b + 1]; i++) {
            s_vnode_t vn = ring->v[i];
            size_t j = i;
            for (; j > start[b] && s_vnode_less(ps, &vn, &ring->v[j - 1]); j--) {
                ring->v[j] = ring->v[j - 1];
            }
            ring->v[j] = vn;
        }
    }
    return ring;
}

static const mesh__route_t *s_key(const mesh__path_state_t *ps, const s_filter_t *f)
{
    const s_ring_t *ring = s_ring(ps);
    if (!ring || ring->n == 0) {
        return NULL;
    }
    const char *key = f->sel->key ? f->sel->key : "";
    uint64_t h = s_hash(key, strlen(key));
    /*  The first virtual node at or after h: in h's bucket, or the first of
        a later bucket (start[b + 1]). */
    size_t b = (size_t)(h >> ring->shift);
    size_t i = ring->start[b];
    while (i < ring->start[b + 1] && ring->v[i].hash < h) {
        i++;
    }
    for (size_t step = 0; step < ring->n; step++, i++) {
        if (i == ring->n) {
            i = 0;
        }
        const mesh__route_t *r = &ps->routes[ring->v[i].ri];
        if (s_pass(f, r)) {
            return r;
        }
    }
    return NULL;
}

static const mesh__route_t *s_direct(const mesh__path_state_t *ps, const s_filter_t *f)
{
    if (!f->sel->direct) {
        return NULL;
    }
    const mesh__member_t *m = mesh__routing_find(f->rt, f->sel->direct);
    if (!m) {
        return NULL;
    }
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->routes[i].member == m) {
            return s_pass(f, &ps->routes[i]) ? &ps->routes[i] : NULL;
        }
    }
    return NULL;
}

static const mesh__route_t *s_custom(const mesh__path_state_t *ps, const s_filter_t *f)
{
    const mesh__select_t *sel = f->sel;
    if (!sel->custom || ps->n == 0) {
        return NULL;
    }
    mesh__candidate_t *cands = malloc(ps->n * (sizeof *cands + sizeof(uint32_t)));
    if (!cands) {
        return NULL;
    }
    uint32_t *index = (uint32_t *)(cands + ps->n);
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++) {
        const mesh__route_t *r = &ps->routes[i];
        if (!s_pass(f, r)) {
            continue;
        }
        mesh__candidate_t *c = &cands[n];
        c->id = mesh__member_uuid_str(r->member);
        c->name = mesh__member_name(r->member);
        c->load = mesh__member_load(r->member);
        c->has_fitness = mesh__member_fitness(r->member, &c->fitness);
        if (!c->has_fitness) {
            c->fitness = 0.0;
        }
        c->inflight = mesh__member_inflight(r->member);
        c->tags = (const char *const *)r->tags;
        c->ntags = r->ntags;
        index[n++] = (uint32_t)i;
    }
    const mesh__route_t *chosen = NULL;
    if (n > 0) {
        int at = sel->custom(cands, n, sel->key, sel->custom_arg);
        if (at >= 0 && (size_t)at < n) {
            chosen = &ps->routes[index[at]];
        }
    }
    free(cands);
    return chosen;
}

/* ------------------------------------------------------------------------ */

const mesh__route_t *mesh__select_one(mesh__routing_t *rt, const char *path,
                                      const mesh__select_t *sel, int64_t now)
{
    mesh__path_state_t ps;
    if (!rt || !sel || !mesh__routing_path_state(rt, path, &ps) || ps.n == 0) {
        return NULL;
    }
    s_filter_t f = {rt, sel, now, sel->ntags == 0 && sel->nexclude == 0};
    switch (sel->kind) {
    case MESH_SEL_LEAST_LOADED:
        return s_least_loaded(&ps, &f);
    case MESH_SEL_RANDOM:
        return s_draw(&ps, NULL, 0, ps.n, &f);
    case MESH_SEL_ROUND_ROBIN:
        return s_round_robin(&ps, &f);
    case MESH_SEL_KEY:
        return s_key(&ps, &f);
    case MESH_SEL_DIRECT:
        return s_direct(&ps, &f);
    case MESH_SEL_CUSTOM:
        return s_custom(&ps, &f);
    case MESH_SEL_ALL:
    default:
        return NULL;
    }
}

size_t mesh__select_all(mesh__routing_t *rt, const char *path, const mesh__select_t *sel,
                        int64_t now, const mesh__route_t **out, size_t cap)
{
    mesh__path_state_t ps;
    if (!rt || !sel || !mesh__routing_path_state(rt, path, &ps)) {
        return 0;
    }
    s_filter_t f = {rt, sel, now, sel->ntags == 0 && sel->nexclude == 0};
    size_t found = 0;
    for (size_t i = 0; i < ps.n; i++) {
        if (s_pass(&f, &ps.routes[i])) {
            if (found < cap) {
                out[found] = &ps.routes[i];
            }
            found++;
        }
    }
    return found;
}

int mesh__select_kind_from_name(const char *name)
{
    static const struct {
        const char *name;
        mesh__sel_kind_t kind;
    } s_names[] = {
        {"least_loaded", MESH_SEL_LEAST_LOADED},
        {"random", MESH_SEL_RANDOM},
        {"round_robin", MESH_SEL_ROUND_ROBIN},
        {"all", MESH_SEL_ALL},
        {"key", MESH_SEL_KEY},
        {"direct", MESH_SEL_DIRECT},
    };
    for (size_t i = 0; name && i < sizeof s_names / sizeof s_names[0]; i++) {
        if (strcmp(name, s_names[i].name) == 0) {
            return (int)s_names[i].kind;
        }
    }
    return -1;
}
