/*  raw_zmq.c: see raw_zmq.h. Pure libzmq; no mesh code. */
#include "raw_zmq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench_util.h"

#define RAW_ENDPOINT_MAX 64
#define RAW_RCVTIMEO_MS  10000 /* a lost message ends the run with an error, not a hang */
#define RAW_ZRE_HDR_SIZE 6     /* a ZRE WHISPER header: signature, id, version, sequence */

/*  ECHO: DEALER -> ROUTER -> same DEALER. SINK: one-way, one ack per batch.
    ZRE: ZRE's shape (see bench_raw_echo_new_zre). */
typedef enum { RAW_ECHO, RAW_SINK, RAW_ZRE } raw_mode_t;

typedef struct {
    raw_mode_t mode;
    void *srv_ctx;
    void *cli_ctx;
    void *router;     /* server's; owned by the server thread once it runs */
    void *dealer;     /* client's */
    void *back;       /* RAW_ZRE: server's DEALER to cli_router (server thread's) */
    void *cli_router; /* RAW_ZRE: where the client receives */
    pthread_t thread;
    bool thread_started;
    long sink_count; /* RAW_SINK: messages to take before the ack */
    char endpoint[RAW_ENDPOINT_MAX];
} raw_pair_t;

struct bench_raw_echo {
    raw_pair_t pair;
    uint64_t seq;
};

