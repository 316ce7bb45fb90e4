/*  test_codec.c: mesh envelopes (codec.h) against hand-computed msgpack
    vectors, msgpack-c as an independent encoder and decoder, and every
    rejection rule of the decoder.

    Protocol test vectors (hex; copy into docs/protocol.md §11):

    SERVICES version 7, services [["calc/add", ["fast"], 0]],
             subscriptions [["news/", true]]                              31 bytes
      95 10 01 07 91 93 a8 63 61 6c 63 2f 61 64 64 91 a4 66 61 73 74 00
      91 92 a5 6e 65 77 73 2f c3
    SERVICES version 0, no services, no subscriptions                     6 bytes
      95 10 01 00 90 90
    STATUS load 0.5, fitness nil, services_version 3, ring_digest 0x1234,
           inflight 0                                                     18 bytes
      97 11 01 cb 3f e0 00 00 00 00 00 00 c0 03 cd 12 34 00
    STATUS load 2.0, fitness 1.0, services_version 0, ring_digest
           0xffffffffffffffff, inflight 200                               33 bytes
      97 11 01 cb 40 00 00 00 00 00 00 00 cb 3f f0 00 00 00 00 00 00 00
      cf ff ff ff ff ff ff ff ff cc c8
    REQUEST id 1, flags CALL (1), path "echo", timeout_ms 1000, key nil,
            attempt 0, payload "hi"                                       19 bytes
      99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69
    REQUEST id 0x100000000, flags CALL|IDEMPOTENT (3), path "kv/get",
            timeout_ms 0, key "k1", attempt 2, payload empty              27 bytes
      99 12 01 cf 00 00 00 01 00 00 00 00 03 a6 6b 76 2f 67 65 74 00 a2
      6b 31 02 c4 00
    REPLY id 1, status 0, payload "hi", error nil                         10 bytes
      96 13 01 01 00 c4 02 68 69 c0
    REPLY id 2, status -14 (MESH_ERR_REMOTE), payload nil, error "boom"   11 bytes
      96 13 01 02 f2 c0 a4 62 6f 6f 6d
    REPLY id 300, status -1000, payload nil, error nil                    11 bytes
      96 13 01 cd 01 2c d1 fc 18 c0 c0
    PUBLISH topic "news", payload "x"                                     11 bytes
      94 14 01 a4 6e 65 77 73 c4 01 78

    Encoders write exactly these bytes (smallest msgpack forms, float64 for
    floats). Decoders also accept any other msgpack spelling of each field's
    type (see alt_* tests), except type and version, which are positive
    fixints. */
#include "codec.h"
#include "gossip.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

#define S_MAX_BYTES 8192

/*  Bytes parsed from a hex string ("95 10 01", spaces ignored). */
typedef struct {
    uint8_t b[S_MAX_BYTES];
    size_t n;
} s_bytes_t;

static void s_hex_append(s_bytes_t *out, const char *hex)
{
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        cr_assert_eq(sscanf(p, "%2x", &v), 1, "bad hex in test: %s", hex);
        cr_assert_lt(out->n, S_MAX_BYTES);
        out->b[out->n++] = (uint8_t)v;
        p += 2;
    }
}

static s_bytes_t s_hex(const char *hex)
{
    s_bytes_t out = {.n = 0};
    s_hex_append(&out, hex);
    return out;
}

static void s_raw_append(s_bytes_t *out, const void *data, size_t len)
{
    cr_assert_leq(out->n + len, S_MAX_BYTES);
    memcpy(out->b + out->n, data, len);
    out->n += len;
}

/*  A copy of `len` bytes in a heap buffer of exactly that size, so that ASan
    sees any read past the end. The caller frees it. */
static uint8_t *s_dup(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len) {
        memcpy(copy, bytes, len);
    }
    return copy;
}

/*  Scratch big enough for any envelope. */
static mesh__svc_entry_t s_svcs[MESH_CODEC_SERVICES_MAX + 1];
static mesh__sub_entry_t s_subs[MESH_CODEC_SUBS_MAX + 1];
static mesh__env_scratch_t s_scratch = {s_svcs, MESH_CODEC_SERVICES_MAX + 1, s_subs,
                                        MESH_CODEC_SUBS_MAX + 1};

/*  Decodes an exact-size copy, for accept/reject checks only (slices in *out
    point into the freed copy). */
static int s_decode_exact(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = s_dup(bytes, len);
    mesh__env_t env;
    int rc = mesh__env_decode(copy, len, &env, &s_scratch);
    free(copy);
    return rc;
}

static int s_decode_hex(const char *hex)
{
    s_bytes_t b = s_hex(hex);
    return s_decode_exact(b.b, b.n);
}

static bool s_slice_eq(mesh__slice_t s, const char *str)
{
    return s.ptr && s.len == strlen(str) && (s.len == 0 || memcmp(s.ptr, str, s.len) == 0);
}

static bool s_slice_eq_bytes(mesh__slice_t s, const void *data, size_t len)
{
    return s.ptr && s.len == len && (len == 0 || memcmp(s.ptr, data, len) == 0);
}

static mesh__slice_t s_slice(const char *str)
{
    return (mesh__slice_t){(const uint8_t *)str, strlen(str)};
}

/*  A string of n copies of c, NUL-terminated. The caller frees it. */
static char *s_repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void s_assert_buf(const mesh__buf_t *b, const s_bytes_t *want, const char *what)
{
    cr_assert_not(b->failed, "%s: encoder failed", what);
    cr_assert_eq(b->size, want->n, "%s: %zu bytes, want %zu", what, b->size, want->n);
    cr_assert_arr_eq(b->data, want->b, want->n, "%s: bytes differ from the vector", what);
}

/* ----------------------------------------------------------------- vectors */

/* clang-format off */
#define S_V_SERVICES  "95 10 01 07 91 93 a8 63 61 6c 63 2f 61 64 64 91 a4 66 61 73 74 00 " \
                      "91 92 a5 6e 65 77 73 2f c3"
#define S_V_SERVICES0 "95 10 01 00 90 90"
#define S_V_STATUS    "97 11 01 cb 3f e0 00 00 00 00 00 00 c0 03 cd 12 34 00"
#define S_V_STATUS2   "97 11 01 cb 40 00 00 00 00 00 00 00 cb 3f f0 00 00 00 00 00 00 00 " \
                      "cf ff ff ff ff ff ff ff ff cc c8"
#define S_V_REQUEST   "99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69"
#define S_V_REQUEST2  "99 12 01 cf 00 00 00 01 00 00 00 00 03 a6 6b 76 2f 67 65 74 00 a2 " \
                      "6b 31 02 c4 00"
#define S_V_REPLY     "96 13 01 01 00 c4 02 68 69 c0"
#define S_V_REPLY2    "96 13 01 02 f2 c0 a4 62 6f 6f 6d"
#define S_V_REPLY3    "96 13 01 cd 01 2c d1 fc 18 c0 c0"
#define S_V_PUBLISH   "94 14 01 a4 6e 65 77 73 c4 01 78"
/* clang-format on */

static const char *const s_vectors[] = {
    S_V_SERVICES, S_V_SERVICES0, S_V_STATUS, S_V_STATUS2, S_V_REQUEST,
    S_V_REQUEST2, S_V_REPLY,     S_V_REPLY2, S_V_REPLY3,  S_V_PUBLISH,
};
#define S_NVECTORS (sizeof s_vectors / sizeof s_vectors[0])

/*  Encodes vector i with the encoders. */
static void s_encode_vector(mesh__buf_t *b, size_t i)
{
    static const mesh__svc_entry_t svc = {
        .path = {(const uint8_t *)"calc/add", 8},
        .ntags = 1,
        .tags = {{(const uint8_t *)"fast", 4}},
        .flags = 0,
    };
    static const mesh__sub_entry_t sub = {{(const uint8_t *)"news/", 5}, true};
    double one = 1.0;
    mesh__buf_clear(b);
    switch (i) {
    case 0:
        mesh__env_encode_services(b, 7, &svc, 1, &sub, 1);
        break;
    case 1:
        mesh__env_encode_services(b, 0, NULL, 0, NULL, 0);
        break;
    case 2:
        mesh__env_encode_status(b, 0.5, NULL, 3, 0x1234, 0);
        break;
    case 3:
        mesh__env_encode_status(b, 2.0, &one, 0, UINT64_MAX, 200);
        break;
    case 4:
        mesh__env_encode_request(b, 1, MESH_REQ_CALL, "echo", 1000, NULL, 0, "hi", 2);
        break;
    case 5:
        mesh__env_encode_request(b, 0x100000000ull, MESH_REQ_CALL | MESH_REQ_IDEMPOTENT, "kv/get",
                                 0, "k1", 2, NULL, 0);
        break;
    case 6:
        mesh__env_encode_reply(b, 1, 0, "hi", 2, NULL);
        break;
    case 7:
        mesh__env_encode_reply(b, 2, MESH_ERR_REMOTE, NULL, 0, "boom");
        break;
    case 8:
        mesh__env_encode_reply(b, 300, -1000, NULL, 0, NULL);
        break;
    case 9:
        mesh__env_encode_publish(b, "news", "x", 1);
        break;
    default:
        cr_assert_fail("no vector %zu", i);
    }
}

Test(codec_vectors, encoders_write_the_vectors)
{
    mesh__buf_t b = {0};
    for (size_t i = 0; i < S_NVECTORS; i++) {
        s_encode_vector(&b, i);
        s_bytes_t want = s_hex(s_vectors[i]);
        char what[32];
        snprintf(what, sizeof what, "vector %zu", i);
        s_assert_buf(&b, &want, what);
    }
    mesh__buf_free(&b);
}

