/*  tokenbucket.c: rate limits and token buckets (see tokenbucket.h). */
#include "tokenbucket.h"

#include <mesh/error.h>

#include <assert.h>
#include <stdio.h>
#include <string.h>

#define S_MS_PER_SECOND 1000
#define S_MS_PER_MINUTE (60 * S_MS_PER_SECOND)
#define S_MS_PER_HOUR   (60 * S_MS_PER_MINUTE)

int mesh__ratelimit_parse(const char *text, mesh__ratelimit_t *out)
{
    if (!text || !out) {
        return MESH_ERR_INVAL;
    }
    const char *p = text;
    uint64_t n = 0;
    size_t digits = 0;
    while (*p >= '0' && *p <= '9') {
        n = n * 10 + (uint64_t)(*p - '0');
        digits++;
        if (n > MESH_RATELIMIT_COUNT_MAX) {
            return MESH_ERR_INVAL;
        }
        p++;
    }
    if (digits == 0 || (text[0] == '0' && digits > 1) || n == 0 || *p != '/') {
        return MESH_ERR_INVAL;
    }
    p++;
    int64_t period;
    switch (*p) {
    case 's':
        period = S_MS_PER_SECOND;
        break;
    case 'm':
        period = S_MS_PER_MINUTE;
        break;
    case 'h':
        period = S_MS_PER_HOUR;
        break;
    default:
        return MESH_ERR_INVAL;
    }
    if (p[1] != '\0') {
        return MESH_ERR_INVAL;
    }
    out->count = (uint32_t)n;
    out->period_ms = period;
    return 0;
}

const char *mesh__ratelimit_format(const mesh__ratelimit_t *rl, char *buf, size_t cap)
{
    char unit = rl->period_ms == S_MS_PER_HOUR ? 'h' : rl->period_ms == S_MS_PER_MINUTE ? 'm' : 's';
    if (cap > 0) {
        snprintf(buf, cap, "%u/%c", (unsigned)rl->count, unit);
    }
    return buf;
}

bool mesh__ratelimit_valid(const mesh__ratelimit_t *rl)
{
    return rl && rl->count >= 1 && rl->count <= MESH_RATELIMIT_COUNT_MAX &&
           (rl->period_ms == S_MS_PER_SECOND || rl->period_ms == S_MS_PER_MINUTE ||
            rl->period_ms == S_MS_PER_HOUR);
}

void mesh__tokenbucket_init(mesh__tokenbucket_t *tb, const mesh__ratelimit_t *rl, int64_t now)
{
    assert(mesh__ratelimit_valid(rl));
    tb->count = rl->count;
    tb->period_ms = rl->period_ms;
    tb->units = (int64_t)rl->count * rl->period_ms;
    tb->last = now;
}

static void s_refill(mesh__tokenbucket_t *tb, int64_t now)
{
    if (now <= tb->last) {
        return;
    }
    int64_t cap = (int64_t)tb->count * tb->period_ms;
    /* a whole period refills to capacity: clamp so the product cannot overflow */
    int64_t elapsed = now - tb->last;
    if (elapsed > tb->period_ms) {
        elapsed = tb->period_ms;
    }
    tb->units += elapsed * tb->count;
    if (tb->units > cap) {
        tb->units = cap;
    }
    tb->last = now;
}

bool mesh__tokenbucket_take(mesh__tokenbucket_t *tb, int64_t now)
{
    s_refill(tb, now);
    if (tb->units < tb->period_ms) {
        return false;
    }
    tb->units -= tb->period_ms;
    return true;
}

uint32_t mesh__tokenbucket_available(mesh__tokenbucket_t *tb, int64_t now)
{
    s_refill(tb, now);
    return (uint32_t)(tb->units / tb->period_ms);
}

int64_t mesh__tokenbucket_next(const mesh__tokenbucket_t *tb)
{
    if (tb->units >= tb->period_ms) {
        return tb->last;
    }
    int64_t need = tb->period_ms - tb->units;
    return tb->last + (need + tb->count - 1) / tb->count;
}
