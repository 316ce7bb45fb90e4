/*  tasks.h: the scheduling core of the task queue (issue 5, section 2).
    Pure: no sockets, no clock, no globals; time comes in as `now`
    (monotonic ms), so tests use a fake clock. The peer wires it to the
    network (task envelopes, replication, stand-down, hand-off, journal).

    One mesh__tasks_t holds the tasks this node owns or replicates. Each
    task has a base due time; a holder at replica index k (0 = the ring
    owner, 1.. = its successors) treats it as due at
        effective due = due + k x replica_offset_ms,
    so the owner starts it first, announces the start, and the replicas
    stand down (mesh__tasks_standdown). Should the runner be lost, a
    replica takes over (mesh__tasks_takeover), again with its offset.

    Lifecycle, as users see it:
        SCHEDULED -> RUNNING -> SUCCEEDED | FAILED | EXPIRED | CANCELLED
    plus STANDBY, a holder's view of a task some other holder is running.
    A SCHEDULED task may be `waiting`: due, but held back by its service's
    rate limit; waiting tasks start as tokens come, oldest first, and are
    never dropped.

    Every holder computes the same retry times: the backoff jitter is drawn
    from the task's id and attempt number, not from a clock or a global.

    Driving it (one thread; nothing here locks):
        add / import                 tasks come in
        next_deadline(now)           when to call again (INT64_MAX: idle)
        on_tick(now)                 TTL expiry and retention purge
        due(now, out, max)           tasks to start now: each returned task
                                     is RUNNING, its attempt counted
        finished(id, attempt, ok, ...) the outcome: retry with backoff,
                                     or a final state
        standdown / takeover         another holder's start / its loss
        set_replica / remove         ring membership changes

    Task pointers are borrowed: valid until the task is purged (on_tick),
    removed, or the queue destroyed. Keep ids, not pointers, across calls
    that may purge. Costs: add, due (per task), finished, cancel, standdown
    and find are O(log n) or O(1); list and iteration walk the table. */
#ifndef MESH_TASKS_H
#define MESH_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenbucket.h"
#include "zre_msg.h" /* mesh__slice_t */

/*  Defaults (mesh__tasks_config_default). */
#define MESH_TASKS_DEFAULT_REPLICAS          2       /* holders of a task: owner + 1 */
#define MESH_TASKS_DEFAULT_REPLICA_OFFSET_MS 5000    /* replica k waits k x this */
#define MESH_TASKS_DEFAULT_RETENTION_MS      3600000 /* results kept 1 h after the end */
#define MESH_TASKS_DEFAULT_IDEM_WINDOW_MS    3600000 /* idempotency keys held 1 h */
#define MESH_TASKS_DEFAULT_MAX_ATTEMPTS      1
#define MESH_TASKS_DEFAULT_BACKOFF_BASE_MS   1000   /* attempt 2 this long after 1 fails */
#define MESH_TASKS_DEFAULT_BACKOFF_MAX_MS    300000 /* doubling stops here */
#define MESH_TASKS_DEFAULT_JITTER_PCT        20     /* backoff +/- 20% */

/*  Limits. Times (delays, TTLs, countdowns) are bounded so that sums of
    them never overflow an int64. */
#define MESH_TASKS_MAX            1000000       /* tasks held, retained ones included */
#define MESH_TASKS_ID_SIZE        16            /* random bytes */
#define MESH_TASKS_ID_HEX         32            /* as text, lower-case (+ NUL) */
#define MESH_TASKS_PATH_MAX       255           /* service path */
#define MESH_TASKS_KEY_MAX        255           /* idempotency key */
#define MESH_TASKS_PAYLOAD_MAX    (1024 * 1024) /* so a record fits in a frame */
#define MESH_TASKS_RESULT_MAX     (1024 * 1024) /* result or error kept */
#define MESH_TASKS_ATTEMPTS_MAX   100           /* max_attempts */
#define MESH_TASKS_REPLICAS_MAX   16            /* replica index k < this */
#define MESH_TASKS_TIME_MAX_MS    (INT64_C(100) * 366 * 24 * 3600 * 1000) /* 100 years */
#define MESH_TASKS_JITTER_PCT_MAX 100
#define MESH_TASKS_RATELIMITS_MAX 4096      /* rate-limited paths */
#define MESH_TASKS_NEVER          INT64_MIN /* started / finished: not yet */

