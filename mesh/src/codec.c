/*  codec.c: mesh envelopes, a strict msgpack subset written by hand.

    Why not msgpack-c. Its C API has no limits of its own: an array header
    makes it allocate n x 24 bytes before one element is read, nesting past 32
    is NOMEM, a truncated buffer is CONTINUE. Using it safely on outside bytes
    needs a pre-scan walker that already parses every header and length; after
    that pass, msgpack_unpack would parse the same bytes again into a zone, and
    every msgpack_object would still need its type checked field by field. The
    envelopes are short positional arrays of a few scalar types, so one pass
    that reads exactly the forms each field may take, straight into
    mesh__env_t, is smaller, allocates nothing and is several times faster
    (tests/bench/bench_codec.c measures both). Depth is fixed by the schema (at
    most 3, SERVICES -> entry -> tags): a container where a scalar is expected
    is a wrong type, so no nesting limit is needed and nothing recurses.

    Decoding accepts every spelling msgpack allows for a field's type, because
    peers written against other msgpack libraries pick their own forms: an
    integer in any width, signed or unsigned (range-checked), str as
    fixstr/str8/16/32, bin as bin8/16/32, an array header as
    fixarray/array16/32, a float as float32 or float64 (or an integer). Two
    exceptions keep mesh__env_is() exact: type and version are positive
    fixints only, as codec.h says (every msgpack library writes a value under
    128 that way). Everything else is MESH_ERR_MALFORMED: wrong type, wrong
    array length, a string, count or payload over its limit (checked before
    the bytes left), a NaN or infinite load/fitness, trailing bytes.

    Encoding writes the smallest spelling (float64 for floats). Each encoder
    validates every field and reserves an upper bound of the envelope's size
    before writing its first byte, so a failure leaves the buffer as it was
    (size unchanged) with `failed` set; `failed` is sticky until
    mesh__buf_clear, and an encoder called on a failed buffer writes nothing. */
#include "codec.h"

#include <mesh/error.h>

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S_BUF_INITIAL 256 /* first allocation of a mesh__buf_t; then doubles */

/*  Array lengths of each envelope (version 1), type and version included. */
#define S_LEN_SERVICES 5
#define S_LEN_STATUS   7
#define S_LEN_REQUEST  9
#define S_LEN_REPLY    6
#define S_LEN_PUBLISH  4

/*  Smallest encodings of one SERVICES entry ([path "", tags [], flags 0])
    and one subscription ([pattern "", false]): a declared count that cannot
    fit in the bytes left is rejected before the loop. */
#define S_SVC_ENTRY_MIN 4
#define S_SUB_ENTRY_MIN 3

/* ------------------------------------------------------------------------ */
/*  Reader                                                                  */

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} s_in_t;

static inline size_t s_left(const s_in_t *in)
{
    return (size_t)(in->end - in->p);
}

static inline uint16_t s_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t s_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t s_be64(const uint8_t *p)
{
    return (uint64_t)s_be32(p) << 32 | s_be32(p + 4);
}

/*  Reads an array header (fixarray, array16, array32) into *n. */
static bool s_array(s_in_t *in, uint32_t *n)
{
    if (in->p == in->end) {
        return false;
    }
    uint8_t b = *in->p++;
    if ((b & 0xf0) == 0x90) {
        *n = b & 0x0f;
        return true;
    }
    if (b == 0xdc && s_left(in) >= 2) {
        *n = s_be16(in->p);
        in->p += 2;
        return true;
    }
    if (b == 0xdd && s_left(in) >= 4) {
        *n = s_be32(in->p);
        in->p += 4;
        return true;
    }
    return false;
}

/*  An integer in any msgpack form. A non-negative value comes back in u
    (neg false), a negative one in i (neg true). */
