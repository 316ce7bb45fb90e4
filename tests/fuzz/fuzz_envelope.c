/*  fuzz_envelope.c: mesh__env_decode on arbitrary WHISPER / SHOUT content.

    Properties: the result is a mesh envelope type or MALFORMED (type cleared);
    mesh__env_is is a necessary condition for acceptance; every slice lies
    inside the input and within its limit, and only nullable fields are NULL;
    one byte less never decodes; an accepted envelope re-encodes (from the
    decoded struct) to bytes that decode to an equal struct, and encoding that
    again gives the same bytes (the canonical form is a fixed point; it may
    differ from the input, which can use longer msgpack forms).

    "Equal" allows for what the encoders' C strings cannot carry: path, key,
    topic and error are re-encoded up to their first NUL byte. A REPLY's empty
    payload is re-encoded as nil. */
#include "fuzz.h"

#include "codec.h"

#include <mesh/mesh.h>
#include <string.h>

static mesh__svc_entry_t s_svcs[2][MESH_CODEC_SERVICES_MAX];
static mesh__sub_entry_t s_subs[2][MESH_CODEC_SUBS_MAX];
static mesh__env_scratch_t s_scratch[2] = {
    {s_svcs[0], MESH_CODEC_SERVICES_MAX, s_subs[0], MESH_CODEC_SUBS_MAX},
    {s_svcs[1], MESH_CODEC_SERVICES_MAX, s_subs[1], MESH_CODEC_SUBS_MAX},
};

static void s_check_slice(mesh__slice_t s, const uint8_t *data, size_t size, size_t max,
                          bool nullable)
{
    MESH_FUZZ_CHECK(s.len <= max);
    if (!s.ptr) {
        MESH_FUZZ_CHECK(nullable && s.len == 0);
        return;
    }
    MESH_FUZZ_CHECK(s.ptr >= data && s.len <= (size_t)(data + size - s.ptr));
}

/*  The slice as the C string an encoder takes (up to its first NUL), in
    buf of at least max + 1 bytes; NULL for a nil slice. */
static const char *s_cstr(mesh__slice_t s, char *buf)
{
    if (!s.ptr) {
        return NULL;
    }
    memcpy(buf, s.ptr, s.len);
    buf[s.len] = '\0';
    return buf;
}

/*  a (decoded from the input) survived as b (decoded from the re-encoding). */
static bool s_same(mesh__slice_t a, mesh__slice_t b, bool cstr, bool empty_is_nil)
{
    if (!a.ptr || !b.ptr) {
        return a.ptr == b.ptr || (empty_is_nil && a.len == 0 && b.len == 0);
    }
    size_t len = a.len;
    if (cstr) {
        const uint8_t *nul = memchr(a.ptr, 0, a.len);
        len = nul ? (size_t)(nul - a.ptr) : a.len;
    }
    return b.len == len && (len == 0 || memcmp(a.ptr, b.ptr, len) == 0);
}

static void s_check(const mesh__env_t *e, const uint8_t *data, size_t size)
{
    switch (e->type) {
    case MESH_ENV_SERVICES:
        MESH_FUZZ_CHECK(e->u.services.nservices <= MESH_CODEC_SERVICES_MAX);
        MESH_FUZZ_CHECK(e->u.services.nsubs <= MESH_CODEC_SUBS_MAX);
        for (uint32_t i = 0; i < e->u.services.nservices; i++) {
            const mesh__svc_entry_t *s = &s_svcs[0][i];
            s_check_slice(s->path, data, size, MESH_CODEC_PATH_MAX, false);
            MESH_FUZZ_CHECK(s->ntags <= MESH_CODEC_TAGS_MAX);
            for (uint32_t t = 0; t < s->ntags; t++) {
                s_check_slice(s->tags[t], data, size, MESH_CODEC_TAG_MAX, false);
            }
        }
        for (uint32_t i = 0; i < e->u.services.nsubs; i++) {
            s_check_slice(s_subs[0][i].pattern, data, size, MESH_CODEC_PATH_MAX, false);
        }
        break;
    case MESH_ENV_STATUS:
        MESH_FUZZ_CHECK(e->u.status.load == e->u.status.load);
        MESH_FUZZ_CHECK(e->u.status.load - e->u.status.load == 0); /* finite */
        if (e->u.status.has_fitness) {
            MESH_FUZZ_CHECK(e->u.status.fitness - e->u.status.fitness == 0);
        }
        break;
    case MESH_ENV_REQUEST:
        s_check_slice(e->u.request.path, data, size, MESH_CODEC_PATH_MAX, false);
        s_check_slice(e->u.request.key, data, size, MESH_CODEC_KEY_MAX, true);
        s_check_slice(e->u.request.payload, data, size, MESH_CODEC_PAYLOAD_MAX, false);
        break;
    case MESH_ENV_REPLY:
        s_check_slice(e->u.reply.payload, data, size, MESH_CODEC_PAYLOAD_MAX, true);
        s_check_slice(e->u.reply.error, data, size, MESH_CODEC_ERROR_MAX, true);
        break;
    case MESH_ENV_PUBLISH:
        s_check_slice(e->u.publish.topic, data, size, MESH_CODEC_PATH_MAX, false);
        s_check_slice(e->u.publish.payload, data, size, MESH_CODEC_PAYLOAD_MAX, false);
        break;
    default:
        MESH_FUZZ_CHECK(!"unexpected type");
    }
}