typedef struct mesh__tasks mesh__tasks_t;
typedef struct mesh__task mesh__task_t;

typedef enum {
    MESH_TASK_SCHEDULED = 0, /* waiting for its (effective) due time, or a rate token */
    MESH_TASK_RUNNING,       /* started here (returned by due) */
    MESH_TASK_STANDBY,       /* started by another holder: this one stands by */
    MESH_TASK_SUCCEEDED,
    MESH_TASK_FAILED,  /* its last attempt failed */
    MESH_TASK_EXPIRED, /* not started within its TTL */
    MESH_TASK_CANCELLED,
    MESH_TASK_STATE_COUNT
} mesh__task_state_t;

/*  "scheduled", "running", "standby", ...; "?" out of range. */
const char *mesh__task_state_name(int state);
/*  The state of a name, or -1. */
int mesh__task_state_from_name(const char *name);
/*  SUCCEEDED, FAILED, EXPIRED or CANCELLED. */
bool mesh__task_state_final(int state);

/*  What happened to a task, told to mesh__tasks_config_t.on_event from
    inside the call that did it (add, import, due, finished, on_tick, ...).
    The callback may read the task (accessors, encode) but must not call
    any mutating function of the queue. After REMOVED the pointer dies. */
typedef enum {
    MESH_TASKS_EV_ADDED = 1, /* add or import created it */
    MESH_TASKS_EV_CHANGED,   /* state, attempt, due time, replica or cancel flag */
    MESH_TASKS_EV_REMOVED,   /* purged after retention, or mesh__tasks_remove */
} mesh__tasks_event_t;

typedef void(mesh__tasks_event_fn)(void *arg, const mesh__task_t *task, mesh__tasks_event_t ev);

typedef struct {
    size_t max_tasks;          /* 1 .. MESH_TASKS_MAX */
    int64_t replica_offset_ms; /* 0 .. MESH_TASKS_TIME_MAX_MS / MESH_TASKS_REPLICAS_MAX */
    int64_t retention_ms;      /* a final task is purged this long after it ended */
    int64_t idem_window_ms;    /* a key returns its task this long after creation */
    int64_t default_ttl_ms;    /* for specs with ttl_ms 0; 0: no TTL */
    uint32_t default_max_attempts;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    uint32_t jitter_pct;            /* 0 .. MESH_TASKS_JITTER_PCT_MAX */
    uint64_t seed;                  /* task ids: pass a random seed outside tests */
    mesh__tasks_event_fn *on_event; /* may be NULL */
    void *event_arg;
} mesh__tasks_config_t;

/*  Fills cfg with the MESH_TASKS_DEFAULT_* values (seed 0, no callback). */
void mesh__tasks_config_default(mesh__tasks_config_t *cfg);

/*  A queue (cfg copied; NULL: defaults). NULL if out of memory or a
    config value is out of range. */
mesh__tasks_t *mesh__tasks_new(const mesh__tasks_config_t *cfg);
/*  Frees every task (no events). Accepts NULL; sets *self_p to NULL. */
void mesh__tasks_destroy(mesh__tasks_t **self_p);

/*  A new task. Strings and payload are copied. Numeric 0 means the
    config's default (ttl_ms 0: default_ttl_ms; max_attempts 0:
    default_max_attempts; backoff 0: the config's). */
typedef struct {
    const char *path;      /* service path, 1 .. MESH_TASKS_PATH_MAX bytes */
    const void *payload;   /* may be NULL when size is 0 */
    size_t size;           /* <= MESH_TASKS_PAYLOAD_MAX */
    const char *idem_key;  /* NULL or 1 .. MESH_TASKS_KEY_MAX bytes */
    int64_t due;           /* absolute ms (countdown or ETA converted by the
                              caller); in the past: due at once */
    int64_t ttl_ms;        /* expires if not started by created + ttl */
    uint32_t max_attempts; /* 1 .. MESH_TASKS_ATTEMPTS_MAX */
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    unsigned replica;  /* k: 0 owner, < MESH_TASKS_REPLICAS_MAX */
    const uint8_t *id; /* NULL: a fresh random id; else MESH_TASKS_ID_SIZE bytes */
} mesh__task_spec_t;

