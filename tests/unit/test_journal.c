/*  test_journal.c: the task journal on LMDB. Put, get and foreach,
    delete, overwrite, persistence across close and open, batches (commit,
    abort, a full map rolling a batch back), a child process killed with
    SIGKILL while it commits (every committed record is found, nothing
    uncommitted is), 10k records, the restart recipe with real task
    records (times shifted by the wall clock elapsed), and bad input:
    garbage, foreign and locked files, rotten values, bad arguments. Each
    test works in its own directory under /tmp, removed at the end. */
#include "journal.h"
#include "tasks.h"

#include <mesh/mesh.h>

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_MANY          10000
#define T_BATCH         100
#define T_KILL_N        5000 /* records the child would write if not killed */
#define T_KILL_AFTER    200  /* the parent kills it after this many commits */
#define T_REC_MAX       256
#define T_CHECK_RECORDS 2000 /* a journal of several B-tree pages */
#define T_CHECK_FILES   40   /* damaged copies */
#define T_CHECK_BYTES   64   /* random bytes changed in each */
#define T_CHECK_META    8192 /* both meta pages left intact */

static char s_dir[64];

/* ------------------------------------------------------------------------ */
/* helpers */

static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void s_setup(void)
{
    strcpy(s_dir, "/tmp/mesh-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static void s_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", s_dir, name);
}

/*  The id of record i: i big-endian in the last 4 bytes. */
static void s_id(uint32_t i, uint8_t *id)
{
    memset(id, 0xA5, MESH_JOURNAL_ID_SIZE);
    id[12] = (uint8_t)(i >> 24);
    id[13] = (uint8_t)(i >> 16);
    id[14] = (uint8_t)(i >> 8);
    id[15] = (uint8_t)i;
}

static uint32_t s_id_num(const uint8_t *id)
{
    return ((uint32_t)id[12] << 24) | ((uint32_t)id[13] << 16) | ((uint32_t)id[14] << 8) | id[15];
}

/*  Record i, version v: 16 + (i % 200) bytes derived from (i, v). */
static size_t s_rec(uint32_t i, uint32_t v, uint8_t *buf)
{
    size_t n = 16 + i % 200;
    for (size_t k = 0; k < n; k++) {
        buf[k] = (uint8_t)(i * 31 + v * 7 + k);
    }
    return n;
}

static int64_t s_wall(uint32_t i, uint32_t v)
{
    return INT64_C(1700000000000) + i * 10 + v;
}

static mesh__journal_t *s_open(void)
{
    int err = 1;
    mesh__journal_t *j = mesh__journal_open(s_dir, &err);
    cr_assert_not_null(j, "open: %s", mesh_err_name(err));
    cr_assert_eq(err, 0);
    return j;
}

static void s_put(mesh__journal_t *j, uint32_t i, uint32_t v)
{
    uint8_t id[MESH_JOURNAL_ID_SIZE], rec[T_REC_MAX];
    s_id(i, id);
    size_t n = s_rec(i, v, rec);
    int rc = mesh__journal_put(j, id, rec, n, s_wall(i, v));
    cr_assert_eq(rc, 0, "put %u: %s", i, mesh_err_name(rc));
}

/*  What foreach saw: per id number (< cap), the version matched (+1), or
    0 if unseen; errors counted. */
typedef struct {
    uint32_t *version; /* expected version per id, UINT32_MAX: none */
    size_t cap;
    size_t seen;
    size_t bad;       /* bytes or wall time not as expected, or seen twice */
    uint8_t last[16]; /* order check */
    bool have_last;
    size_t stop_after; /* 0: never stop */
} s_walk_t;

