/*  test_zre_msg.c: the ZRE v2 header-frame codec against the byte vectors of
    RFC 36 (notes §1.5) and every rejection rule of the decoder. */
#include "zre_msg.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/*  §1.5: HELLO seq 1, endpoint "tcp://127.0.0.1:49152", groups ["mesh"],
    status 1, name "n1", headers {X-MESH: "1"}: 60 bytes. */
static const uint8_t s_hello[] = {
    0xaa, 0xa1, 0x01, 0x02, 0x00, 0x01, 0x15, 0x74, 0x63, 0x70, 0x3a, 0x2f, 0x2f, 0x31, 0x32,
    0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x34, 0x39, 0x31, 0x35, 0x32, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x04, 0x6d, 0x65, 0x73, 0x68, 0x01, 0x02, 0x6e, 0x31, 0x00,
    0x00, 0x00, 0x01, 0x06, 0x58, 0x2d, 0x4d, 0x45, 0x53, 0x48, 0x00, 0x00, 0x00, 0x01, 0x31};
static const uint8_t s_whisper[] = {0xaa, 0xa1, 0x02, 0x02, 0x00, 0x02};
static const uint8_t s_shout[] = {0xaa, 0xa1, 0x03, 0x02, 0x00, 0x03, 0x04, 0x6d, 0x65, 0x73, 0x68};
static const uint8_t s_join[] = {0xaa, 0xa1, 0x04, 0x02, 0x00, 0x04,
                                 0x04, 0x6d, 0x65, 0x73, 0x68, 0x02};
static const uint8_t s_leave[] = {0xaa, 0xa1, 0x05, 0x02, 0x00, 0x05,
                                  0x04, 0x6d, 0x65, 0x73, 0x68, 0x03};
static const uint8_t s_ping[] = {0xaa, 0xa1, 0x06, 0x02, 0x00, 0x06};
static const uint8_t s_ping_ok[] = {0xaa, 0xa1, 0x07, 0x02, 0x00, 0x07};
static const uint8_t s_goodbye[] = {0xaa, 0xa1, 0x0a, 0x02, 0x00, 0x08};
/*  Zyre-only ELECT / LEADER: group "mesh", then a challenger / leader id string "ab". */
static const uint8_t s_elect[] = {0xaa, 0xa1, 0x08, 0x02, 0x00, 0x09, 0x04,
                                  0x6d, 0x65, 0x73, 0x68, 0x02, 0x61, 0x62};
static const uint8_t s_leader[] = {0xaa, 0xa1, 0x09, 0x02, 0x00, 0x0a, 0x04,
                                   0x6d, 0x65, 0x73, 0x68, 0x02, 0x61, 0x62};

typedef struct {
    const char *name;
    const uint8_t *bytes;
    size_t len;
} s_vector_t;

/* clang-format off */
#define S_VECTOR(v) {#v, v, sizeof v}
/* clang-format on */
static const s_vector_t s_vectors[] = {
    S_VECTOR(s_hello), S_VECTOR(s_whisper), S_VECTOR(s_shout),   S_VECTOR(s_join),
    S_VECTOR(s_leave), S_VECTOR(s_ping),    S_VECTOR(s_ping_ok), S_VECTOR(s_goodbye),
    S_VECTOR(s_elect), S_VECTOR(s_leader),
};
#define S_NVECTORS (sizeof s_vectors / sizeof s_vectors[0])

static bool s_slice_eq(mesh__slice_t s, const char *str)
{
    return s.len == strlen(str) && (s.len == 0 || memcmp(s.ptr, str, s.len) == 0);
}

/*  A copy of `len` bytes in a buffer of exactly that size, so that ASan sees
    any read past the end. The caller frees it. (The static vectors need no
    copy at full length: ASan puts redzones around globals too.) */
static uint8_t *s_dup(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len) {
        memcpy(copy, bytes, len);
    }
    return copy;
}

/*  Decodes a prefix of bytes in an exact-size copy, for accept/reject checks
    only: the slices in *out point into the freed copy. */
