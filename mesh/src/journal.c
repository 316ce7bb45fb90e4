/*  journal.c: the task journal on LMDB (see journal.h for the format and
    the durability and batching rules). */
#include "journal.h"

#include <mesh/error.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#define S_DB_META       "meta"
#define S_DB_TASKS      "tasks"
#define S_META_FORMAT   "format"
#define S_MAXDBS        2
#define S_LOCK_NAME     "journal.lock"
#define S_VALUE_MAGIC_0 'M'
#define S_VALUE_MAGIC_1 'J'
#define S_VALUE_VERSION 1
/*  check's child exits 0, or S_CHECK_EXIT_BASE + -err for an error it
    returned; any other end (a signal, a sanitizer's exit) is damage. */
#define S_CHECK_EXIT_BASE 64
#define S_CHECK_ERR_MAX   60

struct mesh__journal {
    MDB_env *env;
    MDB_dbi tasks;
    MDB_txn *txn;  /* the open batch, or NULL */
    bool batch;    /* between begin and commit / abort */
    int batch_err; /* the error that rolled the batch back, or 0 */
    bool in_foreach;
    int lock_fd;
    mesh__journal_config_t cfg;
    mesh__journal_stats_t stats;
};

/* ------------------------------------------------------------------------ */
/* helpers */

/*  LMDB and OS errors onto mesh codes. */
static int s_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return MESH_ERR_NOTFOUND;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case ENOSPC:
    case EDQUOT:
        return MESH_ERR_AGAIN;
    case ENOMEM:
    case MDB_TLS_FULL:
        return MESH_ERR_NOMEM;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INCOMPATIBLE:
    case MDB_BAD_VALSIZE:
        return MESH_ERR_MALFORMED;
    case MDB_BAD_TXN:
    case MDB_BAD_RSLOT:
    case EBUSY:
        return MESH_ERR_STATE;
    default: /* EACCES, EROFS, ENOTDIR, EISDIR, EIO, ...: the storage is not usable */
        return MESH_ERR_CONFIG;
    }
}

static void s_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t s_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void s_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t s_get_u32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*  Checksum of a value: bytes 8..end (wall_ms and the record). */
static uint32_t s_checksum(const uint8_t *value, size_t size)
{
    return (uint32_t)XXH3_64bits(value + 8, size - 8);
}

/*  Validates one stored key/value pair; on success points at its parts. */
static bool s_value_ok(const MDB_val *key, const MDB_val *val, const uint8_t **record, size_t *len,
                       int64_t *wall_ms)
{
    if (key->mv_size != MESH_JOURNAL_ID_SIZE || val->mv_size <= MESH_JOURNAL_VALUE_HEADER ||
        val->mv_size - MESH_JOURNAL_VALUE_HEADER > MESH_JOURNAL_RECORD_MAX) {
        return false;
    }
    const uint8_t *v = val->mv_data;
    if (v[0] != S_VALUE_MAGIC_0 || v[1] != S_VALUE_MAGIC_1 || v[2] != S_VALUE_VERSION ||
        v[3] != 0 || s_get_u32(v + 4) != s_checksum(v, val->mv_size)) {
        return false;
    }
    *wall_ms = (int64_t)s_get_u64(v + 8);
    *record = v + MESH_JOURNAL_VALUE_HEADER;
    *len = val->mv_size - MESH_JOURNAL_VALUE_HEADER;
    return true;
}

/*  mkdir -p, MESH_JOURNAL_DIR_MODE; then dir must be a directory. */
static int s_mkdirs(const char *dir)
{
    size_t n = strlen(dir);
    if (n >= PATH_MAX) {
        return MESH_ERR_CONFIG;
    }
    char path[PATH_MAX];
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0') {
            continue;
        }
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, MESH_JOURNAL_DIR_MODE) != 0 && errno != EEXIST) {
            return MESH_ERR_CONFIG;
        }
        path[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return MESH_ERR_CONFIG;
    }
    return 0;
}

