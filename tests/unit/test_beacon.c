/*  test_beacon.c: the 22-byte ZRE discovery beacon codec (notes §1.2, §1.5). */
#include "beacon.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t s_uuid[MESH_ZRE_UUID_SIZE] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                                   0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
/*  §1.5: UUID 0011..eeff, port 49152; and the same node leaving (port 0). */
static const uint8_t s_beacon[MESH_ZRE_BEACON_SIZE] = {
    0x5a, 0x52, 0x45, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
    0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0xc0, 0x00};
static const uint8_t s_leaving[MESH_ZRE_BEACON_SIZE] = {
    0x5a, 0x52, 0x45, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66,
    0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x00};

/*  Decodes a copy in a buffer of exactly len bytes (ASan sees overreads). */
static int s_decode_exact(const uint8_t *bytes, size_t len, mesh__beacon_t *out)
{
    uint8_t *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    if (len) {
        memcpy(copy, bytes, len);
    }
    int rc = mesh__beacon_decode(copy, len, out);
    free(copy);
    return rc;
}

Test(beacon, encode_matches_vector)
{
    uint8_t out[MESH_ZRE_BEACON_SIZE];
    mesh__beacon_encode(out, s_uuid, 49152);
    cr_assert_arr_eq(out, s_beacon, sizeof s_beacon);
    mesh__beacon_encode(out, s_uuid, 0);
    cr_assert_arr_eq(out, s_leaving, sizeof s_leaving);
}

Test(beacon, decode_vector)
{
    mesh__beacon_t b;
    memset(&b, 0, sizeof b);
    cr_assert_eq(s_decode_exact(s_beacon, sizeof s_beacon, &b), 0);
    cr_assert_arr_eq(b.uuid, s_uuid, MESH_ZRE_UUID_SIZE);
    cr_assert_eq(b.port, 49152);
}

Test(beacon, port_zero_is_leaving_and_valid)
{
    mesh__beacon_t b;
    memset(&b, 0xff, sizeof b);
    cr_assert_eq(s_decode_exact(s_leaving, sizeof s_leaving, &b), 0);
    cr_assert_arr_eq(b.uuid, s_uuid, MESH_ZRE_UUID_SIZE);
    cr_assert_eq(b.port, 0);
}

Test(beacon, round_trip_ports)
{
    const uint16_t ports[] = {0, 1, 0x00ff, 0x0100, 5670, 49152, 0xfffe, 0xffff};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        uint8_t out[MESH_ZRE_BEACON_SIZE];
        mesh__beacon_encode(out, s_uuid, ports[i]);
        cr_assert_eq(out[20], ports[i] >> 8, "port %u high byte", ports[i]);
        cr_assert_eq(out[21], ports[i] & 0xff, "port %u low byte", ports[i]);
        mesh__beacon_t b;
        cr_assert_eq(mesh__beacon_decode(out, sizeof out, &b), 0);
        cr_assert_eq(b.port, ports[i]);
        cr_assert_arr_eq(b.uuid, s_uuid, MESH_ZRE_UUID_SIZE);
    }
}

Test(beacon, secure_v3_is_foreign)
{
    uint8_t v3[MESH_BEACON_SECURE_SIZE];
    memset(v3, 0x42, sizeof v3);
    memcpy(v3, s_beacon, sizeof s_beacon);
    v3[3] = MESH_BEACON_SECURE_VERSION;
    mesh__beacon_t b;
    cr_assert_eq(s_decode_exact(v3, sizeof v3, &b), MESH_BEACON_FOREIGN);
    /* v3 at any other size, or a v1 header at 54 bytes, is malformed */
    cr_assert_eq(s_decode_exact(v3, MESH_ZRE_BEACON_SIZE, &b), MESH_ERR_MALFORMED);
    cr_assert_eq(s_decode_exact(v3, sizeof v3 - 1, &b), MESH_ERR_MALFORMED);
    v3[3] = MESH_BEACON_VERSION;
    cr_assert_eq(s_decode_exact(v3, sizeof v3, &b), MESH_ERR_MALFORMED);
}

Test(beacon, wrong_size_rejected)
{
    uint8_t big[MESH_BEACON_SECURE_SIZE + 8];
    memset(big, 0, sizeof big);
    memcpy(big, s_beacon, sizeof s_beacon);
    for (size_t len = 0; len <= sizeof big; len++) {
        if (len == MESH_ZRE_BEACON_SIZE) {
            continue;
        }
        mesh__beacon_t b;
        cr_assert_eq(s_decode_exact(big, len, &b), MESH_ERR_MALFORMED, "%zu bytes accepted", len);
    }
    mesh__beacon_t b;
    cr_assert_eq(mesh__beacon_decode(NULL, 0, &b), MESH_ERR_MALFORMED);
    cr_assert_eq(mesh__beacon_decode(NULL, MESH_ZRE_BEACON_SIZE, &b), MESH_ERR_MALFORMED);
}

Test(beacon, wrong_header_rejected)
{
    /* every value but the right one, in each of the four header bytes */
    for (size_t pos = 0; pos < 4; pos++) {
        for (unsigned v = 0; v < 256; v++) {
            if (v == s_beacon[pos] || (pos == 3 && v == MESH_BEACON_SECURE_VERSION)) {
                continue;
            }
            uint8_t bad[MESH_ZRE_BEACON_SIZE];
            memcpy(bad, s_beacon, sizeof bad);
            bad[pos] = (uint8_t)v;
            mesh__beacon_t b;
            cr_assert_eq(s_decode_exact(bad, sizeof bad, &b), MESH_ERR_MALFORMED,
                         "byte %zu = 0x%02x accepted", pos, v);
        }
    }
}
