/*  raw_zmq.h: the baseline every mesh benchmark is compared against.

    Plain libzmq over tcp on loopback, nothing of mesh: a client DEALER on the
    calling thread and a ROUTER on a second thread with its own socket, each
    side in its own zmq context (as two mesh nodes in one process, or two
    processes, would be: one libzmq I/O thread per side). The server thread
    receives into zmq_msg_t and sends the same messages back (no copy).

    Placement (pinned or free) is whatever the process has; see
    bench_pin_process(). Every function returns 0 on success, or -1 after
    printing why to stderr. */
#ifndef MESH_BENCH_RAW_ZMQ_H
#define MESH_BENCH_RAW_ZMQ_H

#include <stddef.h>
#include <stdint.h>

/*  One-shot: each sets up a fresh pair on an ephemeral port
    (tcp://127.0.0.1:*), runs, and tears everything down. */

/*  Lock-step round trips DEALER -> ROUTER -> same DEALER: `warmup` round
    trips not recorded, then `iterations` recorded in rtt_ns[] (nanoseconds,
    CLOCK_MONOTONIC, caller's array of `iterations` entries). */
int bench_raw_rtt(size_t size, int warmup, int iterations, uint64_t *rtt_ns);

/*  Pipelined request/reply: keeps `window` requests in flight until
    `requests` replies are back. *req_per_s = requests / elapsed. */
int bench_raw_pipelined(size_t size, int window, int requests, double *req_per_s);

/*  One-way DEALER -> ROUTER: sends `count` messages as fast as the DEALER
    takes them; the ROUTER side acknowledges the last one. *msg_per_s =
    count / (first send .. ack received). */
int bench_raw_oneway(size_t size, int count, double *msg_per_s);

/*  A persistent echo pair, for benchmarks that interleave raw and mesh in
    small blocks so both see the same conditions. NULL on failure. */
typedef struct bench_raw_echo bench_raw_echo_t;
/*  The reference: DEALER -> ROUTER -> same DEALER, one TCP connection. */
bench_raw_echo_t *bench_raw_echo_new(void);
/*  Diagnostic, not the reference: what ZRE does on the wire, in plain
    libzmq. Requests go client DEALER -> server ROUTER, replies server
    DEALER -> client ROUTER (one TCP connection per direction), each as a
    6-byte ZRE-like header frame plus the content frame. Against it, mesh's
    figures show the cost of mesh's own code; against the reference, this
    shows the cost of ZRE's topology and framing. */
bench_raw_echo_t *bench_raw_echo_new_zre(void);
void bench_raw_echo_destroy(bench_raw_echo_t **self_p);
/*  As bench_raw_rtt / bench_raw_pipelined, on an existing pair. */
int bench_raw_echo_rtt(bench_raw_echo_t *self, size_t size, int warmup, int iterations,
                       uint64_t *rtt_ns);
int bench_raw_echo_pipelined(bench_raw_echo_t *self, size_t size, int window, int requests,
                             double *req_per_s);

#endif