static int s_check(void *arg, const uint8_t *id, const uint8_t *record, size_t len, int64_t wall_ms)
{
    s_walk_t *w = arg;
    uint32_t i = s_id_num(id);
    uint8_t expect[T_REC_MAX];
    if (w->have_last && memcmp(w->last, id, 16) >= 0) {
        w->bad++;
    }
    memcpy(w->last, id, 16);
    w->have_last = true;
    if (i >= w->cap || w->version[i] == UINT32_MAX) {
        w->bad++;
    } else {
        size_t n = s_rec(i, w->version[i], expect);
        if (n != len || memcmp(expect, record, n) != 0 || wall_ms != s_wall(i, w->version[i])) {
            w->bad++;
        }
        w->version[i] = UINT32_MAX; /* seen */
    }
    w->seen++;
    if (w->stop_after && w->seen == w->stop_after) {
        return 42;
    }
    return 0;
}

/*  Walks j expecting exactly the records in version[] (UINT32_MAX: absent). */
static void s_expect(mesh__journal_t *j, const uint32_t *version, size_t cap)
{
    uint32_t *v = malloc(cap * sizeof *v);
    cr_assert_not_null(v);
    memcpy(v, version, cap * sizeof *v);
    size_t want = 0;
    for (size_t i = 0; i < cap; i++) {
        want += version[i] != UINT32_MAX;
    }
    s_walk_t w = {.version = v, .cap = cap};
    int rc = mesh__journal_foreach(j, s_check, &w);
    cr_assert_eq(rc, 0, "foreach: %s", mesh_err_name(rc));
    cr_assert_eq(w.bad, 0, "%zu records not as written", w.bad);
    cr_assert_eq(w.seen, want, "saw %zu records, expected %zu", w.seen, want);
    cr_assert_eq(mesh__journal_count(j), want);
    free(v);
}

static uint32_t *s_versions(size_t cap)
{
    uint32_t *v = malloc(cap * sizeof *v);
    cr_assert_not_null(v);
    for (size_t i = 0; i < cap; i++) {
        v[i] = UINT32_MAX;
    }
    return v;
}

TestSuite(journal, .init = s_setup, .fini = s_teardown);

/* ------------------------------------------------------------------------ */
/* basics */

Test(journal, put_get_foreach)
{
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(8);
    s_expect(j, v, 8); /* empty */
    for (uint32_t i = 0; i < 8; i += 2) {
        s_put(j, i, 0);
        v[i] = 0;
    }
    s_expect(j, v, 8);

    uint8_t id[16], rec[T_REC_MAX], *got = NULL;
    size_t len = 0;
    int64_t wall = 0;
    s_id(4, id);
    cr_assert_eq(mesh__journal_get(j, id, &got, &len, &wall), 0);
    size_t n = s_rec(4, 0, rec);
    cr_assert_eq(len, n);
    cr_assert_arr_eq(got, rec, n);
    cr_assert_eq(wall, s_wall(4, 0));
    free(got);
    s_id(5, id);
    cr_assert_eq(mesh__journal_get(j, id, &got, &len, &wall), MESH_ERR_NOTFOUND);

    /* A callback's non-zero return stops foreach and comes back. */
    uint32_t *v2 = s_versions(8);
    memcpy(v2, v, 8 * sizeof *v);
    s_walk_t w = {.version = v2, .cap = 8, .stop_after = 2};
    cr_assert_eq(mesh__journal_foreach(j, s_check, &w), 42);
    cr_assert_eq(w.seen, 2);
    cr_assert_eq(mesh__journal_stats(j)->puts, 4);
    free(v2);
    free(v);
    mesh__journal_close(&j);
    cr_assert_null(j);
    mesh__journal_close(&j); /* NULL accepted */
}

Test(journal, delete)
{
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(4);
    for (uint32_t i = 0; i < 4; i++) {
        s_put(j, i, 0);
        v[i] = 0;
    }
    uint8_t id[16];
    s_id(2, id);
    cr_assert_eq(mesh__journal_del(j, id), 0);
    v[2] = UINT32_MAX;
    s_expect(j, v, 4);
    cr_assert_eq(mesh__journal_del(j, id), MESH_ERR_NOTFOUND);
    uint8_t *got;
    size_t len;
    cr_assert_eq(mesh__journal_get(j, id, &got, &len, NULL), MESH_ERR_NOTFOUND);
    mesh__journal_close(&j);
    j = s_open();
    s_expect(j, v, 4);
    mesh__journal_close(&j);
    free(v);
}