static int s_decode_exact(const uint8_t *bytes, size_t len, mesh__zre_hdr_t *out)
{
    uint8_t *copy = s_dup(bytes, len);
    int rc = mesh__zre_decode(copy, len, out);
    free(copy);
    return rc;
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

static const char *const s_hello_groups[] = {"mesh"};
static const char *const s_hello_keys[] = {"X-MESH"};
static const char *const s_hello_values[] = {"1"};

static size_t s_encode_vector_hello(uint8_t *buf, size_t cap)
{
    return mesh__zre_encode_hello(buf, cap, 1, "tcp://127.0.0.1:49152", s_hello_groups, 1, 1, "n1",
                                  s_hello_keys, s_hello_values, 1);
}

/* ---------------------------------------------------------------- encoders */

Test(zre_msg_encode, hello_matches_vector)
{
    uint8_t buf[128];
    memset(buf, 0xee, sizeof buf);
    size_t n = s_encode_vector_hello(buf, sizeof buf);
    cr_assert_eq(n, sizeof s_hello, "HELLO encodes to %zu bytes, want %zu", n, sizeof s_hello);
    cr_assert_arr_eq(buf, s_hello, sizeof s_hello);
    cr_assert_eq(buf[sizeof s_hello], 0xee, "encoder wrote past the message");
}

Test(zre_msg_encode, hello_exact_capacity)
{
    uint8_t *buf = malloc(sizeof s_hello);
    cr_assert_not_null(buf);
    cr_assert_eq(s_encode_vector_hello(buf, sizeof s_hello), sizeof s_hello);
    cr_assert_arr_eq(buf, s_hello, sizeof s_hello);
    free(buf);
}

Test(zre_msg_encode, hello_reports_size_when_capacity_short)
{
    /* Too small (down to nothing): the full size comes back and nothing is
       written past cap (ASan checks the heap buffer, the sentinel the rest). */
    for (size_t cap = 0; cap < sizeof s_hello; cap++) {
        uint8_t buf[sizeof s_hello];
        memset(buf, 0xee, sizeof buf);
        cr_assert_eq(s_encode_vector_hello(buf, cap), sizeof s_hello, "cap %zu", cap);
        for (size_t i = cap; i < sizeof buf; i++) {
            cr_assert_eq(buf[i], 0xee, "cap %zu: byte %zu written", cap, i);
        }
    }
    cr_assert_eq(s_encode_vector_hello(NULL, 0), sizeof s_hello);
}

Test(zre_msg_encode, group_commands_match_vectors)
{
    uint8_t buf[64];
    size_t n = mesh__zre_encode_group(buf, sizeof buf, MESH_ZRE_SHOUT, 3, "mesh", 99);
    cr_assert_eq(n, sizeof s_shout, "SHOUT size %zu", n);
    cr_assert_arr_eq(buf, s_shout, sizeof s_shout);

    n = mesh__zre_encode_group(buf, sizeof buf, MESH_ZRE_JOIN, 4, "mesh", 2);
    cr_assert_eq(n, sizeof s_join, "JOIN size %zu", n);
    cr_assert_arr_eq(buf, s_join, sizeof s_join);

    n = mesh__zre_encode_group(buf, sizeof buf, MESH_ZRE_LEAVE, 5, "mesh", 3);
    cr_assert_eq(n, sizeof s_leave, "LEAVE size %zu", n);
    cr_assert_arr_eq(buf, s_leave, sizeof s_leave);
}

Test(zre_msg_encode, bare_commands_match_vectors)
{
    uint8_t buf[16];
    cr_assert_eq(mesh__zre_encode_bare(buf, sizeof buf, MESH_ZRE_WHISPER, 2), 6);
    cr_assert_arr_eq(buf, s_whisper, 6);
    cr_assert_eq(mesh__zre_encode_bare(buf, sizeof buf, MESH_ZRE_PING, 6), 6);
    cr_assert_arr_eq(buf, s_ping, 6);
    cr_assert_eq(mesh__zre_encode_bare(buf, sizeof buf, MESH_ZRE_PING_OK, 7), 6);
    cr_assert_arr_eq(buf, s_ping_ok, 6);
    cr_assert_eq(mesh__zre_encode_bare(buf, sizeof buf, MESH_ZRE_GOODBYE, 8), 6);
    cr_assert_arr_eq(buf, s_goodbye, 6);
}

Test(zre_msg_encode, sequence_is_big_endian)
{
    uint8_t buf[16];
    cr_assert_eq(mesh__zre_encode_bare(buf, sizeof buf, MESH_ZRE_PING, 0xbeef), 6);
    cr_assert_eq(buf[4], 0xbe);
    cr_assert_eq(buf[5], 0xef);
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(buf, 6, &h), 0);
    cr_assert_eq(h.seq, 0xbeef);
}

