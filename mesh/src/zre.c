/*  zre.c: a ZRE v2 node (RFC 36) that interoperates with Zyre 2.x and zyre.js.

    Sockets: one UDP beacon socket, one ROUTER inbox (ROUTER_HANDOVER), one
    DEALER per peer whose identity is 0x01 + our UUID. Only a HELLO creates a
    ready peer; anything else from an unknown or not-ready peer is dropped.
    Sequence numbers are uint16 (HELLO = 1); a gap removes the peer. Liveness
    follows Zyre: only TCP traffic refreshes a peer; silent past evasive it is
    PINGed once per reap, silent past expired it is removed. */
#include "zre.h"

#include "beacon.h"
#include "gossip.h"
#include "udp.h"
#include "zre_msg.h"

#include <mesh/mesh.h>

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zmq.h>

#define S_ENDPOINT_MAX MESH_ENDPOINT_MAX

struct mesh__zre_peer {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    char uuid_str[33];
    char name[MESH_ZRE_STRING_MAX + 1];
    char endpoint[MESH_ZRE_STRING_MAX + 1];
    void *dealer;
    uint16_t sent_seq; /* last sequence sent */
    uint16_t want_seq; /* last sequence received */
    uint8_t status;
    bool ready;   /* its HELLO arrived */
    bool evasive; /* silent past the evasive timeout */
    bool is_mesh;
    bool reborn;  /* re-created by a HELLO reset */
    int64_t leaving_at; /* a mesh peer's port-0 beacon came: gone at this time, or at its BYE */
    int64_t created;
    int64_t last_heard;
    char **hkeys;
    char **hvals;
    size_t nheaders;
    char **groups;
    size_t ngroups;
    size_t index; /* in node->peers */
};

typedef struct {
    char endpoint[S_ENDPOINT_MAX]; /* normalised: tcp://A.B.C.D:port */
    uint16_t port;
    void *dealer;       /* carries our HELLO until the seed answers */
    uint16_t sent_seq;  /* messages sent on it (HELLO = 1, then JOIN/LEAVE) */
    int64_t next_try;   /* when to HELLO again if unresolved */
    int retry_ms;       /* doubles on every unanswered try, up to a cap */
    bool resolved;      /* a peer lives at this endpoint */
} s_seed_t;

struct mesh__zre {
    /* configuration */
    char name[MESH_ZRE_STRING_MAX + 1];
    char iface_name[MESH_IFACE_NAME_MAX];
    uint16_t beacon_port;
    bool beacon_off;
    uint16_t inbox_port;
    int beacon_interval_ms, evasive_ms, expired_ms, reap_ms, seed_retry_ms, sndhwm;
    int64_t max_msg_size;
    /* identity */
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    char uuid_str[33];
    uint8_t identity[MESH_ZRE_IDENTITY_SIZE];
    char endpoint[S_ENDPOINT_MAX];
    /* sockets */
    void *ctx;
    bool own_ctx;
    void *inbox;
    int udp_fd;
    mesh__iface_t iface;
    bool started, stopped;
    /* our headers and groups */
    char **hkeys, **hvals;
    size_t nheaders;
    char **groups;
    size_t ngroups;
    uint8_t status;
    /* peers: an array for iteration plus an open-addressing index by UUID */
    mesh__zre_peer_t **peers;
    size_t npeers, peers_cap;
    mesh__zre_peer_t **index;
    size_t index_cap; /* power of two, >= 2 * npeers */
    s_seed_t *seeds;
    size_t nseeds;
    /* timers */
    int64_t next_beacon, next_reap, next_seed, next_gossip;
    uint64_t rng; /* xorshift state: which peer hears the next gossip round */
    /* events */
    mesh__zre_event_fn *handler;
    void *handler_arg;
    mesh__zre_stats_t stats;
    int64_t now; /* of the entry point being run: events carry it */
    /* scratch for encoding */
    uint8_t *buf;
    size_t buf_cap;
};

/* ------------------------------------------------------------------------ */
/* small helpers */

static void s_log(const mesh__zre_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_log(const mesh__zre_t *self, const char *fmt, ...)
{
    if (!getenv("MESH_DEBUG")) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "zre %s: ", self->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *s_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/*  Copies a slice into a fixed buffer, NUL-terminated, cut at cap - 1. */
static void s_copy_slice(char *dst, size_t cap, mesh__slice_t s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n) {
        memcpy(dst, s.ptr, n);
    }
    dst[n] = '\0';
}

static void s_free_strv(char ***v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((*v)[i]);
    }
    free(*v);
    *v = NULL;
}

void mesh__uuid_to_hex(const uint8_t *uuid, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 0; i < MESH_ZRE_UUID_SIZE; i++) {
        out[2 * i] = hex[uuid[i] >> 4];
        out[2 * i + 1] = hex[uuid[i] & 15];
    }
    out[32] = '\0';
}

