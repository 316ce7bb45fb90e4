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

static bool s_inbox_readable(void *inbox)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(inbox, ZMQ_EVENTS, &events, &len) != 0) {
        return false;
    }
    return (events & ZMQ_POLLIN) != 0;
}

static void s_noop_io(struct ev_loop *loop, ev_io *w, int revents)
{
}

static void s_noop_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
}

static void s_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    mesh__reactor_t *self = w->data;
    if (s_inbox_readable(self->inbox)) {
        ev_idle_start(loop, &self->idle);
    } else {
        ev_io_start(loop, &self->inbox_io);
    }
    int64_t deadline = mesh__zre_next_deadline(self->node);
    ev_timer_stop(loop, &self->timer);
    if (deadline != INT64_MAX) {
        int64_t wait = deadline - mesh__reactor_now(loop);
        ev_timer_set(&self->timer, wait > 0 ? (double)wait / 1000.0 : 0.0, 0.0);
        ev_timer_start(loop, &self->timer);
    }
}

static void s_on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    mesh__reactor_t *self = w->data;
    ev_idle_stop(loop, &self->idle);
    ev_io_stop(loop, &self->inbox_io);
    if (s_inbox_readable(self->inbox)) {
        mesh__zre_on_inbox(self->node, mesh__reactor_now(loop), MESH_RECV_BATCH);
    }
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    mesh__reactor_t *self = w->data;
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
    ev_prepare_start(loop, &self->prepare);
    ev_check_start(loop, &self->check);
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
