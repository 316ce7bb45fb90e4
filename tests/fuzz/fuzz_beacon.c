/*  fuzz_beacon.c: mesh__beacon_decode on arbitrary datagrams.

    Properties: the result is exactly one of accepted / foreign / malformed;
    accepted means 22 bytes with the 'Z' 'R' 'E' 0x01 header and re-encodes to
    the same bytes; foreign means Zyre's 54-byte v3 beacon; everything else is
    malformed. */
#include "fuzz.h"

#include "beacon.h"

#include <mesh/mesh.h>
#include <string.h>

static bool s_has_header(const uint8_t *data, size_t size, uint8_t version)
{
    return size >= 4 && data[0] == 'Z' && data[1] == 'R' && data[2] == 'E' && data[3] == version;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mesh__beacon_t b;
    memset(&b, 0xa5, sizeof b);
    int rc = mesh__beacon_decode(data, size, &b);
    bool v1 = size == MESH_ZRE_BEACON_SIZE && s_has_header(data, size, MESH_BEACON_VERSION);
    bool v3 =
        size == MESH_BEACON_SECURE_SIZE && s_has_header(data, size, MESH_BEACON_SECURE_VERSION);
    if (rc == 0) {
        MESH_FUZZ_CHECK(v1);
        uint8_t again[MESH_ZRE_BEACON_SIZE];
        mesh__beacon_encode(again, b.uuid, b.port);
        MESH_FUZZ_CHECK(memcmp(again, data, MESH_ZRE_BEACON_SIZE) == 0);
    } else if (rc == MESH_BEACON_FOREIGN) {
        MESH_FUZZ_CHECK(v3);
    } else {
        MESH_FUZZ_CHECK(rc == MESH_ERR_MALFORMED);
        MESH_FUZZ_CHECK(!v1 && !v3);
    }
    return 0;
}