static int s_hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int mesh__uuid_from_hex(const char *hex, uint8_t *uuid)
{
    if (!hex || strlen(hex) != 32) {
        return MESH_ERR_INVAL;
    }
    for (int i = 0; i < MESH_ZRE_UUID_SIZE; i++) {
        int hi = s_hexval(hex[2 * i]), lo = s_hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return MESH_ERR_INVAL;
        }
        uuid[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static bool s_ensure_buf(mesh__zre_t *self, size_t need)
{
    if (need <= self->buf_cap) {
        return true;
    }
    size_t cap = self->buf_cap ? self->buf_cap : 512;
    while (cap < need) {
        cap *= 2;
    }
    uint8_t *b = realloc(self->buf, cap);
    if (!b) {
        return false;
    }
    self->buf = b;
    self->buf_cap = cap;
    return true;
}

static void s_emit(mesh__zre_t *self, mesh__zre_event_type_t type, const mesh__zre_peer_t *peer,
                   const char *group, const void *data, size_t size, const char *reason)
{
    if (!self->handler) {
        return;
    }
    mesh__zre_event_t ev = {type, peer, group, data, size, reason, self->now};
    self->handler(self, &ev, self->handler_arg);
}

/* ------------------------------------------------------------------------ */
/* the peer index (linear probing, backward-shift deletion) */

static size_t s_hash(const uint8_t *uuid)
{
    uint64_t h;
    memcpy(&h, uuid, sizeof h); /* UUIDs are random: their bytes are the hash */
    return (size_t)(h ^ (h >> 29));
}

static bool s_index_grow(mesh__zre_t *self)
{
    size_t cap = self->index_cap ? self->index_cap * 2 : 64;
    mesh__zre_peer_t **idx = calloc(cap, sizeof *idx);
    if (!idx) {
        return false;
    }
    for (size_t i = 0; i < self->npeers; i++) {
        size_t j = s_hash(self->peers[i]->uuid) & (cap - 1);
        while (idx[j]) {
            j = (j + 1) & (cap - 1);
        }
        idx[j] = self->peers[i];
    }
    free(self->index);
    self->index = idx;
    self->index_cap = cap;
    return true;
}

static mesh__zre_peer_t *s_find(const mesh__zre_t *self, const uint8_t *uuid)
{
    if (!self->index_cap) {
        return NULL;
    }
    size_t mask = self->index_cap - 1;
    for (size_t j = s_hash(uuid) & mask; self->index[j]; j = (j + 1) & mask) {
        if (memcmp(self->index[j]->uuid, uuid, MESH_ZRE_UUID_SIZE) == 0) {
            return self->index[j];
        }
    }
    return NULL;
}

static void s_index_remove(mesh__zre_t *self, const mesh__zre_peer_t *peer)
{
    size_t mask = self->index_cap - 1;
    size_t j = s_hash(peer->uuid) & mask;
    while (self->index[j] != peer) {
        j = (j + 1) & mask;
    }
    self->index[j] = NULL;
    for (size_t k = (j + 1) & mask; self->index[k]; k = (k + 1) & mask) {
        size_t home = s_hash(self->index[k]->uuid) & mask;
        /* move k back into the hole at j if its home is not in (j, k] */
        bool between = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (!between) {
            self->index[j] = self->index[k];
            self->index[k] = NULL;
            j = k;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* sending */

/*  Sends header (+ optional content) to a peer, with the next sequence
    number patched into the header. Counts and returns MESH_ERR_AGAIN when
    the peer's queue is full. */
static int s_send(mesh__zre_t *self, mesh__zre_peer_t *peer, uint8_t *hdr, size_t hlen,
                  const void *data, size_t size, bool has_content)
{
    if (!peer->dealer) {
        return MESH_ERR_STATE;
    }
    uint16_t seq = (uint16_t)(peer->sent_seq + 1);
    hdr[4] = (uint8_t)(seq >> 8);
    hdr[5] = (uint8_t)seq;
    int flags = ZMQ_DONTWAIT | (has_content ? ZMQ_SNDMORE : 0);
    if (zmq_send(peer->dealer, hdr, hlen, flags) < 0) {
        self->stats.send_dropped++;
        return errno == EAGAIN ? MESH_ERR_AGAIN : MESH_ERR_SOCKET;
    }
    if (has_content) {
        /* the rest of a multipart message cannot fail once its first frame went */
        zmq_send(peer->dealer, data, size, ZMQ_DONTWAIT);
    }
    peer->sent_seq = seq;
    return 0;
}

static int s_send_bare(mesh__zre_t *self, mesh__zre_peer_t *peer, uint8_t id)
{
    uint8_t hdr[6];
    mesh__zre_encode_bare(hdr, sizeof hdr, id, 0);
    return s_send(self, peer, hdr, sizeof hdr, NULL, 0, false);
}

static int s_send_hello(mesh__zre_t *self, void *dealer)
{
    size_t need = mesh__zre_encode_hello(
        self->buf, self->buf_cap, 1, self->endpoint, (const char *const *)self->groups,
        self->ngroups, self->status, self->name, (const char *const *)self->hkeys,
        (const char *const *)self->hvals, self->nheaders);
    if (need == 0 || !s_ensure_buf(self, need)) {
        return MESH_ERR_NOMEM;
    }
    mesh__zre_encode_hello(self->buf, self->buf_cap, 1, self->endpoint,
                           (const char *const *)self->groups, self->ngroups, self->status,
                           self->name, (const char *const *)self->hkeys,
                           (const char *const *)self->hvals, self->nheaders);
    if (zmq_send(dealer, self->buf, need, ZMQ_DONTWAIT) < 0) {
        self->stats.send_dropped++;
        return MESH_ERR_AGAIN;
    }
    return 0;
}

static void *s_dealer_new(mesh__zre_t *self, const char *endpoint)
{
    void *d = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!d) {
        return NULL;
    }
    int zero = 0;
    zmq_setsockopt(d, ZMQ_IDENTITY, self->identity, sizeof self->identity);
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_SNDTIMEO, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_SNDHWM, &self->sndhwm, sizeof self->sndhwm);
    if (zmq_connect(d, endpoint) != 0) {
        zmq_close(d);
        return NULL;
    }
    return d;
}

/* ------------------------------------------------------------------------ */
/* peers */

static void s_peer_free(mesh__zre_peer_t *peer)
{
    if (peer->dealer) {
        zmq_close(peer->dealer);
    }
    s_free_strv(&peer->hkeys, peer->nheaders);
    s_free_strv(&peer->hvals, peer->nheaders);
    s_free_strv(&peer->groups, peer->ngroups);
    free(peer);
}

/*  Creates a peer at endpoint. When dealer is NULL a new one connects and
    carries our HELLO; otherwise the given DEALER (an answered seed, which
    already carried HELLO) is adopted. */
static mesh__zre_peer_t *s_peer_new(mesh__zre_t *self, const uint8_t *uuid, const char *endpoint,
                                    void *dealer, uint16_t sent_seq, int64_t now)
{
    if (self->npeers >= MESH_ZRE_PEERS_MAX) {
        self->stats.peers_refused++;
        return NULL;
    }
    if ((self->npeers + 1) * 2 > self->index_cap && !s_index_grow(self)) {
        return NULL;
    }
    if (self->npeers == self->peers_cap) {
        size_t cap = self->peers_cap ? self->peers_cap * 2 : 16;
        mesh__zre_peer_t **p = realloc(self->peers, cap * sizeof *p);
        if (!p) {
            return NULL;
        }
        self->peers = p;
        self->peers_cap = cap;
    }
    mesh__zre_peer_t *peer = calloc(1, sizeof *peer);
    if (!peer) {
        return NULL;
    }
    memcpy(peer->uuid, uuid, MESH_ZRE_UUID_SIZE);
    mesh__uuid_to_hex(uuid, peer->uuid_str);
    snprintf(peer->name, sizeof peer->name, "%.6s", peer->uuid_str);
    snprintf(peer->endpoint, sizeof peer->endpoint, "%s", endpoint);
    peer->last_heard = now;
    peer->created = now;
    if (dealer) {
        peer->dealer = dealer;
        peer->sent_seq = sent_seq;
    } else {
        peer->dealer = s_dealer_new(self, endpoint);
        if (!peer->dealer || s_send_hello(self, peer->dealer) != 0) {
            s_peer_free(peer);
            return NULL;
        }
        peer->sent_seq = 1;
    }
    peer->index = self->npeers;
    self->peers[self->npeers++] = peer;
    size_t mask = self->index_cap - 1;
    size_t j = s_hash(uuid) & mask;
    while (self->index[j]) {
        j = (j + 1) & mask;
    }
    self->index[j] = peer;
    s_log(self, "peer %s at %s created", peer->uuid_str, endpoint);
    return peer;
}

/*  Forgets a peer; emits EXIT if it was ready. */
static void s_peer_remove(mesh__zre_t *self, mesh__zre_peer_t *peer, const char *reason)
{
    if (peer->ready) {
        self->stats.peers_exited++;
        s_emit(self, MESH_ZRE_EV_EXIT, peer, NULL, NULL, 0, reason);
    }
    s_log(self, "peer %s removed (%s)", peer->uuid_str, reason);
    s_index_remove(self, peer);
    size_t i = peer->index;
    self->peers[i] = self->peers[--self->npeers];
    self->peers[i]->index = i;
    for (size_t k = 0; k < self->nseeds; k++) {
        if (strcmp(self->seeds[k].endpoint, peer->endpoint) == 0) {
            self->seeds[k].resolved = false;
        }
    }
    s_peer_free(peer);
}

static mesh__zre_peer_t *s_peer_at_endpoint(const mesh__zre_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->npeers; i++) {
        if (strcmp(self->peers[i]->endpoint, endpoint) == 0) {
            return self->peers[i];
        }
    }
    return NULL;
}

/*  A seed whose DEALER already carried our HELLO to this endpoint: hand the
    DEALER over, so the remote never gets two HELLOs from us (two would make
    both sides reset each other). */
static void *s_take_seed_dealer(mesh__zre_t *self, const char *endpoint, uint16_t *sent_seq)
{
    for (size_t i = 0; i < self->nseeds; i++) {
        s_seed_t *s = &self->seeds[i];
        if (s->dealer && strcmp(s->endpoint, endpoint) == 0) {
            void *d = s->dealer;
            *sent_seq = s->sent_seq;
            s->dealer = NULL;
            s->resolved = true;
            s->retry_ms = self->seed_retry_ms;
            return d;
        }
    }
    return NULL;
}

/*  A peer learned from a beacon or gossip: connect and HELLO unless known. */
static void s_require_peer(mesh__zre_t *self, const uint8_t *uuid, const char *endpoint,
                           bool first_hand, int64_t now)
{
    if (memcmp(uuid, self->uuid, MESH_ZRE_UUID_SIZE) == 0 || s_find(self, uuid) ||
        strcmp(endpoint, self->endpoint) == 0) {
        return;
    }
    mesh__zre_peer_t *old = s_peer_at_endpoint(self, endpoint);
    if (old && !first_hand) {
        return; /* hearsay (gossip) never evicts a peer we know */
    }
    if (old) {
        s_peer_remove(self, old, "replaced"); /* a new UUID at a known endpoint */
    }
    uint16_t seq = 0;
    void *dealer = s_take_seed_dealer(self, endpoint, &seq);
    if (!s_peer_new(self, uuid, endpoint, dealer, seq, now) && dealer) {
        zmq_close(dealer);
    }
}

static bool s_peer_has_group(const mesh__zre_peer_t *peer, const char *group, size_t *at)
{
    for (size_t i = 0; i < peer->ngroups; i++) {
        if (strcmp(peer->groups[i], group) == 0) {
            if (at) {
                *at = i;
            }
            return true;
        }
    }
    return false;
}

static void s_peer_add_group(mesh__zre_peer_t *peer, const char *group)
{
    if (s_peer_has_group(peer, group, NULL)) {
        return;
    }
    char **g = realloc(peer->groups, (peer->ngroups + 1) * sizeof *g);
    if (!g) {
        return;
    }
    peer->groups = g;
    if ((g[peer->ngroups] = strdup(group))) {
        peer->ngroups++;
    }
}

static void s_peer_del_group(mesh__zre_peer_t *peer, const char *group)
{
    size_t at;
    if (s_peer_has_group(peer, group, &at)) {
        free(peer->groups[at]);
        peer->groups[at] = peer->groups[--peer->ngroups];
    }
}

/* ------------------------------------------------------------------------ */
/* gossip */

static void s_gossip_peers_to(mesh__zre_t *self, mesh__zre_peer_t *to)
{
    size_t n = 0;
    mesh__gossip_entry_t *entries = calloc(self->npeers ? self->npeers : 1, sizeof *entries);
    if (!entries) {
        return;
    }
    for (size_t i = 0; i < self->npeers && n < MESH_GOSSIP_PEERS_MAX; i++) {
        mesh__zre_peer_t *p = self->peers[i];
        if (p != to && p->ready) {
            memcpy(entries[n].uuid, p->uuid, MESH_ZRE_UUID_SIZE);
            entries[n].endpoint = p->endpoint;
            entries[n].endpoint_len = strlen(p->endpoint);
            n++;
        }
    }
    if (n > 0) {
        size_t need = mesh__gossip_encode_peers(NULL, 0, entries, n);
        if (s_ensure_buf(self, need + 8)) {
            uint8_t hdr[6];
            mesh__zre_encode_bare(hdr, sizeof hdr, MESH_ZRE_WHISPER, 0);
            mesh__gossip_encode_peers(self->buf, self->buf_cap, entries, n);
            s_send(self, to, hdr, sizeof hdr, self->buf, need, true);
        }
    }
    free(entries);
}

/*  Gossip scope: a node on loopback follows only loopback endpoints, so
    nothing it learns makes it connect off the machine. */
static bool s_in_scope(const mesh__zre_t *self, struct in_addr addr)
{
    if (!self->iface.loopback) {
        return true;
    }
    return (ntohl(addr.s_addr) >> 24) == 127;
}

static void s_on_gossip(mesh__zre_t *self, mesh__zre_peer_t *from, const uint8_t *data,
                        size_t size, int64_t now)
{
    size_t max = MESH_GOSSIP_PEERS_MAX, count = 0;
    mesh__gossip_entry_t *list = malloc(max * sizeof *list);
    if (!list) {
        return;
    }
    int type = mesh__gossip_decode(data, size, list, max, &count);
    if (type < 0) {
        self->stats.gossip_bad++;
        free(list);
        return;
    }
    self->stats.gossip_received++;
    if (type == MESH_GOSSIP_BYE) {
        free(list);
        s_peer_remove(self, from, "left");
        return;
    }
    for (size_t i = 0; i < count; i++) {
        char ep[S_ENDPOINT_MAX];
        struct in_addr addr;
        uint16_t port;
        if (mesh__tcp_endpoint_parse(list[i].endpoint, list[i].endpoint_len, &addr, &port) != 0 ||
            !s_in_scope(self, addr)) {
            self->stats.gossip_bad++;
            continue;
        }
        mesh__tcp_endpoint(ep, sizeof ep, addr, port);
        s_require_peer(self, list[i].uuid, ep, false, now);
    }
    free(list);
}

/* ------------------------------------------------------------------------ */
/* receiving */

static void s_on_hello(mesh__zre_t *self, const uint8_t *uuid, const mesh__zre_hdr_t *h,
                       zmq_msg_t *hdr_msg, int64_t now)
{
    if (memcmp(uuid, self->uuid, MESH_ZRE_UUID_SIZE) == 0) {
        return;
    }
    mesh__zre_peer_t *peer = s_find(self, uuid);
    bool reborn = false;
    if (peer && peer->ready) {
        if (peer->reborn && now - peer->created < MESH_ZRE_RESET_DAMP_MS) {
            /* The answer to our own reset crossed theirs: take it as a
               refresh, or each side would keep resetting the other. */
            peer->want_seq = h->seq;
            peer->last_heard = now;
            return;
        }
        /* A HELLO from a ready peer: it lost us and starts over (RFC 36 reset). */
        s_peer_remove(self, peer, "reset");
        peer = NULL;
        reborn = true;
    }
    if (!peer) {
        char ep[S_ENDPOINT_MAX];
        struct in_addr addr;
        uint16_t port;
        if (mesh__tcp_endpoint_parse((const char *)h->endpoint.ptr, h->endpoint.len, &addr,
                                     &port) != 0) {
            /* Not an IPv4 literal (Zyre may advertise a host name): use the
               address the connection came from, and the advertised port. */
            const char *colon = memrchr(h->endpoint.ptr, ':', h->endpoint.len);
            const char *from = zmq_msg_gets(hdr_msg, "Peer-Address");
            char buf[S_ENDPOINT_MAX];
            size_t plen = colon ? h->endpoint.len - (size_t)(colon - (const char *)h->endpoint.ptr)
                                : 0;
            if (!colon || !from || plen > 8 ||
                snprintf(buf, sizeof buf, "tcp://%s%.*s", from, (int)plen, colon) >=
                    (int)sizeof buf ||
                mesh__tcp_endpoint_parse(buf, strlen(buf), &addr, &port) != 0) {
                self->stats.msgs_malformed++;
                return;
            }
        }
        mesh__tcp_endpoint(ep, sizeof ep, addr, port);
        if (strcmp(ep, self->endpoint) == 0) {
            return; /* our own endpoint: a self-connection */
        }
        mesh__zre_peer_t *old = s_peer_at_endpoint(self, ep);
        if (old) {
            s_peer_remove(self, old, "replaced");
        }
        /* An answered seed: adopt its DEALER, which already carried our HELLO. */
        uint16_t seq = 0;
        void *dealer = s_take_seed_dealer(self, ep, &seq);
        peer = s_peer_new(self, uuid, ep, dealer, seq, now);
        if (!peer) {
            if (dealer) {
                zmq_close(dealer);
            }
            return;
        }
        peer->reborn = reborn;
    }
    peer->want_seq = h->seq;
    peer->last_heard = now;
    peer->status = h->status;
    s_copy_slice(peer->name, sizeof peer->name, h->name);
    s_free_strv(&peer->hkeys, peer->nheaders);
    s_free_strv(&peer->hvals, peer->nheaders);
    peer->nheaders = 0;
    peer->is_mesh = false;
    if (h->nheaders) {
        peer->hkeys = calloc(h->nheaders, sizeof(char *));
        peer->hvals = calloc(h->nheaders, sizeof(char *));
        if (peer->hkeys && peer->hvals) {
            size_t pos = 0;
            mesh__slice_t k, v;
            while (mesh__zre_next_header(h, &pos, &k, &v)) {
                char *ks = s_strndup(k.ptr, k.len), *vs = s_strndup(v.ptr, v.len);
                if (!ks || !vs) {
                    free(ks);
                    free(vs);
                    break;
                }
                if (strcmp(ks, MESH_ZRE_HEADER_MESH) == 0) {
                    peer->is_mesh = true;
                }
                peer->hkeys[peer->nheaders] = ks;
                peer->hvals[peer->nheaders++] = vs;
            }
        }
    }
    s_free_strv(&peer->groups, peer->ngroups);
    peer->ngroups = 0;
    peer->ready = true;
    self->stats.peers_entered++;
    for (size_t k = 0; k < self->nseeds; k++) {
        if (strcmp(self->seeds[k].endpoint, peer->endpoint) == 0) {
            self->seeds[k].resolved = true;
        }
    }
    size_t pos = 0;
    mesh__slice_t g;
    char group[MESH_ZRE_STRING_MAX + 1];
    while (mesh__zre_next_group(h, &pos, &g)) {
        if (g.len <= MESH_ZRE_STRING_MAX && !memchr(g.ptr, '\0', g.len)) {
            s_copy_slice(group, sizeof group, g);
            s_peer_add_group(peer, group);
        }
    }
    /* ENTER shows the peer's groups; a JOIN per group follows, as in Zyre. */
    s_emit(self, MESH_ZRE_EV_ENTER, peer, NULL, NULL, 0, NULL);
    for (size_t i = 0; i < peer->ngroups && peer->ready; i++) {
        s_emit(self, MESH_ZRE_EV_JOIN, peer, peer->groups[i], NULL, 0, NULL);
    }
    if (peer->is_mesh) {
        s_gossip_peers_to(self, peer);
    }
}

static bool s_seq_ok(mesh__zre_peer_t *peer, uint16_t seq)
{
    uint16_t want = (uint16_t)(peer->want_seq + 1);
    /* zyre.js counts modulo 65535: after 65534 it sends 0, not 65535 */
    return seq == want || (peer->want_seq == 65534 && seq == 0);
}

static void s_on_message(mesh__zre_t *self, zmq_msg_t *frames, int nframes, int64_t now)
{
    self->stats.msgs_received++;
    if (nframes < 2 || zmq_msg_size(&frames[0]) != MESH_ZRE_IDENTITY_SIZE ||
        ((const uint8_t *)zmq_msg_data(&frames[0]))[0] != 0x01) {
        self->stats.msgs_malformed++;
        return;
    }
    const uint8_t *uuid = (const uint8_t *)zmq_msg_data(&frames[0]) + 1;
    mesh__zre_hdr_t h;
    if (mesh__zre_decode(zmq_msg_data(&frames[1]), zmq_msg_size(&frames[1]), &h) != 0) {
        self->stats.msgs_malformed++;
        return;
    }
    if (h.id == MESH_ZRE_HELLO) {
        s_on_hello(self, uuid, &h, &frames[1], now);
        return;
    }
    mesh__zre_peer_t *peer = s_find(self, uuid);
    if (!peer || !peer->ready) {
        self->stats.msgs_unknown_sender++;
        return;
    }
    if (!s_seq_ok(peer, h.seq)) {
        self->stats.sequence_gaps++;
        s_log(self, "peer %s: sequence %u after %u, lost messages", peer->uuid_str, h.seq,
              peer->want_seq);
        s_peer_remove(self, peer, "sequence");
        return;
    }
    peer->want_seq = h.seq;
    peer->last_heard = now;
    if (peer->evasive) {
        peer->evasive = false;
        s_emit(self, MESH_ZRE_EV_BACK, peer, NULL, NULL, 0, NULL);
    }
    if (h.group.len && memchr(h.group.ptr, '\0', h.group.len)) {
        self->stats.msgs_malformed++; /* a group name is text: "g\0x" must not pass as "g" */
        return;
    }
    const uint8_t *data = nframes > 2 ? zmq_msg_data(&frames[2]) : NULL;
    size_t size = nframes > 2 ? zmq_msg_size(&frames[2]) : 0;
    char group[MESH_ZRE_STRING_MAX + 1];
    switch (h.id) {
    case MESH_ZRE_WHISPER:
        if (peer->is_mesh && mesh__gossip_is(data, size)) {
            s_on_gossip(self, peer, data, size, now);
        } else {
            s_emit(self, MESH_ZRE_EV_WHISPER, peer, NULL, data, size, NULL);
        }
        break;
    case MESH_ZRE_SHOUT:
        s_copy_slice(group, sizeof group, h.group);
        if (!mesh__zre_in_group(self, group)) {
            self->stats.msgs_not_member++;
        } else {
            s_emit(self, MESH_ZRE_EV_SHOUT, peer, group, data, size, NULL);
        }
        break;
    case MESH_ZRE_JOIN:
    case MESH_ZRE_LEAVE:
        /* Record the status; never assert on it (zyre.js wraps it at 255). */
        peer->status = h.status;
        s_copy_slice(group, sizeof group, h.group);
        if (h.id == MESH_ZRE_JOIN) {
            s_peer_add_group(peer, group);
        } else {
            s_peer_del_group(peer, group);
        }
        s_emit(self, h.id == MESH_ZRE_JOIN ? MESH_ZRE_EV_JOIN : MESH_ZRE_EV_LEAVE, peer, group,
               NULL, 0, NULL);
        break;
    case MESH_ZRE_PING:
        s_send_bare(self, peer, MESH_ZRE_PING_OK);
        break;
    case MESH_ZRE_PING_OK:
        break;
    default: /* ELECT, LEADER, GOODBYE: counted in the sequence, otherwise ignored */
        self->stats.msgs_ignored++;
        break;
    }
}

bool mesh__zre_on_inbox(mesh__zre_t *self, int64_t now, int budget)
{
    self->now = now;
    if (!self->inbox) {
        return false;
    }
    enum { MAX_FRAMES = 3 };
    for (int n = 0; n < budget; n++) {
        zmq_msg_t frames[MAX_FRAMES];
        int nframes = 0;
        bool more = true;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_t *m = nframes < MAX_FRAMES ? &frames[nframes] : &tmp;
            zmq_msg_init(m);
            if (zmq_msg_recv(m, self->inbox, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(m);
                if (nframes == 0) {
                    return false; /* drained */
                }
                break; /* cannot happen mid-message; be safe */
            }
            more = zmq_msg_more(m);
            if (m == &tmp) {
                zmq_msg_close(m); /* extra content frames: only the first is delivered */
            } else {
                nframes++;
            }
        }
        s_on_message(self, frames, nframes, now);
        for (int i = 0; i < nframes; i++) {
            zmq_msg_close(&frames[i]);
        }
    }
    return true;
}

void mesh__zre_on_beacon(mesh__zre_t *self, int64_t now)
{
    self->now = now;
    if (self->udp_fd < 0) {
        return;
    }
    for (int n = 0; n < MESH_RECV_BATCH; n++) {
        uint8_t buf[MESH_BEACON_SECURE_SIZE + 1];
        struct in_addr from;
        ssize_t len = mesh__udp_recv(self->udp_fd, buf, sizeof buf, &from);
        if (len < 0) {
            return;
        }
        self->stats.beacons_received++;
        mesh__beacon_t b;
        int rc = (size_t)len > sizeof buf ? MESH_ERR_MALFORMED
                                          : mesh__beacon_decode(buf, (size_t)len, &b);
        if (rc < 0) {
            self->stats.beacons_bad++;
            continue;
        }
        if (rc == MESH_BEACON_FOREIGN || !mesh__iface_contains(&self->iface, from)) {
            self->stats.beacons_foreign++;
            continue;
        }
        if (memcmp(b.uuid, self->uuid, MESH_ZRE_UUID_SIZE) == 0) {
            continue; /* our own */
        }
        if (b.port == 0) {
            mesh__zre_peer_t *peer = s_find(self, b.uuid);
            if (peer && peer->ready && peer->is_mesh) {
                /* UDP overtakes TCP: what the peer sent just before leaving may
                   still be on its way. Its BYE, the last thing it sends, ends
                   the wait; the reap after the grace period, at the latest. */
                if (!peer->leaving_at) {
                    peer->leaving_at = now + MESH_ZRE_LEAVE_GRACE_MS;
                    if (self->next_reap > peer->leaving_at) {
                        self->next_reap = peer->leaving_at;
                    }
                }
            } else if (peer) {
                s_peer_remove(self, peer, "left");
            }
            continue;
        }
        char ep[S_ENDPOINT_MAX];
        mesh__tcp_endpoint(ep, sizeof ep, from, b.port);
        s_require_peer(self, b.uuid, ep, true, now);
    }
}

/* ------------------------------------------------------------------------ */
/* timers */

static void s_send_beacon(mesh__zre_t *self, uint16_t port)
{
    uint8_t b[MESH_ZRE_BEACON_SIZE];
    mesh__beacon_encode(b, self->uuid, port);
    if (mesh__udp_send(self->udp_fd, &self->iface, self->beacon_port, b, sizeof b) == 0) {
        self->stats.beacons_sent++;
    }
}

static void s_reap(mesh__zre_t *self, int64_t now)
{
    for (size_t i = self->npeers; i-- > 0;) {
        mesh__zre_peer_t *peer = self->peers[i];
        int64_t silent = now - peer->last_heard;
        if (peer->leaving_at && now >= peer->leaving_at) {
            s_peer_remove(self, peer, "left");
        } else if (silent >= self->expired_ms) {
            s_peer_remove(self, peer, "expired");
        } else if (silent >= self->evasive_ms && peer->ready) {
            s_send_bare(self, peer, MESH_ZRE_PING);
            if (!peer->evasive) {
                peer->evasive = true;
                s_emit(self, MESH_ZRE_EV_EVASIVE, peer, NULL, NULL, 0, NULL);
            }
        }
    }
}

static void s_seeds(mesh__zre_t *self, int64_t now)
{
    for (size_t i = 0; i < self->nseeds; i++) {
        s_seed_t *s = &self->seeds[i];
        /* resolved: a peer lives there (ready, or answering our HELLO), or
           the seed is ourselves */
        s->resolved = s->resolved || s_peer_at_endpoint(self, s->endpoint) ||
                      strcmp(s->endpoint, self->endpoint) == 0;
        if (s->resolved && s->dealer) {
            zmq_close(s->dealer); /* reached some other way */
            s->dealer = NULL;
        }
        if (s->resolved || now < s->next_try) {
            continue;
        }
        if (s->dealer) {
            zmq_close(s->dealer);
        }
        s->dealer = s_dealer_new(self, s->endpoint);
        s->sent_seq = 0;
        if (s->dealer && s_send_hello(self, s->dealer) == 0) {
            s->sent_seq = 1;
        }
        s->next_try = now + s->retry_ms;
        s->retry_ms = s->retry_ms * 2 > MESH_ZRE_SEED_RETRY_MAX_MS ? MESH_ZRE_SEED_RETRY_MAX_MS
                                                                    : s->retry_ms * 2;
    }
}

int64_t mesh__zre_next_deadline(const mesh__zre_t *self)
{
    if (!self->started || self->stopped) {
        return INT64_MAX;
    }
    int64_t d = self->next_reap;
    if (self->udp_fd >= 0 && self->next_beacon < d) {
        d = self->next_beacon;
    }
    if (self->nseeds && self->next_seed < d) {
        d = self->next_seed;
    }
    if (self->udp_fd < 0 && self->next_gossip < d) {
        d = self->next_gossip;
    }
    return d;
}

void mesh__zre_on_tick(mesh__zre_t *self, int64_t now)
{
    self->now = now;
    if (!self->started || self->stopped) {
        return;
    }
    if (self->udp_fd >= 0 && now >= self->next_beacon) {
        s_send_beacon(self, self->inbox_port);
        self->next_beacon = now + self->beacon_interval_ms;
    }
    if (now >= self->next_reap) {
        s_reap(self, now);
        self->next_reap = now + self->reap_ms;
    }
    if (self->nseeds && now >= self->next_seed) {
        s_seeds(self, now);
        self->next_seed = now + self->reap_ms;
    }
    if (self->udp_fd < 0 && now >= self->next_gossip) {
        /* Without beacons a lost link between two peers heals only through
           a third: tell one random mesh peer whom we know, every round. */
        if (self->npeers) {
            self->rng ^= self->rng << 13;
            self->rng ^= self->rng >> 7;
            self->rng ^= self->rng << 17;
            mesh__zre_peer_t *p = self->peers[self->rng % self->npeers];
            if (p->ready && p->is_mesh) {
                s_gossip_peers_to(self, p);
            }
        }
        self->next_gossip = now + MESH_ZRE_GOSSIP_INTERVAL_MS;
    }
}

/* ------------------------------------------------------------------------ */
/* life cycle */

static bool s_valid_string(const char *s)
{
    return s && strlen(s) <= MESH_ZRE_STRING_MAX;
}

mesh__zre_t *mesh__zre_new(const mesh__zre_config_t *config, void *zmq_ctx)
{
    mesh__zre_config_t dflt = {0};
    const mesh__zre_config_t *c = config ? config : &dflt;
    if ((c->name && !s_valid_string(c->name)) || c->beacon_interval_ms < 0 ||
        c->evasive_ms < 0 || c->expired_ms < 0 || c->reap_ms < 0 || c->seed_retry_ms < 0 ||
        c->sndhwm < 0 || c->max_msg_size < 0 ||
        (c->iface && strlen(c->iface) >= MESH_IFACE_NAME_MAX)) {
        return NULL;
    }
    mesh__zre_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->udp_fd = -1;
    if (c->uuid) {
        memcpy(self->uuid, c->uuid, MESH_ZRE_UUID_SIZE);
    } else if (getrandom(self->uuid, sizeof self->uuid, 0) != sizeof self->uuid) {
        free(self);
        return NULL;
    } else {
        self->uuid[6] = (uint8_t)((self->uuid[6] & 0x0f) | 0x40); /* version 4 */
        self->uuid[8] = (uint8_t)((self->uuid[8] & 0x3f) | 0x80); /* variant 1 */
    }
    mesh__uuid_to_hex(self->uuid, self->uuid_str);
    self->identity[0] = 0x01;
    memcpy(self->identity + 1, self->uuid, MESH_ZRE_UUID_SIZE);
    snprintf(self->name, sizeof self->name, "%s", c->name ? c->name : "");
    if (!c->name) {
        snprintf(self->name, sizeof self->name, "%.6s", self->uuid_str);
    }
    snprintf(self->iface_name, sizeof self->iface_name, "%s",
             c->iface ? c->iface : MESH_DEFAULT_IFACE);
    self->beacon_port = c->beacon_port ? c->beacon_port : MESH_DEFAULT_BEACON_PORT;
    self->beacon_off = c->beacon_off;
    self->inbox_port = c->inbox_port;
    self->beacon_interval_ms =
        c->beacon_interval_ms ? c->beacon_interval_ms : MESH_DEFAULT_BEACON_INTERVAL_MS;
    self->evasive_ms = c->evasive_ms ? c->evasive_ms : MESH_DEFAULT_EVASIVE_MS;
    self->expired_ms = c->expired_ms ? c->expired_ms : MESH_DEFAULT_EXPIRED_MS;
    self->reap_ms = c->reap_ms ? c->reap_ms : MESH_DEFAULT_REAP_MS;
    if (self->reap_ms > self->evasive_ms) {
        self->reap_ms = self->evasive_ms;
    }
    self->seed_retry_ms = c->seed_retry_ms ? c->seed_retry_ms : MESH_DEFAULT_SEED_RETRY_MS;
    if (self->evasive_ms >= self->expired_ms) {
        free(self); /* a peer must be PINGed before it is declared gone */
        return NULL;
    }
    self->sndhwm = c->sndhwm ? c->sndhwm : MESH_DEFAULT_SNDHWM;
    self->max_msg_size = c->max_msg_size ? c->max_msg_size : MESH_DEFAULT_MAX_MSG_SIZE;
    if (zmq_ctx) {
        self->ctx = zmq_ctx;
    } else {
        self->ctx = zmq_ctx_new();
        self->own_ctx = true;
        if (!self->ctx) {
            free(self);
            return NULL;
        }
    }
    if (mesh__zre_set_header(self, MESH_ZRE_HEADER_MESH, MESH_ZRE_MESH_VERSION) != 0) {
        mesh__zre_destroy(&self);
    }
    return self;
}

void mesh__zre_destroy(mesh__zre_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh__zre_t *self = *self_p;
    mesh__zre_stop(self);
    s_free_strv(&self->hkeys, self->nheaders);
    s_free_strv(&self->hvals, self->nheaders);
    s_free_strv(&self->groups, self->ngroups);
    free(self->seeds);
    free(self->peers);
    free(self->index);
    free(self->buf);
    if (self->own_ctx) {
        zmq_ctx_term(self->ctx);
    }
    free(self);
    *self_p = NULL;
}

void mesh__zre_set_handler(mesh__zre_t *self, mesh__zre_event_fn *fn, void *arg)
{
    self->handler = fn;
    self->handler_arg = arg;
}

static int s_strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (!nv) {
        return MESH_ERR_NOMEM;
    }
    *v = nv;
    if (!(nv[*n] = strdup(s))) {
        return MESH_ERR_NOMEM;
    }
    (*n)++;
    return 0;
}

int mesh__zre_set_header(mesh__zre_t *self, const char *key, const char *value)
{
    if (!key || !*key || !value) {
        return MESH_ERR_INVAL;
    }
    if (strlen(key) > MESH_ZRE_STRING_MAX || strlen(value) > MESH_ZRE_LONGSTR_MAX) {
        return MESH_ERR_TOOLONG;
    }
    if (self->started) {
        return MESH_ERR_STATE;
    }
    for (size_t i = 0; i < self->nheaders; i++) {
        if (strcmp(self->hkeys[i], key) == 0) {
            char *v = strdup(value);
            if (!v) {
                return MESH_ERR_NOMEM;
            }
            free(self->hvals[i]);
            self->hvals[i] = v;
            return 0;
        }
    }
    if (self->nheaders >= MESH_ZRE_HEADERS_MAX) {
        return MESH_ERR_TOOLONG;
    }
    size_t nk = self->nheaders, nv = self->nheaders;
    int rc = s_strv_push(&self->hkeys, &nk, key);
    if (rc == 0) {
        rc = s_strv_push(&self->hvals, &nv, value);
    }
    if (rc != 0) {
        if (nk > self->nheaders) {
            free(self->hkeys[self->nheaders]);
        }
        return rc;
    }
    self->nheaders++;
    return 0;
}

int mesh__zre_add_seed(mesh__zre_t *self, const char *endpoint)
{
    static const char prefix[] = "tcp://";
    if (!endpoint || strncmp(endpoint, prefix, sizeof prefix - 1) != 0 ||
        strlen(endpoint) >= S_ENDPOINT_MAX) {
        return MESH_ERR_INVAL;
    }
    char host[S_ENDPOINT_MAX];
    snprintf(host, sizeof host, "%s", endpoint + sizeof prefix - 1);
    char *colon = strrchr(host, ':');
    if (!colon || colon == host) {
        return MESH_ERR_INVAL;
    }
    *colon = '\0';
    const char *port_str = colon + 1;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port_str, &hints, &res) != 0 || !res) {
        return MESH_ERR_INVAL;
    }
    struct sockaddr_in *sa = (struct sockaddr_in *)res->ai_addr;
    struct in_addr addr = sa->sin_addr;
    uint16_t port = ntohs(sa->sin_port);
    freeaddrinfo(res);
    if (port == 0) {
        return MESH_ERR_INVAL;
    }
    s_seed_t *seeds = realloc(self->seeds, (self->nseeds + 1) * sizeof *seeds);
    if (!seeds) {
        return MESH_ERR_NOMEM;
    }
    self->seeds = seeds;
    s_seed_t *s = &seeds[self->nseeds++];
    memset(s, 0, sizeof *s);
    mesh__tcp_endpoint(s->endpoint, sizeof s->endpoint, addr, port);
    s->port = port;
    s->next_try = 0; /* at the next tick after start */
    s->retry_ms = self->seed_retry_ms;
    if (self->started) {
        self->next_seed = 0;
    }
    return 0;
}

