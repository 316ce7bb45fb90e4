/*  fuzz_zre_msg.c: mesh__zre_decode on arbitrary header frames.

    Properties of an accepted frame: signature, version, id and sequence are
    where RFC 36 puts them; every slice lies inside the input; a HELLO's groups
    and headers iterate to exactly the declared counts, within the limits; the
    frame minus its last byte is refused; and re-encoding the decoded fields
    (when the encoder can carry them: no NUL inside a string) gives back the
    same bytes, which decode to the same fields. */
#include "fuzz.h"

#include "zre_msg.h"

#include <mesh/mesh.h>
#include <string.h>

static bool s_inside(mesh__slice_t s, const uint8_t *data, size_t size)
{
    if (s.len == 0) {
        return true;
    }
    return s.ptr >= data && s.len <= size && (size_t)(s.ptr - data) <= size - s.len;
}

static bool s_slice_same(mesh__slice_t a, mesh__slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool s_has_nul(mesh__slice_t s)
{
    return s.len > 0 && memchr(s.ptr, '\0', s.len) != NULL;
}

/*  A NUL-terminated heap copy of a slice (the encoders take C strings). */
static char *s_cstr(mesh__slice_t s)
{
    char *c = malloc(s.len + 1);
    MESH_FUZZ_CHECK(c != NULL);
    if (s.len) {
        memcpy(c, s.ptr, s.len);
    }
    c[s.len] = '\0';
    return c;
}

static bool s_same_hdr(const mesh__zre_hdr_t *a, const mesh__zre_hdr_t *b)
{
    return a->id == b->id && a->seq == b->seq && a->status == b->status &&
           a->ngroups == b->ngroups && a->nheaders == b->nheaders &&
           s_slice_same(a->endpoint, b->endpoint) && s_slice_same(a->name, b->name) &&
           s_slice_same(a->group, b->group) && s_slice_same(a->groups, b->groups) &&
           s_slice_same(a->headers, b->headers);
}

/*  Checks an encoder's output against the original frame: same size, same
    bytes, decodes to the same fields. Also encodes once more into a buffer one
    byte short, which must report the full size without writing past it. */
static void s_check_reencoding(const uint8_t *data, size_t size, const mesh__zre_hdr_t *h,
                               const uint8_t *again, size_t n)
{
    MESH_FUZZ_CHECK(n == size);
    MESH_FUZZ_CHECK(memcmp(again, data, size) == 0);
    mesh__zre_hdr_t h2;
    MESH_FUZZ_CHECK(mesh__zre_decode(again, n, &h2) == 0);
    MESH_FUZZ_CHECK(s_same_hdr(h, &h2));
}

static void s_check_hello(const uint8_t *data, size_t size, const mesh__zre_hdr_t *h)
{
    MESH_FUZZ_CHECK(h->ngroups <= MESH_ZRE_GROUPS_MAX);
    MESH_FUZZ_CHECK(h->nheaders <= MESH_ZRE_HEADERS_MAX);
    MESH_FUZZ_CHECK(h->endpoint.len <= MESH_ZRE_STRING_MAX);
    MESH_FUZZ_CHECK(h->name.len <= MESH_ZRE_STRING_MAX);
    MESH_FUZZ_CHECK(s_inside(h->groups, data, size) && s_inside(h->headers, data, size));

    bool nul = s_has_nul(h->endpoint) || s_has_nul(h->name);
    char **groups = calloc(h->ngroups + 1, sizeof *groups);
    char **keys = calloc(h->nheaders + 1, sizeof *keys);
    char **values = calloc(h->nheaders + 1, sizeof *values);
    MESH_FUZZ_CHECK(groups && keys && values);

    size_t pos = 0, count = 0;
    mesh__slice_t g;
    while (mesh__zre_next_group(h, &pos, &g)) {
        MESH_FUZZ_CHECK(count < h->ngroups);
        MESH_FUZZ_CHECK(g.len <= MESH_ZRE_LONGSTR_MAX && s_inside(g, data, size));
        nul = nul || s_has_nul(g);
        groups[count++] = s_cstr(g);
    }
    MESH_FUZZ_CHECK(count == h->ngroups);
    MESH_FUZZ_CHECK(pos == h->groups.len);

    pos = 0;
    count = 0;
    mesh__slice_t k, v;
    while (mesh__zre_next_header(h, &pos, &k, &v)) {
        MESH_FUZZ_CHECK(count < h->nheaders);
        MESH_FUZZ_CHECK(k.len <= MESH_ZRE_STRING_MAX && s_inside(k, data, size));
        MESH_FUZZ_CHECK(v.len <= MESH_ZRE_LONGSTR_MAX && s_inside(v, data, size));
        nul = nul || s_has_nul(k) || s_has_nul(v);
        keys[count] = s_cstr(k);
        values[count++] = s_cstr(v);
    }
    MESH_FUZZ_CHECK(count == h->nheaders);
    MESH_FUZZ_CHECK(pos == h->headers.len);

    if (!nul) {
        char *endpoint = s_cstr(h->endpoint);
        char *name = s_cstr(h->name);
        const char *const *cg = (const char *const *)groups;
        const char *const *ck = (const char *const *)keys;
        const char *const *cv = (const char *const *)values;
        size_t n = mesh__zre_encode_hello(NULL, 0, h->seq, endpoint, cg, h->ngroups, h->status,
                                          name, ck, cv, h->nheaders);
        MESH_FUZZ_CHECK(n == size);
        /* one byte short: the size comes back, nothing lands past the buffer */
        uint8_t *shortbuf = malloc(n - 1);
        MESH_FUZZ_CHECK(shortbuf != NULL);
        MESH_FUZZ_CHECK(mesh__zre_encode_hello(shortbuf, n - 1, h->seq, endpoint, cg, h->ngroups,
                                               h->status, name, ck, cv, h->nheaders) == n);
        free(shortbuf);
        uint8_t *again = malloc(n);
        MESH_FUZZ_CHECK(again != NULL);
        MESH_FUZZ_CHECK(mesh__zre_encode_hello(again, n, h->seq, endpoint, cg, h->ngroups,
                                               h->status, name, ck, cv, h->nheaders) == n);
        s_check_reencoding(data, size, h, again, n);
        free(again);
        free(endpoint);
        free(name);
    }
    for (uint32_t i = 0; i < h->ngroups; i++) {
        free(groups[i]);
    }
    for (uint32_t i = 0; i < h->nheaders; i++) {
        free(keys[i]);
        free(values[i]);
    }
    free(groups);
    free(keys);
    free(values);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh__zre_hdr_t h;
    int rc = mesh__zre_decode(data, size, &h);
    if (rc != 0) {
        MESH_FUZZ_CHECK(rc == MESH_ERR_MALFORMED);
        return 0;
    }
    MESH_FUZZ_CHECK(size >= 6);
    MESH_FUZZ_CHECK(data[0] == MESH_ZRE_SIGNATURE_0 && data[1] == MESH_ZRE_SIGNATURE_1);
    MESH_FUZZ_CHECK(data[2] == h.id && h.id >= MESH_ZRE_HELLO && h.id <= MESH_ZRE_GOODBYE);
    MESH_FUZZ_CHECK(data[3] == MESH_ZRE_VERSION);
    MESH_FUZZ_CHECK(h.seq == (uint16_t)((data[4] << 8) | data[5]));
    MESH_FUZZ_CHECK(s_inside(h.endpoint, data, size) && s_inside(h.name, data, size));
    MESH_FUZZ_CHECK(s_inside(h.group, data, size));
    MESH_FUZZ_CHECK(h.group.len <= MESH_ZRE_STRING_MAX);

    /* a strict prefix of an accepted frame is truncated */
    mesh__zre_hdr_t prefix;
    MESH_FUZZ_CHECK(mesh__zre_decode(data, size - 1, &prefix) == MESH_ERR_MALFORMED);

    if (h.id != MESH_ZRE_HELLO) {
        /* only a HELLO has groups and headers */
        size_t pos = 0;
        mesh__slice_t a, b;
        MESH_FUZZ_CHECK(h.ngroups == 0 && h.nheaders == 0);
        MESH_FUZZ_CHECK(!mesh__zre_next_group(&h, &pos, &a));
        MESH_FUZZ_CHECK(!mesh__zre_next_header(&h, &pos, &a, &b));
    }

    uint8_t small[6 + 1 + MESH_ZRE_STRING_MAX + 1];
    size_t n;
    switch (h.id) {
    case MESH_ZRE_HELLO:
        s_check_hello(data, size, &h);
        break;
    case MESH_ZRE_SHOUT:
    case MESH_ZRE_JOIN:
    case MESH_ZRE_LEAVE:
        if (!s_has_nul(h.group)) {
            char *group = s_cstr(h.group);
            n = mesh__zre_encode_group(small, sizeof small, h.id, h.seq, group, h.status);
            MESH_FUZZ_CHECK(n <= sizeof small);
            s_check_reencoding(data, size, &h, small, n);
            free(group);
        }
        break;
    case MESH_ZRE_WHISPER:
    case MESH_ZRE_PING:
    case MESH_ZRE_PING_OK:
    case MESH_ZRE_GOODBYE:
        MESH_FUZZ_CHECK(size == 6);
        n = mesh__zre_encode_bare(small, sizeof small, h.id, h.seq);
        s_check_reencoding(data, size, &h, small, n);
        break;
    default:
        /* ELECT, LEADER: decoded, never encoded by mesh */
        MESH_FUZZ_CHECK(h.id == MESH_ZRE_ELECT || h.id == MESH_ZRE_LEADER);
        break;
    }
    return 0;
}
