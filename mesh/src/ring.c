/*  ring.c: the cluster ring (see ring.h for the placement rules).

    Layout: one sorted array of 64-bit nodes, each a virtual node's 48-bit
    position in the high bits and its member's rank in the low 16 bits, so
    that plain integer order is ring order with ties broken by rank, and a
    lookup reads a single array. A bucket table indexed by the top bits of
    the position (about S_NODES_PER_BUCKET nodes per bucket) narrows the
    search: bucket b holds node[start[b], start[b + 1]), so a lookup reads
    start[] once, then a node or two.

    A rebuild keeps what it can: the nodes of members still present are
    already in order (ranks are renumbered, but in the same order), so only
    the nodes of members that joined are hashed and sorted (an LSD radix
    sort), then merged in. A join or a leave costs one sequential pass over
    the ring; a first build, hashing and sorting every node.

    All tables live in one block: node[n], share[count], start[nb + 1],
    uuid[count]; the header points into it. */
#include "ring.h"

#include <mesh/error.h>

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define S_RANK_BITS        16
#define S_RANK_MASK        ((UINT64_C(1) << S_RANK_BITS) - 1)
#define S_POS_SPAN         281474976710656.0 /* 2^48 positions */
#define S_NODES_PER_BUCKET 2
#define S_BUCKET_BITS_MAX  24
#define S_LINEAR_MAX       8 /* replicas up to this: distinctness by a scan of out */
#define S_RADIX_BITS       11
#define S_RADIX_PASSES     3
#define S_RADIX_SIZE       (1u << S_RADIX_BITS)
#define S_SORT_BITS        (S_RADIX_BITS * S_RADIX_PASSES) /* the top 33 bits */
#define S_GONE             UINT32_MAX

struct mesh__ring {
    unsigned vnodes;
    size_t count;   /* members */
    size_t n;       /* virtual nodes: count * vnodes */
    unsigned shift; /* the bucket of a node or hash x is x >> shift */
    uint64_t digest;
    uint64_t *node;
    double *share;
    uint32_t *start;
    uint8_t (*uuid)[MESH_ZRE_UUID_SIZE];
    void *block;
    size_t block_size;
};

static int s_uuid_cmp(const void *a, const void *b)
{
    return memcmp(a, b, MESH_ZRE_UUID_SIZE);
}

static uint64_t s_digest(const uint8_t (*uuid)[MESH_ZRE_UUID_SIZE], size_t count, unsigned vnodes)
{
    return XXH3_64bits_withSeed(count ? uuid[0] : NULL, count * MESH_ZRE_UUID_SIZE, vnodes);
}

/*  The node of virtual node v of the member of rank r: its position (the
    top 48 bits of XXH3 of the UUID seeded with v) over the rank. */
static uint64_t s_node(const uint8_t *uuid, uint32_t v, uint32_t rank)
{
    uint64_t h = XXH3_64bits_withSeed(uuid, MESH_ZRE_UUID_SIZE, v);
    return (h & ~S_RANK_MASK) | rank;
}

mesh__ring_t *mesh__ring_new(unsigned vnodes)
{
    if (vnodes == 0) {
        vnodes = MESH_RING_VNODES;
    }
    if (vnodes > MESH_RING_VNODES_MAX) {
        return NULL;
    }
    mesh__ring_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->vnodes = vnodes;
    self->digest = s_digest(NULL, 0, vnodes);
    return self;
}

void mesh__ring_destroy(mesh__ring_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    free((*self_p)->block);
    free(*self_p);
    *self_p = NULL;
}

/*  Sorts in[n] into out[n] (in is clobbered): an LSD radix sort on the
    top S_SORT_BITS bits in S_RADIX_PASSES passes (an odd number: the last
    lands in out), then an insertion pass for the rare nodes equal in those
    bits (nearly sorted input: linear). */
