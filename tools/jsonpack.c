/*  jsonpack.c: JSON <-> msgpack at the edges of the mesh.

    msgpack -> JSON is a hand-written reader over outside bytes: every read
    is bounds-checked, every declared count is checked against the bytes
    left before anything is built, nesting is capped at JSONPACK_DEPTH_MAX,
    and trailing bytes are an error. msgpack-c's unpacker is not used on
    these bytes (it allocates on declared counts, see STYLE.md). Beyond the
    header's mapping, it also refuses: empty input, non-finite floats (JSON
    has none), duplicate map keys and map keys with a NUL byte (jansson
    looks keys up as C strings). Strings may hold NUL bytes.

    The {"$bin": BASE64} form is one way: JSON -> msgpack keeps such an
    object a map.

    JSON -> msgpack writes the shortest encoding of each value (integers in
    the smallest form, reals as float64), so encoding is canonical: decoding
    and encoding again gives the same bytes. */
#include "jsonpack.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BIN_KEY "$bin"

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/*  Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past
    U+10FFFF. NUL is allowed (jansson keeps lengths). */
static bool s_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            more = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            more = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            more = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < more) {
            return false;
        }
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        i += more + 1;
    }
    return true;
}

static const char s_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *jsonpack_base64_encode(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= p[i + 2];
        }
        out[o++] = s_b64[(v >> 18) & 63];
        out[o++] = s_b64[(v >> 12) & 63];
        out[o++] = i + 1 < len ? s_b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? s_b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

uint8_t *jsonpack_base64_decode(const char *text, size_t *len)
{
    size_t n = strlen(text);
    if (n % 4 != 0) {
        return NULL;
    }
    uint8_t *out = malloc(n / 4 * 3 + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + k];
            const char *at = c ? strchr(s_b64, c) : NULL;
            if (c == '=' && i + 4 == n && k >= 2) {
                pad++;
                v <<= 6;
            } else if (at && !pad) {
                v = v << 6 | (uint32_t)(at - s_b64);
            } else {
                free(out);
                return NULL;
            }
        }
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2) {
            out[o++] = (uint8_t)(v >> 8);
        }
        if (pad < 1) {
            out[o++] = (uint8_t)v;
        }
    }
    *len = o;
    return out;
}

/* ------------------------------------------------------------------------ */
/* msgpack -> JSON */

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
} s_reader_t;

static size_t s_left(const s_reader_t *r)
{
    return r->len - r->pos;
}

/*  Reads an n-byte big-endian unsigned integer (n = 1, 2, 4, 8). */
static bool s_read_be(s_reader_t *r, size_t n, uint64_t *out)
{
    if (s_left(r) < n) {
        s_err(r->err, r->errlen, "truncated at offset %zu", r->pos);
        return false;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v << 8 | r->buf[r->pos + i];
    }
    r->pos += n;
    *out = v;
    return true;
}

/*  Points *out at n bytes of the input. */
static bool s_read_bytes(s_reader_t *r, uint64_t n, const uint8_t **out)
{
    if (s_left(r) < n) {
        s_err(r->err, r->errlen, "%llu bytes declared at offset %zu, %zu left",
              (unsigned long long)n, r->pos, s_left(r));
        return false;
    }
    *out = r->buf + r->pos;
    r->pos += (size_t)n;
    return true;
}

static json_t *s_oom(s_reader_t *r)
{
    s_err(r->err, r->errlen, "out of memory");
    return NULL;
}

static json_t *s_read_str(s_reader_t *r, uint64_t n, size_t at)
{
    const uint8_t *p;
    if (!s_read_bytes(r, n, &p)) {
        return NULL;
    }
    if (!s_utf8_ok(p, (size_t)n)) {
        s_err(r->err, r->errlen, "invalid UTF-8 in the string at offset %zu", at);
        return NULL;
    }
    json_t *s = json_stringn_nocheck((const char *)p, (size_t)n);
    return s ? s : s_oom(r);
}

static json_t *s_read_bin(s_reader_t *r, uint64_t n)
{
    const uint8_t *p;
    if (!s_read_bytes(r, n, &p)) {
        return NULL;
    }
    char *text = jsonpack_base64_encode(p, (size_t)n);
    json_t *obj = json_object();
    json_t *str = text ? json_string_nocheck(text) : NULL;
    free(text);
    if (!obj || !str || json_object_set_new_nocheck(obj, S_BIN_KEY, str) != 0) {
        json_decref(obj);
        return s_oom(r);
    }
    return obj;
}

