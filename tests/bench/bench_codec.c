/*  bench_codec: the cost of a mesh envelope (codec.c) against two baselines
    measured in the same run.

    bench_codec [--pin] [--runs R] [--iterations N] [--size B]

    For REQUEST and REPLY with a B-byte payload (default 64): encode (clear a
    reused mesh__buf_t, encode), decode (mesh__env_decode of the encoded
    bytes) and round trip (both), in ns per operation. Baselines:
      memcpy    copying the same number of bytes as the envelope (the floor);
      msgpack-c msgpack_pack_* of the same array into a reused sbuffer, and
                msgpack_unpack into a reused zone (msgpack_zone_clear between
                messages) followed by the same type checks and field reads
                into a mesh__env_t (what a decoder must do either way).
    Each run times every case once, interleaved; the median of runs is
    printed with its spread and the ratios. CPU only: no sockets. */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "codec.h"

#define CODEC_DEFAULT_RUNS       3
#define CODEC_DEFAULT_ITERATIONS 2000000
#define CODEC_DEFAULT_SIZE       64
#define CODEC_RUNS_MAX           50
#define CODEC_PATH               "svc/echo"
#define CODEC_TIMEOUT_MS         5000

/*  Keeps the compiler from dropping work whose result is unused. */
static volatile uint64_t s_sink;

typedef enum { OP_ENCODE, OP_DECODE, OP_ROUNDTRIP, OP_COUNT } op_t;
typedef enum { IMPL_MESH, IMPL_MEMCPY, IMPL_MSGPACK, IMPL_COUNT } impl_t;
typedef enum { ENV_REQUEST, ENV_REPLY, ENV_COUNT } env_t;

static const char *const s_op_names[OP_COUNT] = {"encode", "decode", "round trip"};
static const char *const s_env_names[ENV_COUNT] = {"REQUEST", "REPLY"};

typedef struct {
    uint8_t *payload;
    size_t size;
    mesh__buf_t buf; /* mesh encoder output (reused) */
    uint8_t *wire;   /* one encoded envelope, for the decode-only cases */
    size_t wire_len;
    uint8_t *copy;      /* memcpy destination */
    msgpack_sbuffer sb; /* msgpack-c encoder output (reused) */
    msgpack_packer pk;
    msgpack_zone zone; /* msgpack-c decoder zone (reused) */
    char *mp_wire;     /* msgpack-c's encoding, for its decode-only case */
    size_t mp_wire_len;
} ctx_t;

static void s_mesh_encode(ctx_t *c, env_t e, uint64_t id)
{
    mesh__buf_clear(&c->buf);
    if (e == ENV_REQUEST) {
        mesh__env_encode_request(&c->buf, id, MESH_REQ_CALL, CODEC_PATH, CODEC_TIMEOUT_MS, NULL, 0,
                                 c->payload, c->size);
    } else {
        mesh__env_encode_reply(&c->buf, id, 0, c->payload, c->size, NULL);
    }
}

static uint64_t s_mesh_decode(const uint8_t *data, size_t len)
{
    mesh__env_t env;
    int rc = mesh__env_decode(data, len, &env, NULL);
    if (rc == MESH_ENV_REQUEST) {
        return env.u.request.id + env.u.request.payload.len;
    }
    if (rc == MESH_ENV_REPLY) {
        return env.u.reply.id + env.u.reply.payload.len;
    }
    abort(); /* the bench is broken, not slow */
}

static void s_mp_encode(ctx_t *c, env_t e, uint64_t id)
{
    msgpack_sbuffer_clear(&c->sb);
    if (e == ENV_REQUEST) {
        msgpack_pack_array(&c->pk, 9);
        msgpack_pack_uint8(&c->pk, MESH_ENV_REQUEST);
        msgpack_pack_uint8(&c->pk, MESH_ENV_VERSION);
        msgpack_pack_uint64(&c->pk, id);
        msgpack_pack_uint32(&c->pk, MESH_REQ_CALL);
        msgpack_pack_str_with_body(&c->pk, CODEC_PATH, sizeof CODEC_PATH - 1);
        msgpack_pack_uint32(&c->pk, CODEC_TIMEOUT_MS);
        msgpack_pack_nil(&c->pk);
        msgpack_pack_uint32(&c->pk, 0);
        msgpack_pack_bin_with_body(&c->pk, c->payload, c->size);
    } else {
        msgpack_pack_array(&c->pk, 6);
        msgpack_pack_uint8(&c->pk, MESH_ENV_REPLY);
        msgpack_pack_uint8(&c->pk, MESH_ENV_VERSION);
        msgpack_pack_uint64(&c->pk, id);
        msgpack_pack_int32(&c->pk, 0);
        msgpack_pack_bin_with_body(&c->pk, c->payload, c->size);
        msgpack_pack_nil(&c->pk);
    }
}

