/*  taskwire.c: decoders of the task service's messages (taskwire.h). */
#include "taskwire.h"

#include <mesh/error.h>
#include <string.h>


static bool s_be(mesh__tw_reader_t *r, size_t n, uint32_t *v)
{
    if (r->len - r->off < n) {
        return false;
    }
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x = (x << 8) | r->p[r->off++];
    }
    *v = x;
    return true;
}

static bool s_tag(mesh__tw_reader_t *r, uint8_t *tag)
{
    if (r->off >= r->len) {
        return false;
    }
    *tag = r->p[r->off++];
    return true;
}

bool mesh__tw_uint(mesh__tw_reader_t *r, uint32_t *v)
{
    uint8_t t;
    if (!s_tag(r, &t)) {
        return false;
    }
    if (t <= 0x7f) {
        *v = t;
        return true;
    }
    switch (t) {
    case 0xcc:
        return s_be(r, 1, v);
    case 0xcd:
        return s_be(r, 2, v);
    case 0xce:
        return s_be(r, 4, v);
    default:
        return false;
    }
}

bool mesh__tw_array(mesh__tw_reader_t *r, uint32_t *n)
{
    uint8_t t;
    if (!s_tag(r, &t)) {
        return false;
    }
    if ((t & 0xf0) == 0x90) {
        *n = t & 0x0f;
        return true;
    }
    switch (t) {
    case 0xdc:
        return s_be(r, 2, n);
    case 0xdd:
        return s_be(r, 4, n);
    default:
        return false;
    }
}

static bool s_body(mesh__tw_reader_t *r, uint32_t n, const uint8_t **p)
{
    if (r->len - r->off < n) {
        return false;
    }
    *p = r->p + r->off;
    r->off += n;
    return true;
}

bool mesh__tw_bin(mesh__tw_reader_t *r, const uint8_t **p, uint32_t *n)
{
    uint8_t t;
    if (!s_tag(r, &t)) {
        return false;
    }
    bool ok;
    switch (t) {
    case 0xc4:
        ok = s_be(r, 1, n);
        break;
    case 0xc5:
        ok = s_be(r, 2, n);
        break;
    case 0xc6:
        ok = s_be(r, 4, n);
        break;
    default:
        return false;
    }
    return ok && s_body(r, *n, p);
}