static json_t *s_read_real(s_reader_t *r, size_t n, size_t at)
{
    uint64_t bits;
    if (!s_read_be(r, n, &bits)) {
        return NULL;
    }
    double d;
    if (n == 4) {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        d = f;
    } else {
        memcpy(&d, &bits, sizeof d);
    }
    if (!isfinite(d)) {
        s_err(r->err, r->errlen, "non-finite float at offset %zu (JSON has none)", at);
        return NULL;
    }
    json_t *v = json_real(d);
    return v ? v : s_oom(r);
}

static json_t *s_read_uint(s_reader_t *r, uint64_t u)
{
    /* uint64 beyond INT64_MAX does not fit a JSON integer here: a real */
    json_t *v = u > (uint64_t)INT64_MAX ? json_real((double)u) : json_integer((json_int_t)u);
    return v ? v : s_oom(r);
}

static json_t *s_read_int(s_reader_t *r, size_t n)
{
    uint64_t u;
    if (!s_read_be(r, n, &u)) {
        return NULL;
    }
    int64_t i;
    switch (n) {
    case 1:
        i = (int8_t)(uint8_t)u;
        break;
    case 2:
        i = (int16_t)(uint16_t)u;
        break;
    case 4:
        i = (int32_t)(uint32_t)u;
        break;
    default:
        memcpy(&i, &u, sizeof i);
        break;
    }
    json_t *v = json_integer((json_int_t)i);
    return v ? v : s_oom(r);
}

static json_t *s_read_value(s_reader_t *r, int depth);

static bool s_enter(s_reader_t *r, int depth, size_t at)
{
    if (depth >= JSONPACK_DEPTH_MAX) {
        s_err(r->err, r->errlen, "nested deeper than %d at offset %zu", JSONPACK_DEPTH_MAX, at);
        return false;
    }
    return true;
}

static json_t *s_read_array(s_reader_t *r, uint64_t n, int depth, size_t at)
{
    /* every element takes at least one byte */
    if (!s_enter(r, depth, at)) {
        return NULL;
    }
    if (n > s_left(r)) {
        s_err(r->err, r->errlen, "array of %llu at offset %zu, only %zu bytes left",
              (unsigned long long)n, at, s_left(r));
        return NULL;
    }
    json_t *a = json_array();
    if (!a) {
        return s_oom(r);
    }
    for (uint64_t i = 0; i < n; i++) {
        json_t *v = s_read_value(r, depth + 1);
        if (!v) {
            json_decref(a);
            return NULL;
        }
        if (json_array_append_new(a, v) != 0) {
            json_decref(a);
            return s_oom(r);
        }
    }
    return a;
}

static bool s_read_key(s_reader_t *r, const uint8_t **key, uint64_t *n)
{
    size_t at = r->pos;
    if (s_left(r) < 1) {
        s_err(r->err, r->errlen, "truncated at offset %zu", r->pos);
        return false;
    }
    uint8_t b = r->buf[r->pos++];
    if ((b & 0xe0) == 0xa0) {
        *n = b & 0x1f;
    } else if (b == 0xd9 || b == 0xda || b == 0xdb) {
        if (!s_read_be(r, (size_t)1 << (b - 0xd9), n)) {
            return false;
        }
    } else {
        s_err(r->err, r->errlen, "map key at offset %zu is not a string", at);
        return false;
    }
    if (!s_read_bytes(r, *n, key)) {
        return false;
    }
    if (!s_utf8_ok(*key, (size_t)*n)) {
        s_err(r->err, r->errlen, "invalid UTF-8 in the map key at offset %zu", at);
        return false;
    }
    if (memchr(*key, '\0', (size_t)*n)) {
        s_err(r->err, r->errlen, "NUL byte in the map key at offset %zu", at);
        return false;
    }
    return true;
}

static json_t *s_read_map(s_reader_t *r, uint64_t n, int depth, size_t at)
{
    /* every entry takes at least two bytes */
    if (!s_enter(r, depth, at)) {
        return NULL;
    }
    if (n > s_left(r) / 2) {
        s_err(r->err, r->errlen, "map of %llu at offset %zu, only %zu bytes left",
              (unsigned long long)n, at, s_left(r));
        return NULL;
    }
    json_t *m = json_object();
    if (!m) {
        return s_oom(r);
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t key_at = r->pos;
        const uint8_t *key;
        uint64_t klen;
        if (!s_read_key(r, &key, &klen)) {
            json_decref(m);
            return NULL;
        }
        if (json_object_getn(m, (const char *)key, (size_t)klen)) {
            s_err(r->err, r->errlen, "duplicate map key at offset %zu", key_at);
            json_decref(m);
            return NULL;
        }
        json_t *v = s_read_value(r, depth + 1);
        if (!v) {
            json_decref(m);
            return NULL;
        }
        if (json_object_setn_new_nocheck(m, (const char *)key, (size_t)klen, v) != 0) {
            json_decref(m);
            return s_oom(r);
        }
    }
    return m;
}