#define MESH_TASKS_ADDED    0 /* add / import: a new task */
#define MESH_TASKS_EXISTING 1 /* add: the key's task; import: the id was held */

/*  Adds a task; *task_out (may be NULL) gets it. Returns MESH_TASKS_ADDED;
    MESH_TASKS_EXISTING with the existing task when the idempotency key is
    held (a task not yet final always holds its key; a final one for
    idem_window_ms after its creation): nothing new is scheduled, so the
    task never runs twice. Errors: MESH_ERR_INVAL (a field out of range),
    MESH_ERR_TOOLONG (path, key or payload over its limit), MESH_ERR_EXISTS
    (spec.id is held already), MESH_ERR_AGAIN (max_tasks held),
    MESH_ERR_NOMEM. */
int mesh__tasks_add(mesh__tasks_t *self, const mesh__task_spec_t *spec, int64_t now,
                    mesh__task_t **task_out);

/*  Borrowed, or NULL. */
mesh__task_t *mesh__tasks_find(const mesh__tasks_t *self, const uint8_t *id);
mesh__task_t *mesh__tasks_find_hex(const mesh__tasks_t *self, const char *hex);
mesh__task_t *mesh__tasks_find_key(const mesh__tasks_t *self, const char *idem_key);

/*  Cancels a task. A SCHEDULED one is CANCELLED at once and never due. A
    RUNNING or STANDBY one keeps its current attempt; it gets no further
    attempt (a failure, or a takeover, ends it CANCELLED; a success is
    SUCCEEDED). 0, MESH_ERR_NOTFOUND, or MESH_ERR_STATE when final. */
int mesh__tasks_cancel(mesh__tasks_t *self, const uint8_t *id, int64_t now);

/*  When to call on_tick / due next: the earliest effective due time, TTL
    expiry, purge or rate token. May be <= now (call due again: more is
    ready). INT64_MAX when nothing is pending. */
int64_t mesh__tasks_next_deadline(const mesh__tasks_t *self, int64_t now);

/*  Expires SCHEDULED tasks whose TTL has passed (never started), and
    purges final tasks past their retention. Starts nothing. Returns how
    many tasks it expired or purged. */
size_t mesh__tasks_on_tick(mesh__tasks_t *self, int64_t now);

/*  Up to max tasks to start now, in order of effective due time (waiting
    ones first, as their tokens come): each is now RUNNING, its attempt
    number (mesh__task_info().attempt, 1-based) counted and a rate token
    taken. The caller starts them (tells the handler the attempt) and
    announces the start to the other holders. Tasks found expired on the
    way are EXPIRED, not returned. If max tasks came back, more may be
    ready: call again. */
size_t mesh__tasks_due(mesh__tasks_t *self, int64_t now, mesh__task_t **out, size_t max);

/*  Consulted by due() for each task about to start, before it takes a
    rate token: false defers the task by the gate's delay (SCHEDULED, due
    then whatever its rank; counted in stats.deferred). The task service
    keeps a replica from starting while a holder ranked before it is alive.
    The gate may read the task but must not call the queue. */
typedef bool(mesh__tasks_gate_fn)(void *arg, const mesh__task_t *task);
void mesh__tasks_set_gate(mesh__tasks_t *self, mesh__tasks_gate_fn *fn, void *arg,
                          int64_t delay_ms);

/*  The outcome of attempt `attempt` (from the runner, local or remote).
    result: the handler's result (ok) or error text (!ok), copied, <=
    MESH_TASKS_RESULT_MAX (NULL when size 0). On failure, while failures <
    max_attempts and no cancel was asked, the task is SCHEDULED again at
    now + backoff: min(backoff_max, base x 2^(failures - 1)) +/- jitter_pct,
    drawn from the id and the failure count (within [0, backoff_max]). Accepted from
    RUNNING (this attempt), STANDBY (this or a later attempt) and SCHEDULED
    (a later attempt than held: the start announcement was missed).
    0, MESH_ERR_NOTFOUND, MESH_ERR_TOOLONG (result; nothing changed), or
    MESH_ERR_STATE (a stale attempt or a final task: ignore). */