int mesh__zre_start(mesh__zre_t *self, int64_t now)
{
    self->now = now;
    if (self->started) {
        return MESH_ERR_STATE;
    }
    int rc = mesh__iface_lookup(self->iface_name, &self->iface);
    if (rc != 0) {
        return rc;
    }
    self->inbox = zmq_socket(self->ctx, ZMQ_ROUTER);
    if (!self->inbox) {
        return MESH_ERR_SOCKET;
    }
    int one = 1, zero = 0;
    zmq_setsockopt(self->inbox, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    zmq_setsockopt(self->inbox, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(self->inbox, ZMQ_MAXMSGSIZE, &self->max_msg_size, sizeof self->max_msg_size);
    char bind_ep[S_ENDPOINT_MAX];
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &self->iface.addr, ip, sizeof ip);
    if (self->inbox_port) {
        snprintf(bind_ep, sizeof bind_ep, "tcp://%s:%u", ip, self->inbox_port);
    } else {
        snprintf(bind_ep, sizeof bind_ep, "tcp://%s:*", ip);
    }
    if (zmq_bind(self->inbox, bind_ep) != 0) {
        rc = errno == EADDRINUSE ? MESH_ERR_ADDRINUSE : MESH_ERR_SOCKET;
        zmq_close(self->inbox);
        self->inbox = NULL;
        return rc;
    }
    char last[S_ENDPOINT_MAX];
    size_t last_len = sizeof last;
    zmq_getsockopt(self->inbox, ZMQ_LAST_ENDPOINT, last, &last_len);
    const char *colon = strrchr(last, ':');
    self->inbox_port = (uint16_t)atoi(colon ? colon + 1 : "0");
    mesh__tcp_endpoint(self->endpoint, sizeof self->endpoint, self->iface.addr, self->inbox_port);
    if (!self->beacon_off) {
        int fd = mesh__udp_open(self->beacon_port);
        if (fd < 0) {
            zmq_close(self->inbox);
            self->inbox = NULL;
            return fd;
        }
        self->udp_fd = fd;
    }
    self->started = true;
    self->next_beacon = now;
    self->next_reap = now + self->reap_ms;
    self->next_seed = now;
    self->next_gossip = now + MESH_ZRE_GOSSIP_INTERVAL_MS;
    memcpy(&self->rng, self->uuid, sizeof self->rng);
    self->rng |= 1;
    s_log(self, "started %s at %s on %s", self->uuid_str, self->endpoint, self->iface.name);
    mesh__zre_on_tick(self, now);
    return 0;
}

void mesh__zre_stop(mesh__zre_t *self)
{
    if (!self->started || self->stopped) {
        return;
    }
    self->stopped = true;
    if (self->udp_fd >= 0) {
        s_send_beacon(self, 0); /* leaving */
        close(self->udp_fd);
        self->udp_fd = -1;
    }
    /* Mesh peers hear it at once even without beacons; let it drain briefly. */
    uint8_t bye[8];
    size_t bye_len = mesh__gossip_encode_bye(bye, sizeof bye);
    int linger = 200;
    for (size_t i = self->npeers; i-- > 0;) {
        mesh__zre_peer_t *peer = self->peers[i];
        if (peer->ready && peer->is_mesh) {
            uint8_t hdr[6];
            mesh__zre_encode_bare(hdr, sizeof hdr, MESH_ZRE_WHISPER, 0);
            if (s_send(self, peer, hdr, sizeof hdr, bye, bye_len, true) == 0) {
                zmq_setsockopt(peer->dealer, ZMQ_LINGER, &linger, sizeof linger);
            }
        }
        s_peer_remove(self, peer, "stopped");
    }
    for (size_t i = 0; i < self->nseeds; i++) {
        if (self->seeds[i].dealer) {
            zmq_close(self->seeds[i].dealer);
            self->seeds[i].dealer = NULL;
        }
    }
    if (self->inbox) {
        zmq_close(self->inbox);
        self->inbox = NULL;
    }
}

/* ------------------------------------------------------------------------ */
/* groups and sending */

static int s_group_change(mesh__zre_t *self, const char *group, bool join)
{
    if (!group || !*group) {
        return MESH_ERR_INVAL;
    }
    if (strlen(group) > MESH_ZRE_STRING_MAX) {
        return MESH_ERR_TOOLONG;
    }
    size_t at = 0;
    bool member = false;
    for (; at < self->ngroups; at++) {
        if (strcmp(self->groups[at], group) == 0) {
            member = true;
            break;
        }
    }
    if (member == join) {
        return 0; /* Zyre's rule: JOIN only if not a member, LEAVE only if one */
    }
    if (join) {
        int rc = s_strv_push(&self->groups, &self->ngroups, group);
        if (rc != 0) {
            return rc;
        }
    } else {
        free(self->groups[at]);
        self->groups[at] = self->groups[--self->ngroups];
    }
    self->status++; /* wraps 255 -> 0 as in Zyre */
    if (!self->started || self->stopped) {
        return 0;
    }
    uint8_t hdr[6 + 1 + MESH_ZRE_STRING_MAX + 1];
    size_t n = mesh__zre_encode_group(hdr, sizeof hdr, join ? MESH_ZRE_JOIN : MESH_ZRE_LEAVE, 0,
                                      group, self->status);
    for (size_t i = 0; i < self->npeers; i++) {
        s_send(self, self->peers[i], hdr, n, NULL, 0, false);
    }
    /* A seed that has our HELLO but has not answered must see the change
       too, in sequence: its connection becomes that peer's when it does. */
    for (size_t i = 0; i < self->nseeds; i++) {
        s_seed_t *sd = &self->seeds[i];
        uint16_t seq = (uint16_t)(sd->sent_seq + 1);
        hdr[4] = (uint8_t)(seq >> 8);
        hdr[5] = (uint8_t)seq;
        if (sd->dealer && sd->sent_seq && zmq_send(sd->dealer, hdr, n, ZMQ_DONTWAIT) >= 0) {
            sd->sent_seq = seq;
        }
    }
    return 0;
}

int mesh__zre_join(mesh__zre_t *self, const char *group)
{
    return s_group_change(self, group, true);
}

int mesh__zre_leave(mesh__zre_t *self, const char *group)
{
    return s_group_change(self, group, false);
}

int mesh__zre_whisper(mesh__zre_t *self, const uint8_t *uuid, const void *data, size_t size)
{
    if (!data || size == 0) {
        return MESH_ERR_INVAL;
    }
    mesh__zre_peer_t *peer = s_find(self, uuid);
    if (!peer || !peer->ready) {
        return MESH_ERR_NOTFOUND;
    }
    uint8_t hdr[6];
    mesh__zre_encode_bare(hdr, sizeof hdr, MESH_ZRE_WHISPER, 0);
    return s_send(self, peer, hdr, sizeof hdr, data, size, true);
}

int mesh__zre_shout(mesh__zre_t *self, const char *group, const void *data, size_t size)
{
    if (!data || size == 0 || !group) {
        return MESH_ERR_INVAL;
    }
    uint8_t hdr[6 + 1 + MESH_ZRE_STRING_MAX];
    size_t n = mesh__zre_encode_group(hdr, sizeof hdr, MESH_ZRE_SHOUT, 0, group, 0);
    if (n == 0) {
        return MESH_ERR_TOOLONG;
    }
    int rc = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        mesh__zre_peer_t *peer = self->peers[i];
        if (peer->ready && s_peer_has_group(peer, group, NULL)) {
            int r = s_send(self, peer, hdr, n, data, size, true);
            if (r != 0) {
                rc = r;
            }
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* accessors */

int mesh__zre_beacon_fd(const mesh__zre_t *self)
{
    return self->udp_fd;
}

void *mesh__zre_inbox(const mesh__zre_t *self)
{
    return self->inbox;
}

const uint8_t *mesh__zre_uuid(const mesh__zre_t *self)
{
    return self->uuid;
}

const char *mesh__zre_uuid_str(const mesh__zre_t *self)
{
    return self->uuid_str;
}

const char *mesh__zre_name(const mesh__zre_t *self)
{
    return self->name;
}

const char *mesh__zre_endpoint(const mesh__zre_t *self)
{
    return self->endpoint;
}

const mesh__zre_stats_t *mesh__zre_stats(const mesh__zre_t *self)
{
    return &self->stats;
}

bool mesh__zre_in_group(const mesh__zre_t *self, const char *group)
{
    for (size_t i = 0; i < self->ngroups; i++) {
        if (strcmp(self->groups[i], group) == 0) {
            return true;
        }
    }
    return false;
}

size_t mesh__zre_peer_count(const mesh__zre_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->npeers; i++) {
        n += self->peers[i]->ready;
    }
    return n;
}

const mesh__zre_peer_t *mesh__zre_peer_next(const mesh__zre_t *self, size_t *pos)
{
    while (*pos < self->npeers) {
        const mesh__zre_peer_t *p = self->peers[(*pos)++];
        if (p->ready) {
            return p;
        }
    }
    return NULL;
}

const mesh__zre_peer_t *mesh__zre_peer_find(const mesh__zre_t *self, const uint8_t *uuid)
{
    const mesh__zre_peer_t *p = s_find(self, uuid);
    return p && p->ready ? p : NULL;
}

const mesh__zre_peer_t *mesh__zre_peer_lookup(const mesh__zre_t *self, const char *id_or_name)
{
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    if (mesh__uuid_from_hex(id_or_name, uuid) == 0) {
        const mesh__zre_peer_t *p = mesh__zre_peer_find(self, uuid);
        if (p) {
            return p;
        }
    }
    for (size_t i = 0; i < self->npeers; i++) {
        if (self->peers[i]->ready && strcmp(self->peers[i]->name, id_or_name) == 0) {
            return self->peers[i];
        }
    }
    return NULL;
}

const uint8_t *mesh__zre_peer_uuid(const mesh__zre_peer_t *peer)
{
    return peer->uuid;
}

const char *mesh__zre_peer_uuid_str(const mesh__zre_peer_t *peer)
{
    return peer->uuid_str;
}

const char *mesh__zre_peer_name(const mesh__zre_peer_t *peer)
{
    return peer->name;
}

const char *mesh__zre_peer_endpoint(const mesh__zre_peer_t *peer)
{
    return peer->endpoint;
}

uint8_t mesh__zre_peer_status(const mesh__zre_peer_t *peer)
{
    return peer->status;
}

bool mesh__zre_peer_evasive(const mesh__zre_peer_t *peer)
{
    return peer->evasive;
}

bool mesh__zre_peer_is_mesh(const mesh__zre_peer_t *peer)
{
    return peer->is_mesh;
}

const char *mesh__zre_peer_header(const mesh__zre_peer_t *peer, const char *key)
{
    for (size_t i = 0; i < peer->nheaders; i++) {
        if (strcmp(peer->hkeys[i], key) == 0) {
            return peer->hvals[i];
        }
    }
    return NULL;
}

size_t mesh__zre_peer_header_count(const mesh__zre_peer_t *peer)
{
    return peer->nheaders;
}

void mesh__zre_peer_header_at(const mesh__zre_peer_t *peer, size_t i, const char **key,
                              const char **value)
{
    assert(i < peer->nheaders);
    *key = peer->hkeys[i];
    *value = peer->hvals[i];
}

size_t mesh__zre_peer_group_count(const mesh__zre_peer_t *peer)
{
    return peer->ngroups;
}

const char *mesh__zre_peer_group_at(const mesh__zre_peer_t *peer, size_t i)
{
    assert(i < peer->ngroups);
    return peer->groups[i];
}

bool mesh__zre_peer_in_group(const mesh__zre_peer_t *peer, const char *group)
{
    return s_peer_has_group(peer, group, NULL);
}