static void s_close(void **sock)
{
    if (*sock) {
        int linger = 0;
        zmq_setsockopt(*sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(*sock);
        *sock = NULL;
    }
}

/*  Server thread. ECHO: every [identity][payload] goes straight back. ZRE:
    [identity][header][content] arrives; [header][content] goes back on the
    server's own DEALER. SINK: takes sink_count messages, then sends one ack.
    The messages are forwarded, not copied. Ends when its context is shut
    down (ETERM) or on any error. */
static void *s_server(void *arg)
{
    raw_pair_t *pair = arg;
    zmq_msg_t id, body, content;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    zmq_msg_init(&content);
    long taken = 0;
    for (;;) {
        if (zmq_msg_recv(&id, pair->router, 0) < 0 || zmq_msg_recv(&body, pair->router, 0) < 0) {
            break;
        }
        if (pair->mode == RAW_ZRE) {
            if (zmq_msg_recv(&content, pair->router, 0) < 0 ||
                zmq_msg_send(&body, pair->back, ZMQ_SNDMORE) < 0 ||
                zmq_msg_send(&content, pair->back, 0) < 0) {
                break;
            }
        } else if (pair->mode == RAW_ECHO ||
                   ++taken == __atomic_load_n(&pair->sink_count, __ATOMIC_SEQ_CST)) {
            taken = 0;
            if (zmq_msg_send(&id, pair->router, ZMQ_SNDMORE) < 0 ||
                zmq_msg_send(&body, pair->router, 0) < 0) {
                break;
            }
        }
    }
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    zmq_msg_close(&content);
    s_close(&pair->router);
    s_close(&pair->back);
    return NULL;
}

static void s_teardown(raw_pair_t *pair)
{
    s_close(&pair->dealer);
    s_close(&pair->cli_router);
    if (pair->srv_ctx) {
        /*  Unblocks the server thread's recv with ETERM; it closes its sockets. */
        zmq_ctx_shutdown(pair->srv_ctx);
    }
    if (pair->thread_started) {
        pthread_join(pair->thread, NULL);
        pair->thread_started = false;
    } else {
        s_close(&pair->router);
        s_close(&pair->back);
    }
    if (pair->srv_ctx) {
        zmq_ctx_term(pair->srv_ctx);
        pair->srv_ctx = NULL;
    }
    if (pair->cli_ctx) {
        zmq_ctx_term(pair->cli_ctx);
        pair->cli_ctx = NULL;
    }
}

static int s_setup(raw_pair_t *pair, raw_mode_t mode, long sink_count)
{
    memset(pair, 0, sizeof *pair);
    pair->mode = mode;
    pair->sink_count = sink_count;
    pair->srv_ctx = zmq_ctx_new();
    pair->cli_ctx = zmq_ctx_new();
    if (!pair->srv_ctx || !pair->cli_ctx) {
        goto fail;
    }
    pair->router = zmq_socket(pair->srv_ctx, ZMQ_ROUTER);
    if (!pair->router || zmq_bind(pair->router, "tcp://127.0.0.1:*") != 0) {
        goto fail;
    }
    size_t len = sizeof pair->endpoint;
    if (zmq_getsockopt(pair->router, ZMQ_LAST_ENDPOINT, pair->endpoint, &len) != 0) {
        goto fail;
    }
    pair->dealer = zmq_socket(pair->cli_ctx, ZMQ_DEALER);
    int timeout = RAW_RCVTIMEO_MS;
    if (!pair->dealer ||
        zmq_setsockopt(pair->dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
        zmq_connect(pair->dealer, pair->endpoint) != 0) {
        goto fail;
    }
    if (mode == RAW_ZRE) {
        /*  The way back: the client's own ROUTER, and a server DEALER to it. */
        char back_ep[RAW_ENDPOINT_MAX];
        len = sizeof back_ep;
        pair->cli_router = zmq_socket(pair->cli_ctx, ZMQ_ROUTER);
        pair->back = zmq_socket(pair->srv_ctx, ZMQ_DEALER);
        if (!pair->cli_router || !pair->back ||
            zmq_setsockopt(pair->cli_router, ZMQ_RCVTIMEO, &timeout, sizeof timeout) != 0 ||
            zmq_bind(pair->cli_router, "tcp://127.0.0.1:*") != 0 ||
            zmq_getsockopt(pair->cli_router, ZMQ_LAST_ENDPOINT, back_ep, &len) != 0 ||
            zmq_connect(pair->back, back_ep) != 0) {
            goto fail;
        }
    }
    /*  pthread_create is a full barrier: the server's sockets may change threads here. */
    if (pthread_create(&pair->thread, NULL, s_server, pair) != 0) {
        goto fail;
    }
    pair->thread_started = true;
    return 0;
fail:
    fprintf(stderr, "raw_zmq: setup: %s\n", zmq_strerror(zmq_errno()));
    s_teardown(pair);
    return -1;
}

/*  Sends one request of `size` bytes whose first 8 carry `seq`; in ZRE mode
    behind a ZRE-like 6-byte header frame. */
static int s_send(raw_pair_t *pair, uint8_t *buf, size_t size, uint64_t seq)
{
    static const uint8_t hdr[RAW_ZRE_HDR_SIZE] = {0xAA, 0xA1, 0x02, 0x02, 0x00, 0x00};
    if (pair->mode == RAW_ZRE && zmq_send(pair->dealer, hdr, sizeof hdr, ZMQ_SNDMORE) < 0) {
        return -1;
    }
    memcpy(buf, &seq, size < sizeof seq ? size : sizeof seq);
    return zmq_send(pair->dealer, buf, size, 0) < 0 ? -1 : 0;
}

static int s_recv(void *sock, zmq_msg_t *msg, const char *what)
{
    if (zmq_msg_recv(msg, sock, 0) < 0) {
        fprintf(stderr, "raw_zmq: %s: recv: %s\n", what, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/*  The reply's payload into msg: from the DEALER, or in ZRE mode the last
    of [identity][header][content] on the client's ROUTER. */
static int s_recv_reply(raw_pair_t *pair, zmq_msg_t *msg, const char *what)
{
    if (pair->mode != RAW_ZRE) {
        return s_recv(pair->dealer, msg, what);
    }
    for (int frame = 0; frame < 3; frame++) {
        if (s_recv(pair->cli_router, msg, what) != 0) {
            return -1;
        }
    }
    return 0;
}

static bench_raw_echo_t *s_echo_new(raw_mode_t mode)
{
    bench_raw_echo_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    if (s_setup(&self->pair, mode, 0) != 0) {
        free(self);
        return NULL;
    }
    return self;
}

bench_raw_echo_t *bench_raw_echo_new(void)
{
    return s_echo_new(RAW_ECHO);
}

bench_raw_echo_t *bench_raw_echo_new_zre(void)
{
    return s_echo_new(RAW_ZRE);
}

void bench_raw_echo_destroy(bench_raw_echo_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    s_teardown(&(*self_p)->pair);
    free(*self_p);
    *self_p = NULL;
}

int bench_raw_echo_rtt(bench_raw_echo_t *self, size_t size, int warmup, int iterations,
                       uint64_t *rtt_ns)
{
    uint8_t *buf = calloc(1, size ? size : 1);
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    int rc = buf ? 0 : -1;
    for (int i = 0; rc == 0 && i < warmup + iterations; i++) {
        uint64_t seq = self->seq++;
        uint64_t t0 = bench_now_ns();
        if (s_send(&self->pair, buf, size, seq) != 0 ||
            s_recv_reply(&self->pair, &reply, "rtt") != 0) {
            rc = -1;
            break;
        }
        uint64_t t1 = bench_now_ns();
        uint64_t back = 0;
        memcpy(&back, zmq_msg_data(&reply), size < sizeof back ? size : sizeof back);
        if (zmq_msg_size(&reply) != size || (size >= sizeof back && back != seq)) {
            fprintf(stderr, "raw_zmq: rtt: wrong echo\n");
            rc = -1;
            break;
        }
        if (i >= warmup) {
            rtt_ns[i - warmup] = t1 - t0;
        }
    }
    zmq_msg_close(&reply);
    free(buf);
    return rc;
}

int bench_raw_echo_pipelined(bench_raw_echo_t *self, size_t size, int window, int requests,
                             double *req_per_s)
{
    raw_pair_t *pair = &self->pair;
    uint8_t *buf = calloc(1, size ? size : 1);
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    int rc = buf ? 0 : -1;
    /*  One round trip first so the connection is up before the clock starts. */
    if (rc == 0 && (s_send(pair, buf, size, self->seq++) != 0 ||
                    s_recv_reply(pair, &reply, "pipelined") != 0)) {
        rc = -1;
    }
    uint64_t t0 = bench_now_ns();
    int sent = 0, received = 0;
    while (rc == 0 && sent < window && sent < requests) {
        rc = s_send(pair, buf, size, self->seq++);
        sent++;
    }
    while (rc == 0 && received < requests) {
        if (s_recv_reply(pair, &reply, "pipelined") != 0) {
            rc = -1;
            break;
        }
        received++;
        if (sent < requests) {
            rc = s_send(pair, buf, size, self->seq++);
            sent++;
        }
    }
    uint64_t t1 = bench_now_ns();
    if (rc == 0) {
        *req_per_s = (double)requests / ((double)(t1 - t0) / 1e9);
    }
    zmq_msg_close(&reply);
    free(buf);
    return rc;
}

int bench_raw_rtt(size_t size, int warmup, int iterations, uint64_t *rtt_ns)
{
    bench_raw_echo_t *echo = bench_raw_echo_new();
    if (!echo) {
        return -1;
    }
    int rc = bench_raw_echo_rtt(echo, size, warmup, iterations, rtt_ns);
    bench_raw_echo_destroy(&echo);
    return rc;
}

int bench_raw_pipelined(size_t size, int window, int requests, double *req_per_s)
{
    bench_raw_echo_t *echo = bench_raw_echo_new();
    if (!echo) {
        return -1;
    }
    int rc = bench_raw_echo_pipelined(echo, size, window, requests, req_per_s);
    bench_raw_echo_destroy(&echo);
    return rc;
}

int bench_raw_oneway(size_t size, int count, double *msg_per_s)
{
    raw_pair_t pair;
    /*  The sink first acks every single message (priming), then every `count`. */
    if (s_setup(&pair, RAW_SINK, 1) != 0) {
        return -1;
    }
    uint8_t *buf = calloc(1, size ? size : 1);
    zmq_msg_t ack;
    zmq_msg_init(&ack);
    int rc = buf ? 0 : -1;
    /*  Prime: one message, one ack, so the connection is up. The server reads
        sink_count again only after the next message, which is sent after
        this store. */
    if (rc == 0 && (s_send(&pair, buf, size, 0) != 0 || s_recv(pair.dealer, &ack, "oneway") != 0)) {
        rc = -1;
    }
    __atomic_store_n(&pair.sink_count, (long)count, __ATOMIC_SEQ_CST);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; rc == 0 && i < count; i++) {
        rc = s_send(&pair, buf, size, (uint64_t)i);
    }
    if (rc == 0 && s_recv(pair.dealer, &ack, "oneway") != 0) {
        rc = -1;
    }
    uint64_t t1 = bench_now_ns();
    if (rc == 0) {
        *msg_per_s = (double)count / ((double)(t1 - t0) / 1e9);
    } else {
        fprintf(stderr, "raw_zmq: oneway: %s\n", zmq_strerror(zmq_errno()));
    }
    zmq_msg_close(&ack);
    free(buf);
    s_teardown(&pair);
    return rc;
}