/*  A string or nil (*p NULL) into out (NUL-terminated, at most cap - 1). */
bool mesh__tw_str(mesh__tw_reader_t *r, char *out, size_t cap, bool *nil)
{
    uint8_t t;
    if (!s_tag(r, &t)) {
        return false;
    }
    uint32_t n;
    bool ok = true;
    *nil = false;
    if (t == 0xc0) {
        *nil = true;
        out[0] = '\0';
        return true;
    }
    if ((t & 0xe0) == 0xa0) {
        n = t & 0x1f;
    } else if (t == 0xd9) {
        ok = s_be(r, 1, &n);
    } else if (t == 0xda) {
        ok = s_be(r, 2, &n);
    } else if (t == 0xdb) {
        ok = s_be(r, 4, &n);
    } else {
        return false;
    }
    const uint8_t *p;
    if (!ok || n >= cap || !s_body(r, n, &p) || memchr(p, 0, n)) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

bool mesh__tw_end(const mesh__tw_reader_t *r)
{
    return r->off == r->len;
}

/* ------------------------------------------------------------------------ */
/* messages */

static bool s_record(mesh__tw_reader_t *r, mesh__tw_record_t *out)
{
    const uint8_t *p;
    uint32_t n;
    if (!mesh__tw_bin(r, &p, &n) || mesh__task_record_decode(p, n, &out->rec) != 0) {
        return false;
    }
    out->raw = p;
    out->len = n;
    return true;
}

static int s_result(bool ok, void *out, size_t size)
{
    if (!ok) {
        memset(out, 0, size);
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

int mesh__tw_submit(const uint8_t *buf, size_t len, mesh__tw_submit_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    memset(out, 0, sizeof *out);
    bool ok = mesh__tw_array(&r, &nf) && nf == 2 && mesh__tw_uint(&r, &out->replicas) &&
              out->replicas < MESH_TASKS_REPLICAS_MAX && s_record(&r, &out->r) && mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_put(const uint8_t *buf, size_t len, mesh__tw_put_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    bool nil;
    memset(out, 0, sizeof *out);
    bool ok = mesh__tw_array(&r, &nf) && (nf == 4 || nf == 5) && mesh__tw_uint(&r, &out->k) &&
              out->k < MESH_TASKS_REPLICAS_MAX && mesh__tw_uint(&r, &out->replicas) &&
              out->replicas > 0 && out->replicas < MESH_TASKS_REPLICAS_MAX &&
              mesh__tw_str(&r, out->runner, sizeof out->runner, &nil) && s_record(&r, &out->r) &&
              (nf == 4 || mesh__tw_str(&r, out->provider, sizeof out->provider, &nil)) &&
              mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_started(const uint8_t *buf, size_t len, mesh__tw_started_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    bool nil = true, pnil;
    char hex[MESH_TW_ID_HEX + 1];
    memset(out, 0, sizeof *out);
    bool ok = mesh__tw_array(&r, &nf) && (nf == 2 || nf == 3) &&
              mesh__tw_str(&r, hex, sizeof hex, &nil) && !nil &&
              mesh__task_id_from_hex(hex, out->id) == 0 && mesh__tw_uint(&r, &out->attempt) &&
              (nf == 2 || mesh__tw_str(&r, out->provider, sizeof out->provider, &pnil)) &&
              mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_done(const uint8_t *buf, size_t len, mesh__tw_done_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    memset(out, 0, sizeof *out);
    bool ok = mesh__tw_array(&r, &nf) && nf == 2 && mesh__tw_uint(&r, &out->replicas) &&
              s_record(&r, &out->r) && mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_id(const uint8_t *buf, size_t len, uint8_t *id, char *hex)
{
    mesh__tw_reader_t r = {buf, len, 0};
    bool nil = true;
    bool ok = mesh__tw_str(&r, hex, MESH_TW_ID_HEX + 1, &nil) && !nil && mesh__tw_end(&r) &&
              strlen(hex) == MESH_TW_ID_HEX && mesh__task_id_from_hex(hex, id) == 0;
    if (!ok) {
        memset(id, 0, MESH_TASKS_ID_SIZE);
        hex[0] = '\0';
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

int mesh__tw_state(const uint8_t *buf, size_t len, int *state)
{
    mesh__tw_reader_t r = {buf, len, 0};
    char name[32];
    bool nil;
    *state = -1;
    if (!mesh__tw_str(&r, name, sizeof name, &nil) || !mesh__tw_end(&r)) {
        return MESH_ERR_MALFORMED;
    }
    if (!nil && (*state = mesh__task_state_from_name(name)) < 0) {
        *state = -1;
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

int mesh__tw_token(const uint8_t *buf, size_t len, mesh__tw_token_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    bool nil1 = true, nil2 = true;
    memset(out, 0, sizeof *out);
    bool ok = mesh__tw_array(&r, &nf) && nf == 3 &&
              mesh__tw_str(&r, out->path, sizeof out->path, &nil1) && !nil1 &&
              out->path[0] == '/' && mesh__tw_str(&r, out->limit, sizeof out->limit, &nil2) &&
              !nil2 && mesh__ratelimit_parse(out->limit, &out->rl) == 0 &&
              mesh__tw_uint(&r, &out->wanted) && mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_token_reply(const uint8_t *buf, size_t len, uint32_t *granted, uint32_t *next_ms)
{
    mesh__tw_reader_t r = {buf, len, 0};
    uint32_t nf;
    bool ok = mesh__tw_array(&r, &nf) && nf == 2 && mesh__tw_uint(&r, granted) &&
              mesh__tw_uint(&r, next_ms) && mesh__tw_end(&r);
    if (!ok) {
        *granted = *next_ms = 0;
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

int mesh__tw_record(const uint8_t *buf, size_t len, mesh__tw_record_t *out)
{
    mesh__tw_reader_t r = {buf, len, 0};
    memset(out, 0, sizeof *out);
    bool ok = s_record(&r, out) && mesh__tw_end(&r);
    return s_result(ok, out, sizeof *out);
}

int mesh__tw_list_begin(mesh__tw_reader_t *r, const uint8_t *buf, size_t len, uint32_t *count)
{
    *r = (mesh__tw_reader_t){buf, len, 0};
    if (!mesh__tw_array(r, count)) {
        *count = 0;
        return MESH_ERR_MALFORMED;
    }
    return 0;
}

int mesh__tw_list_next(mesh__tw_reader_t *r, mesh__tw_record_t *out)
{
    memset(out, 0, sizeof *out);
    return s_record(r, out) ? 0 : (memset(out, 0, sizeof *out), MESH_ERR_MALFORMED);
}
