/*  gossip.h: mesh's peer-list gossip, carried in a ZRE WHISPER between mesh
    nodes (peers whose HELLO has the X-MESH header). Pure codec.

    A gossip frame is a msgpack array [type, version, body]:
      PEERS (type 1): body = array of [uuid (bin 16), endpoint (str <= 255)]
      BYE   (type 2): body = nil  (the sender is leaving: forget it now)
    Only these exact shapes are gossip; any other WHISPER content is delivered
    to the application unchanged. Encoding and decoding use a hand-written
    subset of msgpack with every length checked against the buffer. */
#ifndef MESH_GOSSIP_H
#define MESH_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/defaults.h>

#define MESH_GOSSIP_PEERS   1
#define MESH_GOSSIP_BYE     2
#define MESH_GOSSIP_VERSION 1

typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    const char *endpoint; /* points into the frame; not NUL-terminated */
    size_t endpoint_len;
} mesh__gossip_entry_t;

/*  True if the frame looks like gossip (starts as a 3-array with a gossip
    type and version): cheap test before decoding. */
bool mesh__gossip_is(const uint8_t *buf, size_t len);

/*  Decodes a gossip frame. For PEERS, entries are written to out (at most
    max, else MALFORMED) and *count set. Returns the type (> 0) or
    MESH_ERR_MALFORMED. */
int mesh__gossip_decode(const uint8_t *buf, size_t len, mesh__gossip_entry_t *out, size_t max,
                        size_t *count);

/*  Encoders return the size written, or the size needed if larger than cap. */
size_t mesh__gossip_encode_peers(uint8_t *buf, size_t cap, const mesh__gossip_entry_t *entries,
                                 size_t count);
size_t mesh__gossip_encode_bye(uint8_t *buf, size_t cap);

#endif