int mesh__tasks_finished(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, bool ok,
                         const void *result, size_t size, int64_t now);

/*  Another holder started attempt `attempt`: a SCHEDULED (or waiting) task
    stands by and will not start here. 0 (STANDBY now, or already), or
    MESH_ERR_NOTFOUND, or MESH_ERR_STATE: a stale attempt, a final task, or
    this holder is RUNNING the same attempt (a double start: count it). */
int mesh__tasks_standdown(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, int64_t now);

/*  The runner of a STANDBY task is lost: the task is SCHEDULED again, due
    at now (+ this holder's replica offset, so the holders do not all start
    it). The lost run does not count against max_attempts. CANCELLED
    instead if a cancel was asked. 0, NOTFOUND, or STATE if not STANDBY. */
int mesh__tasks_takeover(mesh__tasks_t *self, const uint8_t *id, int64_t now);

/*  This holder's replica index changed (the ring changed): a SCHEDULED
    task's effective due time moves with it. 0, NOTFOUND, or INVAL
    (k >= MESH_TASKS_REPLICAS_MAX). */
int mesh__tasks_set_replica(mesh__tasks_t *self, const uint8_t *id, unsigned k, int64_t now);

/*  Forgets a task this node no longer holds (handed off): REMOVED event,
    then freed. 0 or NOTFOUND. */
int mesh__tasks_remove(mesh__tasks_t *self, const uint8_t *id);

/*  Rate limit of a service path (NULL: none). Tasks of that path over the
    limit wait (SCHEDULED, waiting) and start as tokens come; none is
    dropped. Setting a limit fills its bucket; removing it releases the
    waiting tasks at once. 0, INVAL, TOOLONG (path), AGAIN
    (MESH_TASKS_RATELIMITS_MAX paths), NOMEM. */
int mesh__tasks_set_ratelimit(mesh__tasks_t *self, const char *path, const mesh__ratelimit_t *rl,
                              int64_t now);

/*  A cluster-wide limit of path: its tasks wait (as over a local limit)
    until tokens come from mesh__tasks_grant (the caller asks the limit's
    owner for them; mesh__tasks_waiting says how many to ask for). Replaces
    a local limit of the path; mesh__tasks_set_ratelimit(path, NULL)
    removes either. 0 or as set_ratelimit. */
int mesh__tasks_set_granted(mesh__tasks_t *self, const char *path, int64_t now);
/*  n tokens for the waiting tasks of a granted path (oldest first, at the
    next due()). Tokens left when no task waits any more are dropped, so a
    grant never serves tasks that came due later. 0 or MESH_ERR_NOTFOUND
    (the path has no granted limit). */
int mesh__tasks_grant(mesh__tasks_t *self, const char *path, uint32_t n);
/*  Tasks of path waiting for a token (0: none, or no limit). O(1). */
size_t mesh__tasks_waiting(const mesh__tasks_t *self, const char *path);

/*  The run of attempt `attempt` ended without an outcome: its provider was
    lost mid-run (reached: the handler may have run), or it never reached a
    handler (no provider, rejected: !reached, and the attempt is not
    counted, so the next start has the same number). The task is SCHEDULED
    again, due delay_ms from now at this holder whatever its rank; no
    failure is counted. CANCELLED instead if a cancel was asked. 0,
    NOTFOUND, STATE (not RUNNING that attempt), INVAL (delay). */
int mesh__tasks_requeue(mesh__tasks_t *self, const uint8_t *id, uint32_t attempt, bool reached,
                        int64_t delay_ms, int64_t now);

/*  Counts and iteration. list writes up to cap tasks in state (-1: any)
    and returns how many there are; next iterates all (*pos starts at 0;
    NULL at the end; no mutation in between). */
size_t mesh__tasks_count(const mesh__tasks_t *self, int state);
size_t mesh__tasks_size(const mesh__tasks_t *self);
size_t mesh__tasks_list(const mesh__tasks_t *self, int state, mesh__task_t **out, size_t cap);
mesh__task_t *mesh__tasks_next(const mesh__tasks_t *self, size_t *pos);

