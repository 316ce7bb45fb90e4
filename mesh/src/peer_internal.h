/*  peer_internal.h: what meshd and meshctl may reach below the public peer
    API: the peer's ZRE node (to list plain ZRE peers, whisper, shout, join)
    and an observer of every ZRE event (meshd --events). On the loop thread
    only. */
#ifndef MESH_PEER_INTERNAL_H
#define MESH_PEER_INTERNAL_H

#include <mesh/peer.h>

#include "zre.h"

/*  A peer's role, in its HELLO headers. A member whose HELLO says
    X-MESH-ROLE=ctl is a short-lived control peer (meshctl): a member of the
    routing table like any other, but never on the ring, on any peer. */
#define MESH_PEER_ROLE_HEADER "X-MESH-ROLE"
#define MESH_PEER_ROLE_CTL    "ctl"

/*  A member disagreeing with our ring digest in this many STATUS in a row
    counts as one ring mismatch (mesh_stats_t.ring_mismatches). */
#define MESH_RING_MISMATCH_STATUS 2

mesh__zre_t *mesh__peer_zre(mesh_peer_t *self);

/*  fn sees every ZRE event before the peer handles it (borrowed data, as in
    zre.h). NULL removes it. */
void mesh__peer_set_observer(mesh_peer_t *self, mesh__zre_event_fn *fn, void *arg);

/*  Requests handed to handlers and not finished yet (exact, now). */
uint64_t mesh__peer_open_requests(const mesh_peer_t *self);

/*  Makes this peer a control peer (meshctl): its HELLO says
    X-MESH-ROLE=ctl, so no peer puts it on the ring, and it leaves itself
    off its own ring (it still computes the ring of the others, and its
    digest matches theirs). Before attach or start_thread: 0,
    MESH_ERR_STATE once running, or MESH_ERR_NOMEM. */
int mesh__peer_set_ctl(mesh_peer_t *self);

#endif