/*  The exclusive lock on dir/journal.lock: fd, or an error. */
static int s_lock(const char *dir)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", dir, S_LOCK_NAME);
    if (n < 0 || (size_t)n >= sizeof path) {
        return MESH_ERR_CONFIG;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, MESH_JOURNAL_FILE_MODE);
    if (fd < 0) {
        return MESH_ERR_CONFIG;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? MESH_ERR_STATE : MESH_ERR_CONFIG;
    }
    return fd;
}

/*  First write transaction: a fresh environment gets the meta and tasks
    DBs; an existing one must be a mesh journal of this format. */
static int s_setup(mesh__journal_t *self)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(self->env, NULL, 0, &txn);
    if (rc != 0) {
        return s_err(rc);
    }
    MDB_dbi meta;
    MDB_val k = {.mv_size = strlen(S_META_FORMAT), .mv_data = S_META_FORMAT};
    MDB_val v;
    rc = mdb_dbi_open(txn, S_DB_META, 0, &meta);
    if (rc == MDB_NOTFOUND) {
        /* No meta DB: fresh if the main DB is empty, else foreign. */
        MDB_dbi main_db;
        MDB_stat st;
        rc = mdb_dbi_open(txn, NULL, 0, &main_db);
        if (rc == 0) {
            rc = mdb_stat(txn, main_db, &st);
        }
        if (rc == 0 && st.ms_entries != 0) {
            rc = MDB_INCOMPATIBLE;
        }
        if (rc == 0) {
            rc = mdb_dbi_open(txn, S_DB_META, MDB_CREATE, &meta);
        }
        if (rc == 0) {
            v.mv_size = strlen(MESH_JOURNAL_FORMAT);
            v.mv_data = MESH_JOURNAL_FORMAT;
            rc = mdb_put(txn, meta, &k, &v, 0);
        }
        if (rc == 0) {
            rc = mdb_dbi_open(txn, S_DB_TASKS, MDB_CREATE, &self->tasks);
        }
    } else if (rc == 0) {
        rc = mdb_get(txn, meta, &k, &v);
        if (rc == MDB_NOTFOUND ||
            (rc == 0 && (v.mv_size != strlen(MESH_JOURNAL_FORMAT) ||
                         memcmp(v.mv_data, MESH_JOURNAL_FORMAT, v.mv_size) != 0))) {
            rc = MDB_INCOMPATIBLE;
        }
        if (rc == 0) {
            rc = mdb_dbi_open(txn, S_DB_TASKS, 0, &self->tasks);
            if (rc == MDB_NOTFOUND) {
                rc = MDB_INCOMPATIBLE;
            }
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return s_err(rc);
    }
    return s_err(mdb_txn_commit(txn));
}

/*  Ends the batch after a failure inside it: rolled back, error kept. */
static int s_batch_fail(mesh__journal_t *self, int err)
{
    mdb_txn_abort(self->txn);
    self->txn = NULL;
    self->batch_err = err;
    self->stats.aborts++;
    return err;
}

/*  The transaction a put or del goes into: the batch's, or a fresh one. */
static int s_write_txn(mesh__journal_t *self, MDB_txn **txn)
{
    if (self->in_foreach) {
        return MESH_ERR_STATE;
    }
    if (self->batch) {
        if (self->batch_err != 0) {
            return self->batch_err;
        }
        *txn = self->txn;
        return 0;
    }
    return s_err(mdb_txn_begin(self->env, NULL, 0, txn));
}

/*  After a put or del (rc: LMDB's answer): commit it when not batched,
    or roll the batch back on a failure. */