typedef struct {
    uint64_t added;
    uint64_t deduplicated; /* add returned a key's existing task */
    uint64_t started;      /* returned by due */
    uint64_t succeeded;
    uint64_t failed;
    uint64_t retried;
    uint64_t expired;
    uint64_t cancelled;
    uint64_t purged;
    uint64_t rate_waits; /* a task found its path's bucket empty */
    uint64_t standdowns;
    uint64_t takeovers;
    uint64_t requeued; /* lost runs scheduled again (mesh__tasks_requeue) */
    uint64_t deferred; /* due tasks the gate held back */
    uint64_t double_starts; /* standdown for an attempt running here */
    uint64_t imported;
    uint64_t import_stale; /* record older than the task held */
    uint64_t malformed;    /* records that did not decode */
} mesh__tasks_stats_t;

const mesh__tasks_stats_t *mesh__tasks_stats(const mesh__tasks_t *self);

/* ------------------------------------------------------------------------ */
/* one task */

/*  A task as seen from outside: borrowed pointers, valid as the task is. */
typedef struct {
    const uint8_t *id;  /* MESH_TASKS_ID_SIZE bytes */
    const char *id_hex; /* 32 lower-case hex */
    const char *path;
    const char *idem_key; /* NULL: none */
    const uint8_t *payload;
    size_t payload_size;
    const uint8_t *result; /* result (SUCCEEDED) or the last error; NULL: none */
    size_t result_size;
    mesh__task_state_t state;
    bool waiting; /* SCHEDULED, due, held back by a rate limit */
    bool cancel_requested;
    uint32_t attempt;  /* attempts started, by any holder (0: never) */
    uint32_t failures; /* failed attempts (lost runs not counted) */
    uint32_t max_attempts;
    unsigned replica;
    uint8_t jitter_pct;
    int64_t due;           /* base due time */
    int64_t effective_due; /* due + replica x replica_offset_ms */
    int64_t created;
    int64_t started;  /* latest attempt; MESH_TASKS_NEVER */
    int64_t finished; /* final; MESH_TASKS_NEVER */
    int64_t ttl_ms;   /* 0: none */
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
} mesh__task_info_t;

void mesh__task_info(const mesh__task_t *t, mesh__task_info_t *out);
const uint8_t *mesh__task_id(const mesh__task_t *t);
const char *mesh__task_id_hex(const mesh__task_t *t);
const char *mesh__task_path(const mesh__task_t *t);
mesh__task_state_t mesh__task_state(const mesh__task_t *t);
uint32_t mesh__task_attempt(const mesh__task_t *t);

/*  The bytes that place the task on the ring: its idempotency key if it
    has one (so every submit of a key lands on one owner), else its id. */
const void *mesh__task_placement_key(const mesh__task_t *t, size_t *len);

/*  Backoff before the attempt after `failures` failures of a task with
    this id (pure: every holder computes the same). */
int64_t mesh__tasks_backoff(const uint8_t *id, uint32_t failures, int64_t base_ms, int64_t max_ms,
                            unsigned jitter_pct);

/*  Id <-> 32 hex (upper or lower case accepted; out gets 33 bytes). */
void mesh__task_id_to_hex(const uint8_t *id, char *out);
int mesh__task_id_from_hex(const char *hex, uint8_t *id); /* 0 or MESH_ERR_INVAL */

