/*  jsonpack.h: JSON <-> msgpack at the edges of the mesh (meshctl, exec
    agents). The mesh itself carries msgpack.

    msgpack -> JSON decodes outside bytes: it is strict and bounded (depth
    <= JSONPACK_DEPTH_MAX, counts checked against the bytes left, no
    trailing bytes) and has a libFuzzer target (tests/fuzz/fuzz_jsonpack.c).
    Mapping: nil<->null, bool, ints (uint64 beyond INT64_MAX becomes a real),
    float<->real, str<->string (invalid UTF-8 -> error), bin -> {"$bin":
    BASE64}, map keys must be strings (others -> error), ext -> error. */
#ifndef MESH_JSONPACK_H
#define MESH_JSONPACK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define JSONPACK_DEPTH_MAX 64

/*  Returns 0 and a fresh malloc'd buffer (*out, *len), or -1 with a message
    in err (>= 128 bytes). */
int jsonpack_from_json(const json_t *value, uint8_t **out, size_t *len, char *err, size_t errlen);

/*  Returns a new JSON reference, or NULL with a message in err. */
json_t *jsonpack_to_json(const uint8_t *buf, size_t len, char *err, size_t errlen);

/*  Base64 (RFC 4648, padded), shared by jsonpack's {"$bin": ...} and the
    CLIs. Encode returns a fresh string; decode returns a fresh buffer and
    its length, or NULL on bad input. */
char *jsonpack_base64_encode(const void *data, size_t len);
uint8_t *jsonpack_base64_decode(const char *text, size_t *len);

#endif