/*  One value at r->pos; depth = containers around it. */
static json_t *s_read_value(s_reader_t *r, int depth)
{
    size_t at = r->pos;
    if (s_left(r) < 1) {
        s_err(r->err, r->errlen, "truncated at offset %zu", r->pos);
        return NULL;
    }
    uint8_t b = r->buf[r->pos++];
    uint64_t n;
    if (b <= 0x7f) {
        return s_read_uint(r, b);
    }
    if (b >= 0xe0) {
        json_t *v = json_integer((json_int_t)(int8_t)b);
        return v ? v : s_oom(r);
    }
    if ((b & 0xe0) == 0xa0) {
        return s_read_str(r, b & 0x1f, at);
    }
    if ((b & 0xf0) == 0x90) {
        return s_read_array(r, b & 0x0f, depth, at);
    }
    if ((b & 0xf0) == 0x80) {
        return s_read_map(r, b & 0x0f, depth, at);
    }
    switch (b) {
    case 0xc0:
        return json_null();
    case 0xc2:
        return json_false();
    case 0xc3:
        return json_true();
    case 0xc4:
    case 0xc5:
    case 0xc6:
        return s_read_be(r, (size_t)1 << (b - 0xc4), &n) ? s_read_bin(r, n) : NULL;
    case 0xca:
        return s_read_real(r, 4, at);
    case 0xcb:
        return s_read_real(r, 8, at);
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        return s_read_be(r, (size_t)1 << (b - 0xcc), &n) ? s_read_uint(r, n) : NULL;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        return s_read_int(r, (size_t)1 << (b - 0xd0));
    case 0xd9:
    case 0xda:
    case 0xdb:
        return s_read_be(r, (size_t)1 << (b - 0xd9), &n) ? s_read_str(r, n, at) : NULL;
    case 0xdc:
    case 0xdd:
        return s_read_be(r, b == 0xdc ? 2 : 4, &n) ? s_read_array(r, n, depth, at) : NULL;
    case 0xde:
    case 0xdf:
        return s_read_be(r, b == 0xde ? 2 : 4, &n) ? s_read_map(r, n, depth, at) : NULL;
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        s_err(r->err, r->errlen, "ext type at offset %zu has no JSON form", at);
        return NULL;
    default: /* 0xc1, never used */
        s_err(r->err, r->errlen, "invalid byte 0x%02x at offset %zu", b, at);
        return NULL;
    }
}

json_t *jsonpack_to_json(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    s_err(err, errlen, "%s", "");
    if (!buf || len == 0) {
        s_err(err, errlen, "empty msgpack");
        return NULL;
    }
    s_reader_t r = {.buf = buf, .len = len, .err = err, .errlen = errlen};
    json_t *v = s_read_value(&r, 0);
    if (v && r.pos != len) {
        s_err(err, errlen, "%zu trailing bytes at offset %zu", len - r.pos, r.pos);
        json_decref(v);
        return NULL;
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* JSON -> msgpack */

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    char *err;
    size_t errlen;
    bool failed;
} s_writer_t;

static void s_put(s_writer_t *w, const void *p, size_t n)
{
    if (w->failed) {
        return;
    }
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                cap = 0;
                break;
            }
            cap *= 2;
        }
        uint8_t *grown = cap ? realloc(w->data, cap) : NULL;
        if (!grown) {
            s_err(w->err, w->errlen, "out of memory");
            w->failed = true;
            return;
        }
        w->data = grown;
        w->cap = cap;
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

