/*  zre_msg.h: ZRE v2 (RFC 36) header-frame codec. Pure: no sockets, no clock.

    A ZRE command is a multipart message; this module encodes and decodes its
    first frame (the header). WHISPER and SHOUT content travels in the frames
    after it and is not seen here. Decoding never allocates: strings come back
    as slices into the caller's buffer, valid while the buffer is. */
#ifndef MESH_ZRE_MSG_H
#define MESH_ZRE_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_ZRE_SIGNATURE_0 0xAA
#define MESH_ZRE_SIGNATURE_1 0xA1
#define MESH_ZRE_VERSION     2

typedef enum {
    MESH_ZRE_HELLO = 1,
    MESH_ZRE_WHISPER = 2,
    MESH_ZRE_SHOUT = 3,
    MESH_ZRE_JOIN = 4,
    MESH_ZRE_LEAVE = 5,
    MESH_ZRE_PING = 6,
    MESH_ZRE_PING_OK = 7,
    MESH_ZRE_ELECT = 8,   /* Zyre 2.x only: accepted and counted, never sent */
    MESH_ZRE_LEADER = 9,  /* idem */
    MESH_ZRE_GOODBYE = 10 /* idem */
} mesh__zre_id_t;

/*  A borrowed byte slice. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} mesh__slice_t;

/*  A decoded header frame. Only the fields of `id` are set. */
typedef struct {
    uint8_t id;
    uint16_t seq;
    mesh__slice_t endpoint; /* HELLO */
    mesh__slice_t name;     /* HELLO */
    mesh__slice_t group;    /* SHOUT, JOIN, LEAVE */
    uint8_t status;         /* HELLO, JOIN, LEAVE */
    uint32_t ngroups;       /* HELLO */
    uint32_t nheaders;      /* HELLO */
    mesh__slice_t groups;   /* HELLO: raw encoded group list (after the count) */
    mesh__slice_t headers;  /* HELLO: raw encoded header list (after the count) */
} mesh__zre_hdr_t;

/*  Decodes one header frame. Returns 0, or MESH_ERR_MALFORMED for a bad
    signature, version, unknown id, truncated field, trailing bytes, or a count
    or length over the limits in <mesh/defaults.h>. Ids 8-10 decode with their
    fields checked (ELECT, LEADER) or none (GOODBYE). */
int mesh__zre_decode(const uint8_t *buf, size_t len, mesh__zre_hdr_t *out);

/*  Iterate a decoded HELLO's groups / headers. `*pos` starts at 0. Returns
    false when done. Only valid on a header that mesh__zre_decode accepted. */
bool mesh__zre_next_group(const mesh__zre_hdr_t *h, size_t *pos, mesh__slice_t *group);
bool mesh__zre_next_header(const mesh__zre_hdr_t *h, size_t *pos, mesh__slice_t *key,
                           mesh__slice_t *value);

/*  Encoders write into buf (capacity cap) and return the encoded size. If the
    result is larger than cap, nothing useful was written: grow and call again.
    They return 0 on a field over its limit (string > 255 bytes). */
size_t mesh__zre_encode_hello(uint8_t *buf, size_t cap, uint16_t seq, const char *endpoint,
                              const char *const *groups, size_t ngroups, uint8_t status,
                              const char *name, const char *const *keys,
                              const char *const *values, size_t nheaders);
/*  SHOUT (status ignored), JOIN, LEAVE. */
size_t mesh__zre_encode_group(uint8_t *buf, size_t cap, uint8_t id, uint16_t seq,
                              const char *group, uint8_t status);
/*  WHISPER, PING, PING-OK (and GOODBYE for tests): 6 bytes. */
size_t mesh__zre_encode_bare(uint8_t *buf, size_t cap, uint8_t id, uint16_t seq);

/*  "HELLO", "WHISPER", ... or "?" */
const char *mesh__zre_id_name(uint8_t id);

#endif
