/*  test_zre.c: several ZRE nodes in one process on loopback.

    The nodes' sockets are real; their clock is not: each test passes `now`
    explicitly, so evasive and expired timers are crossed by advancing the
    fake clock instead of sleeping. Raw libzmq sockets play hand-made peers
    to check the protocol rules (sequence gaps, resets, ids 8-10, garbage). */
#include <criterion/criterion.h>

#include "testutil.h"

#include "beacon.h"
#include "udp.h"
#include "zre.h"
#include "zre_msg.h"

#include <mesh/mesh.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_EVENTS 256

typedef struct {
    mesh__zre_event_type_t type;
    char peer[33];
    char name[64];
    char group[64];
    char data[256];
    size_t size;
    char reason[16];
} rec_t;

typedef struct {
    mesh__zre_t *node;
    rec_t ev[MAX_EVENTS];
    int n;
} box_t;

static void s_record(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    box_t *b = arg;
    if (b->n == MAX_EVENTS) {
        return;
    }
    rec_t *r = &b->ev[b->n++];
    memset(r, 0, sizeof *r);
    r->type = ev->type;
    snprintf(r->peer, sizeof r->peer, "%s", mesh__zre_peer_uuid_str(ev->peer));
    snprintf(r->name, sizeof r->name, "%s", mesh__zre_peer_name(ev->peer));
    snprintf(r->group, sizeof r->group, "%s", ev->group ? ev->group : "");
    if (ev->data) {
        r->size = ev->size < sizeof r->data - 1 ? ev->size : sizeof r->data - 1;
        memcpy(r->data, ev->data, r->size);
    }
    snprintf(r->reason, sizeof r->reason, "%s", ev->reason ? ev->reason : "");
}

static int s_count(const box_t *b, mesh__zre_event_type_t type, const char *name,
                   const char *extra)
{
    int n = 0;
    for (int i = 0; i < b->n; i++) {
        const rec_t *r = &b->ev[i];
        if (r->type == type && (!name || strcmp(r->name, name) == 0) &&
            (!extra || strcmp(r->group, extra) == 0 || strcmp(r->reason, extra) == 0 ||
             strcmp(r->data, extra) == 0)) {
            n++;
        }
    }
    return n;
}


static int64_t g_now; /* the fake clock, ms */

static mesh__zre_t *s_node(box_t *box, const char *name, uint16_t beacon_port, bool beacon_off)
{
    mesh__zre_config_t c = {.name = name,
                            .iface = "lo",
                            .beacon_port = beacon_port,
                            .beacon_off = beacon_off,
                            .beacon_interval_ms = 100,
                            .evasive_ms = 1000,
                            .expired_ms = 3000,
                            .reap_ms = 100,
                            .seed_retry_ms = 500};
    mesh__zre_t *node = mesh__zre_new(&c, NULL);
    cr_assert_not_null(node);
    box->node = node;
    box->n = 0;
    mesh__zre_set_handler(node, s_record, box);
    return node;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/*  Drives the nodes (real sockets, fake clock) until cond holds or about
    two real seconds pass. The clock advances by step ms per round. */
typedef bool (*cond_fn)(box_t **boxes, int n);

static bool s_pump(box_t **boxes, int n, int step, cond_fn cond)
{
    for (int round = 0; round < 400; round++) {
        for (int i = 0; i < n; i++) {
            mesh__zre_t *node = boxes[i]->node;
            mesh__zre_on_beacon(node, g_now);
            while (mesh__zre_on_inbox(node, g_now, 1000)) {
            }
            mesh__zre_on_tick(node, g_now);
        }
        if (cond && cond(boxes, n)) {
            return true;
        }
        g_now += step;
        s_sleep_ms(5);
    }
    return cond == NULL;
}

static bool s_all_see_all(box_t **boxes, int n)
{
    for (int i = 0; i < n; i++) {
        if (mesh__zre_peer_count(boxes[i]->node) != (size_t)(n - 1)) {
            return false;
        }
    }
    return true;
}

static void s_init(void)
{
    g_now = 1000000;
}

TestSuite(zre, .init = s_init, .timeout = 60);

Test(zre, three_nodes_discover_each_other_on_loopback)
{
    uint16_t port = test_free_udp_port();
    box_t a, b, c;
    box_t *all[] = {&a, &b, &c};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    s_node(&c, "c", port, false);
    mesh__zre_set_header(a.node, "X-Test", "yes");
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mesh__zre_start(all[i]->node, g_now), 0);
    }
    cr_assert(s_pump(all, 3, 20, s_all_see_all), "nodes did not discover each other");
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_ENTER, "b", NULL), 1);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_ENTER, "c", NULL), 1);
    const mesh__zre_peer_t *pa = mesh__zre_peer_lookup(b.node, "a");
    cr_assert_not_null(pa);
    cr_expect_str_eq(mesh__zre_peer_header(pa, "X-Test"), "yes");
    cr_expect(mesh__zre_peer_is_mesh(pa));
    cr_expect_str_eq(mesh__zre_peer_endpoint(pa), mesh__zre_endpoint(a.node));
    cr_expect_not_null(mesh__zre_peer_lookup(b.node, mesh__zre_uuid_str(a.node)));
    for (int i = 0; i < 3; i++) {
        mesh__zre_destroy(&all[i]->node);
    }
}

