/*  zre_msg.c: ZRE v2 header-frame codec (RFC 36 grammar). */
#include "zre_msg.h"

#include <mesh/mesh.h>
#include <string.h>

/*  A bounded reader over untrusted bytes. Every get_ checks the remaining
    length first; after a failure `ok` stays false and all gets fail. */
typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    bool ok;
} s_reader_t;

static uint8_t s_get_u8(s_reader_t *r)
{
    if (!r->ok || r->end - r->p < 1) {
        r->ok = false;
        return 0;
    }
    return *r->p++;
}

static uint16_t s_get_u16(s_reader_t *r)
{
    if (!r->ok || r->end - r->p < 2) {
        r->ok = false;
        return 0;
    }
    uint16_t v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    return v;
}

static uint32_t s_get_u32(s_reader_t *r)
{
    if (!r->ok || r->end - r->p < 4) {
        r->ok = false;
        return 0;
    }
    uint32_t v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) |
                 ((uint32_t)r->p[2] << 8) | (uint32_t)r->p[3];
    r->p += 4;
    return v;
}

static mesh__slice_t s_get_bytes(s_reader_t *r, size_t n)
{
    mesh__slice_t s = {NULL, 0};
    if (!r->ok || (size_t)(r->end - r->p) < n) {
        r->ok = false;
        return s;
    }
    s.ptr = r->p;
    s.len = n;
    r->p += n;
    return s;
}

static mesh__slice_t s_get_string(s_reader_t *r)
{
    uint8_t n = s_get_u8(r);
    return s_get_bytes(r, n);
}

static mesh__slice_t s_get_longstr(s_reader_t *r)
{
    uint32_t n = s_get_u32(r);
    if (n > MESH_ZRE_LONGSTR_MAX) {
        r->ok = false;
        return (mesh__slice_t){NULL, 0};
    }
    return s_get_bytes(r, n);
}

int mesh__zre_decode(const uint8_t *buf, size_t len, mesh__zre_hdr_t *out)
{
    memset(out, 0, sizeof *out);
    s_reader_t r = {buf, buf ? buf + len : NULL, buf != NULL};
    if (s_get_u8(&r) != MESH_ZRE_SIGNATURE_0 || s_get_u8(&r) != MESH_ZRE_SIGNATURE_1) {
        return MESH_ERR_MALFORMED;
    }
    out->id = s_get_u8(&r);
    if (s_get_u8(&r) != MESH_ZRE_VERSION) {
        return MESH_ERR_MALFORMED;
    }
    out->seq = s_get_u16(&r);
    if (!r.ok) {
        return MESH_ERR_MALFORMED;
    }
    switch (out->id) {
    case MESH_ZRE_HELLO: {
        out->endpoint = s_get_string(&r);
        out->ngroups = s_get_u32(&r);
        if (out->ngroups > MESH_ZRE_GROUPS_MAX) {
            return MESH_ERR_MALFORMED;
        }
        const uint8_t *start = r.p;
        for (uint32_t i = 0; i < out->ngroups && r.ok; i++) {
            s_get_longstr(&r);
        }
        out->groups = (mesh__slice_t){start, (size_t)(r.p - start)};
        out->status = s_get_u8(&r);
        out->name = s_get_string(&r);
        out->nheaders = s_get_u32(&r);
        if (out->nheaders > MESH_ZRE_HEADERS_MAX) {
            return MESH_ERR_MALFORMED;
        }
        start = r.p;
        for (uint32_t i = 0; i < out->nheaders && r.ok; i++) {
            s_get_string(&r);
            s_get_longstr(&r);
        }
        out->headers = (mesh__slice_t){start, (size_t)(r.p - start)};
        break;
    }
    case MESH_ZRE_WHISPER:
    case MESH_ZRE_PING:
    case MESH_ZRE_PING_OK:
    case MESH_ZRE_GOODBYE:
        break;
    case MESH_ZRE_SHOUT:
        out->group = s_get_string(&r);
        break;
    case MESH_ZRE_JOIN:
    case MESH_ZRE_LEAVE:
        out->group = s_get_string(&r);
        out->status = s_get_u8(&r);
        break;
    case MESH_ZRE_ELECT:
    case MESH_ZRE_LEADER:
        out->group = s_get_string(&r);
        s_get_string(&r); /* challenger / leader id */
        break;
    default:
        return MESH_ERR_MALFORMED;
    }
    if (!r.ok || r.p != r.end) {
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

bool mesh__zre_next_group(const mesh__zre_hdr_t *h, size_t *pos, mesh__slice_t *group)
{
    if (*pos >= h->groups.len) {
        return false;
    }
    s_reader_t r = {h->groups.ptr + *pos, h->groups.ptr + h->groups.len, true};
    *group = s_get_longstr(&r);
    if (!r.ok) {
        return false;
    }
    *pos = (size_t)(r.p - h->groups.ptr);
    return true;
}

bool mesh__zre_next_header(const mesh__zre_hdr_t *h, size_t *pos, mesh__slice_t *key,
                           mesh__slice_t *value)
{
    if (*pos >= h->headers.len) {
        return false;
    }
    s_reader_t r = {h->headers.ptr + *pos, h->headers.ptr + h->headers.len, true};
    *key = s_get_string(&r);
    *value = s_get_longstr(&r);
    if (!r.ok) {
        return false;
    }
    *pos = (size_t)(r.p - h->headers.ptr);
    return true;
}

/*  A bounded writer: counts every byte, stores only what fits. */
typedef struct {
    uint8_t *p;
    size_t cap;
    size_t n;
    bool ok;
} s_writer_t;

static void s_put(s_writer_t *w, const void *data, size_t len)
{
    if (w->n + len <= w->cap && len) {
        memcpy(w->p + w->n, data, len);
    }
    w->n += len;
}

static void s_put_u8(s_writer_t *w, uint8_t v)
{
    s_put(w, &v, 1);
}

static void s_put_u16(s_writer_t *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    s_put(w, b, 2);
}

static void s_put_u32(s_writer_t *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    s_put(w, b, 4);
}

static void s_put_string(s_writer_t *w, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len > MESH_ZRE_STRING_MAX) {
        w->ok = false;
        return;
    }
    s_put_u8(w, (uint8_t)len);
    s_put(w, s, len);
}

static void s_put_longstr(s_writer_t *w, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len > UINT32_MAX) {
        w->ok = false;
        return;
    }
    s_put_u32(w, (uint32_t)len);
    s_put(w, s, len);
}