Test(codec_vectors, services_decodes)
{
    s_bytes_t v = s_hex(S_V_SERVICES);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, &s_scratch), MESH_ENV_SERVICES);
    cr_assert_eq(env.type, MESH_ENV_SERVICES);
    cr_assert_eq(env.u.services.version, 7);
    cr_assert_eq(env.u.services.nservices, 1);
    cr_assert(s_slice_eq(s_svcs[0].path, "calc/add"));
    cr_assert_eq(s_svcs[0].ntags, 1);
    cr_assert(s_slice_eq(s_svcs[0].tags[0], "fast"));
    cr_assert_eq(s_svcs[0].flags, 0);
    cr_assert_eq(env.u.services.nsubs, 1);
    cr_assert(s_slice_eq(s_subs[0].pattern, "news/"));
    cr_assert(s_subs[0].prefix);
    /* slices point into the frame */
    cr_assert_eq(s_svcs[0].path.ptr, v.b + 7);

    v = s_hex(S_V_SERVICES0);
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_SERVICES,
                 "empty lists need no scratch");
    cr_assert_eq(env.u.services.version, 0);
    cr_assert_eq(env.u.services.nservices, 0);
    cr_assert_eq(env.u.services.nsubs, 0);
}

Test(codec_vectors, status_decodes)
{
    s_bytes_t v = s_hex(S_V_STATUS);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_STATUS);
    cr_assert_eq(env.u.status.load, 0.5);
    cr_assert_not(env.u.status.has_fitness);
    cr_assert_eq(env.u.status.services_version, 3);
    cr_assert_eq(env.u.status.ring_digest, 0x1234);
    cr_assert_eq(env.u.status.inflight, 0);

    v = s_hex(S_V_STATUS2);
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_STATUS);
    cr_assert_eq(env.u.status.load, 2.0);
    cr_assert(env.u.status.has_fitness);
    cr_assert_eq(env.u.status.fitness, 1.0);
    cr_assert_eq(env.u.status.services_version, 0);
    cr_assert_eq(env.u.status.ring_digest, UINT64_MAX);
    cr_assert_eq(env.u.status.inflight, 200);
}

Test(codec_vectors, request_decodes)
{
    s_bytes_t v = s_hex(S_V_REQUEST);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REQUEST);
    cr_assert_eq(env.type, MESH_ENV_REQUEST);
    cr_assert_eq(env.u.request.id, 1);
    cr_assert_eq(env.u.request.flags, MESH_REQ_CALL);
    cr_assert(s_slice_eq(env.u.request.path, "echo"));
    cr_assert_eq(env.u.request.timeout_ms, 1000);
    cr_assert_null(env.u.request.key.ptr);
    cr_assert_eq(env.u.request.key.len, 0);
    cr_assert_eq(env.u.request.attempt, 0);
    cr_assert(s_slice_eq(env.u.request.payload, "hi"));
    cr_assert_eq(env.u.request.payload.ptr, v.b + v.n - 2, "payload is a slice of the frame");

    v = s_hex(S_V_REQUEST2);
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REQUEST);
    cr_assert_eq(env.u.request.id, 0x100000000ull);
    cr_assert_eq(env.u.request.flags, MESH_REQ_CALL | MESH_REQ_IDEMPOTENT);
    cr_assert(s_slice_eq(env.u.request.path, "kv/get"));
    cr_assert_eq(env.u.request.timeout_ms, 0);
    cr_assert(s_slice_eq(env.u.request.key, "k1"));
    cr_assert_eq(env.u.request.attempt, 2);
    cr_assert_not_null(env.u.request.payload.ptr, "an empty bin is not nil");
    cr_assert_eq(env.u.request.payload.len, 0);
}

Test(codec_vectors, reply_decodes)
{
    s_bytes_t v = s_hex(S_V_REPLY);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REPLY);
    cr_assert_eq(env.u.reply.id, 1);
    cr_assert_eq(env.u.reply.status, 0);
    cr_assert(s_slice_eq(env.u.reply.payload, "hi"));
    cr_assert_null(env.u.reply.error.ptr);

    v = s_hex(S_V_REPLY2);
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REPLY);
    cr_assert_eq(env.u.reply.id, 2);
    cr_assert_eq(env.u.reply.status, MESH_ERR_REMOTE);
    cr_assert_null(env.u.reply.payload.ptr);
    cr_assert_eq(env.u.reply.payload.len, 0);
    cr_assert(s_slice_eq(env.u.reply.error, "boom"));

    v = s_hex(S_V_REPLY3);
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REPLY);
    cr_assert_eq(env.u.reply.id, 300);
    cr_assert_eq(env.u.reply.status, -1000);
    cr_assert_null(env.u.reply.payload.ptr);
    cr_assert_null(env.u.reply.error.ptr);
}

Test(codec_vectors, publish_decodes)
{
    s_bytes_t v = s_hex(S_V_PUBLISH);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_PUBLISH);
    cr_assert(s_slice_eq(env.u.publish.topic, "news"));
    cr_assert(s_slice_eq(env.u.publish.payload, "x"));
}

Test(codec_vectors, env_is_matches_envelopes_only)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        s_bytes_t v = s_hex(s_vectors[i]);
        cr_assert(mesh__env_is(v.b, v.n), "vector %zu", i);
        cr_assert(mesh__env_is(v.b, 3), "a 3-byte prefix is enough (vector %zu)", i);
    }
    /* other array headers for the same envelope */
    s_bytes_t v = s_hex("dc 00 09 12 01");
    cr_assert(mesh__env_is(v.b, v.n));
    v = s_hex("dd 00 00 00 04 14 01");
    cr_assert(mesh__env_is(v.b, v.n));
    /* types 21..31 look like envelopes (the decoder then drops them) */
    v = s_hex("93 1f 01");
    cr_assert(mesh__env_is(v.b, v.n));

    const char *const nots[] = {
        "93 01 01 90",    /* gossip PEERS */
        "93 02 01 c0",    /* gossip BYE */
        "93 0f 01",       /* type 15 */
        "93 20 01",       /* type 32 */
        "93 12 02",       /* version 2 */
        "93 12 00",       /* version 0 */
        "92 12 01",       /* 2-array */
        "90",             /* empty array */
        "dc 00 10 12 01", /* 16-array */
        "dd 00 01 00 09 12 01",
        "93 cc 12 01", /* type as uint8 */
        "93 12 cc 01", /* version as uint8 */
        "99 12",       /* too short */
        "c4 03 99 12 01",
        "a3 99 12 01",
        "",
    };
    for (size_t i = 0; i < sizeof nots / sizeof nots[0]; i++) {
        v = s_hex(nots[i]);
        uint8_t *copy = s_dup(v.b, v.n);
        cr_assert_not(mesh__env_is(copy, v.n), "%s", nots[i]);
        free(copy);
    }
    cr_assert_not(mesh__env_is(NULL, 0));
}

/*  msgpack-c, an independent implementation, reads what we write as the
    objects we meant, and writes the same bytes for the same envelope. */
Test(codec_vectors, msgpack_c_agrees)
{
    mesh__buf_t b = {0};
    mesh__env_encode_request(&b, 1, MESH_REQ_CALL, "echo", 1000, NULL, 0, "hi", 2);
    cr_assert_not(b.failed);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, (const char *)b.data, b.size, &off),
                 MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, b.size);
    msgpack_object o = u.data;
    cr_assert_eq(o.type, MSGPACK_OBJECT_ARRAY);
    cr_assert_eq(o.via.array.size, 9);
    msgpack_object *a = o.via.array.ptr;
    cr_assert_eq(a[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq(a[0].via.u64, MESH_ENV_REQUEST);
    cr_assert_eq(a[2].via.u64, 1);
    cr_assert_eq(a[4].type, MSGPACK_OBJECT_STR);
    cr_assert_eq(a[4].via.str.size, 4);
    cr_assert_eq(a[5].via.u64, 1000);
    cr_assert_eq(a[6].type, MSGPACK_OBJECT_NIL);
    cr_assert_eq(a[8].type, MSGPACK_OBJECT_BIN);
    cr_assert_eq(a[8].via.bin.size, 2);
    msgpack_unpacked_destroy(&u);

    /* The same REQUEST and a REPLY packed by msgpack-c. */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 9);
    msgpack_pack_uint8(&pk, MESH_ENV_REQUEST);
    msgpack_pack_uint8(&pk, MESH_ENV_VERSION);
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint32(&pk, MESH_REQ_CALL);
    msgpack_pack_str_with_body(&pk, "echo", 4);
    msgpack_pack_uint32(&pk, 1000);
    msgpack_pack_nil(&pk);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_bin_with_body(&pk, "hi", 2);
    cr_assert_eq(sb.size, b.size);
    cr_assert_arr_eq(sb.data, b.data, b.size, "msgpack-c packs the REQUEST vector the same");

    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 6);
    msgpack_pack_int(&pk, MESH_ENV_REPLY);
    msgpack_pack_int(&pk, MESH_ENV_VERSION);
    msgpack_pack_uint64(&pk, 300);
    msgpack_pack_int32(&pk, -1000);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    s_bytes_t v = s_hex(S_V_REPLY3);
    cr_assert_eq(sb.size, v.n);
    cr_assert_arr_eq(sb.data, v.b, v.n, "msgpack-c packs the REPLY vector the same");

    /* A STATUS with msgpack-c's float32 and int64: decodes. */
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_int(&pk, MESH_ENV_STATUS);
    msgpack_pack_int(&pk, MESH_ENV_VERSION);
    msgpack_pack_float(&pk, 0.25f);
    msgpack_pack_int64(&pk, 3);
    msgpack_pack_int64(&pk, 1);
    msgpack_pack_int64(&pk, INT64_MAX);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    mesh__env_t env;
    cr_assert_eq(s_decode_exact((const uint8_t *)sb.data, sb.size), MESH_ENV_STATUS);
    cr_assert_eq(mesh__env_decode((const uint8_t *)sb.data, sb.size, &env, NULL), MESH_ENV_STATUS);
    cr_assert_eq(env.u.status.load, 0.25);
    cr_assert(env.u.status.has_fitness);
    cr_assert_eq(env.u.status.fitness, 3.0);
    cr_assert_eq(env.u.status.services_version, 1);
    cr_assert_eq(env.u.status.ring_digest, (uint64_t)INT64_MAX);
    cr_assert_eq(env.u.status.inflight, UINT64_MAX);
    msgpack_sbuffer_destroy(&sb);
    mesh__buf_free(&b);
}