static bool s_b_and_c_got_whisper(box_t **boxes, int n)
{
    return s_count(boxes[1], MESH_ZRE_EV_WHISPER, "a", "hello b") == 1;
}

static bool s_shout_arrived(box_t **boxes, int n)
{
    return s_count(boxes[1], MESH_ZRE_EV_SHOUT, "a", "to g") == 1 &&
           s_count(boxes[2], MESH_ZRE_EV_SHOUT, "a", "to g") == 1;
}

static bool s_a_saw_leave(box_t **boxes, int n)
{
    return s_count(boxes[0], MESH_ZRE_EV_LEAVE, "c", "g") == 1;
}

Test(zre, whisper_shout_join_leave)
{
    uint16_t port = test_free_udp_port();
    box_t a, b, c;
    box_t *all[] = {&a, &b, &c};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    s_node(&c, "c", port, false);
    mesh__zre_join(b.node, "g"); /* before start: carried in HELLO */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mesh__zre_start(all[i]->node, g_now), 0);
    }
    mesh__zre_join(c.node, "g"); /* after start: a JOIN message */
    cr_assert(s_pump(all, 3, 20, s_all_see_all));
    cr_assert(s_pump(all, 3, 20, NULL) || true);
    const mesh__zre_peer_t *pb = mesh__zre_peer_lookup(a.node, "b");
    cr_assert_eq(mesh__zre_whisper(a.node, mesh__zre_peer_uuid(pb), "hello b", 7), 0);
    cr_assert(s_pump(all, 3, 20, s_b_and_c_got_whisper));
    cr_expect_eq(s_count(&c, MESH_ZRE_EV_WHISPER, NULL, NULL), 0, "whisper leaked to c");
    cr_expect_eq(mesh__zre_whisper(a.node, mesh__zre_peer_uuid(pb), "", 0), MESH_ERR_INVAL);

    /* a is not in g but may shout to it; b and c are members */
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_JOIN, "b", "g"), 1);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_JOIN, "c", "g"), 1);
    cr_assert_eq(mesh__zre_shout(a.node, "g", "to g", 4), 0);
    cr_assert(s_pump(all, 3, 20, s_shout_arrived), "shout did not reach both members");
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_SHOUT, NULL, NULL), 0);

    cr_assert_eq(mesh__zre_leave(c.node, "g"), 0);
    cr_assert_eq(mesh__zre_leave(c.node, "g"), 0); /* not a member: no second LEAVE */
    cr_assert(s_pump(all, 3, 20, s_a_saw_leave));
    s_pump(all, 3, 20, NULL);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_LEAVE, "c", "g"), 1);
    cr_expect_eq(s_count(&b, MESH_ZRE_EV_LEAVE, "c", "g"), 1);
    cr_expect_not(mesh__zre_peer_in_group(mesh__zre_peer_lookup(a.node, "c"), "g"));
    /* statuses: c joined then left: 2 */
    cr_expect_eq(mesh__zre_peer_status(mesh__zre_peer_lookup(a.node, "c")), 2);

    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_expect_eq(mesh__zre_join(a.node, longname), MESH_ERR_TOOLONG);
    cr_expect_eq(mesh__zre_set_header(a.node, "k", "v"), MESH_ERR_STATE);
    for (int i = 0; i < 3; i++) {
        mesh__zre_destroy(&all[i]->node);
    }
}

static bool s_pair(box_t **boxes, int n)
{
    return mesh__zre_peer_count(boxes[0]->node) == 1 && mesh__zre_peer_count(boxes[1]->node) == 1;
}

static bool s_a_lost_b(box_t **boxes, int n)
{
    return mesh__zre_peer_count(boxes[0]->node) == 0;
}

