/*  journal.h: the durable store of the tasks a node owns or replicates
    (issue 5, section 2, "Durability"), on LMDB.

    Why LMDB: packaged in Debian (liblmdb-dev), no server, one file plus a
    lock file, ACID transactions with copy-on-write pages, so a process
    killed at any moment (SIGKILL included) leaves the last committed state
    and never a torn one; reads are zero-copy from a memory map.

    What it stores: task id (MESH_TASKS_ID_SIZE bytes) -> the task's record
    (mesh__task_encode bytes) and the wall-clock time of the encoding. The
    journal does not interpret records: they come back as bytes, and the
    task decoder validates them. Times in a record are relative to the
    encoder's `now` (tasks.h), so at restart import each record with
        mesh__tasks_import(q, rec, len, -1, now - (wall_now - wall_ms), ...)
    where wall_now is the wall clock at restart: the time the node was down
    has passed for the task too.

    On disk (dir/data.mdb, dir/lock.mdb, dir/journal.lock):
      - named DB "meta": key "format" -> "mesh-journal 1". An LMDB file
        without it that holds anything else is foreign and refused.
      - named DB "tasks": key = id (16 bytes); value, big-endian:
          off size
            0    2  magic "MJ"
            2    1  version (1)
            3    1  reserved, 0
            4    4  checksum: low 32 bits of XXH3_64 over bytes 8..end
            8    8  wall_ms (ms since the Unix epoch, signed)
           16       record (1 .. MESH_JOURNAL_RECORD_MAX bytes)
        A value that breaks this (short, bad magic or version, bad
        checksum, key not 16 bytes) is skipped by foreach and get, and
        counted (stats.malformed): one rotten record does not stop a
        restart.
      - dir/journal.lock holds an exclusive flock while the journal is open:
        a second opener, in this process or another, is refused.

    Durability (mesh__journal_config_t.sync):
      MESH_JOURNAL_SYNC_FULL (default): every commit is flushed (fdatasync)
        before commit returns: a committed put survives a process kill, an
        OS crash and a power cut. Cost: two flushes per commit (the data
        pages, then the meta page), so the commit rate is bounded by the
        device's flush latency. bench_journal, ext4 on a VM disk, 200-byte
        records: 3,400 puts/s one commit each, against 5,100/s for
        write+fdatasync of each record; 180,000 puts/s in batches of 100.
        A device with a slow honest flush gives far fewer single commits:
        batch puts (begin/commit) to amortise the flushes.
      MESH_JOURNAL_SYNC_META (MDB_NOMETASYNC): data pages are flushed, the
        meta page is not (one flush per commit: 5,800 puts/s in the run
        above). A process kill loses nothing; an OS crash may undo the last
        commit(s), never corrupts.
      MESH_JOURNAL_SYNC_NONE (MDB_NOSYNC): nothing is flushed at commit. A
        process kill still loses nothing (the pages are in the OS cache;
        210,000 puts/s one commit each, 1.6 M/s in batches of 100);
        an OS crash or power cut may lose recent commits and, per LMDB, may
        corrupt the file. mesh__journal_sync flushes on demand (call it
        from a timer to bound the loss).

    Batching: begin opens one write transaction; put and del then join it
    and nothing is visible or durable until commit. Outside begin/commit
    each put and del is its own transaction (one flush each under FULL).
    The task service should begin once per loop turn with work to journal
    and commit at the end of the turn. If a put or del fails inside a batch
    (the map is full, out of memory), the whole batch is rolled back at
    once; further put/del return that error until commit, which returns it
    too, or abort; the journal holds what it held before begin.

    Threads: one thread at a time (the loop thread); nothing here locks.
    Open and use it in the process that runs the loop: not across fork.
    No callback may call a mutating function of the journal (foreach
    callbacks get MESH_ERR_STATE if they try).

    Trust: the directory is the node's own state. Garbage, foreign and
    other-format files are refused with an error, and values are
    checksummed, but LMDB neither checksums nor bounds-checks its B-tree
    pages: damage inside them (bit rot, tampering) can crash the process
    inside LMDB (a segfault or LMDB's own assert). Measured with 20 random
    bytes changed past the meta pages of a 2,000-record journal, 200 files:
    175 read back (rotten values skipped), 8 refused with MALFORMED, 17
    crashed in LMDB. mesh__journal_check runs open and a full walk in a
    child process, so a caller that cannot trust its storage learns of such
    damage without dying. */
#ifndef MESH_JOURNAL_H
#define MESH_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "tasks.h"

#define MESH_JOURNAL_DEFAULT_MAP_SIZE (INT64_C(1) << 30) /* 1 GiB of address space */
#define MESH_JOURNAL_MAP_SIZE_MIN     (INT64_C(1) << 20) /* 1 MiB */
#define MESH_JOURNAL_MAP_SIZE_MAX     (INT64_C(1) << 40) /* 1 TiB */
#define MESH_JOURNAL_DIR_MODE         0700               /* created directories */
#define MESH_JOURNAL_FILE_MODE        0600               /* data, lock files */
#define MESH_JOURNAL_RECORD_MAX       MESH_TASKS_RECORD_MAX
#define MESH_JOURNAL_ID_SIZE          MESH_TASKS_ID_SIZE
#define MESH_JOURNAL_VALUE_HEADER     16 /* magic, version, checksum, wall_ms */
#define MESH_JOURNAL_FORMAT           "mesh-journal 1"

typedef enum {
    MESH_JOURNAL_SYNC_FULL = 0, /* every commit flushed (default) */
    MESH_JOURNAL_SYNC_META,     /* meta page not flushed: a crash may undo the last commit */
    MESH_JOURNAL_SYNC_NONE,     /* nothing flushed at commit: mesh__journal_sync */
} mesh__journal_sync_t;

