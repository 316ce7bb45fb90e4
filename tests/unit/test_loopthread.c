/*  test_loopthread.c: nodes on threads of their own, driven from the main
    thread only through the command queue. */
#include <criterion/criterion.h>

#include "testutil.h"

#include "loopthread.h"
#include "reactor.h"
#include "zre.h"

#include <mesh/mesh.h>

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    mesh__loopthread_t *lt;
    mesh__zre_t *node;
    mesh__reactor_t *reactor;
    atomic_int whispers;
    char last[64];
    int rc;
    size_t peers;
} side_t;


static void s_on_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    side_t *s = arg;
    cr_assert(mesh__loopthread_is_current(s->lt), "event off the loop thread");
    if (ev->type == MESH_ZRE_EV_WHISPER) {
        snprintf(s->last, sizeof s->last, "%.*s", (int)ev->size, (const char *)ev->data);
        atomic_fetch_add(&s->whispers, 1);
    }
}

static void s_start(struct ev_loop *loop, void *arg)
{
    side_t *s = arg;
    s->rc = mesh__zre_start(s->node, mesh__reactor_now(loop));
    mesh__zre_set_handler(s->node, s_on_event, s);
    s->reactor = mesh__reactor_new(loop, s->node);
}

static void s_count_peers(struct ev_loop *loop, void *arg)
{
    side_t *s = arg;
    s->peers = mesh__zre_peer_count(s->node);
}

static void s_whisper_first_peer(struct ev_loop *loop, void *arg)
{
    side_t *s = arg;
    size_t pos = 0;
    const mesh__zre_peer_t *p = mesh__zre_peer_next(s->node, &pos);
    s->rc = p ? mesh__zre_whisper(s->node, mesh__zre_peer_uuid(p), "from a thread", 13) : -1;
}

static void s_teardown(struct ev_loop *loop, void *arg)
{
    side_t *s = arg;
    mesh__reactor_destroy(&s->reactor);
    mesh__zre_destroy(&s->node);
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(loopthread, nodes_on_their_own_threads, .timeout = 30)
{
    uint16_t port = test_free_udp_port();
    side_t sides[2];
    memset(sides, 0, sizeof sides);
    const char *names[] = {"ta", "tb"};
    for (int i = 0; i < 2; i++) {
        mesh__zre_config_t c = {.name = names[i], .beacon_port = port, .beacon_interval_ms = 100};
        sides[i].node = mesh__zre_new(&c, NULL);
        sides[i].lt = mesh__loopthread_new();
        cr_assert_not_null(sides[i].lt);
        cr_assert_eq(mesh__loopthread_call(sides[i].lt, s_start, &sides[i]), 0);
        cr_assert_eq(sides[i].rc, 0);
    }
    for (int t = 0; t < 200; t++) {
        mesh__loopthread_call(sides[0].lt, s_count_peers, &sides[0]);
        mesh__loopthread_call(sides[1].lt, s_count_peers, &sides[1]);
        if (sides[0].peers == 1 && sides[1].peers == 1) {
            break;
        }
        s_sleep_ms(20);
    }
    cr_assert_eq(sides[0].peers, 1);
    cr_assert_eq(sides[1].peers, 1);
    cr_assert_eq(mesh__loopthread_call(sides[0].lt, s_whisper_first_peer, &sides[0]), 0);
    cr_assert_eq(sides[0].rc, 0);
    for (int t = 0; t < 200 && atomic_load(&sides[1].whispers) == 0; t++) {
        s_sleep_ms(10);
    }
    cr_assert_eq(atomic_load(&sides[1].whispers), 1);
    cr_expect_str_eq(sides[1].last, "from a thread");
    for (int i = 0; i < 2; i++) {
        mesh__loopthread_call(sides[i].lt, s_teardown, &sides[i]);
        mesh__loopthread_destroy(&sides[i].lt);
        cr_expect_null(sides[i].lt);
    }
}

static void s_bump(struct ev_loop *loop, void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

Test(loopthread, posts_run_in_order_and_destroy_drains)
{
    mesh__loopthread_t *lt = mesh__loopthread_new();
    atomic_int n = 0;
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(mesh__loopthread_post(lt, s_bump, &n), 0);
    }
    mesh__loopthread_destroy(&lt);
    cr_expect_eq(atomic_load(&n), 1000);
}