static void s_radix_sort(uint64_t *out, uint64_t *in, size_t n)
{
    uint32_t count[S_RADIX_PASSES][S_RADIX_SIZE];
    memset(count, 0, sizeof count);
    for (size_t i = 0; i < n; i++) {
        for (unsigned p = 0; p < S_RADIX_PASSES; p++) {
            count[p][(in[i] >> (64 - S_SORT_BITS + p * S_RADIX_BITS)) & (S_RADIX_SIZE - 1)]++;
        }
    }
    uint64_t *src = in;
    uint64_t *dst = out;
    for (unsigned p = 0; p < S_RADIX_PASSES; p++) {
        unsigned shift = 64 - S_SORT_BITS + p * S_RADIX_BITS;
        uint32_t sum = 0;
        for (size_t d = 0; d < S_RADIX_SIZE; d++) {
            uint32_t c = count[p][d];
            count[p][d] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            dst[count[p][(src[i] >> shift) & (S_RADIX_SIZE - 1)]++] = src[i];
        }
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    for (size_t i = 1; i < n; i++) {
        uint64_t x = out[i];
        size_t j = i;
        for (; j > 0 && x < out[j - 1]; j--) {
            out[j] = out[j - 1];
        }
        out[j] = x;
    }
}

/*  The bucket table of the sorted nodes: counts shifted by one, summed. */
static void s_index(mesh__ring_t *self, size_t nb)
{
    uint32_t *start = self->start;
    memset(start, 0, (nb + 1) * sizeof *start);
    for (size_t i = 0; i < self->n; i++) {
        start[(self->node[i] >> self->shift) + 1]++;
    }
    for (size_t b = 1; b <= nb; b++) {
        start[b] += start[b - 1];
    }
}

/*  Each node owns the arc from its predecessor's position (exclusive) to
    its own (inclusive); the first node's arc wraps past the top. */
static void s_shares(mesh__ring_t *self)
{
    for (size_t r = 0; r < self->count; r++) {
        self->share[r] = 0;
    }
    for (size_t i = 0; i < self->n; i++) {
        uint64_t pos = self->node[i] >> S_RANK_BITS;
        uint64_t prev = self->node[i ? i - 1 : self->n - 1] >> S_RANK_BITS;
        double arc = i ? (double)(pos - prev) : (double)pos + (S_POS_SPAN - (double)prev);
        self->share[self->node[i] & S_RANK_MASK] += arc;
    }
    for (size_t r = 0; r < self->count; r++) {
        self->share[r] /= S_POS_SPAN;
    }
}

/*  Sorts and deduplicates uuids into a fresh array; *count members. */
static uint8_t (*s_sorted_set(const uint8_t (*uuids)[MESH_ZRE_UUID_SIZE], size_t n,
                              size_t *count))[MESH_ZRE_UUID_SIZE]
{
    uint8_t(*sorted)[MESH_ZRE_UUID_SIZE] = malloc(n * sizeof *sorted);
    if (!sorted) {
        return NULL;
    }
    memcpy(sorted, uuids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, s_uuid_cmp);
    size_t c = 1;
    for (size_t i = 1; i < n; i++) {
        if (memcmp(sorted[i], sorted[c - 1], MESH_ZRE_UUID_SIZE) == 0) {
            continue;
        }
        if (c != i) {
            memcpy(sorted[c], sorted[i], MESH_ZRE_UUID_SIZE);
        }
        c++;
    }
    *count = c;
    return sorted;
}

static void s_clear(mesh__ring_t *self)
{
    free(self->block);
    self->block = NULL;
    self->block_size = 0;
    self->count = self->n = 0;
    self->node = NULL;
    self->share = NULL;
    self->start = NULL;
    self->uuid = NULL;
    self->digest = s_digest(NULL, 0, self->vnodes);
}

int mesh__ring_set_members(mesh__ring_t *self, const uint8_t (*uuids)[MESH_ZRE_UUID_SIZE], size_t n)
{
    assert(self);
    assert(uuids || n == 0);
    if (n > MESH_RING_MEMBERS_MAX) {
        return MESH_ERR_INVAL;
    }
    if (n == 0) {
        s_clear(self);
        return 0;
    }
    size_t count = 0;
    uint8_t(*sorted)[MESH_ZRE_UUID_SIZE] = s_sorted_set(uuids, n, &count);
    if (!sorted) {
        return MESH_ERR_NOMEM;
    }
    size_t total = count * self->vnodes;
    if (total > MESH_RING_NODES_MAX) {
        free(sorted);
        return MESH_ERR_INVAL;
    }
    unsigned bits = 1;
    while (bits < S_BUCKET_BITS_MAX && ((size_t)S_NODES_PER_BUCKET << bits) < total) {
        bits++;
    }
    size_t nb = (size_t)1 << bits;
    size_t size = total * sizeof(uint64_t) + count * sizeof(double) + (nb + 1) * sizeof(uint32_t) +
                  count * MESH_ZRE_UUID_SIZE;

    /*  Old rank -> new rank (S_GONE for a member that left), by a merge of
        the two sorted member lists; joined[] lists the new ranks of the
        members that joined. */
    uint32_t *map = malloc((self->count + count) * sizeof *map);
    void *block = malloc(size);
    if (!map || !block) {
        free(map);
        free(block);
        free(sorted);
        return MESH_ERR_NOMEM;
    }
    uint32_t *joined = map + self->count;
    size_t njoined = 0;
    size_t kept = 0;
    for (size_t o = 0, r = 0; o < self->count || r < count;) {
        int c = o == self->count ? 1
                : r == count     ? -1
                                 : memcmp(self->uuid[o], sorted[r], MESH_ZRE_UUID_SIZE);
        if (c < 0) {
            map[o++] = S_GONE;
        } else if (c > 0) {
            joined[njoined++] = (uint32_t)r++;
        } else {
            map[o++] = (uint32_t)r++;
            kept++;
        }
    }
    /*  The joiners' nodes, hashed into the second half of fresh and sorted
        into its first half (straight into the new ring if nobody stayed). */
    size_t nfresh = njoined * self->vnodes;
    uint64_t *fresh = NULL;
    if (nfresh > 0) {
        fresh = malloc((kept ? 2 : 1) * nfresh * sizeof *fresh);
    }
    if (nfresh > 0 && !fresh) {
        free(map);
        free(block);
        free(sorted);
        return MESH_ERR_NOMEM;
    }
    uint64_t *node = block;
    if (nfresh > 0) {
        uint64_t *scratch = kept ? fresh + nfresh : fresh;
        for (size_t k = 0; k < njoined; k++) {
            for (uint32_t v = 0; v < self->vnodes; v++) {
                scratch[k * self->vnodes + v] = s_node(sorted[joined[k]], v, joined[k]);
            }
        }
        s_radix_sort(kept ? fresh : node, scratch, nfresh);
    }
    if (kept) {
        /*  Merge the stayers' nodes (renumbered: order kept) with fresh. */
        size_t i = 0, j = 0, out = 0;
        for (; i < self->n; i++) {
            uint32_t m = map[self->node[i] & S_RANK_MASK];
            if (m == S_GONE) {
                continue;
            }
            uint64_t x = (self->node[i] & ~S_RANK_MASK) | m;
            while (j < nfresh && fresh[j] < x) {
                node[out++] = fresh[j++];
            }
            node[out++] = x;
        }
        while (j < nfresh) {
            node[out++] = fresh[j++];
        }
        assert(out == total);
    }
    free(fresh);
    free(map);

    free(self->block);
    self->block = block;
    self->block_size = size;
    self->count = count;
    self->n = total;
    self->shift = 64 - bits;
    self->node = node;
    self->share = (double *)(node + total);
    self->start = (uint32_t *)(self->share + count);
    self->uuid = (uint8_t(*)[MESH_ZRE_UUID_SIZE])(self->start + nb + 1);
    memcpy(self->uuid, sorted, count * MESH_ZRE_UUID_SIZE);
    free(sorted);
    s_index(self, nb);
    s_shares(self);
    self->digest = s_digest((const uint8_t(*)[MESH_ZRE_UUID_SIZE])self->uuid, count, self->vnodes);
    return 0;
}

uint64_t mesh__ring_hash(const void *key, size_t keylen)
{
    return XXH3_64bits(key, keylen);
}

int mesh__ring_lookup_hash(const mesh__ring_t *self, uint64_t hash, size_t replicas, uint32_t *out,
                           size_t *n)
{
    assert(self);
    assert(n);
    assert(out || replicas == 0);
    *n = 0;
    if (self->count == 0) {
        return MESH_ERR_NOTFOUND;
    }
    if (replicas == 0) {
        return 0;
    }
    /*  The first node at or after the key's position: in its bucket, or the
        first of a later bucket (start[b + 1]); past the last node, node 0. */
    uint64_t target = hash & ~S_RANK_MASK;
    size_t b = (size_t)(hash >> self->shift);
    size_t i = self->start[b];
    size_t end = self->start[b + 1];
    while (i < end && self->node[i] < target) {
        i++;
    }
    if (i == self->n) {
        i = 0;
    }
    size_t want = replicas < self->count ? replicas : self->count;
    size_t got = 0;
    out[got++] = (uint32_t)(self->node[i] & S_RANK_MASK);
    if (want <= S_LINEAR_MAX) {
        while (got < want) {
            if (++i == self->n) {
                i = 0;
            }
            uint32_t r = (uint32_t)(self->node[i] & S_RANK_MASK);
            bool seen = false;
            for (size_t k = 0; k < got && !seen; k++) {
                seen = out[k] == r;
            }
            if (!seen) {
                out[got++] = r;
            }
        }
    } else {
        uint64_t seen[MESH_RING_MEMBERS_MAX / 64];
        memset(seen, 0, ((self->count + 63) / 64) * sizeof seen[0]);
        seen[out[0] / 64] |= UINT64_C(1) << (out[0] % 64);
        while (got < want) {
            if (++i == self->n) {
                i = 0;
            }
            uint32_t r = (uint32_t)(self->node[i] & S_RANK_MASK);
            uint64_t bit = UINT64_C(1) << (r % 64);
            if (!(seen[r / 64] & bit)) {
                seen[r / 64] |= bit;
                out[got++] = r;
            }
        }
    }
    *n = got;
    return 0;
}

int mesh__ring_lookup(const mesh__ring_t *self, const void *key, size_t keylen, size_t replicas,
                      uint32_t *out, size_t *n)
{
    return mesh__ring_lookup_hash(self, XXH3_64bits(key, keylen), replicas, out, n);
}

uint64_t mesh__ring_digest(const mesh__ring_t *self)
{
    assert(self);
    return self->digest;
}

size_t mesh__ring_count(const mesh__ring_t *self)
{
    assert(self);
    return self->count;
}

const uint8_t *mesh__ring_member(const mesh__ring_t *self, size_t rank)
{
    assert(self);
    assert(rank < self->count);
    return self->uuid[rank];
}

long mesh__ring_find(const mesh__ring_t *self, const uint8_t *uuid)
{
    assert(self);
    assert(uuid);
    size_t lo = 0;
    size_t hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(self->uuid[mid], uuid, MESH_ZRE_UUID_SIZE);
        if (c == 0) {
            return (long)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

double mesh__ring_share(const mesh__ring_t *self, size_t rank)
{
    assert(self);
    assert(rank < self->count);
    return self->share[rank];
}

unsigned mesh__ring_vnodes(const mesh__ring_t *self)
{
    assert(self);
    return self->vnodes;
}

size_t mesh__ring_vnode_count(const mesh__ring_t *self)
{
    assert(self);
    return self->n;
}

uint64_t mesh__ring_vnode(const mesh__ring_t *self, size_t i, uint32_t *rank)
{
    assert(self);
    assert(i < self->n);
    if (rank) {
        *rank = (uint32_t)(self->node[i] & S_RANK_MASK);
    }
    return self->node[i] >> S_RANK_BITS;
}

size_t mesh__ring_memory(const mesh__ring_t *self)
{
    assert(self);
    return sizeof *self + self->block_size;
}