/*  Encodes e (decoded with scratch set `which`) into b. */
static void s_encode(mesh__buf_t *b, const mesh__env_t *e, int which)
{
    static char str_a[MESH_CODEC_ERROR_MAX + 1];
    static char str_b[MESH_CODEC_KEY_MAX + 1];
    mesh__buf_clear(b);
    switch (e->type) {
    case MESH_ENV_SERVICES:
        mesh__env_encode_services(b, e->u.services.version, s_svcs[which], e->u.services.nservices,
                                  s_subs[which], e->u.services.nsubs);
        break;
    case MESH_ENV_STATUS:
        mesh__env_encode_status(
            b, e->u.status.load, e->u.status.has_fitness ? &e->u.status.fitness : NULL,
            e->u.status.services_version, e->u.status.ring_digest, e->u.status.inflight);
        break;
    case MESH_ENV_REQUEST:
        mesh__env_encode_request(b, e->u.request.id, e->u.request.flags,
                                 s_cstr(e->u.request.path, str_a), e->u.request.timeout_ms,
                                 s_cstr(e->u.request.key, str_b), e->u.request.attempt,
                                 e->u.request.payload.ptr, e->u.request.payload.len);
        break;
    case MESH_ENV_REPLY:
        mesh__env_encode_reply(b, e->u.reply.id, e->u.reply.status, e->u.reply.payload.ptr,
                               e->u.reply.payload.len, s_cstr(e->u.reply.error, str_a));
        break;
    case MESH_ENV_PUBLISH:
        mesh__env_encode_publish(b, s_cstr(e->u.publish.topic, str_a), e->u.publish.payload.ptr,
                                 e->u.publish.payload.len);
        break;
    }
    MESH_FUZZ_CHECK(!b->failed);
}

