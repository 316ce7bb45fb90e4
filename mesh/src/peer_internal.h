/*  peer_internal.h: what meshd and meshctl may reach below the public peer
    API: the peer's ZRE node (to list plain ZRE peers, whisper, shout, join)
    and an observer of every ZRE event (meshd --events). On the loop thread
    only. */
#ifndef MESH_PEER_INTERNAL_H
#define MESH_PEER_INTERNAL_H

#include <mesh/peer.h>

#include "zre.h"

mesh__zre_t *mesh__peer_zre(mesh_peer_t *self);

/*  fn sees every ZRE event before the peer handles it (borrowed data, as in
    zre.h). NULL removes it. */
void mesh__peer_set_observer(mesh_peer_t *self, mesh__zre_event_fn *fn, void *arg);

/*  Requests handed to handlers and not finished yet (exact, now). */
uint64_t mesh__peer_open_requests(const mesh_peer_t *self);

#endif