/* -------------------------------------------------------------- round trip */

Test(codec_roundtrip, request_edges)
{
    char *path = s_repeat('p', MESH_CODEC_PATH_MAX);
    char *key = s_repeat('k', MESH_CODEC_KEY_MAX);
    size_t big = 70000; /* bin32 */
    uint8_t *payload = malloc(big);
    cr_assert_not_null(payload);
    for (size_t i = 0; i < big; i++) {
        payload[i] = (uint8_t)(i * 7);
    }
    struct {
        uint64_t id;
        uint32_t flags;
        const char *path;
        uint32_t timeout;
        const char *key;
        uint32_t attempt;
        size_t size;
    } cases[] = {
        {0, 0, "", 0, NULL, 0, 0},
        {UINT64_MAX, UINT32_MAX, path, UINT32_MAX, key, UINT32_MAX, big},
        {127, 128, "a", 255, "", 256, 255},
        {65535, 65536, path + 224, 0xffff, key + 1000, 0x10000, 256},
        {0xffffffffull, 3, "x/y", 1, "key", 1, 65535},
        {0x100000000ull, 1, path + 1, 2, key + 1, 2, 65536},
        {42, MESH_REQ_CALL | MESH_REQ_IDEMPOTENT | MESH_REQ_ONCE, "/job", 500, "k", 3, 10},
    };
    mesh__buf_t b = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mesh__buf_clear(&b);
        mesh__env_encode_request(&b, cases[c].id, cases[c].flags, cases[c].path, cases[c].timeout,
                                 cases[c].key, cases[c].attempt, payload, cases[c].size);
        cr_assert_not(b.failed, "case %zu", c);
        uint8_t *copy = s_dup(b.data, b.size);
        mesh__env_t env;
        cr_assert_eq(mesh__env_decode(copy, b.size, &env, NULL), MESH_ENV_REQUEST, "case %zu", c);
        cr_assert_eq(env.u.request.id, cases[c].id, "case %zu", c);
        cr_assert_eq(env.u.request.flags, cases[c].flags, "case %zu", c);
        cr_assert(s_slice_eq(env.u.request.path, cases[c].path), "case %zu", c);
        cr_assert_eq(env.u.request.timeout_ms, cases[c].timeout, "case %zu", c);
        if (cases[c].key) {
            cr_assert(s_slice_eq(env.u.request.key, cases[c].key), "case %zu", c);
        } else {
            cr_assert_null(env.u.request.key.ptr, "case %zu", c);
        }
        cr_assert_eq(env.u.request.attempt, cases[c].attempt, "case %zu", c);
        cr_assert(s_slice_eq_bytes(env.u.request.payload, payload, cases[c].size), "case %zu", c);
        free(copy);
    }
    mesh__buf_free(&b);
    free(payload);
    free(key);
    free(path);
}

Test(codec_roundtrip, reply_edges)
{
    char *error = s_repeat('e', MESH_CODEC_ERROR_MAX);
    const int32_t statuses[] = {0,         1,     127,   128,    -1,     -32,
                                -33,       -128,  -129,  -32768, -32769, INT32_MIN,
                                INT32_MAX, 32767, 32768, 65535,  65536,  MESH_ERR_REMOTE};
    const char *errors[] = {NULL, "", "x", error};
    const uint8_t payload[300] = {1, 2, 3};
    const size_t sizes[] = {0, 1, 300};
    mesh__buf_t b = {0};
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
        for (size_t e = 0; e < 4; e++) {
            for (size_t z = 0; z < 3; z++) {
                uint64_t id = s * 1000 + e * 10 + z;
                mesh__buf_clear(&b);
                mesh__env_encode_reply(&b, id, statuses[s], payload, sizes[z], errors[e]);
                cr_assert_not(b.failed);
                mesh__env_t env;
                cr_assert_eq(mesh__env_decode(b.data, b.size, &env, NULL), MESH_ENV_REPLY);
                cr_assert_eq(env.u.reply.id, id);
                cr_assert_eq(env.u.reply.status, statuses[s], "status %d", statuses[s]);
                if (sizes[z] == 0) {
                    cr_assert_null(env.u.reply.payload.ptr, "no payload travels as nil");
                } else {
                    cr_assert(s_slice_eq_bytes(env.u.reply.payload, payload, sizes[z]));
                }
                if (errors[e]) {
                    cr_assert(s_slice_eq(env.u.reply.error, errors[e]));
                } else {
                    cr_assert_null(env.u.reply.error.ptr);
                }
            }
        }
    }
    /* NULL payload with size 0 is nil too */
    mesh__buf_clear(&b);
    mesh__env_encode_reply(&b, UINT64_MAX, 0, NULL, 0, NULL);
    s_bytes_t want = s_hex("96 13 01 cf ff ff ff ff ff ff ff ff 00 c0 c0");
    s_assert_buf(&b, &want, "reply max id");
    mesh__buf_free(&b);
    free(error);
}

Test(codec_roundtrip, status_edges)
{
    const double loads[] = {0.0, -0.0, 1.0, -1.5, 1e300, -1e-300, 5e-324, 0.1};
    const uint64_t u[] = {0, 127, 128, UINT64_MAX, 0x100000000ull};
    mesh__buf_t b = {0};
    for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++) {
        for (size_t k = 0; k < sizeof u / sizeof u[0]; k++) {
            for (int f = 0; f < 2; f++) {
                double fit = loads[(l + 3) % 8];
                mesh__buf_clear(&b);
                mesh__env_encode_status(&b, loads[l], f ? &fit : NULL, u[k], u[(k + 1) % 5],
                                        u[(k + 2) % 5]);
                cr_assert_not(b.failed);
                mesh__env_t env;
                cr_assert_eq(mesh__env_decode(b.data, b.size, &env, NULL), MESH_ENV_STATUS);
                cr_assert_eq(memcmp(&env.u.status.load, &loads[l], sizeof(double)), 0,
                             "load %g bit-exact", loads[l]);
                cr_assert_eq(env.u.status.has_fitness, f == 1);
                if (f) {
                    cr_assert_eq(memcmp(&env.u.status.fitness, &fit, sizeof(double)), 0);
                }
                cr_assert_eq(env.u.status.services_version, u[k]);
                cr_assert_eq(env.u.status.ring_digest, u[(k + 1) % 5]);
                cr_assert_eq(env.u.status.inflight, u[(k + 2) % 5]);
            }
        }
    }
    mesh__buf_free(&b);
}

Test(codec_roundtrip, publish_edges)
{
    char *topic = s_repeat('t', MESH_CODEC_PATH_MAX);
    const char *topics[] = {"", "a", topic + 224, topic + 223, topic};
    mesh__buf_t b = {0};
    for (size_t t = 0; t < 5; t++) {
        for (size_t size = 0; size < 3; size++) {
            mesh__buf_clear(&b);
            mesh__env_encode_publish(&b, topics[t], size ? "xyz" : NULL, size);
            cr_assert_not(b.failed);
            mesh__env_t env;
            cr_assert_eq(mesh__env_decode(b.data, b.size, &env, NULL), MESH_ENV_PUBLISH);
            cr_assert(s_slice_eq(env.u.publish.topic, topics[t]));
            cr_assert(s_slice_eq_bytes(env.u.publish.payload, "xyz", size),
                      "payload is a bin, empty or not");
        }
    }
    mesh__buf_free(&b);
    free(topic);
}

/*  The largest SERVICES the limits allow, and varied shapes in it. */
Test(codec_roundtrip, services_at_the_limits)
{
    static mesh__svc_entry_t in[MESH_CODEC_SERVICES_MAX];
    static mesh__sub_entry_t subs[MESH_CODEC_SUBS_MAX];
    char *longest = s_repeat('s', MESH_CODEC_PATH_MAX);
    char names[MESH_CODEC_SERVICES_MAX][16];
    for (size_t i = 0; i < MESH_CODEC_SERVICES_MAX; i++) {
        snprintf(names[i], sizeof names[i], "svc/%zu", i);
        in[i].path = i == 0 ? s_slice(longest) : s_slice(names[i]);
        in[i].ntags = (uint32_t)(i % (MESH_CODEC_TAGS_MAX + 1));
        for (uint32_t t = 0; t < in[i].ntags; t++) {
            in[i].tags[t] = t % 2 ? s_slice(names[t]) : s_slice(longest + t);
        }
        in[i].flags = i == 1 ? UINT32_MAX : (uint32_t)(i % 2);
        subs[i].pattern = i == 2 ? s_slice(longest) : s_slice(names[i] + (i % 4));
        subs[i].prefix = i % 3 == 0;
    }
    in[MESH_CODEC_TAGS_MAX].path = s_slice(""); /* empty path, 32 tags */
    mesh__buf_t b = {0};
    mesh__env_encode_services(&b, UINT64_MAX, in, MESH_CODEC_SERVICES_MAX, subs,
                              MESH_CODEC_SUBS_MAX);
    cr_assert_not(b.failed);
    cr_assert_eq(b.data[3], 0xcf, "version as uint64");
    cr_assert_eq(b.data[12], 0xdc, "1024 services: array16");

    uint8_t *copy = s_dup(b.data, b.size);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(copy, b.size, &env, &s_scratch), MESH_ENV_SERVICES);
    cr_assert_eq(env.u.services.version, UINT64_MAX);
    cr_assert_eq(env.u.services.nservices, MESH_CODEC_SERVICES_MAX);
    cr_assert_eq(env.u.services.nsubs, MESH_CODEC_SUBS_MAX);
    for (size_t i = 0; i < MESH_CODEC_SERVICES_MAX; i++) {
        cr_assert(s_slice_eq_bytes(s_svcs[i].path, in[i].path.ptr, in[i].path.len), "svc %zu", i);
        cr_assert_eq(s_svcs[i].ntags, in[i].ntags);
        for (uint32_t t = 0; t < in[i].ntags; t++) {
            cr_assert(s_slice_eq_bytes(s_svcs[i].tags[t], in[i].tags[t].ptr, in[i].tags[t].len));
        }
        cr_assert_eq(s_svcs[i].flags, in[i].flags);
        cr_assert(s_slice_eq_bytes(s_subs[i].pattern, subs[i].pattern.ptr, subs[i].pattern.len));
        cr_assert_eq(s_subs[i].prefix, subs[i].prefix);
    }

    /* The same with a scratch one entry short: MALFORMED (the caller sized
       it to the limits; a peer sending more is broken). */
    mesh__env_scratch_t small = {s_svcs, MESH_CODEC_SERVICES_MAX - 1, s_subs, MESH_CODEC_SUBS_MAX};
    cr_assert_eq(mesh__env_decode(copy, b.size, &env, &small), MESH_ERR_MALFORMED);
    small = (mesh__env_scratch_t){s_svcs, MESH_CODEC_SERVICES_MAX, s_subs, MESH_CODEC_SUBS_MAX - 1};
    cr_assert_eq(mesh__env_decode(copy, b.size, &env, &small), MESH_ERR_MALFORMED);
    free(copy);
    mesh__buf_free(&b);
    free(longest);
}

