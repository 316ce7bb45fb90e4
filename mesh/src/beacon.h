/*  beacon.h: the 22-byte ZRE discovery beacon (RFC 36). Pure codec.

    'Z' 'R' 'E' 0x01 | UUID (16 octets) | mailbox port (uint16, big-endian).
    Port 0 announces that the sender is leaving. */
#ifndef MESH_BEACON_H
#define MESH_BEACON_H

#include <stddef.h>
#include <stdint.h>

#include <mesh/defaults.h>

#define MESH_BEACON_VERSION         0x01
#define MESH_BEACON_SECURE_VERSION  0x03 /* Zyre's CURVE beacon: recognised, ignored */
#define MESH_BEACON_SECURE_SIZE     54

/*  mesh__beacon_decode result for a well-formed beacon we do not take part in
    (Zyre's secure v3 beacon). */
#define MESH_BEACON_FOREIGN 1

typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    uint16_t port; /* 0: leaving */
} mesh__beacon_t;

void mesh__beacon_encode(uint8_t out[MESH_ZRE_BEACON_SIZE], const uint8_t *uuid, uint16_t port);

/*  Returns 0 (out filled), MESH_BEACON_FOREIGN, or MESH_ERR_MALFORMED. */
int mesh__beacon_decode(const uint8_t *buf, size_t len, mesh__beacon_t *out);

#endif
