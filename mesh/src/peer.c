/*  peer.c: the mesh peer. Glues the ZRE node (discovery, transport), the
    routing table (who offers what, how busy), the selectors and the
    envelope codec into the public API of <mesh/peer.h>. The only module
    that touches the event loop besides the reactor it drives.

    Every mesh peer joins the ZRE group "mesh:<realm>". A peer of the realm
    that also says X-MESH in its HELLO becomes a member of the routing table
    when it joins that group; we whisper it our services at once, shout our
    services when they change, and shout our status every ping interval.
    Requests and replies are whispered; a request to ourselves goes through
    a local queue so that no callback ever runs inside the call that asked
    for it.

    The ring (ring.h) is kept over the members of the routing table, self
    included, minus control peers (HELLO X-MESH-ROLE=ctl): membership, not
    liveness, so that peers with the same members compute the same ring. A
    counter bumped on every member added or removed tells when to rebuild
    it, at its next use. Its digest goes out in every STATUS; the digests
    members announce are kept per member (by UUID, in a sorted array) and
    compared with ours. */
#include <mesh/mesh.h>
#include <mesh/peer.h>

#include "codec.h"
#include "peer_internal.h"
#include "loopthread.h"
#include "once.h"
#include "reactor.h"
#include "ring.h"
#include "routing.h"
#include "zre.h"

#include <assert.h>
#include <ev.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define S_REALM_PREFIX "mesh:"

/* ------------------------------------------------------------------------ */
/* types */

typedef struct {
    char *path;
    mesh_handler_fn *fn;
    void *arg;
    char **tags;
    size_t ntags;
    mesh_active_fn *active;
    void *active_arg;
    bool offered; /* the active predicate held at the last check */
} s_service_t;

typedef struct {
    char *pattern;
    bool prefix;
    mesh_message_fn *cb;
    void *arg;
} s_sub_t;

typedef struct {
    char *name;
    mesh_selector_fn *fn;
    void *arg;
} s_selector_t;

typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    char id[33];
    char name[MESH_ZRE_STRING_MAX + 1];
    bool done;
    int status;
    uint8_t *data;
    size_t size;
    char *error;
} s_target_t;



typedef struct s_call {
    uint64_t id;
    bool fanout;
    char *path;    /* in buf */
    uint8_t *data; /* in buf, after the path */
    size_t size;
    uint8_t *buf;  /* path + payload, one allocation, reused from the pool */
    size_t buf_cap;
    mesh__sel_kind_t kind;
    char *key;
    uint8_t direct[MESH_ZRE_UUID_SIZE];
    char **tags;
    size_t ntags;
    mesh__custom_sel_fn *custom;
    void *custom_arg;
    bool idempotent;
    bool once;             /* a key was given with opts.once: REQUEST flag ONCE */
    uint32_t attempt_base; /* added to the attempt number the provider sees */
    uint32_t timeout_ms;
    int64_t deadline;
    unsigned attempt;
    uint8_t (*tried)[MESH_ZRE_UUID_SIZE]; /* members already asked: never again */
    size_t ntried;
    uint8_t tried_inline[MESH_CALL_TRIED_INLINE][MESH_ZRE_UUID_SIZE];
    s_target_t *targets; /* a call has one (the current, inline), a fan-out many */
    s_target_t one;
    struct s_call *pool_next;
    size_t ntargets;
    size_t nanswered;
    mesh_reply_fn *cb;
    mesh_gather_fn *gcb;
    void *arg;
    size_t heap_idx;
} s_call_t;

struct mesh_request {
    mesh_peer_t *peer;
    mesh__once_entry_t *once; /* the "once" ledger's entry this request runs for, or NULL */
    uint64_t id;
    uint32_t flags;
    unsigned attempt;
    uint8_t from[MESH_ZRE_UUID_SIZE];
    char from_id[33];
    char *from_name;
    char *path;
    char *key;
    uint8_t *data;
    size_t size;
    mesh_request_t *prev, *next; /* open requests, freed if the peer goes first */
};

/*  Envelopes for one member, gathered during a loop turn and sent as one
    frame (a BATCH) before the loop blocks: pipelined traffic pays the
    transport's per-message cost once per turn, lock-step traffic loses
    nothing (its one envelope goes out at the end of the same turn). */
typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    mesh__buf_t buf;
    size_t count;
} s_batch_t;

/*  What the ring needs to know of another member. */
typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    bool ctl;        /* its HELLO said X-MESH-ROLE=ctl: not on the ring */
    uint64_t digest; /* the ring digest of its last STATUS; 0: none yet */
    unsigned streak; /* STATUS in a row whose digest differed from ours */
} s_rinfo_t;

typedef struct s_local {
    uint8_t *bytes;
    size_t len;
    struct s_local *next;
} s_local_t;

struct mesh_peer {
    /* configuration (strings owned) */
    mesh_config_t cfg;
    char *name, *realm, *iface;
    char **seeds;
    char group[MESH_ZRE_STRING_MAX + 1]; /* "mesh:<realm>" */
    /* parts */
    mesh__zre_t *zre;
    mesh__routing_t *rt;
    mesh__member_t *self_member;
    struct ev_loop *loop;
    mesh__reactor_t *reactor;
    mesh__loopthread_t *thread; /* when running on a thread of its own */
    mesh__cmdq_t *cmdq;         /* mesh_peer_post on the caller's loop */
    ev_timer ping_timer;
    ev_timer deadline_timer;
    ev_idle local_idle;
    ev_idle pending_idle; /* a stop or destroy asked for inside a callback */
    pthread_t loop_thread; /* the thread that runs the loop (attach: the caller's) */
    int depth;            /* > 0 while a callback of ours runs on the loop */
    bool stop_pending, destroy_pending;
    bool closing;         /* stop or destroy under way: no more user callbacks */
    bool running, stopped;
    /* what we offer */
    s_service_t *services;
    size_t nservices;
    s_sub_t *subs;
    size_t nsubs;
    uint64_t services_version;
    s_selector_t *selectors;
    size_t nselectors;
    mesh_fitness_fn *fitness_fn;
    void *fitness_arg;
    /* calls in flight: id -> call (open addressing), and a deadline heap */
    s_call_t **calls;
    size_t calls_cap, ncalls;
    s_call_t **heap;
    size_t heap_len, heap_cap;
    s_call_t *pool; /* finished calls for reuse: the hot path allocates nothing */
    size_t npool;
    uint64_t next_id;
    /* requests being handled here */
    mesh_request_t *open;
    uint64_t inflight;
    /* "once" requests: the ledger (see the section "once" requests below) */
    mesh__once_t *once;
    /* envelopes to ourselves */
    s_local_t *local_head, *local_tail;
    /* scratch */
    mesh__buf_t out;
    mesh__svc_entry_t *svc_scratch;
    mesh__sub_entry_t *sub_scratch;
    mesh_stats_t stats;
    uint64_t pings;               /* status announcements sent */
    s_batch_t *batches;           /* per destination, this loop turn */
    size_t nbatches, batches_cap;
    ev_prepare flush_prepare;     /* sends the batches before the loop blocks */
    bool check_active;            /* a new predicate to ask on the next loop turn */
    mesh__zre_event_fn *observer; /* meshd's view of the ZRE layer */
    void *observer_arg;
    /* the ring */
    mesh__ring_t *ring;
    uint64_t members_gen; /* bumped on every member added or removed */
    uint64_t ring_gen;    /* the members_gen the ring was built for */
    bool ctl;             /* a control peer: not on any ring, its own included */
    s_rinfo_t *rinfo;     /* the other members, by UUID (memcmp order) */
    size_t nrinfo, rinfo_cap;
};

static int64_t s_now(void)
{
    return mesh__reactor_now(NULL);
}

static void s_debug(const mesh_peer_t *self, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_debug(const mesh_peer_t *self, const char *fmt, ...)
{
    if (!getenv("MESH_DEBUG")) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mesh %s: ", self->name ? self->name : "?");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *s_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *s_slice_dup(mesh__slice_t s)
{
    char *out = malloc(s.len + 1);
    if (out) {
        if (s.len) {
            memcpy(out, s.ptr, s.len);
        }
        out[s.len] = '\0';
    }
    return out;
}

static void s_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static char **s_strv_dup(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof *out);
    if (!out) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!v[i] || !(out[i] = strdup(v[i]))) {
            s_strv_free(out, i);
            return NULL;
        }
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* configuration */

void mesh_config_init(mesh_config_t *c)
{
    memset(c, 0, sizeof *c);
}

static bool s_tag_ok(const char *t)
{
    const char *eq = t ? strchr(t, '=') : NULL;
    return eq && eq != t && strlen(t) <= MESH_CODEC_TAG_MAX;
}

mesh_peer_t *mesh_peer_new(const mesh_config_t *config)
{
    mesh_config_t dflt;
    mesh_config_init(&dflt);
    const mesh_config_t *c = config ? config : &dflt;
    const char *realm = c->realm ? c->realm : MESH_DEFAULT_REALM;
    if (!*realm || strlen(realm) + strlen(S_REALM_PREFIX) > MESH_ZRE_STRING_MAX ||
        c->ping_interval_ms < 0 || c->ping_timeout_ms < 0 || c->call_timeout_ms < 0 ||
        c->max_attempts < 0 || (c->nseeds && !c->seeds)) {
        return NULL;
    }
    mesh_peer_t *self = calloc(1, sizeof *self);
    if (!self) {
        return NULL;
    }
    self->cfg = *c;
    self->name = s_strdup(c->name);
    self->realm = s_strdup(realm);
    self->iface = s_strdup(c->iface);
    self->seeds = c->nseeds ? s_strv_dup(c->seeds, c->nseeds) : NULL;
    snprintf(self->group, sizeof self->group, "%s%s", S_REALM_PREFIX, realm);
    self->cfg.ping_interval_ms = c->ping_interval_ms ? c->ping_interval_ms
                                                     : MESH_DEFAULT_PING_INTERVAL_MS;
    self->cfg.ping_timeout_ms = c->ping_timeout_ms
                                    ? c->ping_timeout_ms
                                    : self->cfg.ping_interval_ms * MESH_DEFAULT_PING_TIMEOUT_PINGS;
    self->cfg.call_timeout_ms = c->call_timeout_ms ? c->call_timeout_ms
                                                   : MESH_DEFAULT_CALL_TIMEOUT_MS;
    self->cfg.max_attempts = c->max_attempts ? c->max_attempts : MESH_DEFAULT_MAX_ATTEMPTS;
    mesh__zre_config_t zc = {.name = c->name,
                             .iface = c->iface,
                             .beacon_port = c->beacon_port,
                             .beacon_off = c->beacon_off,
                             .inbox_port = c->port,
                             .beacon_interval_ms = c->beacon_interval_ms,
                             .evasive_ms = c->evasive_ms,
                             .expired_ms = c->expired_ms};
    self->zre = mesh__zre_new(&zc, NULL);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != sizeof seed) {
        seed = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    }
    self->rt = self->zre ? mesh__routing_new(self->cfg.ping_timeout_ms, seed) : NULL;
    self->next_id = (seed >> 33) + 1;
    self->svc_scratch = calloc(MESH_CODEC_SERVICES_MAX, sizeof *self->svc_scratch);
    self->sub_scratch = calloc(MESH_CODEC_SUBS_MAX, sizeof *self->sub_scratch);
    self->ring = mesh__ring_new(MESH_RING_VNODES);
    self->members_gen = 1; /* the ring is built at its first use */
    mesh__once_config_t oc = {.entries_max = MESH_ONCE_ENTRIES_MAX,
                              .bytes_max = MESH_ONCE_BYTES_MAX,
                              .retention_ms = MESH_ONCE_RETENTION_MS};
    self->once = mesh__once_new(&oc);
    bool ok = self->realm && (!c->name || self->name) && (!c->iface || self->iface) &&
              (!c->nseeds || self->seeds) && self->zre && self->rt && self->svc_scratch &&
              self->sub_scratch && self->ring && self->once;
    for (size_t i = 0; ok && i < c->nseeds; i++) {
        ok = mesh__zre_add_seed(self->zre, self->seeds[i]) == 0;
    }
    ok = ok && mesh__zre_join(self->zre, self->group) == 0;
    if (!ok) {
        mesh_peer_destroy(&self);
        return NULL;
    }
    if (!self->name) {
        self->name = strdup(mesh__zre_name(self->zre));
    }
    self->self_member =
        mesh__routing_add(self->rt, mesh__zre_uuid(self->zre), self->name, true, s_now());
    return self;
}