Test(codec_roundtrip, services_need_scratch)
{
    s_bytes_t v = s_hex(S_V_SERVICES);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ERR_MALFORMED);
    mesh__env_scratch_t none = {NULL, 0, NULL, 0};
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, &none), MESH_ERR_MALFORMED);
    mesh__env_scratch_t svc_only = {s_svcs, 1, NULL, 0};
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, &svc_only), MESH_ERR_MALFORMED);
    mesh__env_scratch_t exact = {s_svcs, 1, s_subs, 1};
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, &exact), MESH_ENV_SERVICES);
}

/* ---------------------------------------------------------------- encoders */

Test(codec_encode, buffer_grows_by_doubling_and_is_reused)
{
    mesh__buf_t b = {0};
    mesh__env_encode_publish(&b, "t", "x", 1);
    cr_assert_eq(b.cap, 256);
    uint8_t *first = b.data;
    mesh__buf_clear(&b);
    cr_assert_eq(b.size, 0);
    mesh__env_encode_publish(&b, "t", "x", 1);
    cr_assert_eq(b.data, first, "clear keeps the allocation");
    static uint8_t payload[1000];
    mesh__buf_clear(&b);
    mesh__env_encode_publish(&b, "t", payload, sizeof payload);
    cr_assert_not(b.failed);
    cr_assert_eq(b.size, 3 + 2 + 3 + 1000);
    cr_assert_eq(b.cap, 1024);
    /* append: two envelopes back to back */
    mesh__buf_clear(&b);
    mesh__env_encode_publish(&b, "t", "x", 1);
    size_t one = b.size;
    mesh__env_encode_publish(&b, "t", "x", 1);
    cr_assert_eq(b.size, 2 * one);
    cr_assert_arr_eq(b.data, b.data + one, one);
    mesh__buf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.cap, 0);
    mesh__buf_free(&b); /* twice is fine */
    mesh__buf_free(NULL);
}

/*  The smallest form at each boundary between msgpack forms. */
Test(codec_encode, smallest_forms_at_boundaries)
{
    struct {
        uint64_t v;
        const char *hex;
    } uints[] = {
        {0, "00"},
        {127, "7f"},
        {128, "cc 80"},
        {255, "cc ff"},
        {256, "cd 01 00"},
        {65535, "cd ff ff"},
        {65536, "ce 00 01 00 00"},
        {UINT32_MAX, "ce ff ff ff ff"},
        {0x100000000ull, "cf 00 00 00 01 00 00 00 00"},
        {UINT64_MAX, "cf ff ff ff ff ff ff ff ff"},
    };
    mesh__buf_t b = {0};
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        /* the id of a REPLY with status 0 and nothing else */
        mesh__buf_clear(&b);
        mesh__env_encode_reply(&b, uints[i].v, 0, NULL, 0, NULL);
        s_bytes_t want = s_hex("96 13 01");
        s_hex_append(&want, uints[i].hex);
        s_hex_append(&want, "00 c0 c0");
        s_assert_buf(&b, &want, uints[i].hex);
    }
    struct {
        int32_t v;
        const char *hex;
    } ints[] = {
        {-1, "ff"},
        {-32, "e0"},
        {-33, "d0 df"},
        {-128, "d0 80"},
        {-129, "d1 ff 7f"},
        {-32768, "d1 80 00"},
        {-32769, "d2 ff ff 7f ff"},
        {INT32_MIN, "d2 80 00 00 00"},
        {INT32_MAX, "ce 7f ff ff ff"},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        mesh__buf_clear(&b);
        mesh__env_encode_reply(&b, 0, ints[i].v, NULL, 0, NULL);
        s_bytes_t want = s_hex("96 13 01 00");
        s_hex_append(&want, ints[i].hex);
        s_hex_append(&want, "c0 c0");
        s_assert_buf(&b, &want, ints[i].hex);
    }
    /* str and bin headers: the error string and payload of a REPLY */
    static char text[70000];
    memset(text, 'e', sizeof text);
    struct {
        size_t len;
        const char *str_hdr;
        const char *bin_hdr;
    } lens[] = {
        {0, "a0", "c4 00"},
        {31, "bf", "c4 1f"},
        {32, "d9 20", "c4 20"},
        {255, "d9 ff", "c4 ff"},
        {256, "da 01 00", "c5 01 00"},
        {4096, "da 10 00", "c5 10 00"},
        {65535, NULL, "c5 ff ff"},
        {65536, NULL, "c6 00 01 00 00"},
    };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i].len;
        if (lens[i].str_hdr) {
            char *err = s_repeat('e', n);
            mesh__buf_clear(&b);
            mesh__env_encode_reply(&b, 0, 0, NULL, 0, err);
            s_bytes_t hdr = s_hex(lens[i].str_hdr);
            cr_assert_not(b.failed);
            cr_assert_eq(b.size, 6 + hdr.n + n, "str %zu", n);
            cr_assert_arr_eq(b.data + 6, hdr.b, hdr.n, "str %zu header", n);
            free(err);
        }
        mesh__buf_clear(&b);
        mesh__env_encode_publish(&b, "", text, n);
        s_bytes_t hdr = s_hex(lens[i].bin_hdr);
        cr_assert_not(b.failed);
        cr_assert_eq(b.size, 4 + hdr.n + n, "bin %zu", n);
        cr_assert_arr_eq(b.data + 4, hdr.b, hdr.n, "bin %zu header", n);
    }
    /* array headers: services lists of 15 and 16 */
    static mesh__svc_entry_t svcs[16];
    memset(svcs, 0, sizeof svcs);
    mesh__buf_clear(&b);
    mesh__env_encode_services(&b, 0, svcs, 15, NULL, 0);
    cr_assert_eq(b.data[4], 0x9f);
    mesh__buf_clear(&b);
    mesh__env_encode_services(&b, 0, svcs, 16, NULL, 0);
    cr_assert_eq(b.data[4], 0xdc);
    cr_assert_eq(b.data[5], 0x00);
    cr_assert_eq(b.data[6], 0x10);
    mesh__buf_free(&b);
}

/*  Each over-limit field: failed set, nothing written, sticky until clear. */
Test(codec_encode, over_limit_fields_fail_without_writing)
{
    char *path256 = s_repeat('p', MESH_CODEC_PATH_MAX + 1);
    char *key1025 = s_repeat('k', MESH_CODEC_KEY_MAX + 1);
    char *err4097 = s_repeat('e', MESH_CODEC_ERROR_MAX + 1);
    static mesh__svc_entry_t svcs[MESH_CODEC_SERVICES_MAX + 1];
    static mesh__sub_entry_t subs[MESH_CODEC_SUBS_MAX + 1];
    double nan = NAN, inf = INFINITY, one = 1.0;
    mesh__buf_t b = {0};

    for (int c = 0; c < 22; c++) {
        mesh__buf_clear(&b);
        mesh__env_encode_publish(&b, "ok", "x", 1); /* something already there */
        size_t before = b.size;
        cr_assert_not(b.failed);
        memset(svcs, 0, sizeof svcs);
        memset(subs, 0, sizeof subs);
        switch (c) {
        case 0:
            mesh__env_encode_request(&b, 1, 0, path256, 0, NULL, 0, NULL, 0);
            break;
        case 1:
            mesh__env_encode_request(&b, 1, 0, "p", 0, key1025, 0, NULL, 0);
            break;
        case 2: /* size is checked before the payload is touched */
            mesh__env_encode_request(&b, 1, 0, "p", 0, NULL, 0, "x",
                                     (size_t)MESH_CODEC_PAYLOAD_MAX + 1);
            break;
        case 3:
            mesh__env_encode_request(&b, 1, 0, NULL, 0, NULL, 0, NULL, 0);
            break;
        case 4:
            mesh__env_encode_request(&b, 1, 0, "p", 0, NULL, 0, NULL, 5);
            break;
        case 5:
            mesh__env_encode_reply(&b, 1, 0, NULL, 0, err4097);
            break;
        case 6:
            mesh__env_encode_reply(&b, 1, 0, "x", (size_t)MESH_CODEC_PAYLOAD_MAX + 1, NULL);
            break;
        case 7:
            mesh__env_encode_publish(&b, path256, "x", 1);
            break;
        case 8:
            mesh__env_encode_publish(&b, NULL, "x", 1);
            break;
        case 9:
            mesh__env_encode_publish(&b, "t", "x", SIZE_MAX);
            break;
        case 10:
            mesh__env_encode_status(&b, nan, NULL, 0, 0, 0);
            break;
        case 11:
            mesh__env_encode_status(&b, 0, &inf, 0, 0, 0);
            break;
        case 12:
            mesh__env_encode_services(&b, 1, svcs, MESH_CODEC_SERVICES_MAX + 1, NULL, 0);
            break;
        case 13:
            mesh__env_encode_services(&b, 1, NULL, 0, subs, MESH_CODEC_SUBS_MAX + 1);
            break;
        case 14:
            svcs[0].ntags = MESH_CODEC_TAGS_MAX + 1;
            mesh__env_encode_services(&b, 1, svcs, 1, NULL, 0);
            break;
        case 15:
            svcs[3].path = s_slice(path256);
            mesh__env_encode_services(&b, 1, svcs, 4, NULL, 0);
            break;
        case 16:
            svcs[0].ntags = 2;
            svcs[0].tags[1] = s_slice(path256);
            mesh__env_encode_services(&b, 1, svcs, 1, NULL, 0);
            break;
        case 17:
            subs[1].pattern = s_slice(path256);
            mesh__env_encode_services(&b, 1, NULL, 0, subs, 2);
            break;
        case 18:
            svcs[0].path = (mesh__slice_t){NULL, 3};
            mesh__env_encode_services(&b, 1, svcs, 1, NULL, 0);
            break;
        case 19:
            mesh__env_encode_services(&b, 1, NULL, 2, NULL, 0);
            break;
        case 20:
            mesh__env_encode_publish(&b, "t", NULL, 5);
            break;
        case 21:
            mesh__env_encode_reply(&b, 1, 0, NULL, 5, NULL);
            break;
        }
        cr_assert(b.failed, "case %d: not refused", c);
        cr_assert_eq(b.size, before, "case %d: bytes written", c);
        /* sticky: a valid envelope after a failure writes nothing */
        mesh__env_encode_status(&b, 1.0, &one, 1, 2, 3);
        cr_assert(b.failed);
        cr_assert_eq(b.size, before, "case %d: wrote after failing", c);
        mesh__buf_clear(&b);
        cr_assert_not(b.failed);
        mesh__env_encode_status(&b, 1.0, &one, 1, 2, 3);
        cr_assert_not(b.failed);
    }
    mesh__buf_free(&b);
    free(path256);
    free(key1025);
    free(err4097);
}