static bool s_int(s_in_t *in, uint64_t *u, int64_t *i, bool *neg)
{
    if (in->p == in->end) {
        return false;
    }
    uint8_t b = *in->p++;
    *neg = false;
    if (b < 0x80) {
        *u = b;
        return true;
    }
    if (b >= 0xe0) {
        *i = (int8_t)b;
        *neg = true;
        return true;
    }
    size_t width;
    switch (b) {
    case 0xcc:
    case 0xd0:
        width = 1;
        break;
    case 0xcd:
    case 0xd1:
        width = 2;
        break;
    case 0xce:
    case 0xd2:
        width = 4;
        break;
    case 0xcf:
    case 0xd3:
        width = 8;
        break;
    default:
        return false;
    }
    if (s_left(in) < width) {
        return false;
    }
    const uint8_t *p = in->p;
    in->p += width;
    uint64_t raw = width == 1 ? p[0] : width == 2 ? s_be16(p) : width == 4 ? s_be32(p) : s_be64(p);
    if (b <= 0xcf) {
        *u = raw;
        return true;
    }
    int64_t v = width == 1   ? (int8_t)raw
                : width == 2 ? (int16_t)raw
                : width == 4 ? (int32_t)raw
                             : (int64_t)raw;
    if (v < 0) {
        *i = v;
        *neg = true;
    } else {
        *u = (uint64_t)v;
    }
    return true;
}

/*  A non-negative integer no larger than max. */
static bool s_uint(s_in_t *in, uint64_t max, uint64_t *out)
{
    uint64_t u;
    int64_t i;
    bool neg;
    if (!s_int(in, &u, &i, &neg) || neg || u > max) {
        return false;
    }
    *out = u;
    return true;
}

