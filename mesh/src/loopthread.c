/*  loopthread.c: a libev loop on its own thread with a command queue. */
#include "loopthread.h"

#include <mesh/error.h>

#include <pthread.h>
#include <stdlib.h>

typedef struct s_cmd {
    mesh__loopthread_fn *fn;
    void *arg;
    struct s_cmd *next;
    /* for call(): the waiter's flag */
    bool *done;
} s_cmd_t;

struct mesh__loopthread {
    struct ev_loop *loop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled when a call() has run */
    s_cmd_t *head, *tail;
    bool closing;
    ev_async wake;
};

static void s_drain(struct ev_loop *loop, ev_async *w, int revents)
{
    mesh__loopthread_t *self = w->data;
    pthread_mutex_lock(&self->lock);
    s_cmd_t *list = self->head;
    self->head = self->tail = NULL;
    bool closing = self->closing;
    pthread_mutex_unlock(&self->lock);
    while (list) {
        s_cmd_t *cmd = list;
        list = cmd->next;
        cmd->fn(loop, cmd->arg);
        if (cmd->done) {
            pthread_mutex_lock(&self->lock);
            *cmd->done = true;
            pthread_cond_broadcast(&self->cond);
            pthread_mutex_unlock(&self->lock);
        }
        free(cmd);
    }
    if (closing) {
        ev_async_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
    }
}

static void *s_run(void *arg)
{
    mesh__loopthread_t *self = arg;
    ev_run(self->loop, 0);
    return NULL;
}

mesh__loopthread_t *mesh__loopthread_new(void)
{
    mesh__loopthread_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->loop = ev_loop_new(EVFLAG_AUTO);
    if (!self->loop) {
        free(self);
        return NULL;
    }
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    ev_async_init(&self->wake, s_drain);
    self->wake.data = self;
    ev_async_start(self->loop, &self->wake);
    if (pthread_create(&self->thread, NULL, s_run, self) != 0) {
        ev_async_stop(self->loop, &self->wake);
        ev_loop_destroy(self->loop);
        pthread_mutex_destroy(&self->lock);
        pthread_cond_destroy(&self->cond);
        free(self);
        return NULL;
    }
    return self;
}

static int s_enqueue(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg, bool *done)
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

int mesh__loopthread_post(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg)
{
    return s_enqueue(self, fn, arg, NULL);
}

int mesh__loopthread_call(mesh__loopthread_t *self, mesh__loopthread_fn *fn, void *arg)
{
    if (mesh__loopthread_is_current(self)) {
        fn(self->loop, arg);
        return 0;
    }
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

bool mesh__loopthread_is_current(const mesh__loopthread_t *self)
{
    return pthread_equal(pthread_self(), self->thread) != 0;
}

void mesh__loopthread_destroy(mesh__loopthread_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__loopthread_t *self = *self_p;
    pthread_mutex_lock(&self->lock);
    self->closing = true;
    pthread_mutex_unlock(&self->lock);
    ev_async_send(self->loop, &self->wake);
    pthread_join(self->thread, NULL);
    ev_loop_destroy(self->loop);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->cond);
    free(self);
    *self_p = NULL;
}
