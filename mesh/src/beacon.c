/*  beacon.c: ZRE beacon codec. */
#include "beacon.h"

#include <mesh/error.h>
#include <string.h>

void mesh__beacon_encode(uint8_t out[MESH_ZRE_BEACON_SIZE], const uint8_t *uuid, uint16_t port)
{
    out[0] = 'Z';
    out[1] = 'R';
    out[2] = 'E';
    out[3] = MESH_BEACON_VERSION;
    memcpy(out + 4, uuid, MESH_ZRE_UUID_SIZE);
    out[20] = (uint8_t)(port >> 8);
    out[21] = (uint8_t)port;
}

int mesh__beacon_decode(const uint8_t *buf, size_t len, mesh__beacon_t *out)
{
    if (!buf || len < 4 || buf[0] != 'Z' || buf[1] != 'R' || buf[2] != 'E') {
        return MESH_ERR_MALFORMED;
    }
    if (buf[3] == MESH_BEACON_SECURE_VERSION && len == MESH_BEACON_SECURE_SIZE) {
        return MESH_BEACON_FOREIGN;
    }
    if (buf[3] != MESH_BEACON_VERSION || len != MESH_ZRE_BEACON_SIZE) {
        return MESH_ERR_MALFORMED;
    }
    memcpy(out->uuid, buf + 4, MESH_ZRE_UUID_SIZE);
    out->port = (uint16_t)((buf[20] << 8) | buf[21]);
    return 0;
}