/*  The largest payload is accepted both ways; one byte more is refused by
    the encoder and the decoder (the bytes are really there). */
Test(codec_encode, payload_limit_both_ways)
{
    size_t max = MESH_CODEC_PAYLOAD_MAX;
    uint8_t *payload = calloc(1, max + 1);
    cr_assert_not_null(payload);
    mesh__buf_t b = {0};
    mesh__env_encode_publish(&b, "t", payload, max);
    cr_assert_not(b.failed);
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(b.data, b.size, &env, NULL), MESH_ENV_PUBLISH);
    cr_assert_eq(env.u.publish.payload.len, max);

    mesh__buf_clear(&b);
    mesh__env_encode_publish(&b, "t", payload, max + 1);
    cr_assert(b.failed);

    /* hand-made: PUBLISH "t" with a bin32 of max + 1 bytes, all present */
    mesh__buf_clear(&b);
    mesh__env_encode_publish(&b, "t", payload, max);
    uint8_t *grown = realloc(b.data, b.size + 1);
    cr_assert_not_null(grown);
    b.data = grown;
    b.cap = b.size + 1;
    b.data[b.size++] = 0;
    cr_assert_eq(b.data[5], 0xc6);
    uint32_t n = (uint32_t)max + 1;
    b.data[6] = (uint8_t)(n >> 24);
    b.data[7] = (uint8_t)(n >> 16);
    b.data[8] = (uint8_t)(n >> 8);
    b.data[9] = (uint8_t)n;
    cr_assert_eq(mesh__env_decode(b.data, b.size, &env, NULL), MESH_ERR_MALFORMED);
    mesh__buf_free(&b);
    free(payload);
}

/* ------------------------------------------------------ alternative forms */

/*  What other msgpack libraries may write: every form decodes to the same
    value. */
Test(codec_decode, alt_spellings_accepted)
{
    struct {
        const char *hex;
        const char *why;
    } alts[] = {
        /* REQUEST id 1, flags 1, "echo", 1000, nil, 0, "hi" in other forms */
        {"99 12 01 cd 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id uint16"},
        {"99 12 01 cc 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id uint8"},
        {"99 12 01 ce 00 00 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id uint32"},
        {"99 12 01 cf 00 00 00 00 00 00 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
         "id uint64"},
        {"99 12 01 d0 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id int8"},
        {"99 12 01 d1 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id int16"},
        {"99 12 01 d2 00 00 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "id int32"},
        {"99 12 01 d3 00 00 00 00 00 00 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
         "id int64"},
        {"99 12 01 01 ce 00 00 00 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "flags uint32"},
        {"99 12 01 01 01 d9 04 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "path str8"},
        {"99 12 01 01 01 da 00 04 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "path str16"},
        {"99 12 01 01 01 db 00 00 00 04 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "path str32"},
        {"99 12 01 01 01 a4 65 63 68 6f d1 03 e8 c0 00 c4 02 68 69", "timeout int16"},
        {"99 12 01 01 01 a4 65 63 68 6f cf 00 00 00 00 00 00 03 e8 c0 00 c4 02 68 69",
         "timeout uint64"},
        {"99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 cc 00 c4 02 68 69", "attempt uint8"},
        {"99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c5 00 02 68 69", "payload bin16"},
        {"99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c6 00 00 00 02 68 69", "payload bin32"},
        {"dc 00 09 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "array16"},
        {"dd 00 00 00 09 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", "array32"},
    };
    for (size_t i = 0; i < sizeof alts / sizeof alts[0]; i++) {
        s_bytes_t v = s_hex(alts[i].hex);
        uint8_t *copy = s_dup(v.b, v.n);
        mesh__env_t env;
        cr_assert_eq(mesh__env_decode(copy, v.n, &env, NULL), MESH_ENV_REQUEST, "%s", alts[i].why);
        cr_assert(mesh__env_is(copy, v.n), "%s", alts[i].why);
        cr_assert_eq(env.u.request.id, 1, "%s", alts[i].why);
        cr_assert_eq(env.u.request.flags, 1, "%s", alts[i].why);
        cr_assert(s_slice_eq(env.u.request.path, "echo"), "%s", alts[i].why);
        cr_assert_eq(env.u.request.timeout_ms, 1000, "%s", alts[i].why);
        cr_assert_null(env.u.request.key.ptr, "%s", alts[i].why);
        cr_assert_eq(env.u.request.attempt, 0, "%s", alts[i].why);
        cr_assert(s_slice_eq(env.u.request.payload, "hi"), "%s", alts[i].why);
        free(copy);
        /* and every truncation of it, each in an exact-size buffer */
        for (size_t len = 0; len < v.n; len++) {
            cr_assert_eq(s_decode_exact(v.b, len), MESH_ERR_MALFORMED, "%s cut at %zu", alts[i].why,
                         len);
        }
    }
}

Test(codec_decode, alt_numbers_accepted)
{
    mesh__env_t env;
    struct {
        const char *hex;
        double load;
        bool has_fitness;
        double fitness;
    } st[] = {
        /* float32 load 0.5, fitness nil */
        {"97 11 01 ca 3f 00 00 00 c0 03 cd 12 34 00", 0.5, false, 0},
        /* integer load 2 (JS writes 2.0 so), float32 fitness -1.5 */
        {"97 11 01 02 ca bf c0 00 00 00 00 00", 2.0, true, -1.5},
        /* negative fixint load, uint16 fitness, int64 counters */
        {"97 11 01 ff cd 01 00 d3 00 00 00 00 00 00 00 00 00 00", -1.0, true, 256.0},
        /* int8 load, uint64 fitness */
        {"97 11 01 d0 80 cf 00 00 00 00 00 00 00 07 00 00 00", -128.0, true, 7.0},
    };
    for (size_t i = 0; i < sizeof st / sizeof st[0]; i++) {
        s_bytes_t v = s_hex(st[i].hex);
        cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ENV_STATUS, "status %zu", i);
        cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_STATUS);
        cr_assert_eq(env.u.status.load, st[i].load, "status %zu", i);
        cr_assert_eq(env.u.status.has_fitness, st[i].has_fitness, "status %zu", i);
        cr_assert_eq(env.u.status.fitness, st[i].fitness, "status %zu", i);
    }

    struct {
        const char *hex;
        int32_t status;
    } rp[] = {
        {"96 13 01 01 d0 f2 c0 c0", -14},                            /* int8 */
        {"96 13 01 01 d3 ff ff ff ff ff ff ff f2 c0 c0", -14},       /* int64 */
        {"96 13 01 01 d2 80 00 00 00 c0 c0", INT32_MIN},             /* int32 */
        {"96 13 01 01 d3 ff ff ff ff 80 00 00 00 c0 c0", INT32_MIN}, /* int64 */
        {"96 13 01 01 ce 7f ff ff ff c0 c0", INT32_MAX},             /* uint32 */
        {"96 13 01 01 cc 05 c0 c0", 5},                              /* uint8 */
        {"96 13 01 01 d0 05 c0 c0", 5},                              /* int8, positive */
        {"96 13 01 01 00 c4 00 c0", 0},                              /* empty bin payload */
        {"96 13 01 01 00 c0 da 00 01 65", 0},                        /* str16 error */
    };
    for (size_t i = 0; i < sizeof rp / sizeof rp[0]; i++) {
        s_bytes_t v = s_hex(rp[i].hex);
        cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ENV_REPLY, "reply %zu", i);
        cr_assert_eq(mesh__env_decode(v.b, v.n, &env, NULL), MESH_ENV_REPLY);
        cr_assert_eq(env.u.reply.status, rp[i].status, "reply %zu", i);
    }

    /* SERVICES with array16 lists, an array32 tag list, str16 strings, a
       uint32 flag and sub list in array16 */
    s_bytes_t v = s_hex("95 10 01 cd 01 00 dc 00 01 dc 00 03 da 00 01 61 dd 00 00 00 01 "
                        "d9 01 62 ce 00 00 00 01 dc 00 01 dc 00 02 db 00 00 00 01 63 c2");
    cr_assert_eq(mesh__env_decode(v.b, v.n, &env, &s_scratch), MESH_ENV_SERVICES);
    cr_assert_eq(env.u.services.version, 256);
    cr_assert_eq(env.u.services.nservices, 1);
    cr_assert(s_slice_eq(s_svcs[0].path, "a"));
    cr_assert_eq(s_svcs[0].ntags, 1);
    cr_assert(s_slice_eq(s_svcs[0].tags[0], "b"));
    cr_assert_eq(s_svcs[0].flags, MESH_SVC_INACTIVE);
    cr_assert_eq(env.u.services.nsubs, 1);
    cr_assert(s_slice_eq(s_subs[0].pattern, "c"));
    cr_assert_not(s_subs[0].prefix);
}

/* -------------------------------------------------------------- rejection */

Test(codec_reject, every_truncation)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        s_bytes_t v = s_hex(s_vectors[i]);
        for (size_t len = 0; len < v.n; len++) {
            cr_assert_eq(s_decode_exact(v.b, len), MESH_ERR_MALFORMED, "vector %zu cut at %zu", i,
                         len);
        }
        cr_assert_eq(s_decode_exact(v.b, v.n),
                     MESH_ENV_SERVICES + (int)(i >= 2) + (int)(i >= 4) + (int)(i >= 6) +
                         (int)(i >= 9),
                     "vector %zu whole", i);
    }
    /* and the big REQUEST (uint64 id, max strings, bin16) at every length */
    char *path = s_repeat('p', MESH_CODEC_PATH_MAX);
    char *key = s_repeat('k', MESH_CODEC_KEY_MAX);
    mesh__buf_t b = {0};
    mesh__env_encode_request(&b, UINT64_MAX, 3, path, 5, key, 1, key, 300);
    cr_assert_not(b.failed);
    for (size_t len = 0; len < b.size; len++) {
        cr_assert_eq(s_decode_exact(b.data, len), MESH_ERR_MALFORMED, "cut at %zu", len);
    }
    cr_assert_eq(s_decode_exact(b.data, b.size), MESH_ENV_REQUEST);
    mesh__buf_free(&b);
    free(key);
    free(path);
}

Test(codec_reject, trailing_bytes)
{
    const char *tails[] = {"00", "c0", "90", "99 12 01"};
    for (size_t i = 0; i < S_NVECTORS; i++) {
        for (size_t t = 0; t < 4; t++) {
            s_bytes_t v = s_hex(s_vectors[i]);
            s_hex_append(&v, tails[t]);
            cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ERR_MALFORMED, "vector %zu + %s", i,
                         tails[t]);
        }
    }
    /* two envelopes in one frame */
    s_bytes_t v = s_hex(S_V_REQUEST " " S_V_REQUEST);
    cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ERR_MALFORMED);
}