/* ------------------------------------------------------------------------ */
/* sending envelopes */

static void s_local_queue(mesh_peer_t *self, const uint8_t *bytes, size_t len)
{
    s_local_t *l = malloc(sizeof *l);
    uint8_t *copy = malloc(len ? len : 1);
    if (!l || !copy) {
        free(l);
        free(copy);
        return;
    }
    memcpy(copy, bytes, len);
    l->bytes = copy;
    l->len = len;
    l->next = NULL;
    if (self->local_tail) {
        self->local_tail->next = l;
    } else {
        self->local_head = l;
    }
    self->local_tail = l;
    if (self->loop) {
        ev_idle_start(self->loop, &self->local_idle);
    }
}

/*  Sends the envelope in self->out to one member (ourselves included). */
static void s_flush_one(mesh_peer_t *self, s_batch_t *b)
{
    size_t len = 0;
    const uint8_t *frame = mesh__env_batch_finish(&b->buf, b->count, &len);
    int rc = frame ? mesh__zre_whisper(self->zre, b->uuid, frame, len) : MESH_ERR_NOMEM;
    if (rc != 0) {
        /* the member left, or its queue is full: its calls fail by peer
           loss or deadline, as if the network had lost them */
        self->stats.sends_dropped += b->count;
        s_debug(self, "dropped %zu envelopes: %s", b->count, mesh_strerror(rc));
    }
    b->count = 0;
}

static void s_flush(mesh_peer_t *self)
{
    for (size_t i = 0; i < self->nbatches; i++) {
        if (self->batches[i].count) {
            s_flush_one(self, &self->batches[i]);
        }
    }
    self->nbatches = 0;
    if (self->loop) {
        ev_prepare_stop(self->loop, &self->flush_prepare);
    }
}

static void s_on_flush(struct ev_loop *loop, ev_prepare *w, int revents)
{
    s_flush(w->data);
}

static s_batch_t *s_batch_for(mesh_peer_t *self, const uint8_t *uuid)
{
    for (size_t i = self->nbatches; i-- > 0;) {
        if (memcmp(self->batches[i].uuid, uuid, MESH_ZRE_UUID_SIZE) == 0) {
            return &self->batches[i];
        }
    }
    if (self->nbatches == self->batches_cap) {
        size_t cap = self->batches_cap ? self->batches_cap * 2 : 8;
        s_batch_t *b = realloc(self->batches, cap * sizeof *b);
        if (!b) {
            return NULL;
        }
        memset(b + self->batches_cap, 0, (cap - self->batches_cap) * sizeof *b);
        self->batches = b;
        self->batches_cap = cap;
    }
    s_batch_t *b = &self->batches[self->nbatches++];
    memcpy(b->uuid, uuid, MESH_ZRE_UUID_SIZE);
    b->count = 0;
    return b;
}

/*  Sends the envelope in self->out to one member (ourselves included):
    queued for this loop turn's batch to that member. */
static int s_send_to(mesh_peer_t *self, const uint8_t *uuid)
{
    if (self->out.failed) {
        return MESH_ERR_NOMEM;
    }
    if (memcmp(uuid, mesh__zre_uuid(self->zre), MESH_ZRE_UUID_SIZE) == 0) {
        s_local_queue(self, self->out.data, self->out.size);
        return 0;
    }
    if (!self->loop || !mesh__zre_peer_find(self->zre, uuid)) {
        return MESH_ERR_NOTFOUND;
    }
    s_batch_t *b = s_batch_for(self, uuid);
    if (!b) {
        return MESH_ERR_NOMEM;
    }
    if (b->count == 0) {
        mesh__env_batch_begin(&b->buf);
    }
    mesh__env_batch_add(&b->buf, self->out.data, self->out.size);
    if (b->buf.failed) {
        b->count = 0;
        return MESH_ERR_NOMEM;
    }
    b->count++;
    if (b->count >= MESH_BATCH_ENVELOPES_MAX || b->buf.size >= MESH_BATCH_BYTES_MAX) {
        s_flush_one(self, b);
    } else {
        ev_prepare_start(self->loop, &self->flush_prepare);
    }
    return 0;
}

static void s_encode_services(mesh_peer_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nservices && n < MESH_CODEC_SERVICES_MAX; i++) {
        s_service_t *s = &self->services[i];
        if (!s->offered) {
            continue;
        }
        mesh__svc_entry_t *e = &self->svc_scratch[n++];
        e->path = (mesh__slice_t){(const uint8_t *)s->path, strlen(s->path)};
        e->ntags = (uint32_t)s->ntags;
        for (size_t t = 0; t < s->ntags; t++) {
            e->tags[t] = (mesh__slice_t){(const uint8_t *)s->tags[t], strlen(s->tags[t])};
        }
        e->flags = 0;
    }
    size_t ns = 0;
    for (size_t i = 0; i < self->nsubs && ns < MESH_CODEC_SUBS_MAX; i++) {
        self->sub_scratch[ns].pattern =
            (mesh__slice_t){(const uint8_t *)self->subs[i].pattern, strlen(self->subs[i].pattern)};
        self->sub_scratch[ns++].prefix = self->subs[i].prefix;
    }
    mesh__buf_clear(&self->out);
    mesh__env_encode_services(&self->out, self->services_version, self->svc_scratch, n,
                              self->sub_scratch, ns);
    /* our own routing entry follows the same list */
    mesh__routing_set_services(self->rt, self->self_member, self->services_version,
                               self->svc_scratch, n, self->sub_scratch, ns, s_now());
}

/*  Our services (and subscriptions) changed: a new version to everyone. */
static void s_services_changed(mesh_peer_t *self)
{
    self->services_version++;
    s_encode_services(self);
    if (self->running && !self->stopped && !self->out.failed) {
        mesh__zre_shout(self->zre, self->group, self->out.data, self->out.size);
    }
}

static double s_load(const mesh_peer_t *self)
{
    /* load = requests being handled here + the host's 1-minute run queue
       per CPU (so a busy machine weighs in even when this peer is idle) */
    double avg[1] = {0};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (getloadavg(avg, 1) != 1 || ncpu < 1) {
        avg[0] = 0;
        ncpu = 1;
    }
    return (double)self->inflight + avg[0] / (double)ncpu;
}

static void s_check_active(mesh_peer_t *self)
{
    bool changed = false;
    for (size_t i = 0; i < self->nservices; i++) {
        s_service_t *s = &self->services[i];
        bool on = !s->active || s->active(self, s->active_arg);
        if (on != s->offered) {
            s->offered = on;
            changed = true;
        }
    }
    if (changed) {
        s_services_changed(self);
    }
}

static void s_member_lost(mesh_peer_t *self, const uint8_t *uuid);

/*  A provider silent past the ping timeout is out of dispatch; calls that
    wait on it fail with PEERLOST (or move on when idempotent) instead of
    waiting for its ZRE expiry, which may come long after their deadline. */