Test(zre_msg_encode, string_of_255_accepted_256_refused)
{
    char *s255 = s_repeat('a', MESH_ZRE_STRING_MAX);
    char *s256 = s_repeat('a', MESH_ZRE_STRING_MAX + 1);
    size_t cap = 4096;
    uint8_t *buf = malloc(cap);
    cr_assert_not_null(buf);
    const char *const groups[] = {"g"};
    const char *const keys_ok[] = {"k"};
    const char *const keys_long[] = {s256};
    const char *const keys_max[] = {s255};
    const char *const values[] = {"v"};

    /* endpoint */
    cr_assert_gt(mesh__zre_encode_hello(buf, cap, 1, s255, groups, 1, 0, "n", keys_ok, values, 1),
                 0);
    cr_assert_eq(mesh__zre_encode_hello(buf, cap, 1, s256, groups, 1, 0, "n", keys_ok, values, 1),
                 0);
    /* name */
    cr_assert_gt(mesh__zre_encode_hello(buf, cap, 1, "e", groups, 1, 0, s255, keys_ok, values, 1),
                 0);
    cr_assert_eq(mesh__zre_encode_hello(buf, cap, 1, "e", groups, 1, 0, s256, keys_ok, values, 1),
                 0);
    /* header key */
    cr_assert_gt(mesh__zre_encode_hello(buf, cap, 1, "e", groups, 1, 0, "n", keys_max, values, 1),
                 0);
    cr_assert_eq(mesh__zre_encode_hello(buf, cap, 1, "e", groups, 1, 0, "n", keys_long, values, 1),
                 0);
    /* refused even when the capacity is too small to hold it */
    cr_assert_eq(mesh__zre_encode_hello(NULL, 0, 1, s256, groups, 1, 0, "n", keys_ok, values, 1),
                 0);
    /* SHOUT / JOIN / LEAVE group */
    size_t n = mesh__zre_encode_group(buf, cap, MESH_ZRE_JOIN, 1, s255, 1);
    cr_assert_eq(n, 6 + 1 + MESH_ZRE_STRING_MAX + 1);
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(buf, n, &h), 0);
    cr_assert_eq(h.group.len, MESH_ZRE_STRING_MAX);
    cr_assert_eq(mesh__zre_encode_group(buf, cap, MESH_ZRE_SHOUT, 1, s256, 0), 0);
    cr_assert_eq(mesh__zre_encode_group(buf, cap, MESH_ZRE_JOIN, 1, s256, 1), 0);
    cr_assert_eq(mesh__zre_encode_group(buf, cap, MESH_ZRE_LEAVE, 1, s256, 1), 0);

    free(buf);
    free(s255);
    free(s256);
}

Test(zre_msg_encode, empty_hello_round_trips)
{
    uint8_t buf[64];
    size_t n = mesh__zre_encode_hello(buf, sizeof buf, 0, "", NULL, 0, 0, "", NULL, NULL, 0);
    /* header 6 + endpoint 1 + groups 4 + status 1 + name 1 + headers 4 */
    cr_assert_eq(n, 17);
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(buf, n, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_HELLO);
    cr_assert_eq(h.endpoint.len, 0);
    cr_assert_eq(h.name.len, 0);
    cr_assert_eq(h.ngroups, 0);
    cr_assert_eq(h.nheaders, 0);
    size_t pos = 0;
    mesh__slice_t g, k, v;
    cr_assert_not(mesh__zre_next_group(&h, &pos, &g));
    pos = 0;
    cr_assert_not(mesh__zre_next_header(&h, &pos, &k, &v));
}

/* ---------------------------------------------------------------- decoder */

