/*  reactor.h: drives a ZRE node from a libev loop.

    The inbox ROUTER joins the loop through ZMQ_FD with the prepare/check
    pattern (ZMQ_FD is edge-triggered): prepare re-reads ZMQ_EVENTS on every
    iteration, so sends made anywhere are covered, and check handles a bounded
    batch. The beacon socket is a plain ev_io; one ev_timer follows the node's
    next deadline. All callbacks run on the loop's thread. */
#ifndef MESH_REACTOR_H
#define MESH_REACTOR_H

#include <ev.h>
#include <stdint.h>

#include "zre.h"

typedef struct mesh__reactor mesh__reactor_t;

/*  Attaches node to loop and starts watching. The node must be started. */
mesh__reactor_t *mesh__reactor_new(struct ev_loop *loop, mesh__zre_t *node);
/*  Stops every watcher (before the node's sockets close). */
void mesh__reactor_destroy(mesh__reactor_t **self_p);

/*  Monotonic milliseconds of the loop's cached time. */
int64_t mesh__reactor_now(struct ev_loop *loop);

#endif