static bool s_u32(s_in_t *in, uint32_t *out)
{
    uint64_t v;
    if (!s_uint(in, UINT32_MAX, &v)) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool s_i32(s_in_t *in, int32_t *out)
{
    uint64_t u;
    int64_t i;
    bool neg;
    if (!s_int(in, &u, &i, &neg)) {
        return false;
    }
    if (neg ? i < INT32_MIN : u > INT32_MAX) {
        return false;
    }
    *out = neg ? (int32_t)i : (int32_t)u;
    return true;
}

/*  float64, float32 or any integer; finite only. */
static bool s_float(s_in_t *in, double *out)
{
    if (in->p == in->end) {
        return false;
    }
    uint8_t b = *in->p;
    double d;
    if (b == 0xcb || b == 0xca) {
        size_t width = b == 0xcb ? 8 : 4;
        if (s_left(in) < 1 + width) {
            return false;
        }
        if (width == 8) {
            uint64_t bits = s_be64(in->p + 1);
            memcpy(&d, &bits, sizeof d);
        } else {
            uint32_t bits = s_be32(in->p + 1);
            float f;
            memcpy(&f, &bits, sizeof f);
            d = f;
        }
        in->p += 1 + width;
    } else {
        uint64_t u;
        int64_t i;
        bool neg;
        if (!s_int(in, &u, &i, &neg)) {
            return false;
        }
        d = neg ? (double)i : (double)u;
    }
    if (!isfinite(d)) {
        return false;
    }
    *out = d;
    return true;
}

/*  str (fixstr, str8/16/32) or, if bin, bin8/16/32, of at most max bytes;
    checked against max, then against the bytes left, before it is read. */
static bool s_bytes(s_in_t *in, bool bin, size_t max, mesh__slice_t *out)
{
    if (in->p == in->end) {
        return false;
    }
    uint8_t b = *in->p++;
    size_t n = 0;
    size_t width;
    if (!bin && (b & 0xe0) == 0xa0) {
        n = b & 0x1f;
        width = 0;
    } else if (b == (bin ? 0xc4 : 0xd9)) {
        width = 1;
    } else if (b == (bin ? 0xc5 : 0xda)) {
        width = 2;
    } else if (b == (bin ? 0xc6 : 0xdb)) {
        width = 4;
    } else {
        return false;
    }
    if (width) {
        if (s_left(in) < width) {
            return false;
        }
        n = width == 1 ? in->p[0] : width == 2 ? s_be16(in->p) : s_be32(in->p);
        in->p += width;
    }
    if (n > max || n > s_left(in)) {
        return false;
    }
    out->ptr = in->p;
    out->len = n;
    in->p += n;
    return true;
}

/*  Consumes a nil if one is next. */
static bool s_nil(s_in_t *in)
{
    if (in->p != in->end && *in->p == 0xc0) {
        in->p++;
        return true;
    }
    return false;
}

/*  str or nil (slice {NULL, 0}). */
static bool s_bytes_or_nil(s_in_t *in, bool bin, size_t max, mesh__slice_t *out)
{
    if (s_nil(in)) {
        out->ptr = NULL;
        out->len = 0;
        return true;
    }
    return s_bytes(in, bin, max, out);
}

static bool s_bool(s_in_t *in, bool *out)
{
    if (in->p == in->end || (*in->p != 0xc2 && *in->p != 0xc3)) {
        return false;
    }
    *out = *in->p++ == 0xc3;
    return true;
}

static bool s_array_of(s_in_t *in, uint32_t want)
{
    uint32_t n;
    return s_array(in, &n) && n == want;
}

static bool s_decode_services(s_in_t *in, mesh__env_t *out, mesh__env_scratch_t *scratch)
{
    size_t svc_cap = scratch && scratch->services ? scratch->services_cap : 0;
    size_t sub_cap = scratch && scratch->subs ? scratch->subs_cap : 0;
    uint32_t nsvc, nsub;
    if (!s_uint(in, UINT64_MAX, &out->u.services.version) || !s_array(in, &nsvc) ||
        nsvc > MESH_CODEC_SERVICES_MAX || nsvc > svc_cap || nsvc > s_left(in) / S_SVC_ENTRY_MIN) {
        return false;
    }
    for (uint32_t i = 0; i < nsvc; i++) {
        mesh__svc_entry_t *e = &scratch->services[i];
        if (!s_array_of(in, 3) || !s_bytes(in, false, MESH_CODEC_PATH_MAX, &e->path) ||
            !s_array(in, &e->ntags) || e->ntags > MESH_CODEC_TAGS_MAX) {
            return false;
        }
        for (uint32_t t = 0; t < e->ntags; t++) {
            if (!s_bytes(in, false, MESH_CODEC_TAG_MAX, &e->tags[t])) {
                return false;
            }
        }
        if (!s_u32(in, &e->flags)) {
            return false;
        }
    }
    if (!s_array(in, &nsub) || nsub > MESH_CODEC_SUBS_MAX || nsub > sub_cap ||
        nsub > s_left(in) / S_SUB_ENTRY_MIN) {
        return false;
    }
    for (uint32_t i = 0; i < nsub; i++) {
        mesh__sub_entry_t *e = &scratch->subs[i];
        if (!s_array_of(in, 2) || !s_bytes(in, false, MESH_CODEC_PATH_MAX, &e->pattern) ||
            !s_bool(in, &e->prefix)) {
            return false;
        }
    }
    out->u.services.nservices = nsvc;
    out->u.services.nsubs = nsub;
    return true;
}

static bool s_decode_status(s_in_t *in, mesh__env_t *out)
{
    out->u.status.fitness = 0;
    if (!s_float(in, &out->u.status.load)) {
        return false;
    }
    out->u.status.has_fitness = !s_nil(in);
    return (!out->u.status.has_fitness || s_float(in, &out->u.status.fitness)) &&
           s_uint(in, UINT64_MAX, &out->u.status.services_version) &&
           s_uint(in, UINT64_MAX, &out->u.status.ring_digest) &&
           s_uint(in, UINT64_MAX, &out->u.status.inflight);
}

static bool s_decode_request(s_in_t *in, mesh__env_t *out)
{
    return s_uint(in, UINT64_MAX, &out->u.request.id) && s_u32(in, &out->u.request.flags) &&
           s_bytes(in, false, MESH_CODEC_PATH_MAX, &out->u.request.path) &&
           s_u32(in, &out->u.request.timeout_ms) &&
           s_bytes_or_nil(in, false, MESH_CODEC_KEY_MAX, &out->u.request.key) &&
           s_u32(in, &out->u.request.attempt) &&
           s_bytes(in, true, MESH_CODEC_PAYLOAD_MAX, &out->u.request.payload);
}

static bool s_decode_reply(s_in_t *in, mesh__env_t *out)
{
    return s_uint(in, UINT64_MAX, &out->u.reply.id) && s_i32(in, &out->u.reply.status) &&
           s_bytes_or_nil(in, true, MESH_CODEC_PAYLOAD_MAX, &out->u.reply.payload) &&
           s_bytes_or_nil(in, false, MESH_CODEC_ERROR_MAX, &out->u.reply.error);
}

static bool s_decode_publish(s_in_t *in, mesh__env_t *out)
{
    return s_bytes(in, false, MESH_CODEC_PATH_MAX, &out->u.publish.topic) &&
           s_bytes(in, true, MESH_CODEC_PAYLOAD_MAX, &out->u.publish.payload);
}

static bool s_decode_batch(s_in_t *in, mesh__env_t *out)
{
    uint32_t n;
    if (!s_array(in, &n) || n < 2 || n > MESH_CODEC_BATCH_MAX || n > s_left(in) / 2) {
        return false;
    }
    const uint8_t *start = in->p;
    for (uint32_t i = 0; i < n; i++) {
        mesh__slice_t item;
        if (!s_bytes(in, true, MESH_CODEC_PAYLOAD_MAX, &item) || item.len < 3) {
            return false;
        }
    }
    out->u.batch.count = n;
    out->u.batch.items = (mesh__slice_t){start, (size_t)(in->p - start)};
    return true;
}

bool mesh__env_batch_next(const mesh__env_t *env, size_t *pos, mesh__slice_t *item)
{
    if (env->type != MESH_ENV_BATCH || *pos >= env->u.batch.items.len) {
        return false;
    }
    s_in_t in = {env->u.batch.items.ptr + *pos,
                 env->u.batch.items.ptr + env->u.batch.items.len};
    if (!s_bytes(&in, true, MESH_CODEC_PAYLOAD_MAX, item)) {
        return false; /* cannot happen after a successful decode */
    }
    *pos = (size_t)(in.p - env->u.batch.items.ptr);
    return true;
}

int mesh__env_decode(const uint8_t *buf, size_t len, mesh__env_t *out, mesh__env_scratch_t *scratch)
{
    assert(out);
    out->type = 0;
    if (!buf) {
        return MESH_ERR_MALFORMED;
    }
    s_in_t in = {buf, buf + len};
    uint32_t n;
    if (!s_array(&in, &n) || s_left(&in) < 2 || in.p[1] != MESH_ENV_VERSION) {
        return MESH_ERR_MALFORMED;
    }
    uint8_t type = in.p[0];
    in.p += 2;
    bool ok;
    switch (type) {
    case MESH_ENV_SERVICES:
        ok = n == S_LEN_SERVICES && s_decode_services(&in, out, scratch);
        break;
    case MESH_ENV_STATUS:
        ok = n == S_LEN_STATUS && s_decode_status(&in, out);
        break;
    case MESH_ENV_REQUEST:
        ok = n == S_LEN_REQUEST && s_decode_request(&in, out);
        break;
    case MESH_ENV_REPLY:
        ok = n == S_LEN_REPLY && s_decode_reply(&in, out);
        break;
    case MESH_ENV_PUBLISH:
        ok = n == S_LEN_PUBLISH && s_decode_publish(&in, out);
        break;
    case MESH_ENV_BATCH:
        ok = n == 3 && s_decode_batch(&in, out);
        break;
    default:
        ok = false;
        break;
    }
    if (!ok || in.p != in.end) {
        return MESH_ERR_MALFORMED;
    }
    out->type = type;
    return type;
}

bool mesh__env_is(const uint8_t *buf, size_t len)
{
    if (!buf || len < 3) {
        return false;
    }
    s_in_t in = {buf, buf + len};
    uint32_t n;
    return s_array(&in, &n) && n >= 3 && n <= 15 && s_left(&in) >= 2 && in.p[0] >= 16 &&
           in.p[0] <= 31 && in.p[1] == MESH_ENV_VERSION;
}

/* ------------------------------------------------------------------------ */
/*  Writer                                                                  */

/*  Largest header of each kind (the writer reserves these, then writes the
    smallest form that fits). */
#define S_HDR_UINT  9 /* 0xcf + 8 */
#define S_HDR_FLOAT 9 /* 0xcb + 8 */
#define S_HDR_BYTES 5 /* str32 / bin32 */
#define S_HDR_ARRAY 5 /* array32 */

void mesh__buf_clear(mesh__buf_t *b)
{
    assert(b);
    b->size = 0;
    b->failed = false;
}

void mesh__buf_free(mesh__buf_t *b)
{
    if (!b) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->size = 0;
    b->cap = 0;
    b->failed = false;
}

/*  Makes room for n more bytes, doubling from S_BUF_INITIAL. Returns a
    pointer to b->data + b->size, or NULL (and sets failed). */
static uint8_t *s_reserve(mesh__buf_t *b, size_t n)
{
    if (b->failed) {
        return NULL;
    }
    if (b->cap - b->size < n) {
        if (n > SIZE_MAX - b->size) {
            b->failed = true;
            return NULL;
        }
        size_t need = b->size + n;
        size_t cap = b->cap ? b->cap : S_BUF_INITIAL;
        while (cap < need) {
            if (cap > SIZE_MAX / 2) {
                b->failed = true;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *data = realloc(b->data, cap);
        if (!data) {
            b->failed = true;
            return NULL;
        }
        b->data = data;
        b->cap = cap;
    }
    return b->data + b->size;
}

static inline uint8_t *s_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static inline uint8_t *s_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *s_put_be64(uint8_t *p, uint64_t v)
{
    s_put_be32(p, (uint32_t)(v >> 32));
    return s_put_be32(p + 4, (uint32_t)v);
}

static uint8_t *s_put_uint(uint8_t *p, uint64_t v)
{
    if (v < 0x80) {
        *p++ = (uint8_t)v;
    } else if (v <= UINT8_MAX) {
        *p++ = 0xcc;
        *p++ = (uint8_t)v;
    } else if (v <= UINT16_MAX) {
        *p++ = 0xcd;
        p = s_put_be16(p, (uint16_t)v);
    } else if (v <= UINT32_MAX) {
        *p++ = 0xce;
        p = s_put_be32(p, (uint32_t)v);
    } else {
        *p++ = 0xcf;
        p = s_put_be64(p, v);
    }
    return p;
}

/*  int32 is all an envelope needs (REPLY status). */
static uint8_t *s_put_i32(uint8_t *p, int32_t v)
{
    if (v >= 0) {
        return s_put_uint(p, (uint64_t)v);
    }
    if (v >= -32) {
        *p++ = (uint8_t)(int8_t)v;
    } else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        *p++ = (uint8_t)(int8_t)v;
    } else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        p = s_put_be16(p, (uint16_t)(int16_t)v);
    } else {
        *p++ = 0xd2;
        p = s_put_be32(p, (uint32_t)v);
    }
    return p;
}

static uint8_t *s_put_double(uint8_t *p, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    *p++ = 0xcb;
    return s_put_be64(p, bits);
}

static uint8_t *s_put_array(uint8_t *p, size_t n)
{
    if (n < 16) {
        *p++ = (uint8_t)(0x90 | n);
    } else if (n <= UINT16_MAX) {
        *p++ = 0xdc;
        p = s_put_be16(p, (uint16_t)n);
    } else {
        *p++ = 0xdd;
        p = s_put_be32(p, (uint32_t)n);
    }
    return p;
}

/*  Not inlined: where the caller has bounded len (a path is <= 255), GCC
    expands an inlined memcpy into `rep movs`, which costs ~20 ns to start;
    here len is opaque and memcpy is the library's, fast for any size. */
#if defined(__GNUC__)
#define S_NOINLINE __attribute__((noinline))
#else
#define S_NOINLINE
#endif

/*  str (bin false) or bin of len bytes; len is within its limit (< 4 GiB). */
static S_NOINLINE uint8_t *s_put_bytes(uint8_t *p, bool bin, const void *data, size_t len)
{
    if (!bin && len < 32) {
        *p++ = (uint8_t)(0xa0 | len);
    } else if (len <= UINT8_MAX) {
        *p++ = bin ? 0xc4 : 0xd9;
        *p++ = (uint8_t)len;
    } else if (len <= UINT16_MAX) {
        *p++ = bin ? 0xc5 : 0xda;
        p = s_put_be16(p, (uint16_t)len);
    } else {
        *p++ = bin ? 0xc6 : 0xdb;
        p = s_put_be32(p, (uint32_t)len);
    }
    if (len) {
        memcpy(p, data, len);
    }
    return p + len;
}

static uint8_t *s_put_nil(uint8_t *p)
{
    *p++ = 0xc0;
    return p;
}

static uint8_t *s_put_head(uint8_t *p, size_t n, uint8_t type)
{
    *p++ = (uint8_t)(0x90 | n);
    *p++ = type;
    *p++ = MESH_ENV_VERSION;
    return p;
}

/*  Records the bytes written from start to end. */
static void s_commit(mesh__buf_t *b, const uint8_t *end)
{
    b->size = (size_t)(end - b->data);
    assert(b->size <= b->cap);
}

/*  A slice is usable if it has bytes, or is empty; and is within max. */
static bool s_slice_ok(mesh__slice_t s, size_t max)
{
    return s.len <= max && (s.ptr || s.len == 0);
}

/*  strlen capped just past max (so a huge string is not walked); max + 1
    (over the limit) for NULL. */
static size_t s_strlen(const char *s, size_t max)
{
    if (!s) {
        return max + 1;
    }
    size_t n = 0;
    while (n <= max && s[n]) {
        n++;
    }
    return n;
}

void mesh__env_encode_services(mesh__buf_t *b, uint64_t version, const mesh__svc_entry_t *svcs,
                               size_t nsvcs, const mesh__sub_entry_t *subs, size_t nsubs)
{
    assert(b);
    if (nsvcs > MESH_CODEC_SERVICES_MAX || nsubs > MESH_CODEC_SUBS_MAX || (nsvcs && !svcs) ||
        (nsubs && !subs)) {
        b->failed = true;
        return;
    }
    size_t bound = 3 + S_HDR_UINT + 2 * S_HDR_ARRAY;
    for (size_t i = 0; i < nsvcs; i++) {
        const mesh__svc_entry_t *e = &svcs[i];
        if (!s_slice_ok(e->path, MESH_CODEC_PATH_MAX) || e->ntags > MESH_CODEC_TAGS_MAX) {
            b->failed = true;
            return;
        }
        bound += 1 + S_HDR_BYTES + e->path.len + S_HDR_ARRAY + S_HDR_UINT;
        for (uint32_t t = 0; t < e->ntags; t++) {
            if (!s_slice_ok(e->tags[t], MESH_CODEC_TAG_MAX)) {
                b->failed = true;
                return;
            }
            bound += S_HDR_BYTES + e->tags[t].len;
        }
    }
    for (size_t i = 0; i < nsubs; i++) {
        if (!s_slice_ok(subs[i].pattern, MESH_CODEC_PATH_MAX)) {
            b->failed = true;
            return;
        }
        bound += 1 + S_HDR_BYTES + subs[i].pattern.len + 1;
    }
    uint8_t *p = s_reserve(b, bound);
    if (!p) {
        return;
    }
    p = s_put_head(p, S_LEN_SERVICES, MESH_ENV_SERVICES);
    p = s_put_uint(p, version);
    p = s_put_array(p, nsvcs);
    for (size_t i = 0; i < nsvcs; i++) {
        const mesh__svc_entry_t *e = &svcs[i];
        p = s_put_array(p, 3);
        p = s_put_bytes(p, false, e->path.ptr, e->path.len);
        p = s_put_array(p, e->ntags);
        for (uint32_t t = 0; t < e->ntags; t++) {
            p = s_put_bytes(p, false, e->tags[t].ptr, e->tags[t].len);
        }
        p = s_put_uint(p, e->flags);
    }
    p = s_put_array(p, nsubs);
    for (size_t i = 0; i < nsubs; i++) {
        p = s_put_array(p, 2);
        p = s_put_bytes(p, false, subs[i].pattern.ptr, subs[i].pattern.len);
        *p++ = subs[i].prefix ? 0xc3 : 0xc2;
    }
    s_commit(b, p);
}

void mesh__env_encode_status(mesh__buf_t *b, double load, const double *fitness,
                             uint64_t services_version, uint64_t ring_digest, uint64_t inflight)
{
    assert(b);
    /* The decoder refuses non-finite numbers; never send what we would drop. */
    if (!isfinite(load) || (fitness && !isfinite(*fitness))) {
        b->failed = true;
        return;
    }
    uint8_t *p = s_reserve(b, 3 + 2 * S_HDR_FLOAT + 3 * S_HDR_UINT);
    if (!p) {
        return;
    }
    p = s_put_head(p, S_LEN_STATUS, MESH_ENV_STATUS);
    p = s_put_double(p, load);
    p = fitness ? s_put_double(p, *fitness) : s_put_nil(p);
    p = s_put_uint(p, services_version);
    p = s_put_uint(p, ring_digest);
    p = s_put_uint(p, inflight);
    s_commit(b, p);
}

void mesh__env_encode_request(mesh__buf_t *b, uint64_t id, uint32_t flags, const char *path,
                              uint32_t timeout_ms, const char *key, uint32_t attempt,
                              const void *payload, size_t size)
{
    assert(b);
    size_t path_len = s_strlen(path, MESH_CODEC_PATH_MAX);
    size_t key_len = key ? s_strlen(key, MESH_CODEC_KEY_MAX) : 0;
    if (path_len > MESH_CODEC_PATH_MAX || key_len > MESH_CODEC_KEY_MAX ||
        size > MESH_CODEC_PAYLOAD_MAX || (size && !payload)) {
        b->failed = true;
        return;
    }
    uint8_t *p = s_reserve(b, 3 + 4 * S_HDR_UINT + 3 * S_HDR_BYTES + path_len + key_len + size);
    if (!p) {
        return;
    }
    p = s_put_head(p, S_LEN_REQUEST, MESH_ENV_REQUEST);
    p = s_put_uint(p, id);
    p = s_put_uint(p, flags);
    p = s_put_bytes(p, false, path, path_len);
    p = s_put_uint(p, timeout_ms);
    p = key ? s_put_bytes(p, false, key, key_len) : s_put_nil(p);
    p = s_put_uint(p, attempt);
    p = s_put_bytes(p, true, payload, size);
    s_commit(b, p);
}

void mesh__env_encode_reply(mesh__buf_t *b, uint64_t id, int32_t status, const void *payload,
                            size_t size, const char *error)
{
    assert(b);
    size_t error_len = error ? s_strlen(error, MESH_CODEC_ERROR_MAX) : 0;
    if (error_len > MESH_CODEC_ERROR_MAX || size > MESH_CODEC_PAYLOAD_MAX || (size && !payload)) {
        b->failed = true;
        return;
    }
    uint8_t *p = s_reserve(b, 3 + 2 * S_HDR_UINT + 2 * S_HDR_BYTES + size + error_len);
    if (!p) {
        return;
    }
    p = s_put_head(p, S_LEN_REPLY, MESH_ENV_REPLY);
    p = s_put_uint(p, id);
    p = s_put_i32(p, status);
    p = size ? s_put_bytes(p, true, payload, size) : s_put_nil(p);
    p = error ? s_put_bytes(p, false, error, error_len) : s_put_nil(p);
    s_commit(b, p);
}

void mesh__env_encode_publish(mesh__buf_t *b, const char *topic, const void *payload, size_t size)
{
    assert(b);
    size_t topic_len = s_strlen(topic, MESH_CODEC_PATH_MAX);
    if (topic_len > MESH_CODEC_PATH_MAX || size > MESH_CODEC_PAYLOAD_MAX || (size && !payload)) {
        b->failed = true;
        return;
    }
    uint8_t *p = s_reserve(b, 3 + 2 * S_HDR_BYTES + topic_len + size);
    if (!p) {
        return;
    }
    p = s_put_head(p, S_LEN_PUBLISH, MESH_ENV_PUBLISH);
    p = s_put_bytes(p, false, topic, topic_len);
    p = s_put_bytes(p, true, payload, size);
    s_commit(b, p);
}

/* ------------------------------------------------------------------------ */
/*  BATCH                                                                   */

/*  Room for the largest BATCH header: fixarray(3), type, version, array32. */
#define S_BATCH_HDR (3 + S_HDR_ARRAY)

void mesh__env_batch_begin(mesh__buf_t *b)
{
    mesh__buf_clear(b);
    uint8_t *p = s_reserve(b, S_BATCH_HDR);
    if (p) {
        s_commit(b, p + S_BATCH_HDR);
    }
}

void mesh__env_batch_add(mesh__buf_t *b, const uint8_t *env, size_t len)
{
    if (b->failed || len > MESH_CODEC_PAYLOAD_MAX) {
        b->failed = true;
        return;
    }
    uint8_t *p = s_reserve(b, S_HDR_BYTES + len);
    if (p) {
        s_commit(b, s_put_bytes(p, true, env, len));
    }
}

const uint8_t *mesh__env_batch_finish(mesh__buf_t *b, size_t count, size_t *len)
{
    if (b->failed || count == 0 || count > MESH_CODEC_BATCH_MAX || b->size < S_BATCH_HDR) {
        return NULL;
    }
    if (count == 1) {
        /* just the envelope: skip the reserved room and its bin header */
        s_in_t in = {b->data + S_BATCH_HDR, b->data + b->size};
        mesh__slice_t item;
        if (!s_bytes(&in, true, MESH_CODEC_PAYLOAD_MAX, &item)) {
            return NULL;
        }
        *len = item.len;
        return item.ptr;
    }
    uint8_t hdr[S_BATCH_HDR];
    uint8_t *p = s_put_head(hdr, 3, MESH_ENV_BATCH);
    p = s_put_array(p, count);
    size_t hlen = (size_t)(p - hdr);
    uint8_t *start = b->data + S_BATCH_HDR - hlen;
    memcpy(start, hdr, hlen);
    *len = b->size - (size_t)(start - b->data);
    return start;
}