Test(zre_msg_decode, hello_vector)
{
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(s_hello, sizeof s_hello, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_HELLO);
    cr_assert_eq(h.seq, 1);
    cr_assert(s_slice_eq(h.endpoint, "tcp://127.0.0.1:49152"));
    cr_assert_eq(h.status, 1);
    cr_assert(s_slice_eq(h.name, "n1"));
    cr_assert_eq(h.ngroups, 1);
    cr_assert_eq(h.nheaders, 1);
}

Test(zre_msg_decode, hello_groups_and_headers_iterate)
{
    const char *const groups[] = {"mesh", "", "ops"};
    const char *const keys[] = {"X-MESH", "X-EMPTY", ""};
    const char *const values[] = {"1", "", "anonymous"};
    uint8_t buf[256];
    size_t n = mesh__zre_encode_hello(buf, sizeof buf, 7, "tcp://127.0.0.1:50000", groups, 3, 9,
                                      "node", keys, values, 3);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, sizeof buf);
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(buf, n, &h), 0);
    cr_assert_eq(h.ngroups, 3);
    cr_assert_eq(h.nheaders, 3);

    size_t pos = 0;
    mesh__slice_t g;
    for (size_t i = 0; i < 3; i++) {
        cr_assert(mesh__zre_next_group(&h, &pos, &g), "group %zu missing", i);
        cr_assert(s_slice_eq(g, groups[i]), "group %zu differs", i);
    }
    cr_assert_not(mesh__zre_next_group(&h, &pos, &g), "a fourth group appeared");
    cr_assert_eq(pos, h.groups.len);

    pos = 0;
    mesh__slice_t k, v;
    for (size_t i = 0; i < 3; i++) {
        cr_assert(mesh__zre_next_header(&h, &pos, &k, &v), "header %zu missing", i);
        cr_assert(s_slice_eq(k, keys[i]), "key %zu differs", i);
        cr_assert(s_slice_eq(v, values[i]), "value %zu differs", i);
    }
    cr_assert_not(mesh__zre_next_header(&h, &pos, &k, &v), "a fourth header appeared");
    cr_assert_eq(pos, h.headers.len);
}

Test(zre_msg_decode, hello_vector_iterates)
{
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(s_hello, sizeof s_hello, &h), 0);
    size_t pos = 0;
    mesh__slice_t g, k, v;
    cr_assert(mesh__zre_next_group(&h, &pos, &g));
    cr_assert(s_slice_eq(g, "mesh"));
    cr_assert_not(mesh__zre_next_group(&h, &pos, &g));
    pos = 0;
    cr_assert(mesh__zre_next_header(&h, &pos, &k, &v));
    cr_assert(s_slice_eq(k, "X-MESH"));
    cr_assert(s_slice_eq(v, "1"));
    cr_assert_not(mesh__zre_next_header(&h, &pos, &k, &v));
}