/*  One value of every msgpack family, and which field kinds accept it. */
enum { K_UINT = 1, K_INT = 2, K_FLOAT = 4, K_STR = 8, K_BIN = 16, K_BOOL = 32, K_NIL = 64 };

typedef struct {
    const char *hex;
    int accepted_by; /* field kinds that decode it */
} s_probe_t;

static const s_probe_t s_probes[] = {
    {"c0", K_NIL},
    {"c2", K_BOOL},
    {"c3", K_BOOL},
    {"05", K_UINT | K_INT | K_FLOAT},
    {"cd 00 05", K_UINT | K_INT | K_FLOAT},
    {"ff", K_INT | K_FLOAT},
    {"d0 80", K_INT | K_FLOAT},
    {"d3 ff ff ff ff ff ff ff ff", K_INT | K_FLOAT},
    {"cb 3f f0 00 00 00 00 00 00", K_FLOAT},
    {"ca 3f 80 00 00", K_FLOAT},
    {"a1 61", K_STR},
    {"d9 01 61", K_STR},
    {"c4 01 61", K_BIN},
    {"c5 00 00", K_BIN},
    {"90", 0},
    {"91 01", 0},
    {"dc 00 00", 0},
    {"80", 0},
    {"81 01 01", 0},
    {"de 00 00", 0},
    {"d4 01 00", 0},          /* fixext1 */
    {"c7 01 01 00", 0},       /* ext8 */
    {"d6 ff 00 00 00 00", 0}, /* timestamp32 */
    {"c1", 0},                /* never used */
};
#define S_NPROBES (sizeof s_probes / sizeof s_probes[0])

typedef struct {
    uint8_t type;
    uint32_t n;                /* fields after type and version */
    const char *const *fields; /* valid hex for each */
    const int *kinds;          /* what each field is */
} s_shape_t;

static const char *const s_req_fields[] = {"01",    "01", "a4 65 63 68 6f", "cd 03 e8",
                                           "a1 6b", "00", "c4 02 68 69"};
static const int s_req_kinds[] = {K_UINT, K_UINT, K_STR, K_UINT, K_STR | K_NIL, K_UINT, K_BIN};
static const char *const s_rep_fields[] = {"01", "f2", "c4 02 68 69", "a4 62 6f 6f 6d"};
static const int s_rep_kinds[] = {K_UINT, K_INT | K_UINT, K_BIN | K_NIL, K_STR | K_NIL};
static const char *const s_st_fields[] = {"cb 3f e0 00 00 00 00 00 00", "c0", "03", "cd 12 34",
                                          "00"};
static const int s_st_kinds[] = {K_FLOAT, K_FLOAT | K_NIL, K_UINT, K_UINT, K_UINT};
static const char *const s_pub_fields[] = {"a4 6e 65 77 73", "c4 01 78"};
static const int s_pub_kinds[] = {K_STR, K_BIN};
/*  SERVICES, with its entry and subscription fields spelled out: the
    "fields" here are the leaves, in order, inside the fixed containers. */
static const char *const s_svc_fields[] = {"07", "a1 61", "a1 62", "00", "a1 63", "c3"};
static const int s_svc_kinds[] = {K_UINT, K_STR, K_STR, K_UINT, K_STR, K_BOOL};

static const s_shape_t s_shapes[] = {
    {MESH_ENV_REQUEST, 7, s_req_fields, s_req_kinds},
    {MESH_ENV_REPLY, 4, s_rep_fields, s_rep_kinds},
    {MESH_ENV_STATUS, 5, s_st_fields, s_st_kinds},
    {MESH_ENV_PUBLISH, 2, s_pub_fields, s_pub_kinds},
    {MESH_ENV_SERVICES, 6, s_svc_fields, s_svc_kinds},
};

/*  Builds the envelope of shape sh with field `at` replaced by `with`
    (at == UINT32_MAX: no replacement). */
static s_bytes_t s_build(const s_shape_t *sh, uint32_t at, const char *with)
{
    s_bytes_t out = {.n = 0};
    const char *f[8];
    for (uint32_t i = 0; i < sh->n; i++) {
        f[i] = i == at ? with : sh->fields[i];
    }
    char head[16];
    uint32_t len = sh->type == MESH_ENV_SERVICES ? 5 : sh->n + 2;
    snprintf(head, sizeof head, "%02x %02x 01", 0x90 | len, sh->type);
    s_hex_append(&out, head);
    if (sh->type == MESH_ENV_SERVICES) {
        /* [16, 1, version, [[path, [tag], flags]], [[pattern, prefix]]] */
        s_hex_append(&out, f[0]);
        s_hex_append(&out, "91 93");
        s_hex_append(&out, f[1]);
        s_hex_append(&out, "91");
        s_hex_append(&out, f[2]);
        s_hex_append(&out, f[3]);
        s_hex_append(&out, "91 92");
        s_hex_append(&out, f[4]);
        s_hex_append(&out, f[5]);
        return out;
    }
    for (uint32_t i = 0; i < sh->n; i++) {
        s_hex_append(&out, f[i]);
    }
    return out;
}

/*  Every field of every envelope against one value of every msgpack family:
    accepted exactly when the field's type admits it. */
Test(codec_reject, wrong_type_in_each_field)
{
    size_t rejected = 0;
    for (size_t s = 0; s < sizeof s_shapes / sizeof s_shapes[0]; s++) {
        const s_shape_t *sh = &s_shapes[s];
        s_bytes_t base = s_build(sh, UINT32_MAX, NULL);
        cr_assert_eq(s_decode_exact(base.b, base.n), sh->type, "shape %u as given", sh->type);
        for (uint32_t f = 0; f < sh->n; f++) {
            for (size_t p = 0; p < S_NPROBES; p++) {
                s_bytes_t v = s_build(sh, f, s_probes[p].hex);
                bool ok = (s_probes[p].accepted_by & sh->kinds[f]) != 0;
                int rc = s_decode_exact(v.b, v.n);
                cr_assert_eq(rc, ok ? sh->type : MESH_ERR_MALFORMED,
                             "type %u field %u = %s: got %d", sh->type, f, s_probes[p].hex, rc);
                rejected += !ok;
            }
        }
    }
    cr_assert_gt(rejected, 300);
}