Test(zre, leaving_beacon_removes_a_mesh_peer_after_the_grace)
{
    uint16_t port = test_free_udp_port();
    box_t a, b;
    box_t *all[] = {&a, &b};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert(s_pump(all, 2, 20, s_pair));
    /* a port-0 beacon in b's name, sent by hand: no BYE, no TCP */
    int fd = mesh__udp_open(port);
    cr_assert_geq(fd, 0);
    mesh__iface_t lo;
    cr_assert_eq(mesh__iface_lookup("lo", &lo), 0);
    uint8_t beacon[MESH_ZRE_BEACON_SIZE];
    mesh__beacon_encode(beacon, mesh__zre_uuid(b.node), 0);
    cr_assert_eq(mesh__udp_send(fd, &lo, port, beacon, sizeof beacon), 0);
    close(fd);
    box_t *only_a[] = {&a};
    /* b is a mesh peer: its last TCP messages may trail the beacon, so it is
       forgotten after MESH_ZRE_LEAVE_GRACE_MS (or at its BYE), not at once */
    int64_t t0 = g_now;
    cr_assert(s_pump(only_a, 1, 10, s_a_lost_b), "leaving beacon ignored");
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "b", "left"), 1);
    cr_expect_geq(g_now - t0, MESH_ZRE_LEAVE_GRACE_MS - 10);
    cr_expect_leq(g_now - t0, MESH_ZRE_LEAVE_GRACE_MS + 200);
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
}

Test(zre, stop_is_seen_as_left_without_beacons)
{
    uint16_t port = test_free_udp_port();
    box_t a, b;
    box_t *all[] = {&a, &b};
    s_node(&a, "a", port, true);
    s_node(&b, "b", port, true);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    char seed[64];
    snprintf(seed, sizeof seed, "%s", mesh__zre_endpoint(a.node));
    cr_assert_eq(mesh__zre_add_seed(b.node, seed), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert(s_pump(all, 2, 20, s_pair));
    mesh__zre_stop(b.node); /* BYE over TCP */
    box_t *only_a[] = {&a};
    cr_assert(s_pump(only_a, 1, 1, s_a_lost_b), "stop not noticed");
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "b", "left"), 1);
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
}

Test(zre, silent_peer_goes_evasive_then_expires)
{
    uint16_t port = test_free_udp_port();
    box_t a, b;
    box_t *all[] = {&a, &b};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert(s_pump(all, 2, 20, s_pair));
    /* b vanishes without a word: it is simply no longer driven */
    box_t *only_a[] = {&a};
    int64_t t0 = g_now;
    cr_assert(s_pump(only_a, 1, 100, s_a_lost_b), "silent peer never expired");
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EVASIVE, "b", NULL), 1);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "b", "expired"), 1);
    cr_expect_geq(g_now - t0, 3000 - 200, "expired too early: %ld ms", (long)(g_now - t0));
    cr_expect_leq(g_now - t0, 3000 + 300, "expired too late: %ld ms", (long)(g_now - t0));
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
}

static bool s_a_back(box_t **boxes, int n)
{
    return s_count(boxes[0], MESH_ZRE_EV_BACK, "b", NULL) == 1;
}

Test(zre, evasive_peer_answers_ping_and_comes_back)
{
    uint16_t port = test_free_udp_port();
    box_t a, b;
    box_t *all[] = {&a, &b};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert(s_pump(all, 2, 20, s_pair));
    /* advance only a's view past evasive, then let b answer the PING */
    g_now += 1200;
    box_t *only_a[] = {&a};
    s_pump(only_a, 1, 0, NULL);
    cr_assert_eq(s_count(&a, MESH_ZRE_EV_EVASIVE, "b", NULL), 1);
    cr_assert(s_pump(all, 2, 0, s_a_back), "PING-OK did not bring the peer back");
    cr_expect_eq(mesh__zre_peer_count(a.node), 1);
    cr_expect_not(mesh__zre_peer_evasive(mesh__zre_peer_lookup(a.node, "b")));
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
}