static void s_compare(const mesh__env_t *a, const mesh__env_t *b)
{
    MESH_FUZZ_CHECK(a->type == b->type);
    switch (a->type) {
    case MESH_ENV_SERVICES:
        MESH_FUZZ_CHECK(a->u.services.version == b->u.services.version);
        MESH_FUZZ_CHECK(a->u.services.nservices == b->u.services.nservices);
        MESH_FUZZ_CHECK(a->u.services.nsubs == b->u.services.nsubs);
        for (uint32_t i = 0; i < a->u.services.nservices; i++) {
            const mesh__svc_entry_t *x = &s_svcs[0][i], *y = &s_svcs[1][i];
            MESH_FUZZ_CHECK(s_same(x->path, y->path, false, false));
            MESH_FUZZ_CHECK(x->ntags == y->ntags && x->flags == y->flags);
            for (uint32_t t = 0; t < x->ntags; t++) {
                MESH_FUZZ_CHECK(s_same(x->tags[t], y->tags[t], false, false));
            }
        }
        for (uint32_t i = 0; i < a->u.services.nsubs; i++) {
            MESH_FUZZ_CHECK(s_same(s_subs[0][i].pattern, s_subs[1][i].pattern, false, false));
            MESH_FUZZ_CHECK(s_subs[0][i].prefix == s_subs[1][i].prefix);
        }
        break;
    case MESH_ENV_STATUS:
        MESH_FUZZ_CHECK(memcmp(&a->u.status.load, &b->u.status.load, sizeof(double)) == 0);
        MESH_FUZZ_CHECK(a->u.status.has_fitness == b->u.status.has_fitness);
        if (a->u.status.has_fitness) {
            MESH_FUZZ_CHECK(memcmp(&a->u.status.fitness, &b->u.status.fitness, sizeof(double)) ==
                            0);
        }
        MESH_FUZZ_CHECK(a->u.status.services_version == b->u.status.services_version);
        MESH_FUZZ_CHECK(a->u.status.ring_digest == b->u.status.ring_digest);
        MESH_FUZZ_CHECK(a->u.status.inflight == b->u.status.inflight);
        break;
    case MESH_ENV_REQUEST:
        MESH_FUZZ_CHECK(a->u.request.id == b->u.request.id);
        MESH_FUZZ_CHECK(a->u.request.flags == b->u.request.flags);
        MESH_FUZZ_CHECK(s_same(a->u.request.path, b->u.request.path, true, false));
        MESH_FUZZ_CHECK(a->u.request.timeout_ms == b->u.request.timeout_ms);
        MESH_FUZZ_CHECK(s_same(a->u.request.key, b->u.request.key, true, false));
        MESH_FUZZ_CHECK(a->u.request.attempt == b->u.request.attempt);
        MESH_FUZZ_CHECK(s_same(a->u.request.payload, b->u.request.payload, false, false));
        break;
    case MESH_ENV_REPLY:
        MESH_FUZZ_CHECK(a->u.reply.id == b->u.reply.id);
        MESH_FUZZ_CHECK(a->u.reply.status == b->u.reply.status);
        MESH_FUZZ_CHECK(s_same(a->u.reply.payload, b->u.reply.payload, false, true));
        MESH_FUZZ_CHECK(b->u.reply.payload.ptr == NULL || b->u.reply.payload.len > 0);
        MESH_FUZZ_CHECK(s_same(a->u.reply.error, b->u.reply.error, true, false));
        break;
    case MESH_ENV_PUBLISH:
        MESH_FUZZ_CHECK(s_same(a->u.publish.topic, b->u.publish.topic, true, false));
        MESH_FUZZ_CHECK(s_same(a->u.publish.payload, b->u.publish.payload, false, false));
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mesh__buf_t once, twice;
    mesh__env_t env, back;
    int rc = mesh__env_decode(data, size, &env, &s_scratch[0]);
    if (rc == MESH_ERR_MALFORMED) {
        MESH_FUZZ_CHECK(env.type == 0);
        return 0;
    }
    MESH_FUZZ_CHECK(rc >= MESH_ENV_SERVICES && rc <= MESH_ENV_BATCH);
    MESH_FUZZ_CHECK(env.type == rc);
    MESH_FUZZ_CHECK(mesh__env_is(data, size));
    if (rc == MESH_ENV_BATCH) {
        /* every item lies inside the input; the items rebuilt into a batch
           decode to the same items */
        MESH_FUZZ_CHECK(env.u.batch.count >= 2 && env.u.batch.count <= MESH_CODEC_BATCH_MAX);
        mesh__env_batch_begin(&once);
        size_t pos = 0, n = 0;
        mesh__slice_t item;
        while (mesh__env_batch_next(&env, &pos, &item)) {
            s_check_slice(item, data, size, MESH_CODEC_PAYLOAD_MAX, false);
            mesh__env_batch_add(&once, item.ptr, item.len);
            n++;
        }
        MESH_FUZZ_CHECK(n == env.u.batch.count);
        size_t len = 0;
        const uint8_t *frame = mesh__env_batch_finish(&once, n, &len);
        MESH_FUZZ_CHECK(frame != NULL);
        MESH_FUZZ_CHECK(mesh__env_decode(frame, len, &back, NULL) == MESH_ENV_BATCH);
        MESH_FUZZ_CHECK(back.u.batch.count == n);
        size_t p1 = 0, p2 = 0;
        mesh__slice_t x, y;
        while (mesh__env_batch_next(&env, &p1, &x)) {
            MESH_FUZZ_CHECK(mesh__env_batch_next(&back, &p2, &y));
            MESH_FUZZ_CHECK(x.len == y.len && memcmp(x.ptr, y.ptr, x.len) == 0);
        }
        return 0;
    }
    s_check(&env, data, size);

    /* one byte short is always truncated (scratch 1 is free until below) */
    MESH_FUZZ_CHECK(mesh__env_decode(data, size - 1, &back, &s_scratch[1]) == MESH_ERR_MALFORMED);

    s_encode(&once, &env, 0);
    MESH_FUZZ_CHECK(mesh__env_is(once.data, once.size));
    MESH_FUZZ_CHECK(mesh__env_decode(once.data, once.size, &back, &s_scratch[1]) == rc);
    s_compare(&env, &back);

    s_encode(&twice, &back, 1);
    MESH_FUZZ_CHECK(twice.size == once.size && memcmp(twice.data, once.data, once.size) == 0);
    if (once.cap > 1024 * 1024) {
        mesh__buf_free(&once); /* keep memory flat between big inputs */
        mesh__buf_free(&twice);
    }
    return 0;
}
