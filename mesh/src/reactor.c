/*  reactor.c: a ZRE node in a libev loop (prepare/check over ZMQ_FD). */
#include "reactor.h"

#include <mesh/mesh.h>

#include <stdlib.h>
#include <time.h>
#include <zmq.h>

struct mesh__reactor {
    struct ev_loop *loop;
    mesh__zre_t *node;
    void *inbox;
    ev_prepare prepare;
    ev_check check;
    ev_idle idle;    /* keeps the loop from blocking while messages wait */
    ev_io inbox_io;  /* wakes the loop on a ZMQ_FD edge */
    ev_io beacon_io;
    ev_timer timer;  /* the node's next deadline */
    int64_t armed;   /* the deadline the timer is set for */
    bool more;       /* the last batch hit its budget */
};

int64_t mesh__reactor_now(struct ev_loop *loop)
{
    /* Not ev_now(): libev's loop time follows the wall clock, and a clock
       step must not expire every peer. */
    (void)loop;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_noop_io(struct ev_loop *loop, ev_io *w, int revents)
{
}

static void s_noop_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
}

/*  The inbox is drained in bounded batches. A batch that stopped because
    of the budget leaves `more` set: the idle watcher keeps the loop from
    blocking so the next batch runs at once. A batch that ran dry received
    EAGAIN, which also consumed libzmq's pending commands, so the next
    arrival is signalled by a fresh edge on ZMQ_FD (watched all the time).
    Nothing else reads the inbox, and it is never written, so this needs no
    ZMQ_EVENTS query per loop iteration. */
static void s_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    mesh__reactor_t *self = w->data;
    if (self->more) {
        ev_idle_start(loop, &self->idle);
    }
    int64_t deadline = mesh__zre_next_deadline(self->node);
    if (deadline != self->armed) {
        ev_timer_stop(loop, &self->timer);
        self->armed = deadline;
        if (deadline != INT64_MAX) {
            int64_t wait = deadline - mesh__reactor_now(loop);
            ev_timer_set(&self->timer, wait > 0 ? (double)wait / 1000.0 : 0.0, 0.0);
            ev_timer_start(loop, &self->timer);
        }
    }
}

static void s_on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    mesh__reactor_t *self = w->data;
    ev_idle_stop(loop, &self->idle);
    self->more = mesh__zre_on_inbox(self->node, mesh__reactor_now(loop), MESH_RECV_BATCH);
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    mesh__reactor_t *self = w->data;
    self->armed = INT64_MIN; /* fired: re-arm at the next prepare */
    mesh__zre_on_tick(self->node, mesh__reactor_now(loop));
}

static void s_on_beacon(struct ev_loop *loop, ev_io *w, int revents)
{
    mesh__reactor_t *self = w->data;
    mesh__zre_on_beacon(self->node, mesh__reactor_now(loop));
}

mesh__reactor_t *mesh__reactor_new(struct ev_loop *loop, mesh__zre_t *node)
{
    void *inbox = mesh__zre_inbox(node);
    if (!loop || !inbox) {
        return NULL;
    }
    mesh__reactor_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = loop;
    self->node = node;
    self->inbox = inbox;
    int fd = -1;
    size_t len = sizeof fd;
    zmq_getsockopt(inbox, ZMQ_FD, &fd, &len);
    ev_prepare_init(&self->prepare, s_on_prepare);
    ev_check_init(&self->check, s_on_check);
    ev_idle_init(&self->idle, s_noop_idle);
    ev_io_init(&self->inbox_io, s_noop_io, fd, EV_READ);
    ev_timer_init(&self->timer, s_on_timer, 0.0, 0.0);
    self->prepare.data = self->check.data = self->timer.data = self;
    self->armed = INT64_MIN;
    self->more = true; /* drain whatever arrived before we were attached */
    ev_prepare_start(loop, &self->prepare);
    ev_check_start(loop, &self->check);
    ev_io_start(loop, &self->inbox_io);
    int bfd = mesh__zre_beacon_fd(node);
    if (bfd >= 0) {
        ev_io_init(&self->beacon_io, s_on_beacon, bfd, EV_READ);
        self->beacon_io.data = self;
        ev_io_start(loop, &self->beacon_io);
    }
    return self;
}

void mesh__reactor_destroy(mesh__reactor_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__reactor_t *self = *self_p;
    ev_prepare_stop(self->loop, &self->prepare);
    ev_check_stop(self->loop, &self->check);
    ev_idle_stop(self->loop, &self->idle);
    ev_io_stop(self->loop, &self->inbox_io);
    ev_io_stop(self->loop, &self->beacon_io);
    ev_timer_stop(self->loop, &self->timer);
    free(self);
    *self_p = NULL;
}