/*  A type byte followed by v in n big-endian bytes (n = 0, 1, 2, 4, 8). */
static void s_put_be(s_writer_t *w, uint8_t type, uint64_t v, size_t n)
{
    uint8_t b[9];
    b[0] = type;
    for (size_t i = 0; i < n; i++) {
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
    s_put(w, b, 1 + n);
}

static void s_put_int(s_writer_t *w, json_int_t i)
{
    if (i >= 0) {
        uint64_t u = (uint64_t)i;
        if (u <= 0x7f) {
            s_put_be(w, (uint8_t)u, 0, 0);
        } else if (u <= UINT8_MAX) {
            s_put_be(w, 0xcc, u, 1);
        } else if (u <= UINT16_MAX) {
            s_put_be(w, 0xcd, u, 2);
        } else if (u <= UINT32_MAX) {
            s_put_be(w, 0xce, u, 4);
        } else {
            s_put_be(w, 0xcf, u, 8);
        }
    } else if (i >= -32) {
        s_put_be(w, (uint8_t)(int8_t)i, 0, 0);
    } else if (i >= INT8_MIN) {
        s_put_be(w, 0xd0, (uint8_t)(int8_t)i, 1);
    } else if (i >= INT16_MIN) {
        s_put_be(w, 0xd1, (uint16_t)(int16_t)i, 2);
    } else if (i >= INT32_MIN) {
        s_put_be(w, 0xd2, (uint32_t)(int32_t)i, 4);
    } else {
        s_put_be(w, 0xd3, (uint64_t)(int64_t)i, 8);
    }
}

/*  A header with a count: fix form (fix_base, fix_max) or 16/32-bit form. */
static bool s_put_count(s_writer_t *w, uint8_t fix_base, size_t fix_max, uint8_t t8, uint8_t t16,
                        uint8_t t32, size_t n)
{
    if (n <= fix_max) {
        s_put_be(w, (uint8_t)(fix_base | n), 0, 0);
    } else if (t8 && n <= UINT8_MAX) {
        s_put_be(w, t8, n, 1);
    } else if (n <= UINT16_MAX) {
        s_put_be(w, t16, n, 2);
    } else if (n <= UINT32_MAX) {
        s_put_be(w, t32, n, 4);
    } else {
        s_err(w->err, w->errlen, "%zu elements or bytes: more than msgpack can hold", n);
        w->failed = true;
        return false;
    }
    return true;
}

static void s_put_str(s_writer_t *w, const char *s, size_t n)
{
    if (s_put_count(w, 0xa0, 31, 0xd9, 0xda, 0xdb, n)) {
        s_put(w, s, n);
    }
}

static void s_write_value(s_writer_t *w, const json_t *v, int depth)
{
    if (w->failed) {
        return;
    }
    switch (json_typeof(v)) {
    case JSON_NULL:
        s_put_be(w, 0xc0, 0, 0);
        break;
    case JSON_TRUE:
        s_put_be(w, 0xc3, 0, 0);
        break;
    case JSON_FALSE:
        s_put_be(w, 0xc2, 0, 0);
        break;
    case JSON_INTEGER:
        s_put_int(w, json_integer_value(v));
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        s_put_be(w, 0xcb, bits, 8);
        break;
    }
    case JSON_STRING:
        s_put_str(w, json_string_value(v), json_string_length(v));
        break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        if (depth >= JSONPACK_DEPTH_MAX) {
            s_err(w->err, w->errlen, "nested deeper than %d", JSONPACK_DEPTH_MAX);
            w->failed = true;
            return;
        }
        if (json_is_array(v)) {
            size_t i;
            json_t *e;
            if (s_put_count(w, 0x90, 15, 0, 0xdc, 0xdd, json_array_size(v))) {
                json_array_foreach(v, i, e)
                {
                    s_write_value(w, e, depth + 1);
                }
            }
            break;
        }
        const char *key;
        size_t klen;
        json_t *e;
        if (s_put_count(w, 0x80, 15, 0, 0xde, 0xdf, json_object_size(v))) {
            json_object_keylen_foreach((json_t *)v, key, klen, e)
            {
                if (memchr(key, '\0', klen)) {
                    s_err(w->err, w->errlen, "NUL byte in an object key");
                    w->failed = true;
                    return;
                }
                s_put_str(w, key, klen);
                s_write_value(w, e, depth + 1);
            }
        }
        break;
    }
    default:
        s_err(w->err, w->errlen, "a JSON value of unknown type");
        w->failed = true;
        break;
    }
}

int jsonpack_from_json(const json_t *value, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    s_err(err, errlen, "%s", "");
    *out = NULL;
    *len = 0;
    if (!value) {
        s_err(err, errlen, "no JSON value");
        return -1;
    }
    s_writer_t w = {.err = err, .errlen = errlen};
    s_write_value(&w, value, 0);
    if (w.failed) {
        free(w.data);
        return -1;
    }
    *out = w.data;
    *len = w.len;
    return 0;
}