Test(zre_msg_decode, other_vectors)
{
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(s_whisper, sizeof s_whisper, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_WHISPER);
    cr_assert_eq(h.seq, 2);

    cr_assert_eq(mesh__zre_decode(s_shout, sizeof s_shout, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_SHOUT);
    cr_assert_eq(h.seq, 3);
    cr_assert(s_slice_eq(h.group, "mesh"));

    cr_assert_eq(mesh__zre_decode(s_join, sizeof s_join, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_JOIN);
    cr_assert_eq(h.seq, 4);
    cr_assert(s_slice_eq(h.group, "mesh"));
    cr_assert_eq(h.status, 2);

    cr_assert_eq(mesh__zre_decode(s_leave, sizeof s_leave, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_LEAVE);
    cr_assert_eq(h.seq, 5);
    cr_assert(s_slice_eq(h.group, "mesh"));
    cr_assert_eq(h.status, 3);

    cr_assert_eq(mesh__zre_decode(s_ping, sizeof s_ping, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_PING);
    cr_assert_eq(h.seq, 6);

    cr_assert_eq(mesh__zre_decode(s_ping_ok, sizeof s_ping_ok, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_PING_OK);
    cr_assert_eq(h.seq, 7);
}

Test(zre_msg_decode, zyre_ids_8_to_10_accepted)
{
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(s_elect, sizeof s_elect, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_ELECT);
    cr_assert_eq(h.seq, 9);
    cr_assert(s_slice_eq(h.group, "mesh"));

    cr_assert_eq(mesh__zre_decode(s_leader, sizeof s_leader, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_LEADER);
    cr_assert_eq(h.seq, 10);
    cr_assert(s_slice_eq(h.group, "mesh"));

    cr_assert_eq(mesh__zre_decode(s_goodbye, sizeof s_goodbye, &h), 0);
    cr_assert_eq(h.id, MESH_ZRE_GOODBYE);
    cr_assert_eq(h.seq, 8);
}

Test(zre_msg_decode, iterators_on_non_hello_are_empty)
{
    /* The group / header lists of a decoded JOIN or PING are empty slices. */
    const uint8_t *msgs[] = {s_join, s_ping};
    size_t lens[] = {sizeof s_join, sizeof s_ping};
    for (size_t i = 0; i < 2; i++) {
        mesh__zre_hdr_t h;
        cr_assert_eq(mesh__zre_decode(msgs[i], lens[i], &h), 0);
        size_t pos = 0;
        mesh__slice_t g, k, v;
        cr_assert_not(mesh__zre_next_group(&h, &pos, &g));
        cr_assert_not(mesh__zre_next_header(&h, &pos, &k, &v));
        cr_assert_eq(pos, 0);
    }
}

Test(zre_msg_decode, bad_signature_rejected)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        for (size_t byte = 0; byte < 2; byte++) {
            uint8_t *copy = s_dup(s_vectors[i].bytes, s_vectors[i].len);
            copy[byte] ^= 0x01;
            mesh__zre_hdr_t h;
            cr_assert_eq(mesh__zre_decode(copy, s_vectors[i].len, &h), MESH_ERR_MALFORMED,
                         "%s with signature byte %zu flipped accepted", s_vectors[i].name, byte);
            free(copy);
        }
    }
    /* ZRE v1's signature 0xAAA0 */
    uint8_t v1[] = {0xaa, 0xa0, 0x06, 0x02, 0x00, 0x01};
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(v1, sizeof v1, &h), MESH_ERR_MALFORMED);
}

Test(zre_msg_decode, version_other_than_2_rejected)
{
    const uint8_t versions[] = {0, 1, 3, 0x20, 0xff};
    for (size_t i = 0; i < S_NVECTORS; i++) {
        for (size_t v = 0; v < sizeof versions; v++) {
            uint8_t *copy = s_dup(s_vectors[i].bytes, s_vectors[i].len);
            copy[3] = versions[v];
            mesh__zre_hdr_t h;
            cr_assert_eq(mesh__zre_decode(copy, s_vectors[i].len, &h), MESH_ERR_MALFORMED,
                         "%s with version %u accepted", s_vectors[i].name, versions[v]);
            free(copy);
        }
    }
}

Test(zre_msg_decode, unknown_ids_rejected)
{
    const uint8_t ids[] = {0, 11, 12, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof ids; i++) {
        /* as a bare message, and followed by bytes that would parse as a group */
        uint8_t bare[] = {0xaa, 0xa1, ids[i], 0x02, 0x00, 0x01};
        uint8_t group[] = {0xaa, 0xa1, ids[i], 0x02, 0x00, 0x01, 0x01, 0x67, 0x01};
        mesh__zre_hdr_t h;
        cr_assert_eq(mesh__zre_decode(bare, sizeof bare, &h), MESH_ERR_MALFORMED, "id %u", ids[i]);
        cr_assert_eq(mesh__zre_decode(group, sizeof group, &h), MESH_ERR_MALFORMED, "id %u",
                     ids[i]);
    }
}

Test(zre_msg_decode, every_truncation_rejected)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        for (size_t len = 0; len < s_vectors[i].len; len++) {
            mesh__zre_hdr_t h;
            cr_assert_eq(s_decode_exact(s_vectors[i].bytes, len, &h), MESH_ERR_MALFORMED,
                         "%s truncated to %zu of %zu bytes accepted", s_vectors[i].name, len,
                         s_vectors[i].len);
        }
    }
}

Test(zre_msg_decode, trailing_bytes_rejected)
{
    for (size_t i = 0; i < S_NVECTORS; i++) {
        for (size_t extra = 1; extra <= 4; extra++) {
            size_t len = s_vectors[i].len + extra;
            uint8_t *copy = calloc(1, len);
            cr_assert_not_null(copy);
            memcpy(copy, s_vectors[i].bytes, s_vectors[i].len);
            mesh__zre_hdr_t h;
            cr_assert_eq(mesh__zre_decode(copy, len, &h), MESH_ERR_MALFORMED,
                         "%s with %zu trailing bytes accepted", s_vectors[i].name, extra);
            free(copy);
        }
    }
}

Test(zre_msg_decode, null_or_empty_rejected)
{
    mesh__zre_hdr_t h;
    cr_assert_eq(mesh__zre_decode(NULL, 0, &h), MESH_ERR_MALFORMED);
    cr_assert_eq(mesh__zre_decode(s_ping, 0, &h), MESH_ERR_MALFORMED);
}

/*  Encodes a HELLO with ngroups groups "g" and nheaders headers "k"="v" into a
    fresh buffer; the encoder itself has no count limit. */
static uint8_t *s_encode_counts(size_t ngroups, size_t nheaders, size_t *len)
{
    const char **groups = calloc(ngroups + 1, sizeof *groups);
    const char **keys = calloc(nheaders + 1, sizeof *keys);
    const char **values = calloc(nheaders + 1, sizeof *values);
    cr_assert(groups && keys && values);
    for (size_t i = 0; i < ngroups; i++) {
        groups[i] = "g";
    }
    for (size_t i = 0; i < nheaders; i++) {
        keys[i] = "k";
        values[i] = "v";
    }
    *len = mesh__zre_encode_hello(NULL, 0, 1, "tcp://127.0.0.1:49152", groups, ngroups, 0, "n",
                                  keys, values, nheaders);
    cr_assert_gt(*len, 0);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(mesh__zre_encode_hello(buf, *len, 1, "tcp://127.0.0.1:49152", groups, ngroups, 0,
                                        "n", keys, values, nheaders),
                 *len);
    free(groups);
    free(keys);
    free(values);
    return buf;
}

Test(zre_msg_decode, group_count_limit)
{
    size_t len;
    mesh__zre_hdr_t h;
    uint8_t *buf = s_encode_counts(MESH_ZRE_GROUPS_MAX, 0, &len);
    cr_assert_eq(mesh__zre_decode(buf, len, &h), 0, "%d groups refused", MESH_ZRE_GROUPS_MAX);
    cr_assert_eq(h.ngroups, MESH_ZRE_GROUPS_MAX);
    size_t pos = 0, count = 0;
    mesh__slice_t g;
    while (mesh__zre_next_group(&h, &pos, &g)) {
        cr_assert(s_slice_eq(g, "g"));
        count++;
    }
    cr_assert_eq(count, MESH_ZRE_GROUPS_MAX);
    free(buf);

    buf = s_encode_counts(MESH_ZRE_GROUPS_MAX + 1, 0, &len);
    cr_assert_eq(mesh__zre_decode(buf, len, &h), MESH_ERR_MALFORMED);
    free(buf);

    /* a huge declared count with nothing behind it */
    const uint8_t huge[] = {0xaa, 0xa1, 0x01, 0x02, 0x00, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff};
    cr_assert_eq(s_decode_exact(huge, sizeof huge, &h), MESH_ERR_MALFORMED);
}

Test(zre_msg_decode, header_count_limit)
{
    size_t len;
    mesh__zre_hdr_t h;
    uint8_t *buf = s_encode_counts(0, MESH_ZRE_HEADERS_MAX, &len);
    cr_assert_eq(mesh__zre_decode(buf, len, &h), 0, "%d headers refused", MESH_ZRE_HEADERS_MAX);
    cr_assert_eq(h.nheaders, MESH_ZRE_HEADERS_MAX);
    size_t pos = 0, count = 0;
    mesh__slice_t k, v;
    while (mesh__zre_next_header(&h, &pos, &k, &v)) {
        cr_assert(s_slice_eq(k, "k") && s_slice_eq(v, "v"));
        count++;
    }
    cr_assert_eq(count, MESH_ZRE_HEADERS_MAX);
    free(buf);

    buf = s_encode_counts(0, MESH_ZRE_HEADERS_MAX + 1, &len);
    cr_assert_eq(mesh__zre_decode(buf, len, &h), MESH_ERR_MALFORMED);
    free(buf);
}

/*  A HELLO whose only group (or header value) is n bytes long. */
static uint8_t *s_encode_longstr(size_t n, bool as_header, size_t *len)
{
    char *s = s_repeat('x', n);
    const char *const one[] = {s};
    const char *const key[] = {"k"};
    *len = mesh__zre_encode_hello(NULL, 0, 1, "e", as_header ? NULL : one, as_header ? 0 : 1, 0,
                                  "n", key, one, as_header ? 1 : 0);
    uint8_t *buf = malloc(*len);
    cr_assert_not_null(buf);
    cr_assert_eq(mesh__zre_encode_hello(buf, *len, 1, "e", as_header ? NULL : one,
                                        as_header ? 0 : 1, 0, "n", key, one, as_header ? 1 : 0),
                 *len);
    free(s);
    return buf;
}

Test(zre_msg_decode, longstr_limit)
{
    for (int as_header = 0; as_header <= 1; as_header++) {
        size_t len;
        mesh__zre_hdr_t h;
        uint8_t *buf = s_encode_longstr(MESH_ZRE_LONGSTR_MAX, as_header, &len);
        cr_assert_eq(mesh__zre_decode(buf, len, &h), 0, "%s of %d bytes refused",
                     as_header ? "header value" : "group", MESH_ZRE_LONGSTR_MAX);
        size_t pos = 0;
        mesh__slice_t a, b;
        if (as_header) {
            cr_assert(mesh__zre_next_header(&h, &pos, &a, &b));
            cr_assert_eq(b.len, MESH_ZRE_LONGSTR_MAX);
        } else {
            cr_assert(mesh__zre_next_group(&h, &pos, &a));
            cr_assert_eq(a.len, MESH_ZRE_LONGSTR_MAX);
        }
        free(buf);

        buf = s_encode_longstr(MESH_ZRE_LONGSTR_MAX + 1, as_header, &len);
        cr_assert_eq(mesh__zre_decode(buf, len, &h), MESH_ERR_MALFORMED, "%s of %d bytes accepted",
                     as_header ? "header value" : "group", MESH_ZRE_LONGSTR_MAX + 1);
        free(buf);
    }
    /* a longstr length of 0xffffffff with four bytes behind it */
    const uint8_t huge[] = {0xaa, 0xa1, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                            0x01, 0xff, 0xff, 0xff, 0xff, 0x61, 0x62, 0x63, 0x64};
    mesh__zre_hdr_t h;
    cr_assert_eq(s_decode_exact(huge, sizeof huge, &h), MESH_ERR_MALFORMED);
}

Test(zre_msg_decode, string_length_past_end_rejected)
{
    /* endpoint declares 255 bytes, 3 follow */
    const uint8_t hello[] = {0xaa, 0xa1, 0x01, 0x02, 0x00, 0x01, 0xff, 0x61, 0x62, 0x63};
    /* SHOUT group declares 5 bytes, 4 follow */
    const uint8_t shout[] = {0xaa, 0xa1, 0x03, 0x02, 0x00, 0x03, 0x05, 0x6d, 0x65, 0x73, 0x68};
    mesh__zre_hdr_t h;
    cr_assert_eq(s_decode_exact(hello, sizeof hello, &h), MESH_ERR_MALFORMED);
    cr_assert_eq(s_decode_exact(shout, sizeof shout, &h), MESH_ERR_MALFORMED);
}

Test(zre_msg, id_names)
{
    cr_assert_str_eq(mesh__zre_id_name(MESH_ZRE_HELLO), "HELLO");
    cr_assert_str_eq(mesh__zre_id_name(MESH_ZRE_PING_OK), "PING-OK");
    cr_assert_str_eq(mesh__zre_id_name(MESH_ZRE_GOODBYE), "GOODBYE");
    cr_assert_str_eq(mesh__zre_id_name(0), "?");
    cr_assert_str_eq(mesh__zre_id_name(11), "?");
    cr_assert_str_eq(mesh__zre_id_name(255), "?");
}
