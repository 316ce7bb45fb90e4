/*  gossip.c: peer-list gossip codec (a strict msgpack subset). */
#include "gossip.h"

#include <mesh/error.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    bool ok;
} s_in_t;

static bool s_need(s_in_t *in, size_t n)
{
    if (!in->ok || (size_t)(in->end - in->p) < n) {
        in->ok = false;
        return false;
    }
    return true;
}

/*  Array header: fixarray or array16 (array32 never needed here). */
static uint32_t s_array(s_in_t *in)
{
    if (!s_need(in, 1)) {
        return 0;
    }
    uint8_t b = *in->p++;
    if ((b & 0xf0) == 0x90) {
        return b & 0x0f;
    }
    if (b == 0xdc && s_need(in, 2)) {
        uint32_t n = (uint32_t)(in->p[0] << 8 | in->p[1]);
        in->p += 2;
        return n;
    }
    in->ok = false;
    return 0;
}

/*  Positive fixint only: type and version are small, and one spelling keeps
    mesh__gossip_is() exact. */
static uint32_t s_uint(s_in_t *in)
{
    if (!s_need(in, 1)) {
        return 0;
    }
    uint8_t b = *in->p++;
    if (b < 0x80) {
        return b;
    }
    in->ok = false;
    return 0;
}

/*  str (fixstr, str8) or bin8; returns a slice. */
static const uint8_t *s_bytes(s_in_t *in, bool bin, size_t *len)
{
    *len = 0;
    if (!s_need(in, 1)) {
        return NULL;
    }
    uint8_t b = *in->p++;
    size_t n;
    if (!bin && (b & 0xe0) == 0xa0) {
        n = b & 0x1f;
    } else if ((b == (bin ? 0xc4 : 0xd9)) && s_need(in, 1)) {
        n = *in->p++;
    } else {
        in->ok = false;
        return NULL;
    }
    if (!s_need(in, n)) {
        return NULL;
    }
    const uint8_t *at = in->p;
    in->p += n;
    *len = n;
    return at;
}

bool mesh__gossip_is(const uint8_t *buf, size_t len)
{
    return buf && len >= 3 && buf[0] == 0x93 &&
           (buf[1] == MESH_GOSSIP_PEERS || buf[1] == MESH_GOSSIP_BYE) &&
           buf[2] == MESH_GOSSIP_VERSION;
}

int mesh__gossip_decode(const uint8_t *buf, size_t len, mesh__gossip_entry_t *out, size_t max,
                        size_t *count)
{
    *count = 0;
    s_in_t in = {buf, buf + len, buf != NULL};
    if (s_array(&in) != 3) {
        return MESH_ERR_MALFORMED;
    }
    uint32_t type = s_uint(&in);
    uint32_t version = s_uint(&in);
    if (!in.ok || version != MESH_GOSSIP_VERSION) {
        return MESH_ERR_MALFORMED;
    }
    if (type == MESH_GOSSIP_BYE) {
        if (!s_need(&in, 1) || *in.p++ != 0xc0) {
            return MESH_ERR_MALFORMED;
        }
    } else if (type == MESH_GOSSIP_PEERS) {
        uint32_t n = s_array(&in);
        if (!in.ok || n > max || n > MESH_GOSSIP_PEERS_MAX) {
            return MESH_ERR_MALFORMED;
        }
        for (uint32_t i = 0; i < n; i++) {
            size_t ulen, elen;
            if (s_array(&in) != 2) {
                return MESH_ERR_MALFORMED;
            }
            const uint8_t *uuid = s_bytes(&in, true, &ulen);
            const uint8_t *ep = s_bytes(&in, false, &elen);
            if (!in.ok || ulen != MESH_ZRE_UUID_SIZE || elen == 0) {
                return MESH_ERR_MALFORMED;
            }
            memcpy(out[i].uuid, uuid, MESH_ZRE_UUID_SIZE);
            out[i].endpoint = (const char *)ep;
            out[i].endpoint_len = elen;
        }
        *count = n;
    } else {
        return MESH_ERR_MALFORMED;
    }
    if (!in.ok || in.p != in.end) {
        *count = 0;
        return MESH_ERR_MALFORMED;
    }
    return (int)type;
}

typedef struct {
    uint8_t *p;
    size_t cap;
    size_t n;
} s_out_t;

static void s_put(s_out_t *o, const void *data, size_t len)
{
    if (o->n + len <= o->cap) {
        memcpy(o->p + o->n, data, len);
    }
    o->n += len;
}

static void s_put_byte(s_out_t *o, uint8_t b)
{
    s_put(o, &b, 1);
}

static void s_put_head(s_out_t *o, uint8_t type)
{
    s_put_byte(o, 0x93);
    s_put_byte(o, type);
    s_put_byte(o, MESH_GOSSIP_VERSION);
}

size_t mesh__gossip_encode_peers(uint8_t *buf, size_t cap, const mesh__gossip_entry_t *entries,
                                 size_t count)
{
    s_out_t o = {buf, cap, 0};
    if (count > MESH_GOSSIP_PEERS_MAX) {
        count = MESH_GOSSIP_PEERS_MAX;
    }
    s_put_head(&o, MESH_GOSSIP_PEERS);
    if (count < 16) {
        s_put_byte(&o, (uint8_t)(0x90 | count));
    } else {
        s_put_byte(&o, 0xdc);
        s_put_byte(&o, (uint8_t)(count >> 8));
        s_put_byte(&o, (uint8_t)count);
    }
    for (size_t i = 0; i < count; i++) {
        size_t elen = entries[i].endpoint_len > MESH_ZRE_STRING_MAX ? MESH_ZRE_STRING_MAX
                                                                    : entries[i].endpoint_len;
        s_put_byte(&o, 0x92);
        s_put_byte(&o, 0xc4);
        s_put_byte(&o, MESH_ZRE_UUID_SIZE);
        s_put(&o, entries[i].uuid, MESH_ZRE_UUID_SIZE);
        s_put_byte(&o, 0xd9);
        s_put_byte(&o, (uint8_t)elen);
        s_put(&o, entries[i].endpoint, elen);
    }
    return o.n;
}

size_t mesh__gossip_encode_bye(uint8_t *buf, size_t cap)
{
    s_out_t o = {buf, cap, 0};
    s_put_head(&o, MESH_GOSSIP_BYE);
    s_put_byte(&o, 0xc0);
    return o.n;
}