Test(zre, seeds_chain_becomes_fully_connected)
{
    uint16_t port = test_free_udp_port();
    box_t a, b, c;
    box_t *all[] = {&a, &b, &c};
    s_node(&a, "a", port, true);
    s_node(&b, "b", port, true);
    s_node(&c, "c", port, true);
    cr_assert_eq(mesh__zre_beacon_fd(a.node), -1);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    cr_assert_eq(mesh__zre_add_seed(b.node, mesh__zre_endpoint(a.node)), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert_eq(mesh__zre_add_seed(c.node, mesh__zre_endpoint(b.node)), 0);
    cr_assert_eq(mesh__zre_start(c.node, g_now), 0);
    cr_assert(s_pump(all, 3, 20, s_all_see_all), "a=%zu b=%zu c=%zu",
              mesh__zre_peer_count(a.node), mesh__zre_peer_count(b.node),
              mesh__zre_peer_count(c.node));
    cr_expect_not_null(mesh__zre_peer_lookup(a.node, "c"), "gossip did not introduce c to a");
    s_pump(all, 3, 20, NULL);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, NULL, NULL), 0, "spurious resets");
    cr_expect_eq(s_count(&c, MESH_ZRE_EV_EXIT, NULL, NULL), 0, "spurious resets");
    cr_expect_eq(mesh__zre_add_seed(c.node, "udp://x"), MESH_ERR_INVAL);
    for (int i = 0; i < 3; i++) {
        mesh__zre_destroy(&all[i]->node);
    }
}

Test(zre, seeds_and_beacons_together_do_not_fight)
{
    uint16_t port = test_free_udp_port();
    box_t a, b;
    box_t *all[] = {&a, &b};
    s_node(&a, "a", port, false);
    s_node(&b, "b", port, false);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    cr_assert_eq(mesh__zre_add_seed(b.node, mesh__zre_endpoint(a.node)), 0);
    cr_assert_eq(mesh__zre_start(b.node, g_now), 0);
    cr_assert(s_pump(all, 2, 20, s_pair));
    s_pump(all, 2, 20, NULL);
    cr_expect_eq(mesh__zre_peer_count(a.node), 1);
    cr_expect_lt(s_count(&a, MESH_ZRE_EV_EXIT, NULL, NULL), 3, "reset storm");
    cr_expect_lt(s_count(&b, MESH_ZRE_EV_ENTER, NULL, NULL), 3, "reset storm");
    mesh__zre_destroy(&a.node);
    mesh__zre_destroy(&b.node);
}

/* ------------------------------------------------------------------------ */
/* a hand-made peer: a ROUTER inbox and a DEALER into the node */

typedef struct {
    void *ctx, *inbox, *dealer;
    uint8_t uuid[16];
    char endpoint[64];
} fake_t;