Test(journal, overwrite)
{
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(3);
    s_put(j, 1, 0);
    s_put(j, 1, 1); /* another length too: 16 + 1 % 200 is the same, so check bytes */
    v[1] = 1;
    s_expect(j, v, 3);
    /* A shorter then a longer value in place. */
    uint8_t id[16], big[T_REC_MAX], *got;
    size_t len;
    s_id(1, id);
    memset(big, 0x5A, sizeof big);
    cr_assert_eq(mesh__journal_put(j, id, big, 1, -5), 0);
    cr_assert_eq(mesh__journal_put(j, id, big, sizeof big, -7), 0);
    int64_t wall;
    cr_assert_eq(mesh__journal_get(j, id, &got, &len, &wall), 0);
    cr_assert_eq(len, sizeof big);
    cr_assert_eq(wall, -7); /* negative times survive */
    cr_assert_arr_eq(got, big, len);
    free(got);
    cr_assert_eq(mesh__journal_count(j), 1);
    mesh__journal_close(&j);
    free(v);
}

Test(journal, persists_across_reopen)
{
    uint32_t *v = s_versions(50);
    for (int round = 0; round < 3; round++) {
        mesh__journal_t *j = s_open();
        s_expect(j, v, 50);
        for (uint32_t i = (uint32_t)round; i < 50; i += 3) {
            s_put(j, i, (uint32_t)round);
            v[i] = (uint32_t)round;
        }
        mesh__journal_close(&j);
    }
    /* Each sync mode reads the same file back. */
    for (int mode = MESH_JOURNAL_SYNC_FULL; mode <= MESH_JOURNAL_SYNC_NONE; mode++) {
        mesh__journal_config_t cfg;
        mesh__journal_config_default(&cfg);
        cfg.sync = (mesh__journal_sync_t)mode;
        int err;
        mesh__journal_t *j = mesh__journal_open_config(s_dir, &cfg, &err);
        cr_assert_not_null(j, "%s", mesh_err_name(err));
        s_expect(j, v, 50);
        s_put(j, 49, 9);
        v[49] = 9;
        cr_assert_eq(mesh__journal_sync(j), 0);
        mesh__journal_close(&j);
    }
    mesh__journal_t *j = s_open();
    s_expect(j, v, 50);
    mesh__journal_close(&j);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* batches */

Test(journal, batch_commit_and_abort)
{
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(300);
    cr_assert_eq(mesh__journal_commit(j), MESH_ERR_STATE);
    cr_assert_eq(mesh__journal_abort(j), MESH_ERR_STATE);

    cr_assert_eq(mesh__journal_begin(j), 0);
    cr_assert_eq(mesh__journal_begin(j), MESH_ERR_STATE);
    for (uint32_t i = 0; i < 100; i++) {
        s_put(j, i, 0);
        v[i] = 0;
    }
    s_expect(j, v, 300); /* the batch sees its own puts */
    cr_assert_eq(mesh__journal_commit(j), 0);
    uint64_t commits = mesh__journal_stats(j)->commits;

    /* An aborted batch leaves nothing behind, deletes included. */
    cr_assert_eq(mesh__journal_begin(j), 0);
    for (uint32_t i = 100; i < 200; i++) {
        s_put(j, i, 0);
    }
    uint8_t id[16];
    s_id(0, id);
    cr_assert_eq(mesh__journal_del(j, id), 0);
    cr_assert_eq(mesh__journal_count(j), 199);
    cr_assert_eq(mesh__journal_abort(j), 0);
    s_expect(j, v, 300);

    /* A delete of a missing id inside a batch does not spoil it. */
    cr_assert_eq(mesh__journal_begin(j), 0);
    s_id(250, id);
    cr_assert_eq(mesh__journal_del(j, id), MESH_ERR_NOTFOUND);
    for (uint32_t i = 200; i < 300; i++) {
        s_put(j, i, 1);
        v[i] = 1;
    }
    cr_assert_eq(mesh__journal_commit(j), 0);
    cr_assert_eq(mesh__journal_stats(j)->commits, commits + 1); /* 100 puts, one commit */

    /* Closing with a batch open rolls it back. */
    cr_assert_eq(mesh__journal_begin(j), 0);
    s_put(j, 299, 7);
    mesh__journal_close(&j);
    j = s_open();
    s_expect(j, v, 300);
    mesh__journal_close(&j);
    free(v);
}

/*  A callback may not write: the walk would go wrong. */
static int s_write_inside(void *arg, const uint8_t *id, const uint8_t *record, size_t len,
                          int64_t wall_ms)
{
    mesh__journal_t *j = arg;
    cr_assert_eq(mesh__journal_put(j, id, record, len, wall_ms), MESH_ERR_STATE);
    cr_assert_eq(mesh__journal_del(j, id), MESH_ERR_STATE);
    cr_assert_eq(mesh__journal_begin(j), MESH_ERR_STATE);
    cr_assert_eq(mesh__journal_foreach(j, s_write_inside, j), MESH_ERR_STATE);
    return 0;
}

Test(journal, no_writes_inside_foreach)
{
    mesh__journal_t *j = s_open();
    s_put(j, 1, 0);
    cr_assert_eq(mesh__journal_foreach(j, s_write_inside, j), 0);
    cr_assert_eq(mesh__journal_begin(j), 0);
    cr_assert_eq(mesh__journal_foreach(j, s_write_inside, j), 0);
    cr_assert_eq(mesh__journal_commit(j), 0);
    cr_assert_eq(mesh__journal_count(j), 1);
    mesh__journal_close(&j);
}

Test(journal, full_map_rolls_the_batch_back)
{
    mesh__journal_config_t cfg;
    mesh__journal_config_default(&cfg);
    cfg.map_size = MESH_JOURNAL_MAP_SIZE_MIN; /* 1 MiB */
    int err;
    mesh__journal_t *j = mesh__journal_open_config(s_dir, &cfg, &err);
    cr_assert_not_null(j, "%s", mesh_err_name(err));
    s_put(j, 0, 0);

    static uint8_t rec[64 * 1024];
    memset(rec, 1, sizeof rec);
    uint8_t id[16];
    cr_assert_eq(mesh__journal_begin(j), 0);
    int rc = 0;
    uint32_t i;
    for (i = 1; i < 100 && rc == 0; i++) {
        s_id(i, id);
        rc = mesh__journal_put(j, id, rec, sizeof rec, 0);
    }
    cr_assert_eq(rc, MESH_ERR_AGAIN, "a 1 MiB map took %u x 64 KiB: %s", i, mesh_err_name(rc));
    s_id(500, id);
    cr_assert_eq(mesh__journal_put(j, id, rec, 8, 0), MESH_ERR_AGAIN); /* until commit */
    cr_assert_eq(mesh__journal_del(j, id), MESH_ERR_AGAIN);
    cr_assert_eq(mesh__journal_commit(j), MESH_ERR_AGAIN);
    cr_assert_eq(mesh__journal_stats(j)->aborts, 1);
    uint32_t *v = s_versions(1);
    v[0] = 0;
    s_expect(j, v, 1); /* what it held before begin */
    /* Same outside a batch: the put fails, the journal is intact and goes on. */
    s_id(1, id);
    static uint8_t huge[MESH_JOURNAL_MAP_SIZE_MIN];
    cr_assert_eq(mesh__journal_put(j, id, huge, sizeof huge, 0), MESH_ERR_AGAIN);
    s_put(j, 0, 3);
    v[0] = 3;
    s_expect(j, v, 1);
    mesh__journal_close(&j);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* crashes */

/*  The child: opens the journal, puts records 0.. one commit each and
    writes each committed index to fd, until killed. */
static void s_child_writer(int fd)
{
    int err;
    mesh__journal_t *j = mesh__journal_open(s_dir, &err);
    if (!j) {
        _exit(2);
    }
    uint8_t id[16], rec[T_REC_MAX];
    for (uint32_t i = 0; i < T_KILL_N; i++) {
        s_id(i, id);
        size_t n = s_rec(i, 0, rec);
        if (mesh__journal_put(j, id, rec, n, s_wall(i, 0)) != 0) {
            _exit(3);
        }
        if (write(fd, &i, sizeof i) != (ssize_t)sizeof i) {
            _exit(4);
        }
    }
    _exit(0); /* not reached in time: the parent kills first */
}

Test(journal, sigkill_mid_stream_loses_no_commit)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        s_child_writer(fds[1]);
    }
    close(fds[1]);
    uint32_t idx, committed = 0;
    while (committed < T_KILL_AFTER && read(fds[0], &idx, sizeof idx) == (ssize_t)sizeof idx) {
        cr_assert_eq(idx, committed);
        committed++;
    }
    cr_assert_eq(committed, T_KILL_AFTER, "the child stopped early");
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    while (read(fds[0], &idx, sizeof idx) == (ssize_t)sizeof idx) {
        committed++; /* told before it died: committed too */
    }
    close(fds[0]);

    /* Every committed record is there; at most one more (committed, not
       yet told) and nothing torn. */
    mesh__journal_t *j = s_open();
    size_t held = mesh__journal_count(j);
    cr_assert(held == committed || held == committed + 1, "held %zu, committed %u", held,
              committed);
    uint32_t *v = s_versions(held);
    for (size_t i = 0; i < held; i++) {
        v[i] = 0;
    }
    s_expect(j, v, held);
    /* And it goes on: the lock of the dead process is gone. */
    s_put(j, (uint32_t)held, 0);
    mesh__journal_close(&j);
    free(v);
}

