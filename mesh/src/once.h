/*  once.h: the provider's ledger of "once" requests (protocol.md §11.6.7).
    Pure: no sockets, no clock, no globals; time comes in as `now`
    (monotonic ms) and the bounds in a config, so tests use a fake clock and
    small limits. The peer module owns one ledger and does the sending.

    A request that carries the ONCE flag and a key runs at most once at a
    time per (path, key), and a success is remembered. The ledger has an
    entry per (path, key), both compared octet by octet ("/a" + "bk" and
    "/ab" + "k" are two entries). An entry is RUNNING while one request, its
    run, is with the handler: repeats that arrive meanwhile join it as
    waiters, opaque (uuid, id) pairs handed back in the order they came when
    the run finishes (they get the run's reply, whatever it is). A success
    (status 0) makes the entry DONE with a copy of the reply, replayed to
    every repeat until retention_ms after the run finished; any other end
    deletes the entry, so that the next repeat runs again.

    Bounds: at most entries_max entries, and bytes_max bytes of replies kept
    by DONE entries. A new entry past the first, or a reply to keep past the
    second, evicts the DONE entries that finished first, before their
    retention ends. RUNNING entries are never evicted (the open requests
    bound them): when every entry is RUNNING and the ledger is full, a new
    (path, key) runs untracked (not deduplicated). A reply larger than
    bytes_max by itself, or that cannot be copied, is not kept: the entry is
    deleted as after an error.

    Cost: entries are found through a chained hash table (XXH3 of the path
    and of the key; power-of-two buckets, doubled when the entries reach
    their number). DONE entries are also listed in the order they finished,
    which (one retention for all) is the order they expire in: purging the
    expired and evicting the oldest take entries from the head of that list,
    one step per entry removed plus one to stop, never a scan. */
#ifndef MESH_ONCE_H
#define MESH_ONCE_H

#include <mesh/defaults.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct mesh__once mesh__once_t;
typedef struct mesh__once_entry mesh__once_entry_t;

/*  The bounds. The peer uses MESH_ONCE_ENTRIES_MAX, MESH_ONCE_BYTES_MAX and
    MESH_ONCE_RETENTION_MS; tests use small ones. */
typedef struct {
    size_t entries_max;   /* entries, RUNNING and DONE together */
    size_t bytes_max;     /* reply bytes kept by the DONE entries, in all */
    int64_t retention_ms; /* a DONE entry is replayed this long after its run ended (>= 0) */
} mesh__once_config_t;

/*  A repeat waiting on a run: who sent it and its request id. Opaque to the
    ledger, which only keeps it and hands it back. */
typedef struct {
    uint8_t uuid[MESH_ZRE_UUID_SIZE];
    uint64_t id;
} mesh__once_waiter_t;

/*  What to do with a request, as mesh__once_admit decides. */
typedef enum {
    MESH__ONCE_RUN,       /* a new RUNNING entry: hand the request to the handler, as its run */
    MESH__ONCE_UNTRACKED, /* no entry (full of RUNNING entries, or out of memory): hand the
                             request to the handler, without deduplication */
    MESH__ONCE_JOINED,    /* a run is under way: the request is now one of its waiters */
    MESH__ONCE_REPLAY,    /* DONE: answer with the kept reply, status 0 */
    MESH__ONCE_DROPPED    /* a run is under way, but the waiter could not be stored (out of
                             memory): drop the request, its caller times out */
} mesh__once_outcome_t;

typedef struct {
    mesh__once_entry_t *entry; /* RUN: the entry, for mesh__once_finish; else NULL */
    const uint8_t *data;       /* REPLAY: the kept reply (NULL when empty), borrowed: valid
                                  until the next call that changes the ledger */
    size_t size;               /* REPLAY: its length */
} mesh__once_result_t;

/*  What the ledger holds and the work it did. */
typedef struct {
    size_t entries;   /* RUNNING and DONE */
    size_t running;   /* RUNNING */
    size_t bytes;     /* reply bytes the DONE entries keep */
    uint64_t expired; /* DONE entries deleted because their retention had ended */
    uint64_t evicted; /* DONE entries deleted early, for a bound */
    uint64_t steps;   /* entries purging and eviction looked at: each one removed, plus
                         each look at a head that stayed */
} mesh__once_stats_t;

/*  A new, empty ledger with cfg's bounds (copied), or NULL (out of memory,
    or retention_ms < 0). Free with mesh__once_destroy. */
mesh__once_t *mesh__once_new(const mesh__once_config_t *cfg);

/*  Frees the ledger, every entry and waiter with it (an entry handed out by
    mesh__once_admit is invalid afterwards). Accepts NULL; nulls *self_p. */
void mesh__once_destroy(mesh__once_t **self_p);

/*  A request for (path, key) from (uuid, id), at now. Deletes the expired
    DONE entries first (mesh__once_purge), then decides (see the outcomes);
    *out is filled accordingly. path and key are octets (not NUL-terminated;
    an empty key is a key), copied into a new entry; uuid is
    MESH_ZRE_UUID_SIZE octets. */
mesh__once_outcome_t mesh__once_admit(mesh__once_t *self, const void *path, size_t plen,
                                      const void *key, size_t klen, const uint8_t *uuid,
                                      uint64_t id, int64_t now, mesh__once_result_t *out);

/*  The run of the RUNNING entry *entry_p ended, at now, with status (0: a
    success whose reply is data/size). Hands back its waiters, in the order
    they joined: *waiters (the caller's to free; NULL when none) and
    *nwaiters. Then a success becomes DONE with a copy of the reply, kept
    until now + retention_ms, the oldest DONE entries evicted as the byte
    bound needs; anything else (a failure, a reply larger than bytes_max,
    out of memory) deletes the entry. Nulls *entry_p. True if the reply is
    kept. */
bool mesh__once_finish(mesh__once_t *self, mesh__once_entry_t **entry_p, int32_t status,
                       const void *data, size_t size, int64_t now, mesh__once_waiter_t **waiters,
                       size_t *nwaiters);

/*  Deletes the DONE entries whose retention has ended (those that ended at
    or before now - retention_ms). Returns how many. */
size_t mesh__once_purge(mesh__once_t *self, int64_t now);

void mesh__once_stats(const mesh__once_t *self, mesh__once_stats_t *out);

#endif