static void s_fake_open(fake_t *f, const mesh__zre_t *target, uint8_t tag)
{
    f->ctx = zmq_ctx_new();
    memset(f->uuid, tag, sizeof f->uuid);
    f->inbox = zmq_socket(f->ctx, ZMQ_ROUTER);
    cr_assert_eq(zmq_bind(f->inbox, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(f->inbox, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    f->dealer = NULL;
    (void)target;
}

static void s_fake_dial(fake_t *f, const mesh__zre_t *target)
{
    if (f->dealer) {
        zmq_close(f->dealer);
    }
    f->dealer = zmq_socket(f->ctx, ZMQ_DEALER);
    uint8_t id[17] = {1};
    memcpy(id + 1, f->uuid, 16);
    zmq_setsockopt(f->dealer, ZMQ_IDENTITY, id, sizeof id);
    int zero = 0;
    zmq_setsockopt(f->dealer, ZMQ_LINGER, &zero, sizeof zero);
    cr_assert_eq(zmq_connect(f->dealer, mesh__zre_endpoint(target)), 0);
}

static void s_fake_hello(fake_t *f, const char *name)
{
    uint8_t buf[256];
    const char *g[] = {"grp"};
    const char *k[] = {"K"}, *v[] = {"V"};
    size_t n = mesh__zre_encode_hello(buf, sizeof buf, 1, f->endpoint, g, 1, 1, name, k, v, 1);
    zmq_send(f->dealer, buf, n, 0);
}

static void s_fake_bare(fake_t *f, uint8_t id, uint16_t seq)
{
    uint8_t buf[6];
    mesh__zre_encode_bare(buf, sizeof buf, id, seq);
    zmq_send(f->dealer, buf, sizeof buf, 0);
}

static void s_fake_close(fake_t *f)
{
    if (f->dealer) {
        zmq_close(f->dealer);
    }
    zmq_close(f->inbox);
    zmq_ctx_term(f->ctx);
}

static bool s_a_has_one(box_t **boxes, int n)
{
    return mesh__zre_peer_count(boxes[0]->node) == 1;
}

static bool s_gap_seen(box_t **boxes, int n)
{
    return mesh__zre_stats(boxes[0]->node)->sequence_gaps == 1;
}

Test(zre, sequence_gap_removes_the_peer)
{
    box_t a;
    box_t *all[] = {&a};
    s_node(&a, "a", test_free_udp_port(), true);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    fake_t f;
    s_fake_open(&f, a.node, 0x42);
    s_fake_dial(&f, a.node);
    s_fake_hello(&f, "fake");
    cr_assert(s_pump(all, 1, 1, s_a_has_one));
    const mesh__zre_peer_t *p = mesh__zre_peer_lookup(a.node, "fake");
    cr_assert_not_null(p);
    cr_expect_str_eq(mesh__zre_peer_header(p, "K"), "V");
    cr_expect(mesh__zre_peer_in_group(p, "grp"));
    cr_expect_not(mesh__zre_peer_is_mesh(p));
    s_fake_bare(&f, MESH_ZRE_GOODBYE, 2); /* Zyre-only id: counted, ignored */
    s_fake_bare(&f, MESH_ZRE_PING_OK, 3);
    s_fake_bare(&f, MESH_ZRE_PING_OK, 5); /* 4 is missing */
    cr_assert(s_pump(all, 1, 1, s_gap_seen));
    cr_expect_eq(mesh__zre_stats(a.node)->msgs_ignored, 1);
    cr_expect_eq(mesh__zre_peer_count(a.node), 0);
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "fake", "sequence"), 1);
    s_fake_close(&f);
    mesh__zre_destroy(&a.node);
}

static bool s_reentered(box_t **boxes, int n)
{
    return s_count(boxes[0], MESH_ZRE_EV_ENTER, "fake", NULL) == 2;
}

Test(zre, hello_from_a_ready_peer_resets_it)
{
    box_t a;
    box_t *all[] = {&a};
    s_node(&a, "a", test_free_udp_port(), true);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    fake_t f;
    s_fake_open(&f, a.node, 0x43);
    s_fake_dial(&f, a.node);
    s_fake_hello(&f, "fake");
    cr_assert(s_pump(all, 1, 1, s_a_has_one));
    g_now += 1500; /* past the reset damping window, before expiry */
    s_fake_dial(&f, a.node);
    s_fake_hello(&f, "fake");
    cr_assert(s_pump(all, 1, 1, s_reentered));
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "fake", "reset"), 1);
    cr_expect_eq(mesh__zre_peer_count(a.node), 1);
    s_fake_close(&f);
    mesh__zre_destroy(&a.node);
}

static bool s_garbage_counted(box_t **boxes, int n)
{
    const mesh__zre_stats_t *s = mesh__zre_stats(boxes[0]->node);
    return s->msgs_malformed >= 3 && s->msgs_unknown_sender >= 1;
}

Test(zre, garbage_is_dropped_and_counted)
{
    box_t a;
    box_t *all[] = {&a};
    s_node(&a, "a", test_free_udp_port(), true);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    fake_t f;
    s_fake_open(&f, a.node, 0x44);
    s_fake_dial(&f, a.node);
    zmq_send(f.dealer, "\xaa\xa1\x01\x03\x00\x01", 6, 0); /* version 3 */
    zmq_send(f.dealer, "\xaa\xa0\x06\x02\x00\x01", 6, 0); /* ZRE v1 signature */
    zmq_send(f.dealer, "\xaa\xa1\x0b\x02\x00\x01", 6, 0); /* unknown id */
    s_fake_bare(&f, MESH_ZRE_PING, 2);                      /* not said HELLO */
    /* a wrong-length identity, straight from a plain DEALER */
    void *raw = zmq_socket(f.ctx, ZMQ_DEALER);
    zmq_setsockopt(raw, ZMQ_IDENTITY, "\x01short", 6);
    zmq_connect(raw, mesh__zre_endpoint(a.node));
    s_fake_bare(&f, MESH_ZRE_PING, 3);
    zmq_send(raw, "\xaa\xa1\x06\x02\x00\x01", 6, 0);
    cr_assert(s_pump(all, 1, 1, s_garbage_counted));
    cr_expect_eq(mesh__zre_peer_count(a.node), 0);
    int zero = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(raw);
    s_fake_close(&f);
    mesh__zre_destroy(&a.node);
}

static bool s_all_received(box_t **boxes, int n)
{
    return mesh__zre_stats(boxes[0]->node)->msgs_received >= 65536;
}