/* ------------------------------------------------------------------------ */
/* records: a task as bytes, for replicas and the journal

    Version 1, big-endian, fixed header then the variable fields:

      off  size
        0     2  magic "MT"
        2     1  version (1)
        3     1  state (mesh__task_state_t)
        4     1  flags: 0x01 has key, 0x02 cancel requested, 0x04 started,
                 0x08 finished (other bits: malformed)
        5     1  replica k (< MESH_TASKS_REPLICAS_MAX)
        6     1  jitter_pct (<= 100)
        7     1  reserved, 0
        8    16  id
       24     4  attempt      28  4  failures      32  4  max_attempts
       36     8  due_in        (due - now)
       44     8  created_age   (now - created)
       52     8  started_age   (now - started; 0 without flag 0x04)
       60     8  finished_age  (now - finished; 0 without flag 0x08)
       68     8  ttl_ms        76  8  backoff_base_ms   84  8  backoff_max_ms
       92     2  path length (1..255)      94  2  key length (0 without 0x01)
       96     4  payload length            100 4  result length
      104        path, key, payload, result (exactly: trailing bytes are
                 malformed; path and key hold no NUL byte)

    Times travel relative to the encoder's now, since monotonic clocks are
    not shared: a receiver adds its own now. A journal that outlives the
    process stores the wall-clock time of the encoding next to the record
    and imports with now - (wall clock elapsed since). Limits: the
    MESH_TASKS_* above; every time field within +/- MESH_TASKS_TIME_MAX_MS,
    ttl and backoffs >= 0, failures <= max_attempts <= attempts max,
    attempt >= failures, attempt >= 1 if RUNNING or STANDBY, flag 0x08 iff
    the state is final. */
#define MESH_TASKS_RECORD_MAGIC_0 'M'
#define MESH_TASKS_RECORD_MAGIC_1 'T'
#define MESH_TASKS_RECORD_VERSION 1
#define MESH_TASKS_RECORD_HEADER  104
#define MESH_TASKS_RECORD_MAX                                                                      \
    (MESH_TASKS_RECORD_HEADER + MESH_TASKS_PATH_MAX + MESH_TASKS_KEY_MAX +                         \
     MESH_TASKS_PAYLOAD_MAX + MESH_TASKS_RESULT_MAX)

#define MESH_TASKS_REC_KEY      0x01
#define MESH_TASKS_REC_CANCEL   0x02
#define MESH_TASKS_REC_STARTED  0x04
#define MESH_TASKS_REC_FINISHED 0x08

/*  A decoded record: slices into the buffer (not NUL-terminated). */
typedef struct {
    uint8_t state;
    uint8_t flags;
    uint8_t replica;
    uint8_t jitter_pct;
    uint8_t id[MESH_TASKS_ID_SIZE];
    uint32_t attempt;
    uint32_t failures;
    uint32_t max_attempts;
    int64_t due_in;
    int64_t created_age;
    int64_t started_age;
    int64_t finished_age;
    int64_t ttl_ms;
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    mesh__slice_t path;
    mesh__slice_t key; /* ptr NULL without MESH_TASKS_REC_KEY */
    mesh__slice_t payload;
    mesh__slice_t result;
} mesh__task_record_t;

/*  Decodes one record. 0 or MESH_ERR_MALFORMED (*out zeroed). Pure and
    bounded: reads only buf[0..len). */
int mesh__task_record_decode(const uint8_t *buf, size_t len, mesh__task_record_t *out);

/*  Encodes a record into buf (capacity cap); returns its size. If that is
    larger than cap nothing useful was written: grow and call again. 0 if a
    field breaks the rules above. decode(encode(r)) == r, and a record that
    decodes re-encodes to the same bytes. */
size_t mesh__task_record_encode(const mesh__task_record_t *rec, uint8_t *buf, size_t cap);

/*  The task as a record at now (same size rule as record_encode). */
size_t mesh__task_encode(const mesh__task_t *t, int64_t now, uint8_t *buf, size_t cap);

/*  Takes a record in (from a replica message or the journal), at replica
    index `replica` (< 0: the record's). An unknown id is added (ADDED; a
    RUNNING record becomes STANDBY here: someone else runs it). A held id
    is updated if the record is ahead (ordered by attempt, then failures,
    then scheduled < running < final; a final task never changes)
    and returns EXISTING either way. Errors: MESH_ERR_MALFORMED (counted),
    MESH_ERR_INVAL (replica >= MESH_TASKS_REPLICAS_MAX),
    MESH_ERR_EXISTS (its key is held by another task: the caller resolves),
    MESH_ERR_AGAIN (full), MESH_ERR_NOMEM. */
int mesh__tasks_import(mesh__tasks_t *self, const uint8_t *buf, size_t len, int replica,
                       int64_t now, mesh__task_t **task_out);

#endif
