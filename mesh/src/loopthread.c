/*  loopthread.c: a command queue on a libev loop, and a loop on a thread of
    its own entered through such a queue. */
#include "loopthread.h"

#include <mesh/error.h>

#include <pthread.h>
#include <stdlib.h>

typedef struct s_cmd {
    mesh__loopthread_fn *fn;
    void *arg;
    struct s_cmd *next;
    bool *done; /* call(): the waiter's flag */
} s_cmd_t;

struct mesh__cmdq {
    struct ev_loop *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when a call() has run */
    s_cmd_t *head, *tail;
    bool closing;
    ev_async wake;
};

struct mesh__loopthread {
    struct ev_loop *loop;
    pthread_t thread;
    mesh__cmdq_t *q;
    bool stop; /* set on the loop thread by the last command */
};

static void s_run_list(mesh__cmdq_t *self, s_cmd_t *list)
{
    while (list) {
        s_cmd_t *cmd = list;
        list = cmd->next;
        cmd->fn(self->loop, cmd->arg);
        if (cmd->done) {
            pthread_mutex_lock(&self->lock);
            *cmd->done = true;
            pthread_cond_broadcast(&self->cond);
            pthread_mutex_unlock(&self->lock);
        }
        free(cmd);
    }
}

static s_cmd_t *s_take_all(mesh__cmdq_t *self)
{
    pthread_mutex_lock(&self->lock);
    s_cmd_t *list = self->head;
    self->head = self->tail = NULL;
    pthread_mutex_unlock(&self->lock);
    return list;
}

static void s_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    mesh__cmdq_t *self = w->data;
    s_run_list(self, s_take_all(self));
}

mesh__cmdq_t *mesh__cmdq_new(struct ev_loop *loop)
{
    mesh__cmdq_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = loop;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    ev_async_init(&self->wake, s_on_wake);
    self->wake.data = self;
    ev_async_start(loop, &self->wake);
    return self;
}

void mesh__cmdq_destroy(mesh__cmdq_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__cmdq_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    self->closing = true;
    pthread_mutex_unlock(&self->lock);
    s_run_list(self, s_take_all(self)); /* whatever was posted before closing */
    ev_async_stop(self->loop, &self->wake);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    free(self);
    *self_p = NULL;
}

static int s_enqueue(mesh__cmdq_t *self, mesh__loopthread_fn *fn, void *arg, bool *done)
{
    s_cmd_t *cmd = calloc(1, sizeof *cmd);
    if (!cmd) {
        return MESH_ERR_NOMEM;
    }
    cmd->fn = fn;
    cmd->arg = arg;
    cmd->done = done;
    pthread_mutex_lock(&self->lock);
    if (self->closing) {
        pthread_mutex_unlock(&self->lock);
        free(cmd);
        return MESH_ERR_CLOSED;
    }
    if (self->tail) {
        self->tail->next = cmd;
    } else {
        self->head = cmd;
    }
    self->tail = cmd;
    pthread_mutex_unlock(&self->lock);
    ev_async_send(self->loop, &self->wake);
    return 0;
}

int mesh__cmdq_post(mesh__cmdq_t *self, mesh__loopthread_fn *fn, void *arg)
{
    return s_enqueue(self, fn, arg, NULL);
}

int mesh__cmdq_call(mesh__cmdq_t *self, mesh__loopthread_fn *fn, void *arg)
{
    bool done = false;
    int rc = s_enqueue(self, fn, arg, &done);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&self->lock);
    while (!done) {
        pthread_cond_wait(&self->cond, &self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    return 0;
}

/* ------------------------------------------------------------------------ */

static void *s_run(void *arg)
{
    mesh__loopthread_t *self = arg;
    while (!self->stop) {
        ev_run(self->loop, EVRUN_ONCE);
    }
    return NULL;
}

mesh__loopthread_t *mesh__loopthread_new(void)
{
    mesh__loopthread_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = ev_loop_new(EVFLAG_AUTO);
    self->q = self->loop ? mesh__cmdq_new(self->loop) : NULL;
    if (!self->q || pthread_create(&self->thread, NULL, s_run, self) != 0) {
        mesh__cmdq_destroy(&self->q);
        if (self->loop) {
            ev_loop_destroy(self->loop);
        }
        free(self);
        return NULL;
    }
    return self;
}

static void s_stop(struct ev_loop *loop, void *arg)
{
    mesh__loopthread_t *self = arg;
    self->stop = true;
    ev_break(loop, EVBREAK_ALL);
}

void mesh__loopthread_destroy(mesh__loopthread_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__loopthread_t *self = *self_p;
    mesh__cmdq_post(self->q, s_stop, self); /* runs after everything posted before */
    pthread_join(self->thread, NULL);
    mesh__cmdq_destroy(&self->q);
    ev_loop_destroy(self->loop);
    free(self);
    *self_p = NULL;
}

int mesh__loopthread_post(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg)
{
    return mesh__cmdq_post(self->q, fn, arg);
}

int mesh__loopthread_call(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg)
{
    if (mesh__loopthread_is_current(self)) {
        fn(self->loop, arg);
        return 0;
    }
    return mesh__cmdq_call(self->q, fn, arg);
}

bool mesh__loopthread_is_current(const mesh__loopthread_t *self)
{
    return pthread_equal(pthread_self(), self->thread) != 0;
}

struct ev_loop *mesh__loopthread_loop(const mesh__loopthread_t *self)
{
    return self->loop;
}