static bool s_mp_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        return false;
    }
    *out = o->via.u64;
    return true;
}

static bool s_mp_bytes(const msgpack_object *o, msgpack_object_type type, mesh__slice_t *out)
{
    if (o->type == MSGPACK_OBJECT_NIL) {
        *out = (mesh__slice_t){NULL, 0};
        return true;
    }
    if (o->type != type) {
        return false;
    }
    out->ptr = (const uint8_t *)o->via.bin.ptr; /* str and bin share the layout */
    out->len = o->via.bin.size;
    return true;
}

/*  msgpack_unpack into the reused zone, then the checks and reads a real
    decoder needs (types, lengths, ranges; not the pre-scan that untrusted
    input would also need). */
static uint64_t s_mp_decode(ctx_t *c, const char *data, size_t len)
{
    msgpack_zone_clear(&c->zone);
    msgpack_object o;
    size_t off = 0;
    if (msgpack_unpack(data, len, &off, &c->zone, &o) != MSGPACK_UNPACK_SUCCESS || off != len ||
        o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 2) {
        abort();
    }
    const msgpack_object *a = o.via.array.ptr;
    mesh__env_t env;
    uint64_t type, version, v;
    if (!s_mp_u64(&a[0], &type) || !s_mp_u64(&a[1], &version) || version != 1) {
        abort();
    }
    bool ok;
    if (type == MESH_ENV_REQUEST && o.via.array.size == 9) {
        ok = s_mp_u64(&a[2], &env.u.request.id) && s_mp_u64(&a[3], &v) && v <= UINT32_MAX &&
             s_mp_bytes(&a[4], MSGPACK_OBJECT_STR, &env.u.request.path) && s_mp_u64(&a[5], &v) &&
             v <= UINT32_MAX && s_mp_bytes(&a[6], MSGPACK_OBJECT_STR, &env.u.request.key) &&
             s_mp_u64(&a[7], &v) && v <= UINT32_MAX &&
             s_mp_bytes(&a[8], MSGPACK_OBJECT_BIN, &env.u.request.payload);
        if (ok) {
            return env.u.request.id + env.u.request.payload.len;
        }
    } else if (type == MESH_ENV_REPLY && o.via.array.size == 6) {
        ok = s_mp_u64(&a[2], &env.u.reply.id) &&
             (a[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
              a[3].type == MSGPACK_OBJECT_NEGATIVE_INTEGER) &&
             s_mp_bytes(&a[4], MSGPACK_OBJECT_BIN, &env.u.reply.payload) &&
             s_mp_bytes(&a[5], MSGPACK_OBJECT_STR, &env.u.reply.error);
        if (ok) {
            return env.u.reply.id + env.u.reply.payload.len;
        }
    }
    abort();
}

/*  Times n operations of one case; returns ns per operation. */
static double s_time(ctx_t *c, impl_t impl, env_t e, op_t op, long n)
{
    uint64_t acc = 0;
    uint64_t t0 = bench_now_ns();
    for (long i = 0; i < n; i++) {
        uint64_t id = (uint64_t)i;
        switch (impl) {
        case IMPL_MESH:
            if (op != OP_DECODE) {
                s_mesh_encode(c, e, id);
                acc += c->buf.size;
            }
            if (op == OP_DECODE) {
                acc += s_mesh_decode(c->wire, c->wire_len);
            } else if (op == OP_ROUNDTRIP) {
                acc += s_mesh_decode(c->buf.data, c->buf.size);
            }
            break;
        case IMPL_MEMCPY:
            /* one copy per direction: encode and decode each move the bytes once */
            memcpy(c->copy, c->wire, c->wire_len);
            if (op == OP_ROUNDTRIP) {
                memcpy(c->wire, c->copy, c->wire_len);
            }
            __asm__ __volatile__("" : : "r"(c->copy), "r"(c->wire) : "memory");
            acc += c->copy[i % c->wire_len];
            break;
        case IMPL_MSGPACK:
            if (op != OP_DECODE) {
                s_mp_encode(c, e, id);
                acc += c->sb.size;
            }
            if (op == OP_DECODE) {
                acc += s_mp_decode(c, c->mp_wire, c->mp_wire_len);
            } else if (op == OP_ROUNDTRIP) {
                acc += s_mp_decode(c, c->sb.data, c->sb.size);
            }
            break;
        default:
            abort();
        }
    }
    uint64_t t1 = bench_now_ns();
    s_sink += acc;
    return (double)(t1 - t0) / (double)n;
}

/*  Prepares the wire forms of envelope e. */
static void s_prepare(ctx_t *c, env_t e)
{
    s_mesh_encode(c, e, 12345);
    if (c->buf.failed) {
        abort();
    }
    free(c->wire);
    free(c->copy);
    c->wire_len = c->buf.size;
    c->wire = malloc(c->wire_len);
    c->copy = malloc(c->wire_len);
    if (!c->wire || !c->copy) {
        abort();
    }
    memcpy(c->wire, c->buf.data, c->wire_len);
    s_mp_encode(c, e, 12345);
    free(c->mp_wire);
    c->mp_wire_len = c->sb.size;
    c->mp_wire = malloc(c->mp_wire_len);
    if (!c->mp_wire) {
        abort();
    }
    memcpy(c->mp_wire, c->sb.data, c->mp_wire_len);
}

int main(int argc, char **argv)
{
    long runs = CODEC_DEFAULT_RUNS, iterations = CODEC_DEFAULT_ITERATIONS;
    long size = CODEC_DEFAULT_SIZE;
    int pin = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0) {
            pin = 1;
        } else if (bench_arg_int(argc, argv, &i, "--runs", &runs) ||
                   bench_arg_int(argc, argv, &i, "--iterations", &iterations) ||
                   bench_arg_int(argc, argv, &i, "--size", &size)) {
            continue;
        } else {
            fprintf(stderr, "usage: bench_codec [--pin] [--runs R] [--iterations N] [--size B]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > CODEC_RUNS_MAX || iterations < 1 || size < 0 ||
        size > (long)MESH_CODEC_PAYLOAD_MAX) {
        fprintf(stderr, "bench_codec: runs 1..%d, iterations >= 1, size 0..%u\n", CODEC_RUNS_MAX,
                MESH_CODEC_PAYLOAD_MAX);
        return 2;
    }
    if (pin && bench_pin_process(0) != 0) {
        fprintf(stderr, "bench_codec: cannot pin to CPU 0\n");
        return 1;
    }

    ctx_t c;
    memset(&c, 0, sizeof c);
    c.size = (size_t)size;
    c.payload = malloc(c.size ? c.size : 1);
    if (!c.payload) {
        return 1;
    }
    for (size_t i = 0; i < c.size; i++) {
        c.payload[i] = (uint8_t)(i * 31 + 7);
    }
    msgpack_sbuffer_init(&c.sb);
    msgpack_packer_init(&c.pk, &c.sb, msgpack_sbuffer_write);
    if (!msgpack_zone_init(&c.zone, MSGPACK_ZONE_CHUNK_SIZE)) {
        return 1;
    }

    printf("# mesh envelope codec, %ld B payload, %ld iterations x %ld runs, placement: %s\n", size,
           iterations, runs, pin ? "pinned (CPU 0)" : "free");
    printf("# ns/op, median of runs [min..max]; ratios: mesh / baseline (lower is better)\n");
    static double ns[ENV_COUNT][OP_COUNT][IMPL_COUNT][CODEC_RUNS_MAX];
    size_t wire_len[ENV_COUNT], mp_len[ENV_COUNT];
    for (long r = 0; r < runs; r++) {
        for (int e = 0; e < ENV_COUNT; e++) {
            s_prepare(&c, (env_t)e);
            wire_len[e] = c.wire_len;
            mp_len[e] = c.mp_wire_len;
            for (int op = 0; op < OP_COUNT; op++) {
                for (int impl = 0; impl < IMPL_COUNT; impl++) {
                    s_time(&c, (impl_t)impl, (env_t)e, (op_t)op, iterations / 10); /* warm */
                    ns[e][op][impl][r] = s_time(&c, (impl_t)impl, (env_t)e, (op_t)op, iterations);
                }
            }
        }
    }
    for (int e = 0; e < ENV_COUNT; e++) {
        printf("\n%s: mesh %zu B on the wire, msgpack-c %zu B\n", s_env_names[e], wire_len[e],
               mp_len[e]);
        printf("%-11s %22s %22s %22s %9s %9s\n", "", "mesh", "memcpy", "msgpack-c", "/memcpy",
               "/msgpack");
        for (int op = 0; op < OP_COUNT; op++) {
            double med[IMPL_COUNT];
            printf("%-11s", s_op_names[op]);
            for (int impl = 0; impl < IMPL_COUNT; impl++) {
                double lo, hi;
                med[impl] = bench_median(ns[e][op][impl], (size_t)runs);
                bench_minmax(ns[e][op][impl], (size_t)runs, &lo, &hi);
                printf(" %7.1f [%5.1f..%5.1f]", med[impl], lo, hi);
            }
            printf(" %8.2fx %8.2fx\n", med[IMPL_MESH] / med[IMPL_MEMCPY],
                   med[IMPL_MESH] / med[IMPL_MSGPACK]);
        }
    }
    msgpack_zone_destroy(&c.zone);
    msgpack_sbuffer_destroy(&c.sb);
    mesh__buf_free(&c.buf);
    free(c.wire);
    free(c.copy);
    free(c.mp_wire);
    free(c.payload);
    return 0;
}
