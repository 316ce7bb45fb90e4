/*  ring.h: the cluster ring: consistent hashing with virtual nodes over a
    set of members (16-byte UUIDs), deciding which member owns a key and
    which members hold its replicas. Pure: no sockets, no clock, no globals.

    Every peer builds the ring from its own view of the membership; the same
    set of UUIDs gives the same ring on every peer, in whatever order the
    UUIDs are given (duplicates count once). The placement is part of the
    protocol, since peers must agree on owners without talking:

    - members are ranked by UUID (memcmp order); lookups name members by
      that rank, 0 .. count-1;
    - virtual node v (0 <= v < vnodes) of member u sits at position
      XXH3_64bits_withSeed(u, 16, v) >> 16, on a ring of 2^48 positions;
    - a key sits at XXH3_64bits(key) >> 16 and belongs to the first virtual
      node at or after it clockwise (at equal positions, the member of the
      lowest rank first), wrapping past the top of the ring to its bottom;
    - its replicas are the next distinct members met walking on clockwise
      from there.

    So when a member joins, the only keys that change owner are those it
    takes; when one leaves, only its own keys move, each to the member that
    was its first replica. Every other member's successor order is kept.

    The digest summarises the membership and the vnode count, so peers can
    compare views in status pings: XXH3_64bits_withSeed over the members'
    UUIDs in rank order, concatenated, seeded with the vnode count. Equal
    sets give equal digests; different ones collide with odds of 2^-64.

    A ring is immutable between set_members calls: lookups take it const and
    may run concurrently; set_members must not run alongside them. */
#ifndef MESH_RING_H
#define MESH_RING_H

#include <mesh/defaults.h>

#include <stddef.h>
#include <stdint.h>

/*  Virtual nodes per member. The load spread (max/mean share) shrinks
    about as 1/sqrt(vnodes): over 100 random memberships of 10, 1024 gives
    a median max/mean of 1.04 and at worst 1.09; 256 gives 1.10 and up to
    1.20, over 1.10 for 42% of them (tools/bench ring). Costs about 10 bytes
    per virtual node (10.6 KiB per member), ~20 ns each to build a ring
    from scratch and ~6 ns each to take in a join or a leave. */
#define MESH_RING_VNODES      1024
#define MESH_RING_VNODES_MAX  65536
#define MESH_RING_MEMBERS_MAX 65536      /* ranks fit in the low 16 bits of a node */
#define MESH_RING_NODES_MAX   (1u << 24) /* members x vnodes: about 160 MiB of ring */

typedef struct mesh__ring mesh__ring_t;

/*  An empty ring with vnodes virtual nodes per member (0: MESH_RING_VNODES).
    NULL if vnodes > MESH_RING_VNODES_MAX or out of memory. */
mesh__ring_t *mesh__ring_new(unsigned vnodes);
void mesh__ring_destroy(mesh__ring_t **self_p);

/*  Rebuilds the ring from a membership (uuids copied; order and duplicates
    do not matter; n == 0 empties it). 0, MESH_ERR_INVAL if n exceeds
    MESH_RING_MEMBERS_MAX or the members MESH_RING_NODES_MAX virtual nodes,
    or MESH_ERR_NOMEM; on error the ring is unchanged. The nodes of members
    that stay are kept: a join or a leave costs a pass over the ring, the
    joiners' nodes are hashed and sorted. */
int mesh__ring_set_members(mesh__ring_t *self, const uint8_t (*uuids)[MESH_ZRE_UUID_SIZE],
                           size_t n);

/*  The key's owner and up to replicas - 1 distinct successors, clockwise,
    as member ranks into out (room for replicas entries); *n is how many
    were written: min(replicas, count). 0, or MESH_ERR_NOTFOUND (*n = 0)
    if the ring is empty. Never allocates (replicas > 8: an 8 KiB bitmap on
    the stack). */
int mesh__ring_lookup(const mesh__ring_t *self, const void *key, size_t keylen, size_t replicas,
                      uint32_t *out, size_t *n);
/*  The same from a key hash already computed with mesh__ring_hash. */
int mesh__ring_lookup_hash(const mesh__ring_t *self, uint64_t hash, size_t replicas, uint32_t *out,
                           size_t *n);
/*  XXH3_64bits of the key: what lookup places on the ring. */
uint64_t mesh__ring_hash(const void *key, size_t keylen);

/*  Order-independent 64-bit digest of the membership and vnode count. */
uint64_t mesh__ring_digest(const mesh__ring_t *self);

/*  Members, by rank. member returns the UUID (16 bytes, borrowed until the
    next set_members); find returns the rank of a UUID, or -1. */
size_t mesh__ring_count(const mesh__ring_t *self);
const uint8_t *mesh__ring_member(const mesh__ring_t *self, size_t rank);
long mesh__ring_find(const mesh__ring_t *self, const uint8_t *uuid);

/*  Fraction of the hash space (0..1) that member rank owns; the shares of
    all members sum to 1. */
double mesh__ring_share(const mesh__ring_t *self, size_t rank);

/*  Virtual nodes per member, and in all (count x vnodes). */
unsigned mesh__ring_vnodes(const mesh__ring_t *self);
size_t mesh__ring_vnode_count(const mesh__ring_t *self);
/*  Virtual node i (0 <= i < vnode_count) in ring order: its 48-bit
    position; *rank (if not NULL) is its member. */
uint64_t mesh__ring_vnode(const mesh__ring_t *self, size_t i, uint32_t *rank);
/*  Heap bytes held by the ring (its tables), for reports. */
size_t mesh__ring_memory(const mesh__ring_t *self);

#endif
