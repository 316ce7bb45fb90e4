/*  routing.h: every peer's own routing table. Pure: no sockets, no loop;
    time comes in as `now` (monotonic ms), so tests use a fake clock.

    A member is a mesh peer of our realm (the local peer itself included,
    flagged is_self). Each member advertises services (path + tags) and a
    status (load, optional fitness, in-flight count). The table keeps an
    index path -> routes, maintained incrementally when a member's service
    list changes, so a request never scans every member. A member not heard
    within the ping timeout is not alive: selectors skip it at once, and it
    is alive again as soon as it is heard. */
#ifndef MESH_ROUTING_H
#define MESH_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

typedef struct mesh__routing mesh__routing_t;
typedef struct mesh__member mesh__member_t;

/*  One member offering one service: what selectors choose among. */
typedef struct {
    mesh__member_t *member;
    char **tags; /* "k=v" strings, owned by the table */
    size_t ntags;
} mesh__route_t;

mesh__routing_t *mesh__routing_new(int ping_timeout_ms, uint64_t rng_seed);

/*  The table's hash (XXH3, 64 bits): paths, topics, UUIDs, selector keys. */
uint64_t mesh__routing_hash(const void *data, size_t len);
void mesh__routing_destroy(mesh__routing_t **self_p);

/*  Members. add returns the existing member if the UUID is known. */
mesh__member_t *mesh__routing_add(mesh__routing_t *self, const uint8_t *uuid, const char *name,
                                  bool is_self, int64_t now);
void mesh__routing_remove(mesh__routing_t *self, const uint8_t *uuid);
mesh__member_t *mesh__routing_find(const mesh__routing_t *self, const uint8_t *uuid);
size_t mesh__routing_count(const mesh__routing_t *self);
/*  Iterate: *pos starts at 0; NULL at the end. */
mesh__member_t *mesh__routing_next(const mesh__routing_t *self, size_t *pos);

/*  Replaces a member's services and subscriptions (copied). Ignored if
    version is older than the one held (returns 0 without change). */
int mesh__routing_set_services(mesh__routing_t *self, mesh__member_t *m, uint64_t version,
                               const mesh__svc_entry_t *svcs, size_t nsvcs,
                               const mesh__sub_entry_t *subs, size_t nsubs, int64_t now);
void mesh__routing_set_status(mesh__routing_t *self, mesh__member_t *m, double load,
                              const double *fitness, uint64_t services_version,
                              uint64_t inflight, int64_t now);
/*  Any envelope from the member: refreshes liveness. */
void mesh__routing_heard(mesh__routing_t *self, mesh__member_t *m, int64_t now);

/*  Routes for a path (borrowed; valid until the table changes). */
const mesh__route_t *mesh__routing_routes(const mesh__routing_t *self, const char *path,
                                          size_t *count);

/*  Members with a subscription matching topic, into out (cap); returns the
    number found (may exceed cap: only cap written). */
size_t mesh__routing_subscribers(const mesh__routing_t *self, const char *topic, int64_t now,
                                 mesh__member_t **out, size_t cap);

/*  Member accessors. */
const uint8_t *mesh__member_uuid(const mesh__member_t *m);
const char *mesh__member_uuid_str(const mesh__member_t *m);
const char *mesh__member_name(const mesh__member_t *m);
bool mesh__member_is_self(const mesh__member_t *m);
bool mesh__member_alive(const mesh__routing_t *rt, const mesh__member_t *m, int64_t now);
double mesh__member_load(const mesh__member_t *m);
bool mesh__member_fitness(const mesh__member_t *m, double *fitness); /* false if none */
uint64_t mesh__member_inflight(const mesh__member_t *m);
uint64_t mesh__member_services_version(const mesh__member_t *m); /* held, not STATUS's */
int64_t mesh__member_last_heard(const mesh__member_t *m);
size_t mesh__member_service_count(const mesh__member_t *m);
const char *mesh__member_service_at(const mesh__member_t *m, size_t i, const char *const **tags,
                                    size_t *ntags);

/* ------------------------------------------------------------------------ */
/* selectors (selector.c) */

typedef enum {
    MESH_SEL_LEAST_LOADED = 0, /* default; ties broken at random */
    MESH_SEL_RANDOM,
    MESH_SEL_ROUND_ROBIN,
    MESH_SEL_ALL,
    MESH_SEL_KEY,    /* stable choice from a key hash */
    MESH_SEL_DIRECT, /* a named member */
    MESH_SEL_CUSTOM,
} mesh__sel_kind_t;

/*  What a custom selector sees of each candidate. */
typedef struct {
    const char *id;   /* 32 hex */
    const char *name;
    double load;
    double fitness;
    bool has_fitness;
    uint64_t inflight;
    const char *const *tags;
    size_t ntags;
} mesh__candidate_t;

/*  Returns the index of the chosen candidate, or -1 for none. */
typedef int(mesh__custom_sel_fn)(const mesh__candidate_t *cands, size_t n, const char *key,
                                 void *arg);

typedef struct {
    mesh__sel_kind_t kind;
    const char *key;              /* KEY (and passed to CUSTOM) */
    const uint8_t *direct;        /* DIRECT: the member's UUID */
    const char *const *tags;      /* every "k=v" must be among the route's tags */
    size_t ntags;
    const mesh__member_t *const *exclude; /* already tried: never chosen */
    size_t nexclude;
    mesh__custom_sel_fn *custom;
    void *custom_arg;
} mesh__select_t;

/*  Chooses one alive route for path. NULL when no candidate qualifies. */
const mesh__route_t *mesh__select_one(mesh__routing_t *rt, const char *path,
                                      const mesh__select_t *sel, int64_t now);

/*  Every alive route for path that passes the filters (ALL). Writes up to
    cap, returns how many qualify. */
size_t mesh__select_all(mesh__routing_t *rt, const char *path, const mesh__select_t *sel,
                        int64_t now, const mesh__route_t **out, size_t cap);

/*  "least_loaded" -> MESH_SEL_LEAST_LOADED ... ; -1 if not a built-in name. */
int mesh__select_kind_from_name(const char *name);

/* ------------------------------------------------------------------------ */
/* the table's per-path state, for selector.c only */

/*  Virtual nodes per route on a path's KEY ring (load spread about 1/sqrt). */
#define MESH_SEL_KEY_VNODES 128

typedef struct {
    const mesh__route_t *routes; /* n routes, contiguous */
    size_t n;
    const uint32_t *by_load; /* route indices by ascending load (kept on set_status) */
    const double *loads;     /* loads[k] is the load of routes[by_load[k]] */
    uint64_t generation;     /* changes whenever this path's route set changes */
    size_t *cursor;          /* ROUND_ROBIN position */
    void **cache;            /* selector's block (KEY ring); the table free()s it */
} mesh__path_state_t;

/*  False (and out untouched) if no member offers path. */
bool mesh__routing_path_state(mesh__routing_t *rt, const char *path, mesh__path_state_t *out);
/*  The table's random stream (splitmix64 seeded by rng_seed). */
uint64_t mesh__routing_random(mesh__routing_t *rt);

#endif