Test(journal, sigkill_after_commit_with_a_batch_open)
{
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        int err;
        mesh__journal_t *j = mesh__journal_open(s_dir, &err);
        if (!j) {
            _exit(2);
        }
        uint8_t id[16], rec[T_REC_MAX];
        for (uint32_t b = 0; b < 3; b++) {
            if (mesh__journal_begin(j) != 0) {
                _exit(3);
            }
            for (uint32_t i = b * T_BATCH; i < (b + 1) * T_BATCH; i++) {
                s_id(i, id);
                size_t n = s_rec(i, 0, rec);
                if (mesh__journal_put(j, id, rec, n, s_wall(i, 0)) != 0) {
                    _exit(4);
                }
            }
            if (b < 2 && mesh__journal_commit(j) != 0) { /* the third stays open */
                _exit(5);
            }
        }
        kill(getpid(), SIGKILL);
        _exit(6);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(3 * T_BATCH);
    for (size_t i = 0; i < 2 * T_BATCH; i++) {
        v[i] = 0;
    }
    s_expect(j, v, 3 * T_BATCH); /* two batches committed, the third never was */
    mesh__journal_close(&j);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* volume */

Test(journal, ten_thousand_records)
{
    mesh__journal_t *j = s_open();
    uint32_t *v = s_versions(T_MANY);
    for (uint32_t b = 0; b < T_MANY / T_BATCH; b++) {
        cr_assert_eq(mesh__journal_begin(j), 0);
        for (uint32_t i = b * T_BATCH; i < (b + 1) * T_BATCH; i++) {
            s_put(j, i, 0);
            v[i] = 0;
        }
        cr_assert_eq(mesh__journal_commit(j), 0);
    }
    mesh__journal_close(&j);
    j = s_open();
    s_expect(j, v, T_MANY);
    /* Delete every other one and rewrite every fifth, in one batch. */
    cr_assert_eq(mesh__journal_begin(j), 0);
    uint8_t id[16];
    for (uint32_t i = 0; i < T_MANY; i++) {
        if (i % 2 == 0) {
            s_id(i, id);
            cr_assert_eq(mesh__journal_del(j, id), 0);
            v[i] = UINT32_MAX;
        } else if (i % 5 == 0) {
            s_put(j, i, 2);
            v[i] = 2;
        }
    }
    cr_assert_eq(mesh__journal_commit(j), 0);
    mesh__journal_close(&j);
    j = s_open();
    s_expect(j, v, T_MANY);
    cr_assert_eq(mesh__journal_count(j), T_MANY / 2);
    mesh__journal_close(&j);
    free(v);
}

/* ------------------------------------------------------------------------ */
/* the restart recipe with real task records */

typedef struct {
    mesh__tasks_t *q;
    int64_t now;
    int64_t wall_now;
    size_t imported;
} s_restart_t;

static int s_import(void *arg, const uint8_t *id, const uint8_t *record, size_t len,
                    int64_t wall_ms)
{
    s_restart_t *r = arg;
    int rc = mesh__tasks_import(r->q, record, len, -1, r->now - (r->wall_now - wall_ms), NULL);
    cr_assert_eq(rc, MESH_TASKS_ADDED, "%s", mesh_err_name(rc));
    r->imported++;
    return 0;
}

Test(journal, restart_shifts_due_times_by_the_wall_clock)
{
    const int64_t wall0 = INT64_C(1800000000000);
    mesh__tasks_t *q = mesh__tasks_new(NULL);
    cr_assert_not_null(q);
    mesh__journal_t *j = s_open();
    int64_t now = 1000; /* the first process's monotonic clock */
    uint8_t buf[1024];
    for (int k = 0; k < 3; k++) {
        mesh__task_spec_t spec = {
            .path = "svc/work", .payload = "x", .size = 1, .due = now + 10000 * (k + 1)};
        mesh__task_t *t;
        cr_assert_eq(mesh__tasks_add(q, &spec, now, &t), MESH_TASKS_ADDED);
        size_t n = mesh__task_encode(t, now, buf, sizeof buf);
        cr_assert(n > 0 && n <= sizeof buf);
        cr_assert_eq(mesh__journal_put(j, mesh__task_id(t), buf, n, wall0), 0);
    }
    mesh__journal_close(&j);
    mesh__tasks_destroy(&q);

    /* Restart 3 s of wall clock later, on a monotonic clock at 50. */
    s_restart_t r = {.q = mesh__tasks_new(NULL), .now = 50, .wall_now = wall0 + 3000};
    cr_assert_not_null(r.q);
    j = s_open();
    cr_assert_eq(mesh__journal_foreach(j, s_import, &r), 0);
    cr_assert_eq(r.imported, 3);
    size_t pos = 0;
    mesh__task_t *t;
    size_t seen = 0;
    while ((t = mesh__tasks_next(r.q, &pos))) {
        mesh__task_info_t info;
        mesh__task_info(t, &info);
        /* due 10 s, 20 s, 30 s after the encoding, 3 s of which have passed */
        int64_t in = info.due - r.now;
        cr_assert(in == 7000 || in == 17000 || in == 27000, "due in %lld ms", (long long)in);
        seen++;
    }
    cr_assert_eq(seen, 3);
    mesh__journal_close(&j);
    mesh__tasks_destroy(&r.q);
}

/* ------------------------------------------------------------------------ */
/* bad input */

static void s_write_file(const char *name, const void *data, size_t len)
{
    char path[128];
    s_path(path, sizeof path, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void s_refused(int want)
{
    int err = 0;
    mesh__journal_t *j = mesh__journal_open(s_dir, &err);
    cr_assert_null(j);
    cr_assert_eq(err, want, "got %s, want %s", mesh_err_name(err), mesh_err_name(want));
}

Test(journal, garbage_data_file_refused)
{
    static uint8_t junk[64 * 1024];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand();
    }
    s_write_file("data.mdb", junk, sizeof junk);
    s_refused(MESH_ERR_MALFORMED);
    s_write_file("data.mdb", "hello, not a database\n", 22);
    s_refused(MESH_ERR_MALFORMED);
    /* A real journal with its first page (meta) smashed. */
    char path[128];
    s_path(path, sizeof path, "data.mdb");
    cr_assert_eq(unlink(path), 0);
    mesh__journal_t *j = s_open();
    s_put(j, 1, 0);
    mesh__journal_close(&j);
    int fd = open(path, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, junk, 2 * 4096, 0), 2 * 4096); /* both meta pages */
    close(fd);
    s_refused(MESH_ERR_MALFORMED);
}

Test(journal, foreign_lmdb_refused)
{
    /* An LMDB environment some other program made. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {.mv_size = 5, .mv_data = "hello"}, v = {.mv_size = 5, .mv_data = "world"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    s_refused(MESH_ERR_MALFORMED);
}

Test(journal, other_format_refused)
{
    mesh__journal_t *j = s_open();
    mesh__journal_close(&j);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = {.mv_size = 6, .mv_data = "format"};
    MDB_val v = {.mv_size = 14, .mv_data = "mesh-journal 9"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    s_refused(MESH_ERR_MALFORMED);
}

Test(journal, rotten_values_skipped_and_counted)
{
    mesh__journal_t *j = s_open();
    s_put(j, 1, 0);
    s_put(j, 2, 0);
    s_put(j, 3, 0);
    mesh__journal_close(&j);
    /* Behind the journal's back: a short value, a bad checksum, a bad key. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_maxdbs(env, 4), 0);
    cr_assert_eq(mdb_env_open(env, s_dir, 0, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "tasks", 0, &dbi), 0);
    uint8_t id[16];
    s_id(1, id);
    MDB_val k = {.mv_size = 16, .mv_data = id}, v = {.mv_size = 3, .mv_data = "MJ\1"};
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    s_id(2, id);
    cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t copy[T_REC_MAX + 16];
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 1] ^= 1; /* one bit of the record */
    v.mv_data = copy;
    cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    MDB_val k2 = {.mv_size = 3, .mv_data = "abc"};
    cr_assert_eq(mdb_put(txn, dbi, &k2, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    j = s_open();
    uint32_t *ver = s_versions(4);
    ver[3] = 0;
    uint32_t *copyv = s_versions(4);
    memcpy(copyv, ver, 4 * sizeof *ver);
    s_walk_t w = {.version = copyv, .cap = 4};
    cr_assert_eq(mesh__journal_foreach(j, s_check, &w), 0);
    cr_assert_eq(w.seen, 1);
    cr_assert_eq(w.bad, 0);
    cr_assert_eq(mesh__journal_stats(j)->malformed, 3);
    uint8_t *got;
    size_t len;
    s_id(2, id);
    cr_assert_eq(mesh__journal_get(j, id, &got, &len, NULL), MESH_ERR_NOTFOUND);
    /* A rotten record is replaced by a good put like any other. */
    s_put(j, 2, 1);
    ver[2] = 1;
    memcpy(copyv, ver, 4 * sizeof *ver);
    w = (s_walk_t){.version = copyv, .cap = 4};
    cr_assert_eq(mesh__journal_foreach(j, s_check, &w), 0);
    cr_assert_eq(w.seen, 2);
    cr_assert_eq(w.bad, 0);
    mesh__journal_close(&j);
    free(ver);
    free(copyv);
}

Test(journal, bad_dirs_and_arguments)
{
    int err = 0;
    cr_assert_null(mesh__journal_open(NULL, &err));
    cr_assert_eq(err, MESH_ERR_INVAL);
    cr_assert_null(mesh__journal_open("", NULL));

    /* The directory is a regular file, or sits under one. */
    char path[128];
    s_path(path, sizeof path, "plain");
    s_write_file("plain", "x", 1);
    cr_assert_null(mesh__journal_open(path, &err));
    cr_assert_eq(err, MESH_ERR_CONFIG);
    s_path(path, sizeof path, "plain/sub");
    cr_assert_null(mesh__journal_open(path, &err));
    cr_assert_eq(err, MESH_ERR_CONFIG);

    /* Missing parents are created. */
    s_path(path, sizeof path, "a/b/c");
    mesh__journal_t *j = mesh__journal_open(path, &err);
    cr_assert_not_null(j, "%s", mesh_err_name(err));

    /* A second opener of the same directory is refused while it is open. */
    cr_assert_null(mesh__journal_open(path, &err));
    cr_assert_eq(err, MESH_ERR_STATE);

    uint8_t id[16] = {0}, rec[4] = {1, 2, 3, 4};
    cr_assert_eq(mesh__journal_put(j, id, rec, 0, 0), MESH_ERR_INVAL);
    cr_assert_eq(mesh__journal_put(j, id, NULL, 4, 0), MESH_ERR_INVAL);
    cr_assert_eq(mesh__journal_put(j, id, rec, (size_t)MESH_JOURNAL_RECORD_MAX + 1, 0),
                 MESH_ERR_TOOLONG);
    cr_assert_eq(mesh__journal_count(j), 0);
    mesh__journal_close(&j);
    j = mesh__journal_open(path, &err); /* the lock went with the close */
    cr_assert_not_null(j);
    mesh__journal_close(&j);

    mesh__journal_config_t cfg;
    mesh__journal_config_default(&cfg);
    cfg.map_size = 1;
    cr_assert_null(mesh__journal_open_config(s_dir, &cfg, &err));
    cr_assert_eq(err, MESH_ERR_CONFIG);
    mesh__journal_config_default(&cfg);
    cfg.sync = (mesh__journal_sync_t)7;
    cr_assert_null(mesh__journal_open_config(s_dir, &cfg, &err));
    cr_assert_eq(err, MESH_ERR_CONFIG);

    /* Not writable: refused, not crashed (root ignores modes: skip then). */
    if (geteuid() != 0) {
        s_path(path, sizeof path, "ro");
        cr_assert_eq(mkdir(path, 0500), 0);
        cr_assert_null(mesh__journal_open(path, &err));
        cr_assert_eq(err, MESH_ERR_CONFIG);
        chmod(path, 0700);
    }
}

/*  Damage inside LMDB's pages may crash LMDB; check runs it in a child, so
    the caller only ever sees 0 or MALFORMED, and lives. */
Test(journal, check_survives_damaged_pages)
{
    char good[128], bad[128];
    s_path(good, sizeof good, "good");
    int err;
    mesh__journal_t *j = mesh__journal_open(good, &err);
    cr_assert_not_null(j);
    cr_assert_eq(mesh__journal_begin(j), 0);
    for (uint32_t i = 0; i < T_CHECK_RECORDS; i++) {
        s_put(j, i, 0);
    }
    cr_assert_eq(mesh__journal_commit(j), 0);
    cr_assert_eq(mesh__journal_check(good), MESH_ERR_STATE); /* open here: refused */
    mesh__journal_close(&j);
    cr_assert_eq(mesh__journal_check(good), 0);
    cr_assert_eq(mesh__journal_check(""), MESH_ERR_INVAL);

    char src[160], dst[160];
    snprintf(src, sizeof src, "%s/data.mdb", good);
    FILE *f = fopen(src, "rb");
    cr_assert_not_null(f);
    static uint8_t image[4 * 1024 * 1024];
    size_t size = fread(image, 1, sizeof image, f);
    fclose(f);
    cr_assert_gt(size, T_CHECK_META);
    static uint8_t copy[sizeof image];
    size_t outcome[2] = {0};
    srand(11);
    for (int k = 0; k < T_CHECK_FILES; k++) {
        memcpy(copy, image, size);
        for (int b = 0; b < T_CHECK_BYTES; b++) {
            copy[T_CHECK_META + (size_t)rand() % (size - T_CHECK_META)] = (uint8_t)rand();
        }
        snprintf(bad, sizeof bad, "%s/bad%d", s_dir, k);
        cr_assert_eq(mkdir(bad, 0700), 0);
        snprintf(dst, sizeof dst, "%s/data.mdb", bad);
        f = fopen(dst, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(copy, 1, size, f), size);
        fclose(f);
        int rc = mesh__journal_check(bad);
        cr_assert(rc == 0 || rc == MESH_ERR_MALFORMED, "file %d: %s", k, mesh_err_name(rc));
        outcome[rc != 0]++;
    }
    cr_log_info("damaged files: %zu read back, %zu refused\n", outcome[0], outcome[1]);
    cr_assert_gt(outcome[1], 0, "no damaged file was refused: the test proves nothing");
}