typedef struct {
    int64_t map_size;          /* MESH_JOURNAL_MAP_SIZE_MIN .. _MAX: the most the file holds */
    mesh__journal_sync_t sync; /* see above */
} mesh__journal_config_t;

typedef struct mesh__journal mesh__journal_t;

typedef struct {
    uint64_t puts;      /* put calls that succeeded */
    uint64_t dels;      /* del calls that removed a record */
    uint64_t commits;   /* write transactions committed */
    uint64_t aborts;    /* batches rolled back (abort, or an error inside) */
    uint64_t malformed; /* values skipped by foreach / get */
} mesh__journal_stats_t;

/*  Fills cfg with the defaults (1 GiB map, MESH_JOURNAL_SYNC_FULL). */
void mesh__journal_config_default(mesh__journal_config_t *cfg);

/*  Opens (creating if missing, with its parents) the journal in dir, with
    the defaults. NULL on failure, with *err (may be NULL) set to:
      MESH_ERR_INVAL     dir NULL or empty
      MESH_ERR_CONFIG    dir cannot be created or used (not a directory,
                         permission denied, read-only file system), or a
                         config value out of range
      MESH_ERR_STATE     dir is open already (this process or another)
      MESH_ERR_MALFORMED data.mdb is not an LMDB file, is of another LMDB
                         version, is corrupted, or is an LMDB file that is
                         not a mesh journal (or of an unknown format)
      MESH_ERR_NOMEM     out of memory or address space for the map */
mesh__journal_t *mesh__journal_open(const char *dir, int *err);
/*  The same with a config (NULL: defaults); cfg is copied. */
mesh__journal_t *mesh__journal_open_config(const char *dir, const mesh__journal_config_t *cfg,
                                           int *err);

/*  Rolls back an open batch (what it held is lost: commit first), closes
    the files, releases the lock. Accepts NULL; sets *self_p to NULL. */
void mesh__journal_close(mesh__journal_t **self_p);

/*  Stores (or replaces) the record of task id, with wall_ms, the wall-clock
    time (ms since the epoch) at which it was encoded. Inside a batch it
    joins it; else committed (and flushed under FULL) before returning.
    0, MESH_ERR_INVAL (len 0, record NULL), MESH_ERR_TOOLONG (len >
    MESH_JOURNAL_RECORD_MAX), MESH_ERR_AGAIN (the map is full: raise
    map_size; or the disk), MESH_ERR_CONFIG (I/O error), MESH_ERR_NOMEM,
    MESH_ERR_STATE (inside a foreach callback), MESH_ERR_MALFORMED (LMDB
    found the file corrupted). */
int mesh__journal_put(mesh__journal_t *self, const uint8_t *id, const uint8_t *record, size_t len,
                      int64_t wall_ms);

/*  Removes the record of task id. 0, MESH_ERR_NOTFOUND (nothing held;
    inside a batch this does not spoil it), or as put. */
int mesh__journal_del(mesh__journal_t *self, const uint8_t *id);

/*  Starts a batch: put and del join one write transaction until commit.
    0, MESH_ERR_STATE (a batch is open, or inside foreach), MESH_ERR_NOMEM. */
int mesh__journal_begin(mesh__journal_t *self);
/*  Commits the batch (flushed under FULL). 0, MESH_ERR_STATE (no batch),
    or the error that rolled the batch back (see above) or that the commit
    met (MESH_ERR_AGAIN: the map or the disk is full; MESH_ERR_CONFIG: an
    I/O error, the storage is failing): the batch is over either way. */
int mesh__journal_commit(mesh__journal_t *self);
/*  Rolls the batch back. 0 or MESH_ERR_STATE (no batch). */
int mesh__journal_abort(mesh__journal_t *self);

/*  Flushes what was committed to the device (useful under SYNC_META and
    SYNC_NONE; nearly free under FULL). 0 or MESH_ERR_CONFIG (I/O error). */
int mesh__journal_sync(mesh__journal_t *self);

/*  Called by foreach for each record, in id order. id, record: borrowed,
    valid during the call only (they point into the map). Return 0 to go
    on; anything else stops foreach, which returns it. */
typedef int(mesh__journal_fn)(void *arg, const uint8_t *id, const uint8_t *record, size_t len,
                              int64_t wall_ms);

/*  Every record held (a batch's own uncommitted changes included). 0, fn's
    non-zero return, MESH_ERR_STATE (nested foreach), MESH_ERR_MALFORMED
    (LMDB found the file corrupted), MESH_ERR_NOMEM. */
int mesh__journal_foreach(mesh__journal_t *self, mesh__journal_fn *fn, void *arg);

/*  The record of task id, copied: *record is the caller's to free. 0,
    MESH_ERR_NOTFOUND (also when the value is malformed: counted), or as
    foreach. */
int mesh__journal_get(mesh__journal_t *self, const uint8_t *id, uint8_t **record, size_t *len,
                      int64_t *wall_ms);

/*  Opens the journal in dir and walks every record in a forked child
    process, then returns what the child met: 0 (it opens and reads back),
    any open error (MESH_ERR_MALFORMED, _CONFIG, _STATE, ...), or
    MESH_ERR_MALFORMED if the child died inside LMDB on a damaged file.
    Call it where forking is safe, before the process starts threads
    (meshd at startup), and with dir not open in this process. A dir with
    no journal gets an empty one, as open would. MESH_ERR_INVAL (dir NULL
    or empty), MESH_ERR_THREAD (fork failed). */
int mesh__journal_check(const char *dir);

/*  Records held (a batch's own changes included); 0 on error. */
size_t mesh__journal_count(mesh__journal_t *self);

const mesh__journal_stats_t *mesh__journal_stats(const mesh__journal_t *self);

#endif
