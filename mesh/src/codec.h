/*  codec.h: mesh envelopes, the one content frame of a ZRE WHISPER or SHOUT
    between mesh peers. Pure: no sockets, no clock, no globals.

    Every envelope is a msgpack array whose first two elements are a type and
    a version, both positive fixints; the rest is positional (no map keys on
    the hot path). Types 1 and 2 belong to the ZRE layer's gossip (gossip.h).

      SERVICES  [16, 1, version:uint, services:[[path:str, tags:[str...],
                                                  flags:uint]...],
                 subscriptions:[[pattern:str, prefix:bool]...]]
      STATUS    [17, 1, load:float64, fitness:float64|nil, services_version:uint,
                 ring_digest:uint, inflight:uint]
      REQUEST   [18, 1, id:uint, flags:uint, path:str, timeout_ms:uint,
                 key:str|nil, attempt:uint, payload:bin]
      REPLY     [19, 1, id:uint, status:int, payload:bin|nil, error:str|nil]
      PUBLISH   [20, 1, topic:str, payload:bin]
      BATCH     [21, 1, envelopes:[bin...]]   (2..MESH_CODEC_BATCH_MAX envelopes,
                 each a whole envelope of types 16-20, sent in one frame)

    Decoding never allocates beyond a caller-provided scratch and never
    trusts a declared count: every count, string and bin length is checked
    against the bytes left before anything is read. Strings are slices into
    the frame (not NUL-terminated). Unknown types and versions decode as
    MESH_ERR_MALFORMED (the caller counts and drops them). */
#ifndef MESH_CODEC_H
#define MESH_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zre_msg.h" /* mesh__slice_t */

#define MESH_ENV_SERVICES 16
#define MESH_ENV_STATUS   17
#define MESH_ENV_REQUEST  18
#define MESH_ENV_REPLY    19
#define MESH_ENV_PUBLISH  20
#define MESH_ENV_BATCH    21
#define MESH_ENV_VERSION  1

/*  REQUEST flags. */
#define MESH_REQ_CALL       0x01 /* a reply is expected (else: cast) */
#define MESH_REQ_IDEMPOTENT 0x02 /* may be retried on another provider */
#define MESH_REQ_ONCE       0x04 /* with a key: one run per (path, key) (protocol §11.6.7) */

/*  SERVICES entry flags. */
#define MESH_SVC_INACTIVE 0x01 /* advertised but its active predicate is false */

/*  Limits of the wire format (the public payload limit is MESH_PAYLOAD_MAX). */
#define MESH_CODEC_PATH_MAX     255   /* service path, topic, pattern */
#define MESH_CODEC_TAG_MAX      255
#define MESH_CODEC_TAGS_MAX     32    /* per service */
#define MESH_CODEC_SERVICES_MAX 1024  /* per peer */
#define MESH_CODEC_SUBS_MAX     1024  /* per peer */
#define MESH_CODEC_ERROR_MAX    4096  /* remote error text */
#define MESH_CODEC_KEY_MAX      1024  /* request key */
#define MESH_CODEC_BATCH_MAX    4096  /* envelopes in one BATCH */
#define MESH_CODEC_PAYLOAD_MAX  (64u * 1024 * 1024) /* REQUEST, REPLY, PUBLISH payload */

typedef struct {
    mesh__slice_t path;
    uint32_t ntags;
    mesh__slice_t tags[MESH_CODEC_TAGS_MAX];
    uint32_t flags;
} mesh__svc_entry_t;

typedef struct {
    mesh__slice_t pattern;
    bool prefix;
} mesh__sub_entry_t;

typedef struct {
    uint8_t type;
    union {
        struct {
            uint64_t version;
            uint32_t nservices; /* entries written to the caller's array */
            uint32_t nsubs;
        } services;
        struct {
            double load;
            double fitness;
            bool has_fitness;
            uint64_t services_version;
            uint64_t ring_digest;
            uint64_t inflight;
        } status;
        struct {
            uint64_t id;
            uint32_t flags;
            mesh__slice_t path;
            uint32_t timeout_ms;
            mesh__slice_t key; /* ptr NULL when nil */
            uint32_t attempt;
            mesh__slice_t payload;
        } request;
        struct {
            uint64_t id;
            int32_t status; /* 0 or a MESH_ERR_* code */
            mesh__slice_t payload; /* ptr NULL when nil */
            mesh__slice_t error;   /* ptr NULL when nil */
        } reply;
        struct {
            mesh__slice_t topic;
            mesh__slice_t payload;
        } publish;
        struct {
            uint32_t count;
            mesh__slice_t items; /* the encoded bins, walked by mesh__env_batch_next */
        } batch;
    } u;
} mesh__env_t;

/*  Where SERVICES entries go. May be NULL/0 for other types; a SERVICES
    envelope with more entries than given is MALFORMED. */
typedef struct {
    mesh__svc_entry_t *services;
    size_t services_cap;
    mesh__sub_entry_t *subs;
    size_t subs_cap;
} mesh__env_scratch_t;

/*  Returns the envelope type (> 0) or MESH_ERR_MALFORMED. A buffer that is
    gossip (types 1, 2) is MALFORMED here. Trailing bytes are MALFORMED. */
int mesh__env_decode(const uint8_t *buf, size_t len, mesh__env_t *out,
                     mesh__env_scratch_t *scratch);

/*  True if buf starts like a mesh envelope (a 3..15-array with a type in
    16..31 and version 1): a cheap test before decoding. */
bool mesh__env_is(const uint8_t *buf, size_t len);

/*  Iterates a decoded BATCH: *pos starts at 0; each call yields one inner
    envelope's bytes (to be decoded with mesh__env_decode; a BATCH inside a
    BATCH is the caller's to refuse). False at the end. */
bool mesh__env_batch_next(const mesh__env_t *env, size_t *pos, mesh__slice_t *item);

/*  A growable output buffer for the encoders. Reuse it: clear, encode, send. */
typedef struct {
    uint8_t *data;
    size_t size;
    size_t cap;
    bool failed; /* out of memory or a field over its limit */
} mesh__buf_t;

void mesh__buf_clear(mesh__buf_t *b);
void mesh__buf_free(mesh__buf_t *b);

/*  Encoders append one envelope to b (call mesh__buf_clear first). They
    set b->failed on a field over its limit or out of memory. */
void mesh__env_encode_services(mesh__buf_t *b, uint64_t version, const mesh__svc_entry_t *svcs,
                               size_t nsvcs, const mesh__sub_entry_t *subs, size_t nsubs);
void mesh__env_encode_status(mesh__buf_t *b, double load, const double *fitness,
                             uint64_t services_version, uint64_t ring_digest, uint64_t inflight);
void mesh__env_encode_request(mesh__buf_t *b, uint64_t id, uint32_t flags, const char *path,
                              uint32_t timeout_ms, const char *key, uint32_t attempt,
                              const void *payload, size_t size);
void mesh__env_encode_reply(mesh__buf_t *b, uint64_t id, int32_t status, const void *payload,
                            size_t size, const char *error);
void mesh__env_encode_publish(mesh__buf_t *b, const char *topic, const void *payload,
                              size_t size);

/*  Building a BATCH: begin (clears b and reserves room for the header),
    add each envelope, then finish, which returns the frame's start inside b
    and its length. With one envelope added, finish returns that envelope
    alone (a batch of one is just the envelope). */
void mesh__env_batch_begin(mesh__buf_t *b);
void mesh__env_batch_add(mesh__buf_t *b, const uint8_t *env, size_t len);
const uint8_t *mesh__env_batch_finish(mesh__buf_t *b, size_t count, size_t *len);

#endif
