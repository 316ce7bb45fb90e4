/*  zre.h: a ZRE v2 node (RFC 36), driven by its caller.

    The node owns a UDP beacon socket, a ROUTER inbox and one DEALER per known
    peer. It never touches an event loop: the reactor (reactor.h) or a test
    watches mesh__zre_beacon_fd() and mesh__zre_inbox(), calls the on_* entry
    points when they are readable, and calls mesh__zre_on_tick() at
    mesh__zre_next_deadline(). Time is monotonic milliseconds passed in `now`.

    Events go up through one callback, on the thread that drives the node.
    Everything handed to it (peer, strings, content) is borrowed for the
    duration of the callback. The callback may send (whisper, shout, join,
    leave) but must neither stop nor destroy the node. */
#ifndef MESH_ZRE_H
#define MESH_ZRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/defaults.h>

typedef struct mesh__zre mesh__zre_t;
typedef struct mesh__zre_peer mesh__zre_peer_t;

/*  Header that marks a ZRE peer as a mesh node (value: mesh's protocol
    version). Peers without it are plain ZRE peers: listed, never gossiped to. */
#define MESH_ZRE_HEADER_MESH "X-MESH"
#define MESH_ZRE_MESH_VERSION "1"

typedef struct {
    const char *name;        /* NULL: the first 6 hex digits of the UUID */
    const char *iface;       /* interface name or IPv4 address; NULL: "lo" */
    uint16_t beacon_port;    /* 0: MESH_DEFAULT_BEACON_PORT */
    bool beacon_off;         /* true: no UDP at all (seeds only) */
    uint16_t inbox_port;     /* 0: an ephemeral port */
    int beacon_interval_ms;  /* 0: default; likewise below */
    int evasive_ms;
    int expired_ms;
    int reap_ms;
    int seed_retry_ms;
    int sndhwm;
    int64_t max_msg_size;
    const uint8_t *uuid;     /* NULL: random; else 16 bytes (tests) */
} mesh__zre_config_t;

typedef enum {
    MESH_ZRE_EV_ENTER = 1, /* peer said HELLO: ready */
    MESH_ZRE_EV_EXIT,      /* peer left (beacon port 0), expired, or broke its sequence */
    MESH_ZRE_EV_EVASIVE,   /* peer silent past the evasive timeout (once per silence) */
    MESH_ZRE_EV_BACK,      /* an evasive peer was heard again */
    MESH_ZRE_EV_JOIN,
    MESH_ZRE_EV_LEAVE,
    MESH_ZRE_EV_WHISPER,
    MESH_ZRE_EV_SHOUT,
} mesh__zre_event_type_t;

typedef struct {
    mesh__zre_event_type_t type;
    const mesh__zre_peer_t *peer;
    const char *group;   /* JOIN, LEAVE, SHOUT */
    const uint8_t *data; /* WHISPER, SHOUT: the (first) content frame */
    size_t size;
    const char *reason;  /* EXIT: "left", "expired", "sequence", "reset", "replaced", "stopped" */
    int64_t now;         /* the `now` of the call that produced the event */
} mesh__zre_event_t;

typedef void(mesh__zre_event_fn)(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg);

/*  Counters of everything dropped or notable. All monotonic. */
typedef struct {
    uint64_t beacons_sent;
    uint64_t beacons_received;
    uint64_t beacons_bad;         /* malformed or wrong size */
    uint64_t beacons_foreign;     /* secure (v3) beacons, or outside our subnet */
    uint64_t msgs_received;
    uint64_t msgs_malformed;      /* bad signature, version, id, length, identity */
    uint64_t msgs_unknown_sender; /* non-HELLO from a peer not (yet) ready */
    uint64_t msgs_ignored;        /* ids 8-10 (Zyre's ELECT/LEADER/GOODBYE) */
    uint64_t msgs_not_member;     /* SHOUT for a group we have not joined */
    uint64_t sequence_gaps;
    uint64_t send_dropped;        /* peer queue full */
    uint64_t gossip_received;
    uint64_t gossip_bad;
    uint64_t peers_entered;
    uint64_t peers_exited;
    uint64_t peers_refused;       /* over MESH_ZRE_PEERS_MAX */
} mesh__zre_stats_t;

/*  Creates a node (no sockets yet). zmq_ctx may be NULL (the node then owns
    one). Returns NULL on a bad config value (logged) or out of memory. */
mesh__zre_t *mesh__zre_new(const mesh__zre_config_t *config, void *zmq_ctx);
void mesh__zre_destroy(mesh__zre_t **self_p);

void mesh__zre_set_handler(mesh__zre_t *self, mesh__zre_event_fn *fn, void *arg);

