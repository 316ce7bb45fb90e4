/*  tokenbucket.h: rate limits ("10/s", "600/m") and the token bucket that
    enforces one. Pure: no clock, no allocation; time comes in as `now`
    (monotonic ms), so tests use a fake clock.

    A limit of N per period P is a bucket of capacity N that refills
    continuously at N per P. It starts full, so a burst of N passes at once,
    then one token every P/N ms. Arithmetic is exact: the bucket counts in
    units of 1/P token (a token is P units, refill is N units per ms), so
    rounding never drifts over a long window. */
#ifndef MESH_TOKENBUCKET_H
#define MESH_TOKENBUCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_RATELIMIT_COUNT_MAX 1000000 /* N in "N/s" and the like */
#define MESH_RATELIMIT_TEXT_MAX  16      /* "1000000/h" and its NUL, rounded up */

/*  N per period_ms. */
typedef struct {
    uint32_t count;    /* 1 .. MESH_RATELIMIT_COUNT_MAX */
    int64_t period_ms; /* 1000 (s), 60000 (m) or 3600000 (h) */
} mesh__ratelimit_t;

/*  Parses "N/s", "N/m" or "N/h" (N decimal, 1 .. MESH_RATELIMIT_COUNT_MAX,
    no sign, spaces or leading zeros beyond "0"). 0, or MESH_ERR_INVAL with
    *out untouched. */
int mesh__ratelimit_parse(const char *text, mesh__ratelimit_t *out);

/*  The limit as text ("10/s") into buf (cap >= MESH_RATELIMIT_TEXT_MAX
    always suffices). Returns buf. */
const char *mesh__ratelimit_format(const mesh__ratelimit_t *rl, char *buf, size_t cap);

/*  A bucket: a value, no resources. Fields are private to tokenbucket.c. */
typedef struct {
    int64_t units; /* tokens x period_ms, 0 .. count x period_ms */
    int64_t last;  /* time of the last refill */
    int64_t period_ms;
    uint32_t count;
} mesh__tokenbucket_t;

/*  A full bucket for rl (which must be valid: parsed, or checked with
    mesh__ratelimit_valid). */
void mesh__tokenbucket_init(mesh__tokenbucket_t *tb, const mesh__ratelimit_t *rl, int64_t now);
bool mesh__ratelimit_valid(const mesh__ratelimit_t *rl);

/*  Takes one token if one is available at now: true, else false. A now
    earlier than a previous one refills nothing (time never goes back). */
bool mesh__tokenbucket_take(mesh__tokenbucket_t *tb, int64_t now);

/*  Whole tokens available at now (refills). */
uint32_t mesh__tokenbucket_available(mesh__tokenbucket_t *tb, int64_t now);

/*  The earliest time >= the last refill at which a token is available (the
    last refill time itself if one is available then). Does not refill. */
int64_t mesh__tokenbucket_next(const mesh__tokenbucket_t *tb);

#endif