static int s_write_done(mesh__journal_t *self, MDB_txn *txn, int rc)
{
    if (self->batch) {
        return rc == 0 ? 0 : s_batch_fail(self, s_err(rc));
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return s_err(rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        return s_err(rc);
    }
    self->stats.commits++;
    return 0;
}

/*  A read transaction, or the batch's when one is open. */
static int s_read_txn(mesh__journal_t *self, MDB_txn **txn, bool *own)
{
    if (self->batch && self->txn) {
        *txn = self->txn;
        *own = false;
        return 0;
    }
    *own = true;
    return s_err(mdb_txn_begin(self->env, NULL, MDB_RDONLY, txn));
}

/* ------------------------------------------------------------------------ */
/* open / close */

void mesh__journal_config_default(mesh__journal_config_t *cfg)
{
    assert(cfg);
    cfg->map_size = MESH_JOURNAL_DEFAULT_MAP_SIZE;
    cfg->sync = MESH_JOURNAL_SYNC_FULL;
}

mesh__journal_t *mesh__journal_open(const char *dir, int *err)
{
    return mesh__journal_open_config(dir, NULL, err);
}

mesh__journal_t *mesh__journal_open_config(const char *dir, const mesh__journal_config_t *cfg,
                                           int *err)
{
    int dummy;
    if (!err) {
        err = &dummy;
    }
    if (!dir || !*dir) {
        *err = MESH_ERR_INVAL;
        return NULL;
    }
    mesh__journal_config_t c;
    if (cfg) {
        c = *cfg;
    } else {
        mesh__journal_config_default(&c);
    }
    if (c.map_size < MESH_JOURNAL_MAP_SIZE_MIN || c.map_size > MESH_JOURNAL_MAP_SIZE_MAX ||
        (uint64_t)c.map_size > SIZE_MAX || c.sync < MESH_JOURNAL_SYNC_FULL ||
        c.sync > MESH_JOURNAL_SYNC_NONE) {
        *err = MESH_ERR_CONFIG;
        return NULL;
    }
    int rc = s_mkdirs(dir);
    if (rc != 0) {
        *err = rc;
        return NULL;
    }
    mesh__journal_t *self = calloc(1, sizeof *self);
    if (!self) {
        *err = MESH_ERR_NOMEM;
        return NULL;
    }
    self->cfg = c;
    self->lock_fd = s_lock(dir);
    if (self->lock_fd < 0) {
        *err = self->lock_fd;
        free(self);
        return NULL;
    }
    unsigned flags = MDB_NOTLS;
    if (c.sync == MESH_JOURNAL_SYNC_META) {
        flags |= MDB_NOMETASYNC;
    } else if (c.sync == MESH_JOURNAL_SYNC_NONE) {
        flags |= MDB_NOSYNC;
    }
    rc = mdb_env_create(&self->env);
    if (rc == 0) {
        rc = mdb_env_set_mapsize(self->env, (size_t)c.map_size);
    }
    if (rc == 0) {
        rc = mdb_env_set_maxdbs(self->env, S_MAXDBS);
    }
    if (rc == 0) {
        rc = mdb_env_open(self->env, dir, flags, MESH_JOURNAL_FILE_MODE);
    }
    if (rc == 0) {
        int dead;
        mdb_reader_check(self->env, &dead); /* reader slots of killed processes */
    }
    rc = rc == 0 ? s_setup(self) : s_err(rc);
    if (rc != 0) {
        *err = rc;
        mesh__journal_close(&self);
        return NULL;
    }
    *err = 0;
    return self;
}

void mesh__journal_close(mesh__journal_t **self_p)
{
    assert(self_p);
    mesh__journal_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->txn) {
        mdb_txn_abort(self->txn);
    }
    if (self->env) {
        if (self->cfg.sync != MESH_JOURNAL_SYNC_FULL) {
            mdb_env_sync(self->env, 1); /* a clean shutdown is durable whatever the mode */
        }
        mdb_env_close(self->env);
    }
    if (self->lock_fd >= 0) {
        close(self->lock_fd);
    }
    free(self);
    *self_p = NULL;
}

/* ------------------------------------------------------------------------ */
/* writes */