static void s_put_header(s_writer_t *w, uint8_t id, uint16_t seq)
{
    s_put_u8(w, MESH_ZRE_SIGNATURE_0);
    s_put_u8(w, MESH_ZRE_SIGNATURE_1);
    s_put_u8(w, id);
    s_put_u8(w, MESH_ZRE_VERSION);
    s_put_u16(w, seq);
}

size_t mesh__zre_encode_hello(uint8_t *buf, size_t cap, uint16_t seq, const char *endpoint,
                              const char *const *groups, size_t ngroups, uint8_t status,
                              const char *name, const char *const *keys,
                              const char *const *values, size_t nheaders)
{
    s_writer_t w = {buf, cap, 0, true};
    s_put_header(&w, MESH_ZRE_HELLO, seq);
    s_put_string(&w, endpoint);
    s_put_u32(&w, (uint32_t)ngroups);
    for (size_t i = 0; i < ngroups; i++) {
        s_put_longstr(&w, groups[i]);
    }
    s_put_u8(&w, status);
    s_put_string(&w, name);
    s_put_u32(&w, (uint32_t)nheaders);
    for (size_t i = 0; i < nheaders; i++) {
        s_put_string(&w, keys[i]);
        s_put_longstr(&w, values[i]);
    }
    return w.ok ? w.n : 0;
}

size_t mesh__zre_encode_group(uint8_t *buf, size_t cap, uint8_t id, uint16_t seq,
                              const char *group, uint8_t status)
{
    s_writer_t w = {buf, cap, 0, true};
    s_put_header(&w, id, seq);
    s_put_string(&w, group);
    if (id == MESH_ZRE_JOIN || id == MESH_ZRE_LEAVE) {
        s_put_u8(&w, status);
    }
    return w.ok ? w.n : 0;
}

size_t mesh__zre_encode_bare(uint8_t *buf, size_t cap, uint8_t id, uint16_t seq)
{
    s_writer_t w = {buf, cap, 0, true};
    s_put_header(&w, id, seq);
    return w.n;
}

const char *mesh__zre_id_name(uint8_t id)
{
    static const char *const names[] = {"?",    "HELLO", "WHISPER", "SHOUT",  "JOIN",   "LEAVE",
                                        "PING", "PING-OK", "ELECT",  "LEADER", "GOODBYE"};
    return id < sizeof names / sizeof names[0] ? names[id] : "?";
}