Test(codec_reject, integers_out_of_range)
{
    const char *bad[] = {
        /* REQUEST flags 2^32, timeout 2^32, attempt 2^32, id -1 */
        "99 12 01 01 cf 00 00 00 01 00 00 00 00 a1 61 00 c0 00 c4 00",
        "99 12 01 01 01 a1 61 cf 00 00 00 01 00 00 00 00 c0 00 c4 00",
        "99 12 01 01 01 a1 61 00 c0 cf 00 00 00 01 00 00 00 00 c4 00",
        "99 12 01 ff 01 a1 61 00 c0 00 c4 00",
        "99 12 01 d3 80 00 00 00 00 00 00 00 01 a1 61 00 c0 00 c4 00",
        /* REPLY status 2^31, -2^31 - 1, uint64 max */
        "96 13 01 01 ce 80 00 00 00 c0 c0",
        "96 13 01 01 d3 ff ff ff ff 7f ff ff ff c0 c0",
        "96 13 01 01 cf ff ff ff ff ff ff ff ff c0 c0",
        /* SERVICES flags 2^32 */
        "95 10 01 00 91 93 a1 61 90 cf 00 00 00 01 00 00 00 00 90",
        /* STATUS inflight -1 */
        "97 11 01 00 c0 00 00 ff",
    };
    const char *good[] = {
        "99 12 01 01 ce ff ff ff ff a1 61 ce ff ff ff ff c0 ce ff ff ff ff c4 00",
        "96 13 01 01 ce 7f ff ff ff c0 c0",
        "96 13 01 01 d2 80 00 00 00 c0 c0",
        "95 10 01 00 91 93 a1 61 90 ce ff ff ff ff 90",
        "97 11 01 00 c0 00 00 cf ff ff ff ff ff ff ff ff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_decode_hex(bad[i]), MESH_ERR_MALFORMED, "%s", bad[i]);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        cr_assert_gt(s_decode_hex(good[i]), 0, "%s", good[i]);
    }
}

Test(codec_reject, non_finite_floats)
{
    const char *bad[] = {
        "97 11 01 cb 7f f8 00 00 00 00 00 00 c0 00 00 00", /* NaN load */
        "97 11 01 cb 7f f0 00 00 00 00 00 00 c0 00 00 00", /* +inf load */
        "97 11 01 ca ff 80 00 00 c0 00 00 00",             /* float32 -inf load */
        "97 11 01 00 ca 7f c0 00 00 00 00 00",             /* float32 NaN fitness */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_decode_hex(bad[i]), MESH_ERR_MALFORMED, "%s", bad[i]);
    }
    cr_assert_eq(s_decode_hex("97 11 01 ca 7f 7f ff ff c0 00 00 00"), MESH_ENV_STATUS,
                 "FLT_MAX is finite");
}

Test(codec_reject, wrong_array_lengths)
{
    const char *bad[] = {
        /* REQUEST with 8 and 10 elements */
        "98 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00",
        "9a 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69 c0",
        /* the right length spelled 16-bit, wrong count */
        "dc 00 08 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00",
        /* REPLY 5 and 7 */
        "95 13 01 01 00 c0",
        "97 13 01 01 00 c0 c0 c0",
        /* STATUS 6, PUBLISH 3 and 5 */
        "96 11 01 00 c0 00 00",
        "93 14 01 a1 74",
        "95 14 01 a1 74 c4 00 c0",
        /* SERVICES 4 and 6 elements */
        "94 10 01 00 90",
        "96 10 01 00 90 90 90",
        /* SERVICES entry with 2 and 4 fields, subscription with 1 and 3 */
        "95 10 01 00 91 92 a1 61 90 90",
        "95 10 01 00 91 94 a1 61 90 00 00 90",
        "95 10 01 00 90 91 91 a1 61",
        "95 10 01 00 90 91 93 a1 61 c3 c3",
        /* a subscription list where an entry count was promised but missing */
        "95 10 01 00 90 92 92 a1 61 c3",
        /* entry and subscription headers off by one, bodies complete */
        "95 10 01 00 91 94 a1 61 90 00 90",
        "95 10 01 00 91 92 a1 61 90 00 90",
        "95 10 01 00 90 91 93 a1 61 c3",
        "95 10 01 00 90 91 91 a1 61 c3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_decode_hex(bad[i]), MESH_ERR_MALFORMED, "%s", bad[i]);
    }
}

/*  Each vector with its array header one off, the body unchanged (so the
    count, not truncation or trailing bytes, is what is wrong). */
Test(codec_reject, declared_length_off_by_one)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        s_bytes_t v = s_hex(s_vectors[i]);
        uint8_t head = v.b[0];
        for (int d = -1; d <= 1; d += 2) {
            v.b[0] = (uint8_t)(head + d);
            cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ERR_MALFORMED, "vector %zu, %02x", i,
                         v.b[0]);
        }
        v.b[0] = head;
        cr_assert_gt(s_decode_exact(v.b, v.n), 0);
    }
}

Test(codec_reject, unknown_type_and_version)
{
    const char *bad[] = {
        "99 15 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* type 21 */
        "99 1f 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* type 31 */
        "99 0f 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* type 15 */
        "99 00 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* type 0 */
        "99 7f 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* type 127 */
        "99 12 02 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* version 2 */
        "99 12 00 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* version 0 */
        "99 12 ff 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69", /* version -1 */
        /* type or version not a positive fixint */
        "99 cc 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
        "99 12 cc 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
        "99 a1 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
        /* not an array at all */
        "89 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c4 02 68 69",
        "c4 02 68 69",
        "12",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_decode_hex(bad[i]), MESH_ERR_MALFORMED, "%s", bad[i]);
    }
    mesh__env_t env;
    env.type = 99;
    cr_assert_eq(mesh__env_decode(NULL, 0, &env, NULL), MESH_ERR_MALFORMED);
    cr_assert_eq(env.type, 0, "type cleared on failure");
    cr_assert_eq(mesh__env_decode(NULL, 5, &env, NULL), MESH_ERR_MALFORMED);
}

Test(codec_reject, gossip_frames)
{
    /* BYE, and PEERS with one entry (uuid 16 x 0x11, "tcp://127.0.0.1:5670") */
    const char *gossip[] = {
        "93 02 01 c0",
        "93 01 01 90",
        ("93 01 01 91 92 c4 10 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 11 "
         "d9 14 74 63 70 3a 2f 2f 31 32 37 2e 30 2e 30 2e 31 3a 35 36 37 30"),
    };
    for (size_t i = 0; i < sizeof gossip / sizeof gossip[0]; i++) {
        s_bytes_t v = s_hex(gossip[i]);
        cr_assert_eq(s_decode_exact(v.b, v.n), MESH_ERR_MALFORMED, "%s", gossip[i]);
        cr_assert_not(mesh__env_is(v.b, v.n), "%s", gossip[i]);
    }
    /* and what the gossip encoder really writes */
    mesh__gossip_entry_t entry = {.endpoint = "tcp://127.0.0.1:5670", .endpoint_len = 20};
    memset(entry.uuid, 0x11, sizeof entry.uuid);
    uint8_t frame[128];
    size_t n = mesh__gossip_encode_peers(frame, sizeof frame, &entry, 1);
    s_bytes_t v = s_hex(gossip[2]);
    cr_assert_eq(n, v.n);
    cr_assert_arr_eq(frame, v.b, n, "the PEERS frame above is gossip's own");
    cr_assert_eq(s_decode_exact(frame, n), MESH_ERR_MALFORMED);
    n = mesh__gossip_encode_bye(frame, sizeof frame);
    cr_assert_eq(s_decode_exact(frame, n), MESH_ERR_MALFORMED);
    cr_assert_not(mesh__env_is(frame, n));
}

/*  Strings and counts one over each limit, with every byte present (so the
    limit, not the bytes left, is what refuses them); at the limit: accepted. */
Test(codec_reject, strings_and_counts_over_limits)
{
    static uint8_t big[64 * 1024];
    mesh__buf_t b = {0};
    struct {
        size_t limit;
        int field; /* 0 path, 1 key, 2 error, 3 topic, 4 svc path, 5 tag, 6 pattern */
    } cases[] = {
        {MESH_CODEC_PATH_MAX, 0}, {MESH_CODEC_KEY_MAX, 1},  {MESH_CODEC_ERROR_MAX, 2},
        {MESH_CODEC_PATH_MAX, 3}, {MESH_CODEC_PATH_MAX, 4}, {MESH_CODEC_TAG_MAX, 5},
        {MESH_CODEC_PATH_MAX, 6},
    };
    memset(big, 'a', sizeof big);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t extra = 0; extra < 2; extra++) {
            size_t n = cases[c].limit + extra;
            s_bytes_t str = {.n = 0};
            /* str16 always (also tests the longer form at the limit) */
            uint8_t hdr[3] = {0xda, (uint8_t)(n >> 8), (uint8_t)n};
            s_raw_append(&str, hdr, 3);
            s_raw_append(&str, big, n);
            s_bytes_t v = {.n = 0};
            switch (cases[c].field) {
            case 0:
                s_hex_append(&v, "99 12 01 01 01");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "00 c0 00 c4 00");
                break;
            case 1:
                s_hex_append(&v, "99 12 01 01 01 a1 61 00");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "00 c4 00");
                break;
            case 2:
                s_hex_append(&v, "96 13 01 01 00 c0");
                s_raw_append(&v, str.b, str.n);
                break;
            case 3:
                s_hex_append(&v, "94 14 01");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "c4 00");
                break;
            case 4:
                s_hex_append(&v, "95 10 01 00 91 93");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "90 00 90");
                break;
            case 5:
                s_hex_append(&v, "95 10 01 00 91 93 a1 61 91");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "00 90");
                break;
            case 6:
                s_hex_append(&v, "95 10 01 00 90 91 92");
                s_raw_append(&v, str.b, str.n);
                s_hex_append(&v, "c3");
                break;
            }
            int rc = s_decode_exact(v.b, v.n);
            if (extra) {
                cr_assert_eq(rc, MESH_ERR_MALFORMED, "field %d: %zu bytes accepted", cases[c].field,
                             n);
            } else {
                cr_assert_gt(rc, 0, "field %d: %zu bytes refused", cases[c].field, n);
            }
        }
    }

    /* 33 tags, 1025 services, 1025 subscriptions, all present; the scratch
       has room for 1025, so the limit is what refuses them */
    for (size_t extra = 0; extra < 2; extra++) {
        mesh__buf_clear(&b);
        uint8_t *p;
        size_t ntags = MESH_CODEC_TAGS_MAX + extra;
        s_bytes_t v = s_hex("95 10 01 00 91 93 a1 61 dc 00");
        uint8_t n8 = (uint8_t)ntags;
        s_raw_append(&v, &n8, 1);
        for (size_t t = 0; t < ntags; t++) {
            s_hex_append(&v, "a1 74");
        }
        s_hex_append(&v, "00 90");
        int rc = s_decode_exact(v.b, v.n);
        cr_assert_eq(rc, extra ? MESH_ERR_MALFORMED : MESH_ENV_SERVICES, "%zu tags", ntags);

        size_t nsvc = MESH_CODEC_SERVICES_MAX + extra;
        size_t len = 10 + nsvc * 4 + 1;
        p = malloc(len);
        cr_assert_not_null(p);
        memcpy(p, "\x95\x10\x01\x00\xdc", 5);
        p[5] = (uint8_t)(nsvc >> 8);
        p[6] = (uint8_t)nsvc;
        for (size_t i = 0; i < nsvc; i++) {
            memcpy(p + 7 + i * 4, "\x93\xa0\x90\x00", 4);
        }
        p[7 + nsvc * 4] = 0x90;
        rc = mesh__env_decode(p, 8 + nsvc * 4, &(mesh__env_t){0}, &s_scratch);
        cr_assert_eq(rc, extra ? MESH_ERR_MALFORMED : MESH_ENV_SERVICES, "%zu services", nsvc);
        free(p);

        size_t nsub = MESH_CODEC_SUBS_MAX + extra;
        p = malloc(8 + nsub * 3);
        cr_assert_not_null(p);
        memcpy(p, "\x95\x10\x01\x00\x90\xdc", 6);
        p[6] = (uint8_t)(nsub >> 8);
        p[7] = (uint8_t)nsub;
        for (size_t i = 0; i < nsub; i++) {
            memcpy(p + 8 + i * 3, "\x92\xa0\xc2", 3);
        }
        rc = mesh__env_decode(p, 8 + nsub * 3, &(mesh__env_t){0}, &s_scratch);
        cr_assert_eq(rc, extra ? MESH_ERR_MALFORMED : MESH_ENV_SERVICES, "%zu subs", nsub);
        free(p);
    }
    mesh__buf_free(&b);
}