int mesh__journal_put(mesh__journal_t *self, const uint8_t *id, const uint8_t *record, size_t len,
                      int64_t wall_ms)
{
    assert(self);
    assert(id);
    if (!record || len == 0) {
        return MESH_ERR_INVAL;
    }
    if (len > MESH_JOURNAL_RECORD_MAX) {
        return MESH_ERR_TOOLONG;
    }
    MDB_txn *txn;
    int err = s_write_txn(self, &txn);
    if (err != 0) {
        return err;
    }
    MDB_val k = {.mv_size = MESH_JOURNAL_ID_SIZE, .mv_data = (void *)id};
    MDB_val v = {.mv_size = MESH_JOURNAL_VALUE_HEADER + len, .mv_data = NULL};
    int rc = mdb_put(txn, self->tasks, &k, &v, MDB_RESERVE);
    if (rc == 0) {
        uint8_t *p = v.mv_data;
        p[0] = S_VALUE_MAGIC_0;
        p[1] = S_VALUE_MAGIC_1;
        p[2] = S_VALUE_VERSION;
        p[3] = 0;
        s_put_u64(p + 8, (uint64_t)wall_ms);
        memcpy(p + MESH_JOURNAL_VALUE_HEADER, record, len);
        s_put_u32(p + 4, s_checksum(p, v.mv_size));
    }
    err = s_write_done(self, txn, rc);
    if (err == 0) {
        self->stats.puts++;
    }
    return err;
}

int mesh__journal_del(mesh__journal_t *self, const uint8_t *id)
{
    assert(self);
    assert(id);
    MDB_txn *txn;
    int err = s_write_txn(self, &txn);
    if (err != 0) {
        return err;
    }
    MDB_val k = {.mv_size = MESH_JOURNAL_ID_SIZE, .mv_data = (void *)id};
    int rc = mdb_del(txn, self->tasks, &k, NULL);
    if (rc == MDB_NOTFOUND) {
        /* Not an error of the transaction: a batch goes on. */
        if (!self->batch) {
            mdb_txn_abort(txn);
        }
        return MESH_ERR_NOTFOUND;
    }
    err = s_write_done(self, txn, rc);
    if (err == 0) {
        self->stats.dels++;
    }
    return err;
}

int mesh__journal_begin(mesh__journal_t *self)
{
    assert(self);
    if (self->batch || self->in_foreach) {
        return MESH_ERR_STATE;
    }
    int rc = mdb_txn_begin(self->env, NULL, 0, &self->txn);
    if (rc != 0) {
        self->txn = NULL;
        return s_err(rc);
    }
    self->batch = true;
    self->batch_err = 0;
    return 0;
}

int mesh__journal_commit(mesh__journal_t *self)
{
    assert(self);
    if (!self->batch || self->in_foreach) {
        return MESH_ERR_STATE;
    }
    int err = self->batch_err;
    if (self->txn) {
        int rc = mdb_txn_commit(self->txn); /* frees the txn, failed or not */
        self->txn = NULL;
        if (rc == 0) {
            self->stats.commits++;
        } else {
            self->stats.aborts++;
            err = s_err(rc);
        }
    }
    self->batch = false;
    self->batch_err = 0;
    return err;
}

int mesh__journal_abort(mesh__journal_t *self)
{
    assert(self);
    if (!self->batch || self->in_foreach) {
        return MESH_ERR_STATE;
    }
    if (self->txn) {
        mdb_txn_abort(self->txn);
        self->txn = NULL;
        self->stats.aborts++;
    }
    self->batch = false;
    self->batch_err = 0;
    return 0;
}

int mesh__journal_sync(mesh__journal_t *self)
{
    assert(self);
    return s_err(mdb_env_sync(self->env, 1));
}

/* ------------------------------------------------------------------------ */
/* reads */

