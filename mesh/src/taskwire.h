/*  taskwire.h: decoders of the task service's messages (docs/protocol.md
    §12.3): bytes from other members, so pure, bounded and fuzzed
    (tests/fuzz/fuzz_taskwire.c). Each returns 0 with *out filled, or
    MESH_ERR_MALFORMED (the whole payload must be exactly one value of the
    message's shape; a record inside must decode). Slices point into buf. */
#ifndef MESH_TASKWIRE_H
#define MESH_TASKWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasks.h"
#include "tokenbucket.h"

#define MESH_TW_ID_HEX 32 /* a task or peer id as text */

/*  A cursor over msgpack (the subset of §12.2). */
typedef struct {
    const uint8_t *p;
    size_t len, off;
} mesh__tw_reader_t;

bool mesh__tw_uint(mesh__tw_reader_t *r, uint32_t *v); /* positive fixint, uint 8/16/32 */
bool mesh__tw_array(mesh__tw_reader_t *r, uint32_t *n);
bool mesh__tw_bin(mesh__tw_reader_t *r, const uint8_t **p, uint32_t *n);
/*  A str (no NUL inside, < cap octets) copied NUL-terminated into out, or
    nil (*nil true, out ""). */
bool mesh__tw_str(mesh__tw_reader_t *r, char *out, size_t cap, bool *nil);
bool mesh__tw_end(const mesh__tw_reader_t *r);

/*  A record slice and its decoding. */
typedef struct {
    const uint8_t *raw;
    size_t len;
    mesh__task_record_t rec;
} mesh__tw_record_t;

/*  submit [replicas, record]: replicas < MESH_TASKS_REPLICAS_MAX. */
typedef struct {
    uint32_t replicas;
    mesh__tw_record_t r;
} mesh__tw_submit_t;
int mesh__tw_submit(const uint8_t *buf, size_t len, mesh__tw_submit_t *out);

/*  put / sync [k, replicas, runner|nil, record(, provider|nil)]: k and
    replicas < MESH_TASKS_REPLICAS_MAX, replicas > 0; ids "" when nil. */
typedef struct {
    uint32_t k, replicas;
    char runner[MESH_TW_ID_HEX + 1];
    char provider[MESH_TW_ID_HEX + 1];
    mesh__tw_record_t r;
} mesh__tw_put_t;
int mesh__tw_put(const uint8_t *buf, size_t len, mesh__tw_put_t *out);

/*  started [id, attempt(, provider|nil)]: id 32 hex. */
typedef struct {
    uint8_t id[MESH_TASKS_ID_SIZE];
    uint32_t attempt;
    char provider[MESH_TW_ID_HEX + 1]; /* "" when absent or nil */
} mesh__tw_started_t;
int mesh__tw_started(const uint8_t *buf, size_t len, mesh__tw_started_t *out);

/*  done [replicas, record]. */
typedef struct {
    uint32_t replicas;
    mesh__tw_record_t r;
} mesh__tw_done_t;
int mesh__tw_done(const uint8_t *buf, size_t len, mesh__tw_done_t *out);

/*  status / cancel: an id (str of 32 hex). The submit's reply too. */
int mesh__tw_id(const uint8_t *buf, size_t len, uint8_t *id, char *hex);

/*  list: a state name or nil (*state -1). */
int mesh__tw_state(const uint8_t *buf, size_t len, int *state);

/*  token [path, limit, wanted]: path starts with '/', limit parses. */
typedef struct {
    char path[MESH_TASKS_PATH_MAX + 1];
    char limit[MESH_RATELIMIT_TEXT_MAX];
    mesh__ratelimit_t rl;
    uint32_t wanted;
} mesh__tw_token_t;
int mesh__tw_token(const uint8_t *buf, size_t len, mesh__tw_token_t *out);

/*  The token reply [granted, next_ms]. */
int mesh__tw_token_reply(const uint8_t *buf, size_t len, uint32_t *granted, uint32_t *next_ms);

/*  A reply holding one record (status, cancel, sync). */
int mesh__tw_record(const uint8_t *buf, size_t len, mesh__tw_record_t *out);

/*  A list reply: [record, ...]. begin gives the count; next each record
    in turn (MESH_ERR_MALFORMED stops the walk: keep what came before). */
int mesh__tw_list_begin(mesh__tw_reader_t *r, const uint8_t *buf, size_t len, uint32_t *count);
int mesh__tw_list_next(mesh__tw_reader_t *r, mesh__tw_record_t *out);

#endif