/*  Before start only. Key and value as in RFC 36; key <= 255 bytes. */
int mesh__zre_set_header(mesh__zre_t *self, const char *key, const char *value);
/*  A peer to contact by HELLO without beacons: "tcp://host:port". A host
    name is resolved now. Before or after start. */
int mesh__zre_add_seed(mesh__zre_t *self, const char *endpoint);

/*  Binds the inbox, opens the beacon socket, sends HELLO to the seeds and
    the first beacon. Returns 0 or MESH_ERR_NOIFACE / ADDRINUSE / SOCKET. */
int mesh__zre_start(mesh__zre_t *self, int64_t now);
/*  Leaves: a port-0 beacon, DEALERs closed, peers forgotten (EXIT events
    with reason "stopped"). Idempotent. */
void mesh__zre_stop(mesh__zre_t *self);

/*  Groups: before or after start. Joining a group twice, or leaving one
    not joined, is a no-op returning 0. Name <= 255 bytes. */
int mesh__zre_join(mesh__zre_t *self, const char *group);
int mesh__zre_leave(mesh__zre_t *self, const char *group);

/*  One content frame to one peer / to every peer in a group. 0, or
    MESH_ERR_NOTFOUND (no such ready peer), MESH_ERR_AGAIN (queue full),
    MESH_ERR_INVAL (empty content: ZRE peers crash on it). */
int mesh__zre_whisper(mesh__zre_t *self, const uint8_t *uuid, const void *data, size_t size);
int mesh__zre_shout(mesh__zre_t *self, const char *group, const void *data, size_t size);

/*  Driving. */
int mesh__zre_beacon_fd(const mesh__zre_t *self); /* -1 when beacons are off */
void *mesh__zre_inbox(const mesh__zre_t *self);   /* the ROUTER (libzmq socket) */
void mesh__zre_on_beacon(mesh__zre_t *self, int64_t now);
/*  Handles at most `budget` inbox messages; returns true if more may wait. */
bool mesh__zre_on_inbox(mesh__zre_t *self, int64_t now, int budget);
int64_t mesh__zre_next_deadline(const mesh__zre_t *self);
void mesh__zre_on_tick(mesh__zre_t *self, int64_t now);

/*  About this node. */
const uint8_t *mesh__zre_uuid(const mesh__zre_t *self);
const char *mesh__zre_uuid_str(const mesh__zre_t *self); /* 32 upper-case hex */
const char *mesh__zre_name(const mesh__zre_t *self);
const char *mesh__zre_endpoint(const mesh__zre_t *self); /* after start */
const mesh__zre_stats_t *mesh__zre_stats(const mesh__zre_t *self);
bool mesh__zre_in_group(const mesh__zre_t *self, const char *group);

/*  Known peers. Only ready peers (HELLO received) are listed. */
size_t mesh__zre_peer_count(const mesh__zre_t *self);
/*  Iterate: start with *pos = 0; returns NULL at the end. Do not join,
    leave or stop while iterating. */
const mesh__zre_peer_t *mesh__zre_peer_next(const mesh__zre_t *self, size_t *pos);
const mesh__zre_peer_t *mesh__zre_peer_find(const mesh__zre_t *self, const uint8_t *uuid);
/*  By 32-hex UUID (any case) or by name (first match). */
const mesh__zre_peer_t *mesh__zre_peer_lookup(const mesh__zre_t *self, const char *id_or_name);

const uint8_t *mesh__zre_peer_uuid(const mesh__zre_peer_t *peer);
const char *mesh__zre_peer_uuid_str(const mesh__zre_peer_t *peer);
const char *mesh__zre_peer_name(const mesh__zre_peer_t *peer);
const char *mesh__zre_peer_endpoint(const mesh__zre_peer_t *peer);
uint8_t mesh__zre_peer_status(const mesh__zre_peer_t *peer);
bool mesh__zre_peer_evasive(const mesh__zre_peer_t *peer);
bool mesh__zre_peer_is_mesh(const mesh__zre_peer_t *peer); /* has X-MESH header */
const char *mesh__zre_peer_header(const mesh__zre_peer_t *peer, const char *key);
size_t mesh__zre_peer_header_count(const mesh__zre_peer_t *peer);
void mesh__zre_peer_header_at(const mesh__zre_peer_t *peer, size_t i, const char **key,
                              const char **value);
size_t mesh__zre_peer_group_count(const mesh__zre_peer_t *peer);
const char *mesh__zre_peer_group_at(const mesh__zre_peer_t *peer, size_t i);
bool mesh__zre_peer_in_group(const mesh__zre_peer_t *peer, const char *group);

/*  Hex helpers. out must hold 33 bytes. */
void mesh__uuid_to_hex(const uint8_t *uuid, char *out);
int mesh__uuid_from_hex(const char *hex, uint8_t *uuid);

#endif