/*  Declared lengths far beyond the frame: refused from the header alone.
    The decoder has no allocator to call; ASan checks nothing past the frame
    is read. */
Test(codec_reject, huge_declared_lengths)
{
    const char *bad[] = {
        "dd ff ff ff ff 12 01",                                              /* array32 */
        "dc ff ff 12 01",                                                    /* array16 */
        "99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c6 ff ff ff ff",       /* bin32 */
        "99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c6 ff ff ff ff 00",    /* + 1 byte */
        "99 12 01 01 01 a4 65 63 68 6f cd 03 e8 c0 00 c6 00 00 00 03 68 69", /* bin one short */
        "99 12 01 01 01 db ff ff ff ff",                                     /* str32 path */
        "99 12 01 01 01 a4 65 63 68 6f cd 03 e8 db ff ff ff ff",             /* str32 key */
        "96 13 01 01 00 c5 ff ff c0",                                        /* bin16 payload */
        "96 13 01 01 00 c0 db 00 00 10 00",       /* error 4096, absent */
        "94 14 01 a4 6e 65 77 73 c6 7f ff ff ff", /* bin32 */
        "95 10 01 00 dd ff ff ff ff",             /* services array32 */
        "95 10 01 00 dc 04 00 93",                /* 1024 services, no bytes for them */
        "95 10 01 00 90 dd ff ff ff ff",          /* subs array32 */
        "95 10 01 00 90 dc 04 00",                /* 1024 subs, none present */
        "95 10 01 00 91 93 a1 61 dd ff ff ff ff", /* tags array32 */
        "95 10 01 00 91 93 a1 61 9f",             /* 15 tags, none present */
        "95 10 01 00 91 dd ff ff ff ff",          /* entry array32 */
        "df ff ff ff ff",                         /* map32 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(s_decode_hex(bad[i]), MESH_ERR_MALFORMED, "%s", bad[i]);
    }
}

/*  Deep nesting anywhere: a wrong type at the first level, no recursion. */
Test(codec_reject, nesting)
{
    enum { DEPTH = 100000 };
    uint8_t *p = malloc(DEPTH + 64);
    cr_assert_not_null(p);
    /* as the whole frame */
    memset(p, 0x91, DEPTH);
    p[DEPTH] = 0xc0;
    cr_assert_eq(s_decode_exact(p, DEPTH + 1), MESH_ERR_MALFORMED);
    /* as the payload of a REQUEST */
    size_t n = 0;
    memcpy(p, "\x99\x12\x01\x01\x01\xa1\x61\x00\xc0\x00", 10);
    n = 10;
    memset(p + n, 0x91, DEPTH);
    n += DEPTH;
    p[n++] = 0xc0;
    cr_assert_eq(s_decode_exact(p, n), MESH_ERR_MALFORMED);
    /* as a tag */
    memcpy(p, "\x95\x10\x01\x00\x91\x93\xa1\x61\x91", 9);
    n = 9;
    memset(p + n, 0x91, DEPTH);
    n += DEPTH;
    p[n++] = 0xc0;
    cr_assert_eq(s_decode_exact(p, n), MESH_ERR_MALFORMED);
    /* as a SERVICES entry (an entry that is [[[...]]]) */
    memcpy(p, "\x95\x10\x01\x00\x91", 5);
    n = 5;
    memset(p + n, 0x93, DEPTH);
    n += DEPTH;
    cr_assert_eq(s_decode_exact(p, n), MESH_ERR_MALFORMED);
    free(p);
}

/* ------------------------------------------------------------------------ */
/* BATCH: several envelopes for one peer in one frame */

Test(codec, batch_round_trip_and_vector)
{
    mesh__buf_t req = {0}, rep = {0}, b = {0};
    mesh__env_encode_request(&req, 1, MESH_REQ_CALL, "echo", 1000, NULL, 0, "hi", 2);
    mesh__env_encode_reply(&rep, 1, 0, "hi", 2, NULL);
    mesh__env_batch_begin(&b);
    mesh__env_batch_add(&b, req.data, req.size);
    mesh__env_batch_add(&b, rep.data, rep.size);
    size_t len = 0;
    const uint8_t *frame = mesh__env_batch_finish(&b, 2, &len);
    cr_assert_not_null(frame);
    /* [21, 1, [bin(REQUEST), bin(REPLY)]] */
    static const uint8_t head[] = {0x93, 0x15, 0x01, 0x92, 0xc4, 19};
    cr_assert_eq(len, sizeof head + 19 + 2 + 10);
    cr_assert_arr_eq(frame, head, sizeof head);
    cr_assert(mesh__env_is(frame, len));
    mesh__env_t env;
    cr_assert_eq(mesh__env_decode(frame, len, &env, NULL), MESH_ENV_BATCH);
    cr_assert_eq(env.u.batch.count, 2);
    size_t pos = 0;
    mesh__slice_t item;
    cr_assert(mesh__env_batch_next(&env, &pos, &item));
    cr_assert_eq(item.len, req.size);
    cr_assert_arr_eq(item.ptr, req.data, req.size);
    cr_assert(mesh__env_batch_next(&env, &pos, &item));
    cr_assert_arr_eq(item.ptr, rep.data, rep.size);
    cr_assert_not(mesh__env_batch_next(&env, &pos, &item));
    /* every truncation is refused */
    for (size_t n = 0; n < len; n++) {
        cr_assert_eq(mesh__env_decode(frame, n, &env, NULL), MESH_ERR_MALFORMED, "length %zu", n);
    }
    mesh__buf_free(&req);
    mesh__buf_free(&rep);
    mesh__buf_free(&b);
}

Test(codec, batch_of_one_is_the_envelope_itself)
{
    mesh__buf_t req = {0}, b = {0};
    mesh__env_encode_request(&req, 7, 0, "x", 5, NULL, 1, "", 0);
    mesh__env_batch_begin(&b);
    mesh__env_batch_add(&b, req.data, req.size);
    size_t len = 0;
    const uint8_t *frame = mesh__env_batch_finish(&b, 1, &len);
    cr_assert_eq(len, req.size);
    cr_assert_arr_eq(frame, req.data, req.size);
    mesh__buf_free(&req);
    mesh__buf_free(&b);
}

Test(codec, batch_rejections)
{
    mesh__env_t env;
    /* fewer than two items, an item that is not bin, an array header over the limit */
    static const uint8_t one[] = {0x93, 0x15, 0x01, 0x91, 0xc4, 0x03, 0x93, 0x11, 0x01};
    static const uint8_t str_item[] = {0x93, 0x15, 0x01, 0x92, 0xa3, 'a', 'b', 'c', 0xc4, 3, 1, 2, 3};
    static const uint8_t huge[] = {0x93, 0x15, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t short_items[] = {0x93, 0x15, 0x01, 0x92, 0xc4, 0x01, 0x00, 0xc4, 0x01, 0x00};
    cr_expect_eq(mesh__env_decode(one, sizeof one, &env, NULL), MESH_ERR_MALFORMED);
    cr_expect_eq(mesh__env_decode(str_item, sizeof str_item, &env, NULL), MESH_ERR_MALFORMED);
    cr_expect_eq(mesh__env_decode(huge, sizeof huge, &env, NULL), MESH_ERR_MALFORMED);
    cr_expect_eq(mesh__env_decode(short_items, sizeof short_items, &env, NULL),
                 MESH_ERR_MALFORMED);
    mesh__buf_t b = {0};
    size_t len;
    mesh__env_batch_begin(&b);
    cr_expect_null(mesh__env_batch_finish(&b, 0, &len));
    mesh__buf_free(&b);
}