Test(zre, sequence_wrap_of_zyre_js_is_accepted, .timeout = 120)
{
    box_t a;
    box_t *all[] = {&a};
    s_node(&a, "a", test_free_udp_port(), true);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    fake_t f;
    s_fake_open(&f, a.node, 0x45);
    s_fake_dial(&f, a.node);
    int hwm = 0;
    zmq_setsockopt(f.dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    s_fake_hello(&f, "js");
    /* zyre.js counts modulo 65535: ..., 65533, 65534, 0, 1 */
    for (uint32_t seq = 2; seq <= 65534; seq++) {
        s_fake_bare(&f, MESH_ZRE_PING_OK, (uint16_t)seq);
    }
    s_fake_bare(&f, MESH_ZRE_PING_OK, 0);
    s_fake_bare(&f, MESH_ZRE_PING_OK, 1);
    for (int i = 0; i < 5 && !s_all_received(all, 1); i++) {
        s_pump(all, 1, 0, s_all_received);
    }
    cr_assert(s_all_received(all, 1), "received %lu",
              (unsigned long)mesh__zre_stats(a.node)->msgs_received);
    cr_expect_eq(mesh__zre_stats(a.node)->sequence_gaps, 0);
    cr_expect_eq(mesh__zre_peer_count(a.node), 1);
    s_fake_close(&f);
    mesh__zre_destroy(&a.node);
}


static bool s_seed_knows_group(box_t **boxes, int n)
{
    const mesh__zre_peer_t *y = mesh__zre_peer_lookup(boxes[0]->node, "y");
    return y && mesh__zre_peer_in_group(y, "g") && mesh__zre_peer_count(boxes[1]->node) == 1;
}

Test(zre, a_late_seed_learns_groups_joined_while_it_was_down)
{
    box_t s, y;
    box_t *all[] = {&s, &y};
    mesh__zre_config_t c = {.name = "s", .beacon_off = true, .inbox_port = test_free_tcp_port()};
    s.node = mesh__zre_new(&c, NULL);
    s.n = 0;
    mesh__zre_set_handler(s.node, s_record, &s);
    s_node(&y, "y", 0, true);
    char seed[64];
    snprintf(seed, sizeof seed, "tcp://127.0.0.1:%u", c.inbox_port);
    cr_assert_eq(mesh__zre_add_seed(y.node, seed), 0);
    cr_assert_eq(mesh__zre_start(y.node, g_now), 0);
    box_t *only_y[] = {&y};
    s_pump(only_y, 1, 20, NULL); /* HELLO queued for a seed that is not there */
    cr_assert_eq(mesh__zre_join(y.node, "g"), 0);
    cr_assert_eq(mesh__zre_start(s.node, g_now), 0);
    cr_assert(s_pump(all, 2, 1, s_seed_knows_group), "the seed missed the JOIN");
    cr_expect_eq(mesh__zre_peer_status(mesh__zre_peer_lookup(s.node, "y")), 1);
    cr_expect_eq(mesh__zre_stats(s.node)->sequence_gaps, 0);
    mesh__zre_destroy(&s.node);
    mesh__zre_destroy(&y.node);
}

static bool s_fake_gone(box_t **boxes, int n)
{
    return mesh__zre_peer_lookup(boxes[0]->node, "plain") == NULL;
}

Test(zre, leaving_beacon_removes_a_plain_peer_at_once)
{
    uint16_t port = test_free_udp_port();
    box_t a;
    box_t *all[] = {&a};
    s_node(&a, "a", port, false);
    cr_assert_eq(mesh__zre_start(a.node, g_now), 0);
    fake_t f; /* no X-MESH header: a plain ZRE peer */
    s_fake_open(&f, a.node, 0x46);
    s_fake_dial(&f, a.node);
    s_fake_hello(&f, "plain");
    cr_assert(s_pump(all, 1, 1, s_a_has_one));
    int fd = mesh__udp_open(port);
    mesh__iface_t lo;
    cr_assert_eq(mesh__iface_lookup("lo", &lo), 0);
    uint8_t beacon[MESH_ZRE_BEACON_SIZE];
    mesh__beacon_encode(beacon, f.uuid, 0);
    cr_assert_eq(mesh__udp_send(fd, &lo, port, beacon, sizeof beacon), 0);
    close(fd);
    int64_t t0 = g_now;
    cr_assert(s_pump(all, 1, 1, s_fake_gone));
    cr_expect_leq(g_now - t0, 50, "took %ld ms", (long)(g_now - t0));
    cr_expect_eq(s_count(&a, MESH_ZRE_EV_EXIT, "plain", "left"), 1);
    s_fake_close(&f);
    mesh__zre_destroy(&a.node);
}