static void s_drop_silent_targets(mesh_peer_t *self, int64_t now)
{
    if (self->ncalls == 0) {
        return;
    }
    size_t pos = 0;
    mesh__member_t *m;
    while ((m = mesh__routing_next(self->rt, &pos))) {
        if (!mesh__member_alive(self->rt, m, now)) {
            uint8_t uuid[MESH_ZRE_UUID_SIZE];
            memcpy(uuid, mesh__member_uuid(m), sizeof uuid);
            s_member_lost(self, uuid);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the ring */

/*  The index of uuid in rinfo (*found), or where it would go. */
static size_t s_rinfo_pos(const mesh_peer_t *self, const uint8_t *uuid, bool *found)
{
    size_t lo = 0, hi = self->nrinfo;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(self->rinfo[mid].uuid, uuid, MESH_ZRE_UUID_SIZE);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static s_rinfo_t *s_rinfo_find(const mesh_peer_t *self, const uint8_t *uuid)
{
    bool found;
    size_t i = s_rinfo_pos(self, uuid, &found);
    return found ? &self->rinfo[i] : NULL;
}

/*  A member joined the table (new, or known already: its role may change
    with a new HELLO). ctl: its HELLO said X-MESH-ROLE=ctl. */
static void s_ring_member_added(mesh_peer_t *self, const uint8_t *uuid, bool ctl, bool is_new)
{
    bool found;
    size_t i = s_rinfo_pos(self, uuid, &found);
    if (!found) {
        if (self->nrinfo == self->rinfo_cap) {
            size_t cap = self->rinfo_cap ? self->rinfo_cap * 2 : 16;
            s_rinfo_t *r = realloc(self->rinfo, cap * sizeof *r);
            if (!r) {
                /* it is still on the ring (a member not known here is); its
                   digest is not followed */
                s_debug(self, "out of memory: the ring digest of a member is not followed");
                self->members_gen++;
                return;
            }
            self->rinfo = r;
            self->rinfo_cap = cap;
        }
        memmove(&self->rinfo[i + 1], &self->rinfo[i], (self->nrinfo - i) * sizeof *self->rinfo);
        self->nrinfo++;
        memset(&self->rinfo[i], 0, sizeof self->rinfo[i]);
        memcpy(self->rinfo[i].uuid, uuid, MESH_ZRE_UUID_SIZE);
    }
    s_rinfo_t *r = &self->rinfo[i];
    if (is_new || !found || r->ctl != ctl) {
        self->members_gen++;
    }
    r->ctl = ctl;
}

static void s_ring_member_removed(mesh_peer_t *self, const uint8_t *uuid)
{
    bool found;
    size_t i = s_rinfo_pos(self, uuid, &found);
    if (found) {
        memmove(&self->rinfo[i], &self->rinfo[i + 1], (self->nrinfo - i - 1) * sizeof *self->rinfo);
        self->nrinfo--;
    }
    self->members_gen++;
}

/*  The ring, rebuilt first if the membership changed since it was built.
    Out of memory, the previous ring stays, and the rebuild is tried again
    at the next use. */
static const mesh__ring_t *s_ring(mesh_peer_t *self)
{
    if (self->ring_gen == self->members_gen) {
        return self->ring;
    }
    size_t n = mesh__routing_count(self->rt), k = 0;
    uint8_t(*uuids)[MESH_ZRE_UUID_SIZE] = malloc((n ? n : 1) * sizeof *uuids);
    if (!uuids) {
        return self->ring;
    }
    size_t pos = 0;
    mesh__member_t *m;
    while ((m = mesh__routing_next(self->rt, &pos)) && k < n) {
        const uint8_t *uuid = mesh__member_uuid(m);
        const s_rinfo_t *r = mesh__member_is_self(m) ? NULL : s_rinfo_find(self, uuid);
        if (mesh__member_is_self(m) ? self->ctl : (r && r->ctl)) {
            continue; /* control peers are never on the ring */
        }
        memcpy(uuids[k++], uuid, MESH_ZRE_UUID_SIZE);
    }
    if (mesh__ring_set_members(self->ring, (const uint8_t(*)[MESH_ZRE_UUID_SIZE])uuids, k) == 0) {
        self->ring_gen = self->members_gen;
    } else {
        s_debug(self, "cannot rebuild the ring of %zu members: kept the previous one", k);
    }
    free(uuids);
    return self->ring;
}

/*  A member's STATUS carried digest: note it, and count the member's turn
    from agreeing to disagreeing once it has lasted MESH_RING_MISMATCH_STATUS
    STATUS (a join or leave reaches peers a few ms apart: a STATUS sent in
    between is a blip, not a divergence). 0: the sender keeps no ring. */
static void s_ring_on_status(mesh_peer_t *self, const mesh__member_t *from, uint64_t digest)
{
    if (digest == 0 || mesh__member_is_self(from)) {
        return;
    }
    s_rinfo_t *r = s_rinfo_find(self, mesh__member_uuid(from));
    if (!r) {
        return;
    }
    r->digest = digest;
    if (digest == mesh__ring_digest(s_ring(self))) {
        r->streak = 0;
        return;
    }
    if (r->ctl || r->streak >= MESH_RING_MISMATCH_STATUS) {
        return; /* control peers are not on the ring: their view is theirs */
    }
    if (++r->streak == MESH_RING_MISMATCH_STATUS) {
        self->stats.ring_mismatches++;
        s_debug(self, "%s announces ring digest %016llx, ours is %016llx", mesh__member_name(from),
                (unsigned long long)digest, (unsigned long long)mesh__ring_digest(self->ring));
    }
}

static void s_ping(mesh_peer_t *self)
{
    s_drop_silent_targets(self, s_now());
    mesh__once_purge(self->once, s_now());
    s_check_active(self);
    double load = s_load(self);
    double fitness = 0;
    bool has_fitness = self->fitness_fn != NULL;
    if (has_fitness) {
        fitness = self->fitness_fn(self, self->fitness_arg);
    }
    mesh__routing_set_status(self->rt, self->self_member, load, has_fitness ? &fitness : NULL,
                             self->services_version, self->inflight, s_now());
    mesh__buf_clear(&self->out);
    mesh__env_encode_status(&self->out, load, has_fitness ? &fitness : NULL, self->services_version,
                            mesh__ring_digest(s_ring(self)), self->inflight);
    if (!self->out.failed) {
        mesh__zre_shout(self->zre, self->group, self->out.data, self->out.size);
    }
    /* SERVICES goes out on every change; a copy lost on the way (a full
       queue) would leave a member with a stale list until the next change,
       so it is repeated now and then. Receivers ignore versions they hold. */
    if (++self->pings % MESH_SERVICES_REFRESH_PINGS == 0) {
        s_encode_services(self);
        if (!self->out.failed) {
            mesh__zre_shout(self->zre, self->group, self->out.data, self->out.size);
        }
    }
}

static void s_on_ping_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    mesh_peer_t *self = w->data;
    if (self->closing) {
        return;
    }
    self->depth++;
    s_ping(self);
    self->depth--;
}

/* ------------------------------------------------------------------------ */
/* calls in flight: the id map and the deadline heap */

static size_t s_id_hash(uint64_t id, size_t cap)
{
    id ^= id >> 31;
    id *= 0x7fb5d329728ea185ull;
    id ^= id >> 27;
    return (size_t)id & (cap - 1);
}

static bool s_calls_grow(mesh_peer_t *self)
{
    size_t cap = self->calls_cap ? self->calls_cap * 2 : 64;
    s_call_t **t = calloc(cap, sizeof *t);
    if (!t) {
        return false;
    }
    for (size_t i = 0; i < self->calls_cap; i++) {
        s_call_t *c = self->calls[i];
        if (c) {
            size_t j = s_id_hash(c->id, cap);
            while (t[j]) {
                j = (j + 1) & (cap - 1);
            }
            t[j] = c;
        }
    }
    free(self->calls);
    self->calls = t;
    self->calls_cap = cap;
    return true;
}

static s_call_t *s_call_find(const mesh_peer_t *self, uint64_t id)
{
    if (!self->calls_cap) {
        return NULL;
    }
    for (size_t j = s_id_hash(id, self->calls_cap); self->calls[j];
         j = (j + 1) & (self->calls_cap - 1)) {
        if (self->calls[j]->id == id) {
            return self->calls[j];
        }
    }
    return NULL;
}

static void s_call_unmap(mesh_peer_t *self, const s_call_t *call)
{
    size_t mask = self->calls_cap - 1;
    size_t j = s_id_hash(call->id, self->calls_cap);
    while (self->calls[j] != call) {
        j = (j + 1) & mask;
    }
    self->calls[j] = NULL;
    for (size_t k = (j + 1) & mask; self->calls[k]; k = (k + 1) & mask) {
        size_t home = s_id_hash(self->calls[k]->id, self->calls_cap);
        bool between = j <= k ? (home > j && home <= k) : (home > j || home <= k);
        if (!between) {
            self->calls[j] = self->calls[k];
            self->calls[k] = NULL;
            j = k;
        }
    }
    self->ncalls--;
}

static void s_heap_swap(mesh_peer_t *self, size_t a, size_t b)
{
    s_call_t *t = self->heap[a];
    self->heap[a] = self->heap[b];
    self->heap[b] = t;
    self->heap[a]->heap_idx = a;
    self->heap[b]->heap_idx = b;
}

static void s_heap_up(mesh_peer_t *self, size_t i)
{
    while (i > 0 && self->heap[(i - 1) / 2]->deadline > self->heap[i]->deadline) {
        s_heap_swap(self, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void s_heap_down(mesh_peer_t *self, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < self->heap_len && self->heap[l]->deadline < self->heap[m]->deadline) {
            m = l;
        }
        if (r < self->heap_len && self->heap[r]->deadline < self->heap[m]->deadline) {
            m = r;
        }
        if (m == i) {
            return;
        }
        s_heap_swap(self, i, m);
        i = m;
    }
}

static void s_heap_remove(mesh_peer_t *self, s_call_t *call)
{
    size_t i = call->heap_idx;
    self->heap_len--;
    if (i != self->heap_len) {
        self->heap[i] = self->heap[self->heap_len];
        self->heap[i]->heap_idx = i;
        s_heap_down(self, i);
        s_heap_up(self, i);
    }
}

static void s_arm_deadline(mesh_peer_t *self)
{
    if (!self->loop) {
        return;
    }
    ev_timer_stop(self->loop, &self->deadline_timer);
    if (self->heap_len) {
        int64_t wait = self->heap[0]->deadline - s_now();
        ev_timer_set(&self->deadline_timer, wait > 0 ? (double)wait / 1000.0 : 0.0, 0.0);
        ev_timer_start(self->loop, &self->deadline_timer);
    }
}

static int s_call_track(mesh_peer_t *self, s_call_t *call)
{
    if ((self->ncalls + 1) * 2 > self->calls_cap && !s_calls_grow(self)) {
        return MESH_ERR_NOMEM;
    }
    if (self->heap_len == self->heap_cap) {
        size_t cap = self->heap_cap ? self->heap_cap * 2 : 64;
        s_call_t **h = realloc(self->heap, cap * sizeof *h);
        if (!h) {
            return MESH_ERR_NOMEM;
        }
        self->heap = h;
        self->heap_cap = cap;
    }
    size_t j = s_id_hash(call->id, self->calls_cap);
    while (self->calls[j]) {
        j = (j + 1) & (self->calls_cap - 1);
    }
    self->calls[j] = call;
    self->ncalls++;
    call->heap_idx = self->heap_len;
    self->heap[self->heap_len++] = call;
    s_heap_up(self, call->heap_idx);
    if (call->heap_idx == 0) {
        s_arm_deadline(self);
    }
    return 0;
}

static void s_targets_free(s_call_t *call)
{
    for (size_t i = 0; i < call->ntargets; i++) {
        free(call->targets[i].data);
        free(call->targets[i].error);
    }
    if (call->targets != &call->one) {
        free(call->targets);
    }
    call->targets = NULL;
    call->ntargets = 0;
}

/*  Frees what a call owns, and the call itself unless the pool takes it. */
static void s_call_free(mesh_peer_t *self, s_call_t *call)
{
    free(call->key);
    s_strv_free(call->tags, call->ntags);
    if (call->tried != call->tried_inline) {
        free(call->tried);
    }
    s_targets_free(call);
    if (self && self->npool < MESH_CALL_POOL_MAX && call->buf_cap <= MESH_CALL_POOL_BUF_MAX) {
        uint8_t *buf = call->buf;
        size_t cap = call->buf_cap;
        memset(call, 0, sizeof *call);
        call->buf = buf;
        call->buf_cap = cap;
        call->pool_next = self->pool;
        self->pool = call;
        self->npool++;
        return;
    }
    free(call->buf);
    free(call);
}

/*  Finishes a call: untrack, run the callback once, free. */
static void s_call_finish(mesh_peer_t *self, s_call_t *call, int status, const void *data,
                          size_t size, const char *error)
{
    s_call_unmap(self, call);
    bool was_first = call->heap_idx == 0;
    s_heap_remove(self, call);
    if (was_first) {
        s_arm_deadline(self);
    }
    if (status != 0) {
        self->stats.errors_out++;
    }
    if (call->fanout) {
        size_t nrep = 0, nmiss = 0;
        mesh_reply_t *replies = calloc(call->ntargets ? call->ntargets : 1, sizeof *replies);
        const char **mids = calloc(call->ntargets ? call->ntargets : 1, sizeof *mids);
        const char **mnames = calloc(call->ntargets ? call->ntargets : 1, sizeof *mnames);
        if (replies && mids && mnames) {
            for (size_t i = 0; i < call->ntargets; i++) {
                s_target_t *t = &call->targets[i];
                if (t->done) {
                    replies[nrep++] = (mesh_reply_t){t->status, t->data, t->size, t->error, t->id,
                                                     t->name};
                } else {
                    mids[nmiss] = t->id;
                    mnames[nmiss++] = t->name;
                }
            }
        }
        mesh_gather_t g = {replies, nrep, mids, mnames, nmiss};
        call->gcb(self, &g, call->arg);
        free(replies);
        free(mids);
        free(mnames);
    } else {
        s_target_t *t = call->ntargets ? &call->targets[0] : NULL;
        mesh_reply_t r = {status, data, size, error, t ? t->id : NULL, t ? t->name : NULL};
        call->cb(self, &r, call->arg);
    }
    s_call_free(self, call);
}

/* ------------------------------------------------------------------------ */
/* choosing and sending */

static s_selector_t *s_selector_find(mesh_peer_t *self, const char *name)
{
    for (size_t i = 0; i < self->nselectors; i++) {
        if (strcmp(self->selectors[i].name, name) == 0) {
            return &self->selectors[i];
        }
    }
    return NULL;
}

static const mesh__member_t *s_member_by_id_or_name(mesh_peer_t *self, const char *who)
{
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    if (mesh__uuid_from_hex(who, uuid) == 0) {
        mesh__member_t *m = mesh__routing_find(self->rt, uuid);
        if (m) {
            return m;
        }
    }
    size_t pos = 0;
    mesh__member_t *m;
    while ((m = mesh__routing_next(self->rt, &pos))) {
        if (strcmp(mesh__member_name(m), who) == 0) {
            return m;
        }
    }
    return NULL;
}

/*  Public custom selectors see mesh_candidate_t, which has the same layout
    as the internal candidate; this adapter keeps the two decoupled. */
static int s_custom_adapter(const mesh__candidate_t *cands, size_t n, const char *key, void *arg)
{
    s_selector_t *sel = arg;
    mesh_candidate_t *pub = calloc(n ? n : 1, sizeof *pub);
    if (!pub) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        pub[i] = (mesh_candidate_t){cands[i].id,          cands[i].name,    cands[i].load,
                                    cands[i].fitness,     cands[i].has_fitness,
                                    cands[i].inflight,    cands[i].tags,    cands[i].ntags};
    }
    int rc = sel->fn(pub, n, key, sel->arg);
    free(pub);
    return rc;
}

/*  Fills the selection for a call from its options. */
static int s_call_options(mesh_peer_t *self, s_call_t *call, const mesh_call_opts_t *opts,
                          bool allow_all)
{
    call->kind = MESH_SEL_LEAST_LOADED;
    call->timeout_ms = (uint32_t)self->cfg.call_timeout_ms;
    if (!opts) {
        return 0;
    }
    if (opts->timeout_ms < 0 || (opts->ntags && !opts->tags)) {
        return MESH_ERR_INVAL;
    }
    if (opts->timeout_ms > 0) {
        call->timeout_ms = (uint32_t)opts->timeout_ms;
    }
    call->idempotent = opts->idempotent;
    call->attempt_base = opts->attempt_base;
    if (opts->selector) {
        int kind = mesh__select_kind_from_name(opts->selector);
        if (kind < 0) {
            s_selector_t *sel = s_selector_find(self, opts->selector);
            if (!sel) {
                return MESH_ERR_INVAL;
            }
            call->kind = MESH_SEL_CUSTOM;
            call->custom = s_custom_adapter;
            call->custom_arg = sel;
        } else {
            call->kind = (mesh__sel_kind_t)kind;
        }
    }
    if (call->kind == MESH_SEL_ALL && !allow_all) {
        return MESH_ERR_INVAL;
    }
    if (call->kind == MESH_SEL_KEY && !opts->key) {
        return MESH_ERR_INVAL;
    }
    if (opts->key && strlen(opts->key) > MESH_CODEC_KEY_MAX) {
        return MESH_ERR_TOOLONG;
    }
    if (opts->key && !(call->key = strdup(opts->key))) {
        return MESH_ERR_NOMEM;
    }
    call->once = opts->once && opts->key; /* only calls send it (s_call_dispatch) */
    if (call->kind == MESH_SEL_DIRECT) {
        if (!opts->peer) {
            return MESH_ERR_INVAL;
        }
        const mesh__member_t *m = s_member_by_id_or_name(self, opts->peer);
        if (!m) {
            return MESH_ERR_NOPROVIDER;
        }
        memcpy(call->direct, mesh__member_uuid(m), MESH_ZRE_UUID_SIZE);
    }
    if (opts->ntags) {
        for (size_t i = 0; i < opts->ntags; i++) {
            if (!s_tag_ok(opts->tags[i])) {
                return MESH_ERR_INVAL;
            }
        }
        call->tags = s_strv_dup(opts->tags, opts->ntags);
        if (!call->tags) {
            return MESH_ERR_NOMEM;
        }
        call->ntags = opts->ntags;
    }
    return 0;
}

static void s_selection(mesh_peer_t *self, const s_call_t *call, mesh__select_t *sel,
                        const mesh__member_t **exclude)
{
    size_t nex = 0;
    for (size_t i = 0; i < call->ntried; i++) {
        const mesh__member_t *m = mesh__routing_find(self->rt, call->tried[i]);
        if (m) {
            exclude[nex++] = m;
        }
    }
    *sel = (mesh__select_t){.kind = call->kind,
                            .key = call->key,
                            .direct = call->kind == MESH_SEL_DIRECT ? call->direct : NULL,
                            .tags = (const char *const *)call->tags,
                            .ntags = call->ntags,
                            .exclude = exclude,
                            .nexclude = nex,
                            .custom = call->custom,
                            .custom_arg = call->custom_arg};
}

static void s_target_set(s_target_t *t, const mesh__member_t *m)
{
    memcpy(t->uuid, mesh__member_uuid(m), MESH_ZRE_UUID_SIZE);
    memcpy(t->id, mesh__member_uuid_str(m), sizeof t->id);
    const char *name = mesh__member_name(m);
    size_t len = strnlen(name, sizeof t->name - 1);
    memcpy(t->name, name, len);
    t->name[len] = '\0';
}

/*  Sends the call's next attempt to a newly selected candidate. Returns 0,
    or MESH_ERR_NOPROVIDER when nobody is left to try. */
static bool s_tried_push(s_call_t *call, const uint8_t *uuid)
{
    if (!call->tried) {
        call->tried = call->tried_inline;
    }
    if (call->ntried >= MESH_CALL_TRIED_INLINE) {
        uint8_t(*t)[MESH_ZRE_UUID_SIZE] =
            call->tried == call->tried_inline ? malloc((call->ntried + 1) * sizeof *t)
                                              : realloc(call->tried, (call->ntried + 1) * sizeof *t);
        if (!t) {
            return false;
        }
        if (call->tried == call->tried_inline) {
            memcpy(t, call->tried_inline, sizeof call->tried_inline);
        }
        call->tried = t;
    }
    memcpy(call->tried[call->ntried++], uuid, MESH_ZRE_UUID_SIZE);
    return true;
}

/*  Runs the call's selector once over the candidates not tried yet: 0 (the
    choice in *member), MESH_ERR_NOPROVIDER, or MESH_ERR_NOMEM. Sends nothing. */
static int s_call_select(mesh_peer_t *self, const s_call_t *call, int64_t now,
                         const mesh__member_t **member)
{
    const mesh__member_t *stack[MESH_CALL_TRIED_INLINE + 1];
    const mesh__member_t **exclude = call->ntried < MESH_CALL_TRIED_INLINE
                                         ? stack
                                         : malloc((call->ntried + 1) * sizeof *exclude);
    if (!exclude) {
        return MESH_ERR_NOMEM;
    }
    mesh__select_t sel;
    s_selection(self, call, &sel, exclude);
    const mesh__route_t *route = mesh__select_one(self->rt, call->path, &sel, now);
    if (exclude != stack) {
        free(exclude);
    }
    *member = route ? route->member : NULL;
    return route ? 0 : MESH_ERR_NOPROVIDER;
}

static int s_call_dispatch(mesh_peer_t *self, s_call_t *call, int64_t now)
{
    for (;;) {
        const mesh__member_t *m;
        int rc = s_call_select(self, call, now, &m);
        if (rc != 0) {
            return rc;
        }
        if (!s_tried_push(call, mesh__member_uuid(m))) {
            return MESH_ERR_NOMEM;
        }
        s_target_set(&call->targets[0], m);
        int64_t left = call->deadline - now;
        uint32_t flags = MESH_REQ_CALL | (call->idempotent ? MESH_REQ_IDEMPOTENT : 0) |
                         (call->once ? MESH_REQ_ONCE : 0);
        mesh__buf_clear(&self->out);
        mesh__env_encode_request(&self->out, call->id, flags, call->path,
                                 left > 0 ? (uint32_t)left : 1, call->key,
                                 call->attempt_base + call->attempt + 1, call->data, call->size);
        if (self->out.failed) {
            return MESH_ERR_NOMEM;
        }
        rc = s_send_to(self, mesh__member_uuid(m));
        if (rc == 0) {
            call->attempt++; /* attempts count requests that went out */
            self->stats.requests_out++;
            return 0;
        }
        self->stats.sends_dropped++;
        /* this one cannot take it (queue full, just left): try the next */
        s_debug(self, "request %llu to %s failed: %s", (unsigned long long)call->id,
                mesh__member_name(m), mesh_strerror(rc));
    }
}

static s_call_t *s_call_new(mesh_peer_t *self, const char *path, const void *data, size_t size)
{
    s_call_t *call = self->pool;
    if (call) {
        self->pool = call->pool_next;
        self->npool--;
        call->pool_next = NULL;
    } else if (!(call = calloc(1, sizeof *call))) {
        return NULL;
    }
    size_t plen = strlen(path);
    size_t need = plen + 1 + size;
    if (need > call->buf_cap) {
        uint8_t *b = realloc(call->buf, need);
        if (!b) {
            s_call_free(NULL, call);
            return NULL;
        }
        call->buf = b;
        call->buf_cap = need;
    }
    call->id = self->next_id++;
    call->path = (char *)call->buf;
    memcpy(call->path, path, plen + 1);
    call->data = call->buf + plen + 1;
    call->size = size;
    if (size) {
        memcpy(call->data, data, size);
    }
    return call;
}

static int s_check_payload(size_t size)
{
    return size > MESH_PAYLOAD_MAX ? MESH_ERR_TOOLONG : 0;
}

static int s_check_path(const char *path)
{
    if (!path || path[0] != '/') {
        return MESH_ERR_INVAL;
    }
    return strlen(path) > MESH_CODEC_PATH_MAX ? MESH_ERR_TOOLONG : 0;
}

/*  The checks every request entry point (call, cast, fan-out) makes, in
    order: arguments, then state. needs_cb: a completion callback is required. */
static int s_check_request(const mesh_peer_t *self, const char *path, const void *data,
                           size_t size, bool has_cb, bool needs_cb)
{
    int rc = s_check_path(path);
    rc = rc ? rc : s_check_payload(size);
    if (rc != 0 || (needs_cb && !has_cb) || (size && !data)) {
        return rc ? rc : MESH_ERR_INVAL;
    }
    if (!self->running || self->stopped || self->closing) {
        return MESH_ERR_STATE;
    }
    return 0;
}

int mesh_peer_call(mesh_peer_t *self, const char *path, const void *data, size_t size,
                   const mesh_call_opts_t *opts, mesh_reply_fn *cb, void *arg)
{
    int rc = s_check_request(self, path, data, size, cb != NULL, true);
    if (rc != 0) {
        return rc;
    }
    s_call_t *call = s_call_new(self, path, data, size);
    if (!call) {
        return MESH_ERR_NOMEM;
    }
    call->cb = cb;
    call->arg = arg;
    call->targets = &call->one;
    call->ntargets = 1;
    rc = s_call_options(self, call, opts, false);
    if (rc == 0) {
        int64_t now = s_now();
        call->deadline = now + call->timeout_ms;
        rc = s_call_dispatch(self, call, now);
    }
    if (rc == 0) {
        rc = s_call_track(self, call);
    }
    if (rc != 0) {
        s_call_free(self, call);
        return rc;
    }
    return 0;
}

/*  Frees what s_call_options put in a call that lives on the stack. */
static void s_call_options_clear(s_call_t *call)
{
    free(call->key);
    s_strv_free(call->tags, call->ntags);
}

int mesh_peer_pick(mesh_peer_t *self, const char *path, const mesh_call_opts_t *opts, char *id_out)
{
    /* id_out is required as a call's callback is: an argument error first */
    int rc = s_check_request(self, path, NULL, 0, id_out != NULL, true);
    if (rc != 0) {
        return rc;
    }
    /* a call's first attempt, up to the send */
    s_call_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.path = (char *)path;
    rc = s_call_options(self, &tmp, opts, false);
    const mesh__member_t *m = NULL;
    if (rc == 0) {
        rc = s_call_select(self, &tmp, s_now(), &m);
    }
    if (rc == 0) {
        memcpy(id_out, mesh__member_uuid_str(m), 2 * MESH_ZRE_UUID_SIZE + 1);
    }
    s_call_options_clear(&tmp);
    return rc;
}

int mesh_peer_cast(mesh_peer_t *self, const char *path, const void *data, size_t size,
                   const mesh_call_opts_t *opts)
{
    int rc = s_check_request(self, path, data, size, false, false);
    if (rc != 0) {
        return rc;
    }
    s_call_t tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.path = (char *)path;
    rc = s_call_options(self, &tmp, opts, true);
    const mesh__member_t *exclude[1];
    mesh__select_t sel;
    s_selection(self, &tmp, &sel, exclude);
    const mesh__route_t *one = NULL;
    const mesh__route_t **all = NULL;
    size_t n = 0;
    if (rc == 0 && tmp.kind == MESH_SEL_ALL) {
        size_t count = mesh__select_all(self->rt, path, &sel, s_now(), NULL, 0);
        all = calloc(count ? count : 1, sizeof *all);
        n = all ? mesh__select_all(self->rt, path, &sel, s_now(), all, count) : 0;
        n = n > count ? count : n;
    } else if (rc == 0 && (one = mesh__select_one(self->rt, path, &sel, s_now()))) {
        all = &one;
        n = 1;
    }
    if (rc == 0 && n == 0) {
        rc = MESH_ERR_NOPROVIDER;
    }
    if (rc == 0) {
        mesh__buf_clear(&self->out);
        mesh__env_encode_request(&self->out, self->next_id++, 0, path, tmp.timeout_ms, tmp.key,
                                 1, data, size);
        size_t sent = 0;
        for (size_t i = 0; i < n; i++) {
            if (s_send_to(self, mesh__member_uuid(all[i]->member)) == 0) {
                self->stats.casts_out++;
                sent++;
            } else {
                self->stats.sends_dropped++;
            }
        }
        rc = sent ? 0 : MESH_ERR_AGAIN; /* every chosen peer's queue was full */
    }
    if (all != &one) {
        free(all);
    }
    s_call_options_clear(&tmp);
    return rc;
}

int mesh_peer_fanout(mesh_peer_t *self, const char *path, const void *data, size_t size,
                     const mesh_call_opts_t *opts, mesh_gather_fn *cb, void *arg)
{
    int rc = s_check_request(self, path, data, size, cb != NULL, true);
    if (rc != 0) {
        return rc;
    }
    s_call_t *call = s_call_new(self, path, data, size);
    if (!call) {
        return MESH_ERR_NOMEM;
    }
    call->fanout = true;
    call->gcb = cb;
    call->arg = arg;
    rc = s_call_options(self, call, opts, true);
    call->kind = MESH_SEL_ALL;
    const mesh__route_t **all = NULL;
    size_t n = 0;
    if (rc == 0) {
        const mesh__member_t *exclude[1];
        mesh__select_t sel;
        s_selection(self, call, &sel, exclude);
        size_t count = mesh__select_all(self->rt, path, &sel, s_now(), NULL, 0);
        all = calloc(count ? count : 1, sizeof *all);
        call->targets = calloc(count ? count : 1, sizeof *call->targets);
        if (!all || !call->targets) {
            rc = MESH_ERR_NOMEM;
        } else {
            n = mesh__select_all(self->rt, path, &sel, s_now(), all, count);
            n = n > count ? count : n;
            rc = n ? 0 : MESH_ERR_NOPROVIDER;
        }
    }
    if (rc == 0) {
        call->deadline = s_now() + call->timeout_ms;
        call->attempt = 1;
        mesh__buf_clear(&self->out);
        mesh__env_encode_request(&self->out, call->id, MESH_REQ_CALL, path, call->timeout_ms,
                                 call->key, 1, data, size);
        for (size_t i = 0; i < n && !self->out.failed; i++) {
            s_target_t *t = &call->targets[call->ntargets];
            s_target_set(t, all[i]->member);
            call->ntargets++;
            int sent = s_send_to(self, t->uuid);
            if (sent == 0) {
                self->stats.requests_out++;
            } else {
                /* its queue is full: an answer now, not a wait for the deadline */
                self->stats.sends_dropped++;
                t->done = true;
                t->status = sent;
                call->nanswered++;
            }
        }
        rc = self->out.failed                   ? MESH_ERR_NOMEM
             : call->nanswered == call->ntargets ? MESH_ERR_AGAIN
                                                 : s_call_track(self, call);
    }
    free(all);
    if (rc != 0) {
        s_call_free(self, call);
    }
    return rc;
}

/*  A provider went away (EXIT, left the realm): calls waiting on it fail
    with PEERLOST, or move on when idempotent; fan-outs stop waiting. */
static void s_member_lost(mesh_peer_t *self, const uint8_t *uuid)
{
    for (size_t i = 0; i < self->calls_cap; i++) {
        s_call_t *call = self->calls ? self->calls[i] : NULL;
        if (!call) {
            continue;
        }
        if (call->fanout) {
            for (size_t k = 0; k < call->ntargets; k++) {
                s_target_t *t = &call->targets[k];
                if (!t->done && memcmp(t->uuid, uuid, MESH_ZRE_UUID_SIZE) == 0) {
                    t->done = true;
                    t->status = MESH_ERR_PEERLOST;
                    call->nanswered++;
                }
            }
            if (call->nanswered == call->ntargets) {
                s_call_finish(self, call, 0, NULL, 0, NULL);
                i = (size_t)-1; /* the table changed under us: rescan */
            }
            continue;
        }
        if (memcmp(call->targets[0].uuid, uuid, MESH_ZRE_UUID_SIZE) != 0) {
            continue;
        }
        if (call->idempotent && call->attempt < (unsigned)self->cfg.max_attempts &&
            s_call_dispatch(self, call, s_now()) == 0) {
            continue;
        }
        s_call_finish(self, call, MESH_ERR_PEERLOST, NULL, 0, NULL);
        i = (size_t)-1;
    }
}

static void s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    mesh_peer_t *self = w->data;
    if (self->closing) {
        return;
    }
    self->depth++;
    int64_t now = s_now();
    while (self->heap_len && self->heap[0]->deadline <= now) {
        s_call_t *call = self->heap[0];
        s_call_finish(self, call, call->fanout ? 0 : MESH_ERR_TIMEOUT, NULL, 0, NULL);
    }
    s_arm_deadline(self);
    self->depth--;
}

/* ------------------------------------------------------------------------ */
/* "once" requests: the provider's ledger

   A call that carries the ONCE flag and a key runs at most once at a time
   here per (path, key), and a success is remembered (protocol.md §11.6.7).
   The ledger (once.h: entries, waiters, retention, bounds) is pure; this is
   its glue: it answers replays, counts joins, and sends the run's reply to
   its waiters. Its expired entries are purged on every new ONCE request (in
   mesh__once_admit) and every ping. */

static void s_reply_to(mesh_peer_t *self, const uint8_t *to, uint64_t id, int32_t status,
                       const void *data, size_t size, const char *error);

/*  A ONCE call for path (the service's) from a member. True if the ledger
    answered it (a replay) or made it wait on the run under way: the
    handler is not called. False: run it, as the entry *entry (NULL: none,
    the ledger is full of runs or out of memory). */
static bool s_once_admit(mesh_peer_t *self, const mesh__member_t *from, const mesh__env_t *env,
                         const char *path, mesh__once_entry_t **entry)
{
    mesh__once_result_t res;
    mesh__slice_t k = env->u.request.key;
    switch (mesh__once_admit(self->once, path, strlen(path), k.ptr, k.len, mesh__member_uuid(from),
                             env->u.request.id, s_now(), &res)) {
    case MESH__ONCE_REPLAY:
        self->stats.once_replayed++;
        s_reply_to(self, mesh__member_uuid(from), env->u.request.id, 0, res.data, res.size, NULL);
        return true;
    case MESH__ONCE_JOINED:
        self->stats.once_joined++;
        return true;
    case MESH__ONCE_DROPPED:
        /* as when the request cannot be allocated: the caller times out */
        self->stats.envelopes_dropped++;
        s_debug(self, "out of memory: a repeated once request for %s dropped", path);
        return true;
    case MESH__ONCE_UNTRACKED:
        s_debug(self, "once ledger full or out of memory: %s runs without it", path);
        *entry = NULL;
        return false;
    case MESH__ONCE_RUN:
    default:
        *entry = res.entry;
        return false;
    }
}

/*  The run of a RUNNING entry ended with this outcome: its waiters get the
    same reply (if the peer can still send), then the ledger keeps a success
    (DONE) and deletes the entry on anything else. */
static void s_once_finish(mesh_peer_t *self, mesh__once_entry_t *e, int32_t status,
                          const void *data, size_t size, const char *error)
{
    mesh__once_waiter_t *waiters;
    size_t nwaiters;
    mesh__once_finish(self->once, &e, status, data, size, s_now(), &waiters, &nwaiters);
    bool live = self->running && !self->stopped;
    for (size_t i = 0; live && i < nwaiters; i++) {
        s_reply_to(self, waiters[i].uuid, waiters[i].id, status, data, size, error);
    }
    free(waiters);
}

/* ------------------------------------------------------------------------ */
/* receiving */

static s_service_t *s_service_find(mesh_peer_t *self, const char *path, size_t len)
{
    for (size_t i = 0; i < self->nservices; i++) {
        if (strlen(self->services[i].path) == len && memcmp(self->services[i].path, path, len) == 0) {
            return &self->services[i];
        }
    }
    return NULL;
}

static void s_reply_to(mesh_peer_t *self, const uint8_t *to, uint64_t id, int32_t status,
                       const void *data, size_t size, const char *error)
{
    mesh__buf_clear(&self->out);
    mesh__env_encode_reply(&self->out, id, status, data, size, error);
    if (s_send_to(self, to) == 0) {
        self->stats.replies_out++;
    }
}

static void s_on_request(mesh_peer_t *self, mesh__member_t *from, const mesh__env_t *env)
{
    bool is_call = (env->u.request.flags & MESH_REQ_CALL) != 0;
    if (is_call) {
        self->stats.requests_in++;
    } else {
        self->stats.casts_in++;
    }
    s_service_t *svc = s_service_find(self, (const char *)env->u.request.path.ptr,
                                      env->u.request.path.len);
    if (!svc || !svc->offered) {
        if (is_call) {
            /* stale routing at the caller: it moves on to its next candidate */
            s_reply_to(self, mesh__member_uuid(from), env->u.request.id, MESH_ERR_NOTFOUND,
                       NULL, 0, NULL);
        }
        return;
    }
    /* a repeat of a "once" run is answered by the ledger, or waits on the run */
    mesh__once_entry_t *once = NULL;
    if (is_call && (env->u.request.flags & MESH_REQ_ONCE) && env->u.request.key.ptr &&
        s_once_admit(self, from, env, svc->path, &once)) {
        return;
    }
    /* one allocation: the request, then its payload, path, key and caller's name */
    const char *name = mesh__member_name(from);
    size_t nlen = strlen(name), plen = strlen(svc->path);
    size_t klen = env->u.request.key.ptr ? env->u.request.key.len + 1 : 0;
    size_t size = env->u.request.payload.len;
    mesh_request_t *req = malloc(sizeof *req + size + plen + 1 + klen + nlen + 1);
    if (!req) {
        self->stats.envelopes_dropped++;
        if (once) {
            /* nobody waits on it yet: the entry goes, as after a failed run */
            s_once_finish(self, once, MESH_ERR_NOMEM, NULL, 0, NULL);
        }
        return;
    }
    memset(req, 0, sizeof *req);
    req->peer = self;
    req->once = once;
    req->id = env->u.request.id;
    req->flags = env->u.request.flags;
    req->attempt = env->u.request.attempt;
    memcpy(req->from, mesh__member_uuid(from), MESH_ZRE_UUID_SIZE);
    memcpy(req->from_id, mesh__member_uuid_str(from), sizeof req->from_id);
    uint8_t *p = (uint8_t *)(req + 1);
    req->data = p;
    req->size = size;
    if (size) {
        memcpy(p, env->u.request.payload.ptr, size);
    }
    p += size;
    req->path = (char *)p;
    memcpy(p, svc->path, plen + 1);
    p += plen + 1;
    if (klen) {
        req->key = (char *)p;
        memcpy(p, env->u.request.key.ptr, klen - 1);
        p[klen - 1] = '\0';
        p += klen;
    }
    req->from_name = (char *)p;
    memcpy(p, name, nlen + 1);
    req->next = self->open;
    if (self->open) {
        self->open->prev = req;
    }
    self->open = req;
    self->inflight++;
    svc->fn(self, req, svc->arg);
}

static void s_on_reply(mesh_peer_t *self, mesh__member_t *from, const mesh__env_t *env)
{
    self->stats.replies_in++;
    s_call_t *call = s_call_find(self, env->u.reply.id);
    const uint8_t *uuid = mesh__member_uuid(from);
    if (!call) {
        self->stats.replies_late++;
        return;
    }
    int status = env->u.reply.status;
    if (status != 0 && status != MESH_ERR_REMOTE && status != MESH_ERR_REJECTED &&
        status != MESH_ERR_NOTFOUND) {
        status = MESH_ERR_REMOTE; /* a peer cannot make a call look like a local failure */
    }
    if (call->fanout) {
        for (size_t k = 0; k < call->ntargets; k++) {
            s_target_t *t = &call->targets[k];
            if (t->done || memcmp(t->uuid, uuid, MESH_ZRE_UUID_SIZE) != 0) {
                continue;
            }
            t->done = true;
            t->status = status;
            if (env->u.reply.payload.ptr && env->u.reply.payload.len) {
                t->data = malloc(env->u.reply.payload.len);
                if (t->data) {
                    memcpy(t->data, env->u.reply.payload.ptr, env->u.reply.payload.len);
                    t->size = env->u.reply.payload.len;
                }
            }
            t->error = env->u.reply.error.ptr ? s_slice_dup(env->u.reply.error) : NULL;
            if (++call->nanswered == call->ntargets) {
                s_call_finish(self, call, 0, NULL, 0, NULL);
            }
            return;
        }
        self->stats.replies_late++;
        return;
    }
    if (memcmp(call->targets[0].uuid, uuid, MESH_ZRE_UUID_SIZE) != 0) {
        self->stats.replies_late++; /* from an earlier attempt */
        return;
    }
    if (status == MESH_ERR_REJECTED || status == MESH_ERR_NOTFOUND) {
        /* a rejection, or a provider that no longer offers it: next candidate */
        int rc = call->attempt < (unsigned)self->cfg.max_attempts ? s_call_dispatch(self, call, s_now())
                                                                 : MESH_ERR_NOPROVIDER;
        if (rc != 0) {
            s_call_finish(self, call,
                          status == MESH_ERR_REJECTED ? MESH_ERR_REJECTED : MESH_ERR_NOPROVIDER,
                          NULL, 0, NULL);
        }
        return;
    }
    char *error = env->u.reply.error.ptr ? s_slice_dup(env->u.reply.error) : NULL;
    s_call_finish(self, call, status, env->u.reply.payload.ptr, env->u.reply.payload.len, error);
    free(error);
}

static bool s_topic_matches(const s_sub_t *sub, const char *topic, size_t len)
{
    size_t plen = strlen(sub->pattern);
    return sub->prefix ? (plen <= len && memcmp(sub->pattern, topic, plen) == 0)
                       : (plen == len && memcmp(sub->pattern, topic, len) == 0);
}

static void s_on_publish(mesh_peer_t *self, mesh__member_t *from, const mesh__env_t *env)
{
    self->stats.publishes_in++;
    char *topic = s_slice_dup(env->u.publish.topic);
    if (!topic) {
        return;
    }
    for (size_t i = 0; i < self->nsubs; i++) {
        s_sub_t sub = self->subs[i];
        if (s_topic_matches(&sub, topic, env->u.publish.topic.len)) {
            size_t before = self->nsubs;
            sub.cb(self, topic, env->u.publish.payload.ptr, env->u.publish.payload.len,
                   mesh__member_uuid_str(from), sub.arg);
            if (self->closing) {
                break;
            }
            if (self->nsubs < before && i < self->nsubs && self->subs[i].cb != sub.cb) {
                i--; /* it unsubscribed: another subscription moved into this slot */
            }
        }
    }
    free(topic);
}

/*  One envelope from a member (or from ourselves through the local queue). */
static void s_on_envelope(mesh_peer_t *self, mesh__member_t *from, const uint8_t *data,
                          size_t size, int64_t now, bool in_batch)
{
    mesh__env_t env;
    mesh__env_scratch_t scratch = {self->svc_scratch, MESH_CODEC_SERVICES_MAX, self->sub_scratch,
                                   MESH_CODEC_SUBS_MAX};
    int type = mesh__env_decode(data, size, &env, &scratch);
    if (type < 0) {
        self->stats.envelopes_dropped++;
        s_debug(self, "dropped a malformed envelope of %zu bytes from %s", size,
                mesh__member_name(from));
        return;
    }
    mesh__routing_heard(self->rt, from, now);
    switch (type) {
    case MESH_ENV_SERVICES:
        /* the periodic repeat of a list we hold costs nothing */
        if (!mesh__member_is_self(from) &&
            env.u.services.version != mesh__member_services_version(from) &&
            mesh__routing_set_services(self->rt, from, env.u.services.version, self->svc_scratch,
                                       env.u.services.nservices, self->sub_scratch,
                                       env.u.services.nsubs, now) != 0) {
            self->stats.envelopes_dropped++;
            s_debug(self, "refused the services of %s (bad path, tag or pattern)",
                    mesh__member_name(from));
        }
        break;
    case MESH_ENV_STATUS:
        mesh__routing_set_status(self->rt, from, env.u.status.load,
                                 env.u.status.has_fitness ? &env.u.status.fitness : NULL,
                                 env.u.status.services_version, env.u.status.inflight, now);
        s_ring_on_status(self, from, env.u.status.ring_digest);
        break;
    case MESH_ENV_REQUEST:
        s_on_request(self, from, &env);
        break;
    case MESH_ENV_REPLY:
        s_on_reply(self, from, &env);
        break;
    case MESH_ENV_PUBLISH:
        s_on_publish(self, from, &env);
        break;
    case MESH_ENV_BATCH: {
        if (in_batch) {
            self->stats.envelopes_dropped++; /* no batch inside a batch */
            break;
        }
        size_t pos = 0;
        mesh__slice_t item;
        while (!self->closing && mesh__env_batch_next(&env, &pos, &item)) {
            s_on_envelope(self, from, item.ptr, item.len, now, true);
        }
        break;
    }
    default:
        self->stats.envelopes_dropped++;
        break;
    }
}

static void s_on_local(struct ev_loop *loop, ev_idle *w, int revents)
{
    mesh_peer_t *self = w->data;
    /* only what is queued now: handlers may queue more, for the next turn */
    s_local_t *list = self->local_head;
    self->local_head = self->local_tail = NULL;
    ev_idle_stop(loop, w);
    self->depth++;
    if (self->check_active && !self->closing) {
        self->check_active = false;
        s_check_active(self);
    }
    while (list) {
        s_local_t *l = list;
        list = l->next;
        if (self->running && !self->stopped && !self->closing) {
            s_on_envelope(self, self->self_member, l->bytes, l->len, s_now(), false);
        }
        free(l->bytes);
        free(l);
    }
    self->depth--;
}

static void s_on_zre_event(mesh_peer_t *self, const mesh__zre_event_t *ev);

static void s_on_zre(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    mesh_peer_t *self = arg;
    if (self->closing) {
        return;
    }
    self->depth++;
    if (self->observer) {
        self->observer(node, ev, self->observer_arg);
    }
    s_on_zre_event(self, ev);
    self->depth--;
}

static void s_on_zre_event(mesh_peer_t *self, const mesh__zre_event_t *ev)
{
    const uint8_t *uuid = mesh__zre_peer_uuid(ev->peer);
    switch (ev->type) {
    case MESH_ZRE_EV_JOIN:
        if (strcmp(ev->group, self->group) == 0 && mesh__zre_peer_is_mesh(ev->peer)) {
            bool is_new = !mesh__routing_find(self->rt, uuid);
            if (!mesh__routing_add(self->rt, uuid, mesh__zre_peer_name(ev->peer), false, s_now())) {
                break; /* out of memory, or a bad name: not a member */
            }
            const char *role = mesh__zre_peer_header(ev->peer, MESH_PEER_ROLE_HEADER);
            s_ring_member_added(self, uuid, role && strcmp(role, MESH_PEER_ROLE_CTL) == 0, is_new);
            s_encode_services(self); /* a newcomer learns what we offer at once */
            if (!self->out.failed) {
                mesh__zre_whisper(self->zre, uuid, self->out.data, self->out.size);
            }
        }
        break;
    case MESH_ZRE_EV_LEAVE:
        if (strcmp(ev->group, self->group) == 0 && mesh__routing_find(self->rt, uuid)) {
            mesh__routing_remove(self->rt, uuid);
            s_ring_member_removed(self, uuid);
            s_member_lost(self, uuid);
        }
        break;
    case MESH_ZRE_EV_EXIT:
        if (mesh__routing_find(self->rt, uuid)) {
            mesh__routing_remove(self->rt, uuid);
            s_ring_member_removed(self, uuid);
            s_member_lost(self, uuid);
        }
        break;
    case MESH_ZRE_EV_WHISPER:
    case MESH_ZRE_EV_SHOUT: {
        mesh__member_t *m = mesh__routing_find(self->rt, uuid);
        if (!m || (ev->type == MESH_ZRE_EV_SHOUT && strcmp(ev->group, self->group) != 0)) {
            self->stats.envelopes_dropped++; /* not of our realm */
            return;
        }
        s_on_envelope(self, m, ev->data, ev->size, ev->now, false);
        break;
    }
    default:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* requests */

static void s_request_free(mesh_request_t *req)
{
    mesh_peer_t *self = req->peer;
    if (req->once) {
        /* freed unfinished (the peer is going): the run failed */
        s_once_finish(self, req->once, MESH_ERR_CLOSED, NULL, 0, NULL);
        req->once = NULL;
    }
    if (req->prev) {
        req->prev->next = req->next;
    } else {
        self->open = req->next;
    }
    if (req->next) {
        req->next->prev = req->prev;
    }
    self->inflight--;
    free(req); /* its strings and payload live in the same block */
}

static int s_request_finish(mesh_request_t *req, int32_t status, const void *data, size_t size,
                            const char *error)
{
    if (!req) {
        return MESH_ERR_INVAL;
    }
    mesh_peer_t *self = req->peer;
    if ((req->flags & MESH_REQ_CALL) && self->running && !self->stopped) {
        if (status == MESH_ERR_REJECTED) {
            self->stats.rejected_in++;
        }
        s_reply_to(self, req->from, req->id, status, data, size, error);
    }
    if (req->once) {
        s_once_finish(self, req->once, status, data, size, error);
        req->once = NULL;
    }
    s_request_free(req);
    return 0;
}

int mesh_request_reply(mesh_request_t *req, const void *data, size_t size)
{
    if (s_check_payload(size) != 0) {
        /* the caller could never receive it: tell it why instead */
        return s_request_finish(req, MESH_ERR_REMOTE, NULL, 0, "reply larger than the limit");
    }
    return s_request_finish(req, 0, data, size, NULL);
}

int mesh_request_error(mesh_request_t *req, const char *message)
{
    char cut[MESH_CODEC_ERROR_MAX + 1];
    snprintf(cut, sizeof cut, "%s", message ? message : "error");
    return s_request_finish(req, MESH_ERR_REMOTE, NULL, 0, cut);
}

int mesh_request_reject(mesh_request_t *req)
{
    return s_request_finish(req, MESH_ERR_REJECTED, NULL, 0, NULL);
}

const char *mesh_request_path(const mesh_request_t *req)
{
    return req->path;
}

const void *mesh_request_data(const mesh_request_t *req)
{
    return req->data;
}

size_t mesh_request_size(const mesh_request_t *req)
{
    return req->size;
}

const char *mesh_request_from(const mesh_request_t *req)
{
    return req->from_id;
}

const char *mesh_request_from_name(const mesh_request_t *req)
{
    return req->from_name;
}

bool mesh_request_is_cast(const mesh_request_t *req)
{
    return (req->flags & MESH_REQ_CALL) == 0;
}

const char *mesh_request_key(const mesh_request_t *req)
{
    return req->key;
}

unsigned mesh_request_attempt(const mesh_request_t *req)
{
    return req->attempt;
}

/* ------------------------------------------------------------------------ */
/* services, subscriptions, selectors */

int mesh_peer_expose(mesh_peer_t *self, const char *path, mesh_handler_fn *fn, void *arg,
                     const mesh_expose_opts_t *opts)
{
    int rc = s_check_path(path);
    if (rc != 0 || !fn) {
        return rc ? rc : MESH_ERR_INVAL;
    }
    if (s_service_find(self, path, strlen(path))) {
        return MESH_ERR_EXISTS;
    }
    if (self->nservices >= MESH_CODEC_SERVICES_MAX ||
        (opts && (opts->ntags > MESH_CODEC_TAGS_MAX || (opts->ntags && !opts->tags)))) {
        return MESH_ERR_TOOLONG;
    }
    for (size_t i = 0; opts && i < opts->ntags; i++) {
        if (!s_tag_ok(opts->tags[i])) {
            return MESH_ERR_INVAL;
        }
    }
    s_service_t *svcs = realloc(self->services, (self->nservices + 1) * sizeof *svcs);
    if (!svcs) {
        return MESH_ERR_NOMEM;
    }
    self->services = svcs;
    s_service_t *s = &svcs[self->nservices];
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    s->fn = fn;
    s->arg = arg;
    if (opts && opts->ntags) {
        s->tags = s_strv_dup(opts->tags, opts->ntags);
        s->ntags = s->tags ? opts->ntags : 0;
    }
    if (!s->path || (opts && opts->ntags && !s->tags)) {
        free(s->path);
        s_strv_free(s->tags, s->ntags);
        return MESH_ERR_NOMEM;
    }
    s->active = opts ? opts->active : NULL;
    s->active_arg = opts ? opts->active_arg : NULL;
    /* a predicate is first asked on the next loop turn, never inside expose */
    s->offered = !s->active;
    if (s->active) {
        self->check_active = true;
        if (self->loop) {
            ev_idle_start(self->loop, &self->local_idle);
        }
    }
    self->nservices++;
    s_services_changed(self);
    return 0;
}

int mesh_peer_unexpose(mesh_peer_t *self, const char *path)
{
    s_service_t *s = path ? s_service_find(self, path, strlen(path)) : NULL;
    if (!s) {
        return MESH_ERR_NOTFOUND;
    }
    free(s->path);
    s_strv_free(s->tags, s->ntags);
    *s = self->services[--self->nservices];
    s_services_changed(self);
    return 0;
}

int mesh_peer_subscribe(mesh_peer_t *self, const char *pattern, bool prefix, mesh_message_fn *cb,
                        void *arg)
{
    if (!pattern || !*pattern || !cb) {
        return MESH_ERR_INVAL;
    }
    if (strlen(pattern) > MESH_CODEC_PATH_MAX || self->nsubs >= MESH_CODEC_SUBS_MAX) {
        return MESH_ERR_TOOLONG;
    }
    for (size_t i = 0; i < self->nsubs; i++) {
        if (strcmp(self->subs[i].pattern, pattern) == 0) {
            return MESH_ERR_EXISTS;
        }
    }
    s_sub_t *subs = realloc(self->subs, (self->nsubs + 1) * sizeof *subs);
    if (!subs) {
        return MESH_ERR_NOMEM;
    }
    self->subs = subs;
    if (!(subs[self->nsubs].pattern = strdup(pattern))) {
        return MESH_ERR_NOMEM;
    }
    subs[self->nsubs].prefix = prefix;
    subs[self->nsubs].cb = cb;
    subs[self->nsubs].arg = arg;
    self->nsubs++;
    s_services_changed(self);
    return 0;
}

int mesh_peer_unsubscribe(mesh_peer_t *self, const char *pattern)
{
    for (size_t i = 0; pattern && i < self->nsubs; i++) {
        if (strcmp(self->subs[i].pattern, pattern) == 0) {
            free(self->subs[i].pattern);
            self->subs[i] = self->subs[--self->nsubs];
            s_services_changed(self);
            return 0;
        }
    }
    return MESH_ERR_NOTFOUND;
}

int mesh_peer_publish(mesh_peer_t *self, const char *topic, const void *data, size_t size)
{
    if (!topic || !*topic || (size && !data)) {
        return MESH_ERR_INVAL;
    }
    if (strlen(topic) > MESH_CODEC_PATH_MAX || s_check_payload(size) != 0) {
        return MESH_ERR_TOOLONG;
    }
    if (!self->running || self->stopped || self->closing) {
        return MESH_ERR_STATE;
    }
    size_t count = mesh__routing_subscribers(self->rt, topic, s_now(), NULL, 0);
    if (count == 0) {
        return 0;
    }
    mesh__member_t **to = calloc(count, sizeof *to);
    if (!to) {
        return MESH_ERR_NOMEM;
    }
    size_t n = mesh__routing_subscribers(self->rt, topic, s_now(), to, count);
    n = n > count ? count : n;
    mesh__buf_clear(&self->out);
    mesh__env_encode_publish(&self->out, topic, data, size);
    for (size_t i = 0; i < n; i++) {
        if (s_send_to(self, mesh__member_uuid(to[i])) == 0) {
            self->stats.publishes_out++;
        }
    }
    free(to);
    return 0;
}

int mesh_peer_add_selector(mesh_peer_t *self, const char *name, mesh_selector_fn *fn, void *arg)
{
    if (!name || !*name || !fn || mesh__select_kind_from_name(name) >= 0) {
        return MESH_ERR_INVAL;
    }
    if (s_selector_find(self, name)) {
        return MESH_ERR_EXISTS;
    }
    s_selector_t *sels = realloc(self->selectors, (self->nselectors + 1) * sizeof *sels);
    if (!sels) {
        return MESH_ERR_NOMEM;
    }
    self->selectors = sels;
    if (!(sels[self->nselectors].name = strdup(name))) {
        return MESH_ERR_NOMEM;
    }
    sels[self->nselectors].fn = fn;
    sels[self->nselectors].arg = arg;
    self->nselectors++;
    return 0;
}

void mesh_peer_set_fitness(mesh_peer_t *self, mesh_fitness_fn *fn, void *arg)
{
    self->fitness_fn = fn;
    self->fitness_arg = arg;
}

/* ------------------------------------------------------------------------ */
/* running */

static void s_on_pending(struct ev_loop *loop, ev_idle *w, int revents);

static int s_start_on(mesh_peer_t *self, struct ev_loop *loop)
{
    int rc = mesh__zre_start(self->zre, s_now());
    if (rc != 0) {
        return rc;
    }
    mesh__zre_set_handler(self->zre, s_on_zre, self);
    self->reactor = mesh__reactor_new(loop, self->zre);
    self->cmdq = self->thread ? NULL : mesh__cmdq_new(loop);
    if (!self->reactor || (!self->thread && !self->cmdq)) {
        mesh__reactor_destroy(&self->reactor);
        mesh__cmdq_destroy(&self->cmdq);
        mesh__zre_stop(self->zre);
        return MESH_ERR_NOMEM;
    }
    self->loop = loop;
    double ping = self->cfg.ping_interval_ms / 1000.0;
    ev_timer_init(&self->ping_timer, s_on_ping_timer, ping, ping);
    self->ping_timer.data = self;
    ev_timer_start(loop, &self->ping_timer);
    ev_timer_init(&self->deadline_timer, s_on_deadline, 0.0, 0.0);
    self->deadline_timer.data = self;
    ev_idle_init(&self->local_idle, s_on_local);
    self->local_idle.data = self;
    ev_idle_init(&self->pending_idle, s_on_pending);
    self->pending_idle.data = self;
    ev_prepare_init(&self->flush_prepare, s_on_flush);
    self->flush_prepare.data = self;
    self->loop_thread = pthread_self();
    if (self->local_head || self->check_active) {
        ev_idle_start(loop, &self->local_idle);
    }
    self->running = true;
    s_encode_services(self);
    s_ping(self);
    s_debug(self, "running as %s at %s in realm %s", mesh__zre_uuid_str(self->zre),
            mesh__zre_endpoint(self->zre), self->realm);
    return 0;
}

int mesh_peer_attach(mesh_peer_t *self, struct ev_loop *loop)
{
    if (!loop) {
        return MESH_ERR_INVAL;
    }
    if (self->running || self->stopped || self->thread) {
        return MESH_ERR_STATE;
    }
    return s_start_on(self, loop);
}

typedef struct {
    mesh_peer_t *peer;
    int rc;
} s_start_arg_t;

static void s_start_cmd(struct ev_loop *loop, void *arg)
{
    s_start_arg_t *a = arg;
    a->rc = s_start_on(a->peer, loop);
}

int mesh_peer_start_thread(mesh_peer_t *self)
{
    if (self->running || self->stopped || self->thread) {
        return MESH_ERR_STATE;
    }
    self->thread = mesh__loopthread_new();
    if (!self->thread) {
        return MESH_ERR_THREAD;
    }
    s_start_arg_t a = {self, 0};
    mesh__loopthread_call(self->thread, s_start_cmd, &a);
    if (a.rc != 0) {
        mesh__loopthread_destroy(&self->thread);
    }
    return a.rc;
}

/*  On the loop thread, outside any callback of ours. */
static void s_stop_here(mesh_peer_t *self)
{
    if (!self->running || self->stopped) {
        return;
    }
    s_flush(self); /* replies and requests of this turn still go out */
    self->stopped = true;
    /* stop being offered first, then fail what waits on us */
    self->depth++;
    while (self->heap_len) {
        s_call_finish(self, self->heap[0], MESH_ERR_CLOSED, NULL, 0, NULL);
    }
    self->depth--;
    ev_timer_stop(self->loop, &self->ping_timer);
    ev_timer_stop(self->loop, &self->deadline_timer);
    ev_idle_stop(self->loop, &self->local_idle);
    ev_prepare_stop(self->loop, &self->flush_prepare);
    self->nbatches = 0;
    mesh__reactor_destroy(&self->reactor);
    mesh__zre_set_handler(self->zre, NULL, NULL);
    mesh__zre_stop(self->zre);
}

static void s_stop_cmd(struct ev_loop *loop, void *arg)
{
    s_stop_here(arg);
}

/*  Frees everything once the peer is stopped and off its loop. */
static void s_free(mesh_peer_t *self)
{
    while (self->open) {
        s_request_free(self->open);
    }
    mesh__once_destroy(&self->once);
    while (self->local_head) {
        s_local_t *l = self->local_head;
        self->local_head = l->next;
        free(l->bytes);
        free(l);
    }
    for (size_t i = 0; i < self->nservices; i++) {
        free(self->services[i].path);
        s_strv_free(self->services[i].tags, self->services[i].ntags);
    }
    free(self->services);
    for (size_t i = 0; i < self->nsubs; i++) {
        free(self->subs[i].pattern);
    }
    free(self->subs);
    for (size_t i = 0; i < self->nselectors; i++) {
        free(self->selectors[i].name);
    }
    free(self->selectors);
    for (size_t i = 0; i < self->batches_cap; i++) {
        mesh__buf_free(&self->batches[i].buf);
    }
    free(self->batches);
    free(self->calls);
    free(self->heap);
    while (self->pool) {
        s_call_t *c = self->pool;
        self->pool = c->pool_next;
        free(c->buf);
        free(c);
    }
    mesh__routing_destroy(&self->rt);
    mesh__ring_destroy(&self->ring);
    free(self->rinfo);
    mesh__zre_destroy(&self->zre);
    mesh__buf_free(&self->out);
    free(self->svc_scratch);
    free(self->sub_scratch);
    free(self->name);
    free(self->realm);
    free(self->iface);
    s_strv_free(self->seeds, self->seeds ? self->cfg.nseeds : 0);
    free(self);
}

static void s_teardown_cmd(struct ev_loop *loop, void *arg)
{
    mesh_peer_t *self = arg;
    s_stop_here(self);
    if (self->loop) {
        ev_idle_stop(self->loop, &self->pending_idle);
    }
    mesh__cmdq_destroy(&self->cmdq);
}

/*  A peer on its own thread destroyed from that thread: the thread cannot
    join itself, so a short-lived helper thread does it. */
static void *s_reaper(void *arg)
{
    mesh_peer_t *self = arg;
    mesh__loopthread_destroy(&self->thread);
    s_free(self);
    return NULL;
}

/*  Runs when the loop is back from the callback that asked for a stop or a
    destroy. */
static void s_on_pending(struct ev_loop *loop, ev_idle *w, int revents)
{
    mesh_peer_t *self = w->data;
    ev_idle_stop(loop, w);
    if (!self->destroy_pending) {
        s_stop_here(self);
        return;
    }
    s_teardown_cmd(loop, self);
    if (!self->thread) {
        s_free(self);
        return;
    }
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, s_reaper, self) != 0) {
        s_debug(self, "cannot start the reaper thread: the peer leaks");
    }
    pthread_attr_destroy(&attr);
}

static bool s_on_loop_thread(const mesh_peer_t *self)
{
    if (self->thread) {
        return mesh__loopthread_is_current(self->thread);
    }
    return !self->loop || pthread_equal(pthread_self(), self->loop_thread);
}

static void s_defer(mesh_peer_t *self, bool destroy)
{
    self->closing = true;
    self->stop_pending = true;
    self->destroy_pending = self->destroy_pending || destroy;
    ev_idle_start(self->loop, &self->pending_idle);
}

void mesh_peer_stop(mesh_peer_t *self)
{
    if (!self || self->destroy_pending) {
        return;
    }
    if (!s_on_loop_thread(self)) {
        if (self->thread) {
            mesh__loopthread_call(self->thread, s_stop_cmd, self);
        } else if (self->cmdq) {
            mesh__cmdq_call(self->cmdq, s_stop_cmd, self);
        }
    } else if (self->depth > 0) {
        s_defer(self, false);
    } else {
        s_stop_here(self);
    }
}

void mesh_peer_destroy(mesh_peer_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    mesh_peer_t *self = *self_p;
    *self_p = NULL;
    if (self->destroy_pending) {
        return;
    }
    if (self->loop && s_on_loop_thread(self) && (self->depth > 0 || self->thread)) {
        s_defer(self, true); /* inside a callback, or on its own thread */
        return;
    }
    if (self->thread) {
        mesh__loopthread_call(self->thread, s_teardown_cmd, self);
        mesh__loopthread_destroy(&self->thread);
    } else {
        /* an attached peer is destroyed on its loop's thread (peer.h) */
        assert(!self->loop || s_on_loop_thread(self));
        s_teardown_cmd(self->loop, self);
    }
    s_free(self);
}

typedef struct {
    mesh_peer_t *peer;
    mesh_peer_fn *fn;
    void *arg;
} s_post_t;

static void s_post_cmd(struct ev_loop *loop, void *arg)
{
    s_post_t *p = arg;
    p->peer->depth++;
    p->fn(p->peer, p->arg);
    p->peer->depth--;
    free(p);
}

int mesh_peer_post(mesh_peer_t *self, mesh_peer_fn *fn, void *arg)
{
    if (!fn) {
        return MESH_ERR_INVAL;
    }
    s_post_t *p = malloc(sizeof *p);
    if (!p) {
        return MESH_ERR_NOMEM;
    }
    *p = (s_post_t){self, fn, arg};
    int rc = self->thread  ? mesh__loopthread_post(self->thread, s_post_cmd, p)
             : self->cmdq ? mesh__cmdq_post(self->cmdq, s_post_cmd, p)
                          : MESH_ERR_STATE;
    if (rc != 0) {
        free(p);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* the blocking call */

typedef struct {
    mesh_peer_t *peer;
    const char *path;
    const void *data;
    size_t size;
    const mesh_call_opts_t *opts;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
    void *reply;
    size_t reply_size;
    char *error;
} s_sync_t;

static void s_sync_done(s_sync_t *s, int status)
{
    pthread_mutex_lock(&s->lock);
    s->status = status;
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void s_sync_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    s_sync_t *s = arg;
    if (r->status == 0) {
        s->reply = malloc(r->size ? r->size : 1);
        if (s->reply && r->size) {
            memcpy(s->reply, r->data, r->size);
        }
        s->reply_size = r->size;
    }
    if (r->error) {
        s->error = strdup(r->error);
    }
    s_sync_done(s, r->status);
}

static void s_sync_cmd(struct ev_loop *loop, void *arg)
{
    s_sync_t *s = arg;
    int rc = mesh_peer_call(s->peer, s->path, s->data, s->size, s->opts, s_sync_reply, s);
    if (rc != 0) {
        s_sync_done(s, rc);
    }
}

int mesh_peer_call_sync(mesh_peer_t *self, const char *path, const void *data, size_t size,
                        const mesh_call_opts_t *opts, void **reply, size_t *reply_size,
                        char **error)
{
    if (!self->thread || mesh__loopthread_is_current(self->thread)) {
        return MESH_ERR_STATE;
    }
    s_sync_t s = {.peer = self, .path = path, .data = data, .size = size, .opts = opts};
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    int rc = mesh__loopthread_post(self->thread, s_sync_cmd, &s);
    if (rc == 0) {
        pthread_mutex_lock(&s.lock);
        while (!s.done) {
            pthread_cond_wait(&s.cond, &s.lock);
        }
        pthread_mutex_unlock(&s.lock);
        rc = s.status;
    }
    pthread_mutex_destroy(&s.lock);
    pthread_cond_destroy(&s.cond);
    if (reply) {
        *reply = s.reply;
    } else {
        free(s.reply);
    }
    if (reply_size) {
        *reply_size = s.reply_size;
    }
    if (error) {
        *error = s.error;
    } else {
        free(s.error);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* reading */

const char *mesh_peer_name(const mesh_peer_t *self)
{
    return self->name;
}

const char *mesh_peer_id(const mesh_peer_t *self)
{
    return mesh__zre_uuid_str(self->zre);
}

const char *mesh_peer_endpoint(const mesh_peer_t *self)
{
    return mesh__zre_endpoint(self->zre);
}

const char *mesh_peer_realm(const mesh_peer_t *self)
{
    return self->realm;
}

size_t mesh_peer_routes(mesh_peer_t *self, mesh_route_fn *fn, void *arg)
{
    int64_t now = s_now();
    size_t pos = 0, n = 0;
    mesh__member_t *m;
    while ((m = mesh__routing_next(self->rt, &pos))) {
        n++;
        mesh_route_info_t info = {.id = mesh__member_uuid_str(m),
                                  .name = mesh__member_name(m),
                                  .is_self = mesh__member_is_self(m),
                                  .alive = mesh__member_alive(self->rt, m, now),
                                  .load = mesh__member_load(m),
                                  .inflight = mesh__member_inflight(m),
                                  .heard_ms_ago = now - mesh__member_last_heard(m)};
        info.has_fitness = mesh__member_fitness(m, &info.fitness);
        size_t ns = mesh__member_service_count(m);
        if (!fn) {
            continue;
        }
        if (ns == 0) {
            fn(&info, arg);
        }
        for (size_t i = 0; i < ns; i++) {
            const char *const *tags = NULL;
            size_t ntags = 0;
            info.path = mesh__member_service_at(m, i, &tags, &ntags);
            info.tags = tags;
            info.ntags = ntags;
            fn(&info, arg);
        }
    }
    return n;
}

void mesh_peer_stats(const mesh_peer_t *self, mesh_stats_t *out)
{
    *out = self->stats;
    const mesh__zre_stats_t *z = mesh__zre_stats(self->zre);
    out->zre_dropped = z->msgs_malformed + z->msgs_unknown_sender + z->sequence_gaps +
                       z->beacons_bad + z->gossip_bad;
    out->sends_dropped = self->stats.sends_dropped;
    out->peers = mesh__routing_count(self->rt);
}

/* ------------------------------------------------------------------------ */
/* the ring, read */

uint64_t mesh_peer_ring_digest(mesh_peer_t *self)
{
    return mesh__ring_digest(s_ring(self));
}

/*  The id (out: 33 bytes) and name of the member of a rank. The ring may be
    older than the table (a rebuild ran out of memory): a member gone from
    the table has no name. */
static const char *s_ring_who(const mesh_peer_t *self, const mesh__ring_t *ring, size_t rank,
                              char *id, const mesh__member_t **member)
{
    const uint8_t *uuid = mesh__ring_member(ring, rank);
    const mesh__member_t *m = mesh__routing_find(self->rt, uuid);
    mesh__uuid_to_hex(uuid, id);
    if (member) {
        *member = m;
    }
    return m ? mesh__member_name(m) : "";
}

#define S_OWNERS_INLINE 16

int mesh_peer_ring_owners(mesh_peer_t *self, const void *key, size_t keylen, size_t replicas,
                          mesh_ring_owner_fn *fn, void *arg)
{
    if (replicas == 0 || !fn || (!key && keylen)) {
        return MESH_ERR_INVAL;
    }
    const mesh__ring_t *ring = s_ring(self);
    size_t count = mesh__ring_count(ring);
    if (count == 0) {
        return MESH_ERR_NOTFOUND;
    }
    size_t want = replicas < count ? replicas : count;
    uint32_t stack[S_OWNERS_INLINE];
    uint32_t *ranks = want <= S_OWNERS_INLINE ? stack : malloc(want * sizeof *ranks);
    if (!ranks) {
        return MESH_ERR_NOMEM;
    }
    size_t n = 0;
    int rc = mesh__ring_lookup(ring, key ? key : "", keylen, want, ranks, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char id[33];
        const char *name = s_ring_who(self, ring, ranks[i], id, NULL);
        fn(id, name, i, arg);
    }
    if (ranks != stack) {
        free(ranks);
    }
    return rc;
}

size_t mesh_peer_ring_members(mesh_peer_t *self, mesh_ring_member_fn *fn, void *arg)
{
    const mesh__ring_t *ring = s_ring(self);
    size_t count = mesh__ring_count(ring);
    uint64_t ours = mesh__ring_digest(ring);
    for (size_t rank = 0; fn && rank < count; rank++) {
        char id[33];
        const mesh__member_t *m;
        mesh_ring_member_t info = {
            .id = id, .vnodes = mesh__ring_vnodes(ring), .share = mesh__ring_share(ring, rank)};
        info.name = s_ring_who(self, ring, rank, id, &m);
        info.is_self = m && mesh__member_is_self(m);
        if (info.is_self) {
            info.digest = ours;
        } else {
            const s_rinfo_t *r = s_rinfo_find(self, mesh__ring_member(ring, rank));
            info.digest = r ? r->digest : 0;
        }
        info.agrees = info.is_self || (info.digest != 0 && info.digest == ours);
        fn(&info, arg);
    }
    return count;
}

/* ------------------------------------------------------------------------ */
/* internal, for meshd and meshctl (peer_internal.h) */

mesh__zre_t *mesh__peer_zre(mesh_peer_t *self)
{
    return self->zre;
}

void mesh__peer_set_observer(mesh_peer_t *self, mesh__zre_event_fn *fn, void *arg)
{
    self->observer = fn;
    self->observer_arg = arg;
}

uint64_t mesh__peer_open_requests(const mesh_peer_t *self)
{
    return self->inflight;
}

int mesh__peer_set_ctl(mesh_peer_t *self)
{
    if (self->running || self->stopped || self->thread) {
        return MESH_ERR_STATE;
    }
    int rc = mesh__zre_set_header(self->zre, MESH_PEER_ROLE_HEADER, MESH_PEER_ROLE_CTL);
    if (rc == 0 && !self->ctl) {
        self->ctl = true;
        self->members_gen++;
    }
    return rc;
}
