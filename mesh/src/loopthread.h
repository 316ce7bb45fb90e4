/*  loopthread.h: a libev loop on a thread of its own, entered from other
    threads through one command queue.

    For programs without a loop of their own: the node (and later the peer)
    lives on this thread, and every other thread reaches it by posting a
    closure. The queue is a mutex-protected list woken by an ev_async (libev's
    eventfd or pipe): one hop per command, no actor in between. */
#ifndef MESH_LOOPTHREAD_H
#define MESH_LOOPTHREAD_H

#include <ev.h>
#include <stdbool.h>

typedef struct mesh__loopthread mesh__loopthread_t;
typedef struct mesh__cmdq mesh__cmdq_t;

/*  Runs on the loop's thread. */
typedef void(mesh__loopthread_fn)(struct ev_loop *loop, void *arg);

/*  A command queue on an existing loop: post() from any thread, the
    closure runs on the loop's thread. Create and destroy it on the loop's
    thread; destroy runs what is still queued. */
mesh__cmdq_t *mesh__cmdq_new(struct ev_loop *loop);
void mesh__cmdq_destroy(mesh__cmdq_t **self_p);
int mesh__cmdq_post(mesh__cmdq_t *self, mesh__loopthread_fn *fn, void *arg);
/*  Posts and waits until fn has run. Never from the loop's thread. */
int mesh__cmdq_call(mesh__cmdq_t *self, mesh__loopthread_fn *fn, void *arg);

/*  Starts the thread and its loop. NULL on failure. */
mesh__loopthread_t *mesh__loopthread_new(void);

/*  Stops the loop (pending commands run first), joins the thread and frees
    everything. Never from the loop's own thread. */
void mesh__loopthread_destroy(mesh__loopthread_t **self_p);

/*  Queues fn(loop, arg) to run on the loop's thread. Thread-safe. Returns 0
    or MESH_ERR_NOMEM / MESH_ERR_CLOSED. */
int mesh__loopthread_post(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg);

/*  Like post, then waits until fn has run. From the loop's thread it runs
    fn at once. */
int mesh__loopthread_call(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg);

/*  True on the loop's own thread. */
bool mesh__loopthread_is_current(const mesh__loopthread_t *self);

/*  The thread's loop. */
struct ev_loop *mesh__loopthread_loop(const mesh__loopthread_t *self);

#endif