int mesh__journal_foreach(mesh__journal_t *self, mesh__journal_fn *fn, void *arg)
{
    assert(self);
    assert(fn);
    if (self->in_foreach) {
        return MESH_ERR_STATE;
    }
    MDB_txn *txn;
    bool own;
    int err = s_read_txn(self, &txn, &own);
    if (err != 0) {
        return err;
    }
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, self->tasks, &cur);
    if (rc != 0) {
        if (own) {
            mdb_txn_abort(txn);
        }
        return s_err(rc);
    }
    self->in_foreach = true;
    int ret = 0;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *record;
        size_t len;
        int64_t wall_ms;
        if (!s_value_ok(&k, &v, &record, &len, &wall_ms)) {
            self->stats.malformed++;
            continue;
        }
        ret = fn(arg, k.mv_data, record, len, wall_ms);
        if (ret != 0) {
            break;
        }
    }
    if (ret == 0 && rc != MDB_NOTFOUND) {
        ret = s_err(rc);
    }
    self->in_foreach = false;
    mdb_cursor_close(cur);
    if (own) {
        mdb_txn_abort(txn);
    }
    return ret;
}

int mesh__journal_get(mesh__journal_t *self, const uint8_t *id, uint8_t **record, size_t *len,
                      int64_t *wall_ms)
{
    assert(self);
    assert(id && record && len);
    MDB_txn *txn;
    bool own;
    int err = s_read_txn(self, &txn, &own);
    if (err != 0) {
        return err;
    }
    MDB_val k = {.mv_size = MESH_JOURNAL_ID_SIZE, .mv_data = (void *)id};
    MDB_val v;
    int rc = mdb_get(txn, self->tasks, &k, &v);
    const uint8_t *rec;
    size_t n;
    int64_t wall;
    if (rc != 0) {
        err = s_err(rc);
    } else if (!s_value_ok(&k, &v, &rec, &n, &wall)) {
        self->stats.malformed++;
        err = MESH_ERR_NOTFOUND;
    } else if (!(*record = malloc(n))) {
        err = MESH_ERR_NOMEM;
    } else {
        memcpy(*record, rec, n);
        *len = n;
        if (wall_ms) {
            *wall_ms = wall;
        }
    }
    if (own) {
        mdb_txn_abort(txn);
    }
    return err;
}

size_t mesh__journal_count(mesh__journal_t *self)
{
    assert(self);
    MDB_txn *txn;
    bool own;
    if (s_read_txn(self, &txn, &own) != 0) {
        return 0;
    }
    MDB_stat st;
    size_t n = mdb_stat(txn, self->tasks, &st) == 0 ? st.ms_entries : 0;
    if (own) {
        mdb_txn_abort(txn);
    }
    return n;
}

const mesh__journal_stats_t *mesh__journal_stats(const mesh__journal_t *self)
{
    assert(self);
    return &self->stats;
}

/* ------------------------------------------------------------------------ */
/* check */

static int s_count_one(void *arg, const uint8_t *id, const uint8_t *record, size_t len,
                       int64_t wall_ms)
{
    (*(size_t *)arg)++;
    return 0;
}

int mesh__journal_check(const char *dir)
{
    if (!dir || !*dir) {
        return MESH_ERR_INVAL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        return MESH_ERR_THREAD;
    }
    if (pid == 0) {
        /* The child: only reads (open writes the format to a fresh dir). */
        int err;
        mesh__journal_t *j = mesh__journal_open(dir, &err);
        if (j) {
            size_t n = 0;
            err = mesh__journal_foreach(j, s_count_one, &n);
            mesh__journal_close(&j);
        }
        _exit(err < 0 && err >= -S_CHECK_ERR_MAX ? S_CHECK_EXIT_BASE - err : 0);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            return MESH_ERR_THREAD;
        }
    }
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        if (code == 0) {
            return 0;
        }
        if (code > S_CHECK_EXIT_BASE && code <= S_CHECK_EXIT_BASE + S_CHECK_ERR_MAX) {
            return S_CHECK_EXIT_BASE - code;
        }
    }
    return MESH_ERR_MALFORMED; /* killed by a signal: LMDB met a damaged page */
}
