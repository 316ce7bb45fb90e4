/*  config.c: meshd's ZPL configuration file and the keys flags set.

    Loading is three steps. (1) A pre-scan of the text, line by line, with
    the rules of zconfig's own parser (czmq src/zconfig.c): it finds every
    syntax error zconfig would refuse (zconfig then just returns NULL) and
    names its line, and records the line of every key. (2) zconfig parses
    the same text. (3) A walk of the tree, in file order (zconfig keeps the
    order), zipped with the pre-scan's lines, sets every key through
    meshd_config_set(), the same entry point the command-line flags use. */
#include "config.h"
#include "agent_impl.h"
#include "cli.h"
#include "codec.h"
#include "tokenbucket.h"

#include <mesh/mesh.h>

#include <czmq.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_ZPL_INDENT 4

static const char *const s_levels[] = {"error", "warn", "info", "debug"};

/*  Indexed by mesh_task_sync_t. */
static const char *const s_syncs[] = {"full", "meta", "none"};
#define S_NSYNCS (sizeof s_syncs / sizeof s_syncs[0])

const char *meshd_log_level_name(int level)
{
    return level >= 0 && level <= MESHD_LOG_DEBUG ? s_levels[level] : NULL;
}

const char *meshd_journal_sync_name(int sync)
{
    return sync >= 0 && (size_t)sync < S_NSYNCS ? s_syncs[sync] : NULL;
}

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------------ */
/* life cycle */

void meshd_config_init(meshd_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->beacon_port = MESH_DEFAULT_BEACON_PORT;
    c->beacon = true;
    c->beacon_interval_ms = MESH_DEFAULT_BEACON_INTERVAL_MS;
    c->evasive_ms = MESH_DEFAULT_EVASIVE_MS;
    c->expired_ms = MESH_DEFAULT_EXPIRED_MS;
    c->ping_interval_ms = MESH_DEFAULT_PING_INTERVAL_MS;
    c->grace_ms = MESHD_DEFAULT_GRACE_MS;
    c->tasks_enabled = true;
    c->task_replicas = MESH_TASK_DEFAULT_REPLICAS;
    c->task_replica_offset_ms = MESH_TASK_DEFAULT_REPLICA_OFFSET_MS;
    c->journal_sync = MESH_TASK_SYNC_FULL;
    c->quorum_memory_ms = MESH_TASK_DEFAULT_QUORUM_MEMORY_MS;
    c->startup_grace_ms = MESH_TASK_DEFAULT_STARTUP_GRACE_MS;
    c->run_timeout_ms = MESH_TASK_DEFAULT_RUN_TIMEOUT_MS;
    c->log_level = MESHD_LOG_INFO;
}

static void s_agent_free(meshd_agent_conf_t *a)
{
    free(a->name);
    free(a->kind);
    free(a->path);
    free(a->filter);
    free(a->active_check);
    free(a->config);
    for (size_t i = 0; i < a->ntags; i++) {
        free(a->tags[i]);
    }
    memset(a, 0, sizeof *a);
}

void meshd_config_free(meshd_config_t *c)
{
    free(c->file);
    free(c->base_dir);
    free(c->name);
    free(c->realm);
    free(c->iface);
    for (size_t i = 0; i < c->nseeds; i++) {
        free(c->seeds[i]);
    }
    for (size_t i = 0; i < c->ngroups; i++) {
        free(c->groups[i]);
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        free(c->header_keys[i]);
        free(c->header_values[i]);
    }
    free(c->data_dir);
    for (size_t i = 0; i < c->ratelimits.n; i++) {
        free(c->ratelimits.path[i]);
        free(c->ratelimits.limit[i]);
    }
    for (size_t i = 0; i < c->nagents; i++) {
        s_agent_free(&c->agents[i]);
    }
    meshd_config_init(c);
}

/* ------------------------------------------------------------------------ */
/* values */

static bool s_is_namechar(char ch)
{
    /* zconfig's set, without '/' (it separates the levels of a key here) */
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("$-_@.&+", ch) != NULL);
}

static bool s_is_name(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!s_is_namechar(s[i])) {
            return false;
        }
    }
    return true;
}

/*  What every value must be: short, printable, and writable back as ZPL
    (zconfig has no escapes: a value cannot hold both quote characters). */
static int s_value_ok(const char *v, char *err, size_t errlen)
{
    size_t n = strlen(v);
    if (n > MESHD_VALUE_MAX) {
        s_err(err, errlen, "value longer than %d bytes", MESHD_VALUE_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == 0x7f) {
            s_err(err, errlen, "control character (byte 0x%02x) in the value", ch);
            return -1;
        }
    }
    if (strchr(v, '"') && strchr(v, '\'')) {
        s_err(err, errlen, "a value cannot hold both ' and \" (ZPL has no escapes)");
        return -1;
    }
    return 0;
}

static int s_long(const char *v, long min, long max, long *out)
{
    if (!*v) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max) {
        return -1;
    }
    *out = n;
    return 0;
}

static int s_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int s_replace(char **slot, const char *v, char *err, size_t errlen)
{
    char *copy = strdup(v);
    if (!copy) {
        s_err(err, errlen, "out of memory");
        return -1;
    }
    free(*slot);
    *slot = copy;
    return 0;
}

static int s_string(char **slot, const char *v, size_t max, char *err, size_t errlen)
{
    if (!*v || strlen(v) > max) {
        s_err(err, errlen, "expected 1 to %zu bytes, got %zu", max, strlen(v));
        return -1;
    }
    return s_replace(slot, v, err, errlen);
}

static int s_ms(int *slot, const char *v, long min, char *err, size_t errlen)
{
    long n;
    if (s_long(v, min, MESHD_MS_MAX, &n) != 0) {
        s_err(err, errlen, "expected milliseconds, %ld to %ld, got '%s'", min, MESHD_MS_MAX, v);
        return -1;
    }
    *slot = (int)n;
    return 0;
}

/*  "tcp://HOST:PORT" (resolved later, by meshd_config_check). */
static int s_seed_syntax(const char *v, char *err, size_t errlen)
{
    const char *host = strncmp(v, "tcp://", 6) == 0 ? v + 6 : NULL;
    const char *colon = host ? strrchr(host, ':') : NULL;
    long port;
    if (!colon || colon == host || s_long(colon + 1, 1, 65535, &port) != 0) {
        s_err(err, errlen, "expected tcp://HOST:PORT, got '%s'", v);
        return -1;
    }
    return 0;
}

/*  A path made absolute (relative to base, when given) and resolved. */
static int s_path(char **slot, const char *v, const char *base, char *err, size_t errlen)
{
    if (!*v) {
        s_err(err, errlen, "empty path");
        return -1;
    }
    char joined[PATH_MAX];
    if (v[0] != '/' && base) {
        if ((size_t)snprintf(joined, sizeof joined, "%s/%s", base, v) >= sizeof joined) {
            s_err(err, errlen, "path too long");
            return -1;
        }
    } else {
        snprintf(joined, sizeof joined, "%s", v);
    }
    char *real = realpath(joined, NULL);
    if (!real) {
        s_err(err, errlen, "'%s': %s", joined, strerror(errno));
        return -1;
    }
    free(*slot);
    *slot = real;
    return 0;
}

/*  A directory that need not exist yet (the task service creates it):
    made absolute (relative to base, else to the current directory);
    resolved when it exists, and then it must be a directory. */
static int s_dir(char **slot, const char *v, const char *base, char *err, size_t errlen)
{
    if (!*v) {
        s_err(err, errlen, "empty path");
        return -1;
    }
    char cwd[PATH_MAX], joined[PATH_MAX];
    if (v[0] != '/' && !base) {
        if (!getcwd(cwd, sizeof cwd)) {
            s_err(err, errlen, "the current directory: %s", strerror(errno));
            return -1;
        }
        base = cwd;
    }
    int n = v[0] == '/' ? snprintf(joined, sizeof joined, "%s", v)
                        : snprintf(joined, sizeof joined, "%s/%s", base, v);
    if (n < 0 || (size_t)n >= sizeof joined) {
        s_err(err, errlen, "path too long");
        return -1;
    }
    struct stat st;
    if (stat(joined, &st) != 0) {
        if (errno != ENOENT) {
            s_err(err, errlen, "'%s': %s", joined, strerror(errno));
            return -1;
        }
        return s_replace(slot, joined, err, errlen); /* created at start */
    }
    if (!S_ISDIR(st.st_mode)) {
        s_err(err, errlen, "'%s' is not a directory", joined);
        return -1;
    }
    return s_path(slot, joined, NULL, err, errlen);
}

/* ------------------------------------------------------------------------ */
/* keys */

static const char *const s_peer_keys =
    "name, realm, iface, beacon-port, port, beacon, beacon-interval, evasive, expired, "
    "ping-interval, seed, group, header";
static const char *const s_daemon_keys = "grace, log-level, syslog";
static const char *const s_tasks_keys =
    "enabled, replicas, replica-offset, data-dir, journal-sync, ratelimit, quorum-memory, "
    "startup-grace, run-timeout";
static const char *const s_agent_keys =
    "kind, path, workers, timeout, filter, active-check, config, tags";

static const char *const s_agent_key_names[MESHD_AKEY_COUNT] = {
    "", "kind", "path", "workers", "timeout", "filter", "active-check", "config", "tags"};

static meshd_agent_conf_t *s_agent_find(meshd_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nagents; i++) {
        if (strcmp(c->agents[i].name, name) == 0) {
            return &c->agents[i];
        }
    }
    return NULL;
}

static meshd_agent_conf_t *s_agent_get(meshd_config_t *c, const char *name, int line, char *err,
                                       size_t errlen)
{
    meshd_agent_conf_t *a = s_agent_find(c, name);
    if (a) {
        return a;
    }
    if (!agent_name_ok(name, AGENT_NAME_MAX)) {
        s_err(err, errlen,
              "agent name '%s': expected 1 to %d letters, digits, '.', '_' or '-', not starting "
              "with '.' (it becomes the first part of its services' paths)",
              name, AGENT_NAME_MAX);
        return NULL;
    }
    if (strcmp(name, MESHD_BUILTIN_AGENT) == 0) {
        s_err(err, errlen, "agent name '%s' is reserved for the built-in agent (/sys/ping...)",
              name);
        return NULL;
    }
    if (c->nagents == MESHD_AGENTS_MAX) {
        s_err(err, errlen, "too many agents (%d at most)", MESHD_AGENTS_MAX);
        return NULL;
    }
    a = &c->agents[c->nagents];
    memset(a, 0, sizeof *a);
    a->name = strdup(name);
    if (!a->name) {
        s_err(err, errlen, "out of memory");
        return NULL;
    }
    a->workers = AGENT_EXEC_WORKERS_DEFAULT;
    a->timeout_ms = AGENT_EXEC_TIMEOUT_DEFAULT;
    a->given[MESHD_AKEY_SECTION] = true;
    a->line[MESHD_AKEY_SECTION] = line;
    c->nagents++;
    return a;
}

void meshd_config_drop_agent(meshd_config_t *c, const char *name)
{
    meshd_agent_conf_t *a = s_agent_find(c, name);
    if (!a) {
        return;
    }
    size_t i = (size_t)(a - c->agents);
    s_agent_free(a);
    memmove(&c->agents[i], &c->agents[i + 1], (c->nagents - i - 1) * sizeof c->agents[0]);
    c->nagents--;
    memset(&c->agents[c->nagents], 0, sizeof c->agents[0]);
}

static int s_set_tag(meshd_agent_conf_t *a, const char *k, const char *v, char *err, size_t errlen)
{
    if (!s_is_name(k, MESH_ZRE_STRING_MAX)) {
        s_err(err, errlen, "tag name '%s': expected letters, digits or $-_@.&+", k);
        return -1;
    }
    size_t klen = strlen(k);
    char *tag = NULL;
    if (klen + 1 + strlen(v) > MESH_ZRE_STRING_MAX || asprintf(&tag, "%s=%s", k, v) < 0) {
        s_err(err, errlen, "tag '%s=%s': %d bytes at most", k, v, MESH_ZRE_STRING_MAX);
        return -1;
    }
    for (size_t i = 0; i < a->ntags; i++) {
        if (strncmp(a->tags[i], tag, klen + 1) == 0) {
            free(a->tags[i]);
            a->tags[i] = tag;
            return 0;
        }
    }
    if (a->ntags == MESHD_TAGS_MAX) {
        free(tag);
        s_err(err, errlen, "too many tags (%d at most)", MESHD_TAGS_MAX);
        return -1;
    }
    a->tags[a->ntags++] = tag;
    return 0;
}

static int s_set_agent(meshd_config_t *c, const char *rest, const char *v, int line, bool from_flag,
                       char *err, size_t errlen)
{
    char name[AGENT_NAME_MAX + 2];
    const char *slash = strchr(rest, '/');
    size_t nlen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (!slash || nlen == 0 || nlen > AGENT_NAME_MAX) {
        s_err(err, errlen, "unknown key (an agent is a section: agents/NAME/KEY)");
        return -1;
    }
    memcpy(name, rest, nlen);
    name[nlen] = '\0';
    meshd_agent_conf_t *a = s_agent_get(c, name, line, err, errlen);
    if (!a) {
        return -1;
    }
    const char *key = slash + 1;
    if (strncmp(key, "tags/", 5) == 0) {
        a->given[MESHD_AKEY_TAGS] = true;
        if (!a->line[MESHD_AKEY_TAGS]) {
            a->line[MESHD_AKEY_TAGS] = line;
        }
        return s_set_tag(a, key + 5, v, err, errlen);
    }
    int k = -1;
    for (int i = MESHD_AKEY_KIND; i < MESHD_AKEY_COUNT; i++) {
        if (i != MESHD_AKEY_TAGS && strcmp(key, s_agent_key_names[i]) == 0) {
            k = i;
        }
    }
    if (k < 0) {
        s_err(err, errlen, "unknown key (an agent takes: %s)", s_agent_keys);
        return -1;
    }
    int rc = 0;
    long n;
    switch (k) {
    case MESHD_AKEY_KIND:
        if (strcmp(v, "exec") != 0 && strcmp(v, "plugin") != 0) {
            s_err(err, errlen, "expected exec or plugin, got '%s'", v);
            return -1;
        }
        rc = s_replace(&a->kind, v, err, errlen);
        break;
    case MESHD_AKEY_PATH:
        rc = s_path(&a->path, v, from_flag ? NULL : c->base_dir, err, errlen);
        break;
    case MESHD_AKEY_WORKERS:
        if (s_long(v, 1, AGENT_EXEC_WORKERS_MAX, &n) != 0) {
            s_err(err, errlen, "expected 1 to %d processes, got '%s'", AGENT_EXEC_WORKERS_MAX, v);
            return -1;
        }
        a->workers = (int)n;
        break;
    case MESHD_AKEY_TIMEOUT:
        rc = s_ms(&a->timeout_ms, v, 1, err, errlen);
        break;
    case MESHD_AKEY_FILTER: {
        regex_t re;
        int rrc = regcomp(&re, v, REG_EXTENDED | REG_NOSUB);
        if (rrc != 0) {
            char why[128];
            regerror(rrc, &re, why, sizeof why);
            s_err(err, errlen, "'%s' is not a POSIX extended regular expression: %s", v, why);
            return -1;
        }
        regfree(&re);
        rc = s_replace(&a->filter, v, err, errlen);
        break;
    }
    case MESHD_AKEY_ACTIVE_CHECK:
        rc = s_string(&a->active_check, v, MESHD_VALUE_MAX, err, errlen);
        break;
    case MESHD_AKEY_CONFIG:
        rc = s_replace(&a->config, v, err, errlen);
        break;
    default:
        break;
    }
    if (rc == 0) {
        a->given[k] = true;
        a->line[k] = line;
    }
    return rc;
}

static int s_set_header(meshd_config_t *c, const char *k, const char *v, char *err, size_t errlen)
{
    if (!s_is_name(k, MESH_ZRE_STRING_MAX)) {
        s_err(err, errlen, "header name '%s': expected 1 to %d letters, digits or $-_@.&+", k,
              MESH_ZRE_STRING_MAX);
        return -1;
    }
    for (size_t i = 0; i < c->nheaders; i++) {
        if (strcmp(c->header_keys[i], k) == 0) {
            return s_replace(&c->header_values[i], v, err, errlen);
        }
    }
    if (c->nheaders == MESHD_HEADERS_MAX) {
        s_err(err, errlen, "too many headers (%d at most)", MESHD_HEADERS_MAX);
        return -1;
    }
    char *key = strdup(k), *value = strdup(v);
    if (!key || !value) {
        free(key);
        free(value);
        s_err(err, errlen, "out of memory");
        return -1;
    }
    c->header_keys[c->nheaders] = key;
    c->header_values[c->nheaders++] = value;
    return 0;
}

/*  seed and group: repeatable; a flag's first use replaces the file's list. */
static int s_add(char **list, size_t *n, size_t max, bool *by_flag, bool from_flag, const char *v,
                 char *err, size_t errlen)
{
    if (from_flag && !*by_flag) {
        for (size_t i = 0; i < *n; i++) {
            free(list[i]);
        }
        *n = 0;
        *by_flag = true;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(list[i], v) == 0) {
            return 0; /* given twice: once is enough */
        }
    }
    if (*n == max) {
        s_err(err, errlen, "too many (%zu at most)", max);
        return -1;
    }
    list[*n] = strdup(v);
    if (!list[*n]) {
        s_err(err, errlen, "out of memory");
        return -1;
    }
    (*n)++;
    return 0;
}

static int s_set_peer(meshd_config_t *c, const char *key, const char *v, int line, bool from_flag,
                      char *err, size_t errlen)
{
    long n;
    if (strncmp(key, "header/", 7) == 0) {
        return s_set_header(c, key + 7, v, err, errlen);
    }
    if (strcmp(key, "name") == 0) {
        return s_string(&c->name, v, MESH_ZRE_STRING_MAX, err, errlen);
    }
    if (strcmp(key, "realm") == 0) {
        return s_string(&c->realm, v, MESH_CLI_REALM_MAX, err, errlen);
    }
    if (strcmp(key, "iface") == 0) {
        return s_string(&c->iface, v, MESH_IFACE_NAME_MAX - 1, err, errlen);
    }
    if (strcmp(key, "beacon-port") == 0 || strcmp(key, "port") == 0) {
        bool beacon = key[0] == 'b';
        if (s_long(v, beacon ? 1 : 0, 65535, &n) != 0) {
            s_err(err, errlen, "expected a %s port %d-65535, got '%s'", beacon ? "UDP" : "TCP",
                  beacon ? 1 : 0, v);
            return -1;
        }
        *(beacon ? &c->beacon_port : &c->port) = (int)n;
        return 0;
    }
    if (strcmp(key, "beacon") == 0) {
        if (s_bool(v, &c->beacon) != 0) {
            s_err(err, errlen, "expected true or false, got '%s'", v);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "beacon-interval") == 0) {
        return s_ms(&c->beacon_interval_ms, v, 10, err, errlen);
    }
    if (strcmp(key, "evasive") == 0) {
        return s_ms(&c->evasive_ms, v, 10, err, errlen);
    }
    if (strcmp(key, "expired") == 0) {
        return s_ms(&c->expired_ms, v, 10, err, errlen);
    }
    if (strcmp(key, "ping-interval") == 0) {
        return s_ms(&c->ping_interval_ms, v, 10, err, errlen);
    }
    if (strcmp(key, "seed") == 0) {
        size_t before = c->nseeds;
        if (s_seed_syntax(v, err, errlen) != 0 ||
            s_add(c->seeds, &c->nseeds, MESHD_SEEDS_MAX, &c->seeds_by_flag, from_flag, v, err,
                  errlen) != 0) {
            return -1;
        }
        if (c->nseeds > before) {
            c->seed_lines[c->nseeds - 1] = line;
        }
        return 0;
    }
    if (strcmp(key, "group") == 0) {
        if (!*v || strlen(v) > MESH_ZRE_STRING_MAX) {
            s_err(err, errlen, "expected 1 to %d bytes", MESH_ZRE_STRING_MAX);
            return -1;
        }
        return s_add(c->groups, &c->ngroups, MESHD_GROUPS_MAX, &c->groups_by_flag, from_flag, v,
                     err, errlen);
    }
    s_err(err, errlen, "unknown key (peer takes: %s)", s_peer_keys);
    return -1;
}

static int s_set_daemon(meshd_config_t *c, const char *key, const char *v, char *err, size_t errlen)
{
    if (strcmp(key, "grace") == 0) {
        return s_ms(&c->grace_ms, v, 0, err, errlen);
    }
    if (strcmp(key, "log-level") == 0) {
        for (int i = 0; i <= MESHD_LOG_DEBUG; i++) {
            if (strcmp(v, s_levels[i]) == 0) {
                c->log_level = i;
                return 0;
            }
        }
        s_err(err, errlen, "expected error, warn, info or debug, got '%s'", v);
        return -1;
    }
    if (strcmp(key, "syslog") == 0) {
        if (s_bool(v, &c->syslog) != 0) {
            s_err(err, errlen, "expected true or false, got '%s'", v);
            return -1;
        }
        return 0;
    }
    s_err(err, errlen, "unknown key (daemon takes: %s)", s_daemon_keys);
    return -1;
}

/*  tasks/ratelimit = PATH=LIMIT ("/image/resize=10/s"; spaces around the
    last '=' are allowed). Repeatable, one per path: in the file, a path
    given twice is an error; a flag replaces the file's limit of its path. */
static int s_set_ratelimit(meshd_config_t *c, const char *v, int line, bool from_flag, char *err,
                           size_t errlen)
{
    const char *eq = strrchr(v, '=');
    if (!eq) {
        s_err(err, errlen, "expected PATH=LIMIT (e.g. /image/resize=10/s), got '%s'", v);
        return -1;
    }
    size_t plen = (size_t)(eq - v);
    while (plen > 0 && v[plen - 1] == ' ') {
        plen--;
    }
    const char *limit = eq + 1 + strspn(eq + 1, " ");
    if (plen == 0 || v[0] != '/') {
        s_err(err, errlen, "'%.*s': a service path starts with '/' (PATH=LIMIT)", (int)plen, v);
        return -1;
    }
    if (plen > MESH_CODEC_PATH_MAX) {
        s_err(err, errlen, "the path is longer than %d bytes", MESH_CODEC_PATH_MAX);
        return -1;
    }
    mesh__ratelimit_t rl;
    if (mesh__ratelimit_parse(limit, &rl) != 0) {
        s_err(err, errlen, "%.*s: limit '%s': expected N/s, N/m or N/h, N from 1 to %d (e.g. 10/s)",
              (int)plen, v, limit, MESH_RATELIMIT_COUNT_MAX);
        return -1;
    }
    meshd_ratelimits_t *r = &c->ratelimits;
    size_t i = 0;
    while (i < r->n && (strlen(r->path[i]) != plen || strncmp(r->path[i], v, plen) != 0)) {
        i++;
    }
    if (i < r->n && !from_flag) {
        s_err(err, errlen, "%s: a limit given twice (first on line %d)", r->path[i], r->line[i]);
        return -1;
    }
    if (i == r->n && r->n == MESH_TASK_RATELIMITS_MAX) {
        s_err(err, errlen, "too many rate limits (%d at most)", MESH_TASK_RATELIMITS_MAX);
        return -1;
    }
    char *path = strndup(v, plen), *text = strdup(limit);
    if (!path || !text) {
        free(path);
        free(text);
        s_err(err, errlen, "out of memory");
        return -1;
    }
    if (i < r->n) {
        free(r->path[i]);
        free(r->limit[i]);
    } else {
        r->n++;
    }
    r->path[i] = path;
    r->limit[i] = text;
    r->line[i] = line;
    return 0;
}

static int s_set_tasks(meshd_config_t *c, const char *key, const char *v, int line, bool from_flag,
                       char *err, size_t errlen)
{
    if (strcmp(key, "enabled") == 0) {
        if (s_bool(v, &c->tasks_enabled) != 0) {
            s_err(err, errlen, "expected true or false, got '%s'", v);
            return -1;
        }
        return 0;
    }
    if (strcmp(key, "replicas") == 0) {
        long n;
        if (s_long(v, 1, MESHD_REPLICAS_MAX, &n) != 0) {
            s_err(err, errlen, "expected 1 to %d, got '%s'", MESHD_REPLICAS_MAX, v);
            return -1;
        }
        c->task_replicas = (int)n;
        return 0;
    }
    if (strcmp(key, "replica-offset") == 0) {
        return s_ms(&c->task_replica_offset_ms, v, 0, err, errlen);
    }
    if (strcmp(key, "data-dir") == 0) {
        return s_dir(&c->data_dir, v, from_flag ? NULL : c->base_dir, err, errlen);
    }
    if (strcmp(key, "journal-sync") == 0) {
        for (size_t i = 0; i < S_NSYNCS; i++) {
            if (strcmp(v, s_syncs[i]) == 0) {
                c->journal_sync = (int)i;
                return 0;
            }
        }
        s_err(err, errlen, "expected full, meta or none, got '%s'", v);
        return -1;
    }
    if (strcmp(key, "ratelimit") == 0) {
        return s_set_ratelimit(c, v, line, from_flag, err, errlen);
    }
    if (strcmp(key, "quorum-memory") == 0) {
        long n;
        if (strcmp(v, "off") == 0 || strcmp(v, "-1") == 0) {
            c->quorum_memory_ms = MESHD_QUORUM_OFF;
            return 0;
        }
        if (s_long(v, 1, MESHD_MS_MAX, &n) != 0) {
            s_err(err, errlen, "expected milliseconds, 1 to %ld, or off (or -1), got '%s'",
                  MESHD_MS_MAX, v);
            return -1;
        }
        c->quorum_memory_ms = (int)n;
        return 0;
    }
    if (strcmp(key, "startup-grace") == 0) {
        return s_ms(&c->startup_grace_ms, v, 0, err, errlen);
    }
    if (strcmp(key, "run-timeout") == 0) {
        return s_ms(&c->run_timeout_ms, v, 1, err, errlen);
    }
    s_err(err, errlen, "unknown key (tasks takes: %s)", s_tasks_keys);
    return -1;
}

int meshd_config_set(meshd_config_t *c, const char *key, const char *value, int line,
                     bool from_flag, char *err, size_t errlen)
{
    if (s_value_ok(value, err, errlen) != 0) {
        return -1;
    }
    if (strncmp(key, "peer/", 5) == 0) {
        return s_set_peer(c, key + 5, value, line, from_flag, err, errlen);
    }
    if (strncmp(key, "daemon/", 7) == 0) {
        return s_set_daemon(c, key + 7, value, err, errlen);
    }
    if (strncmp(key, "tasks/", 6) == 0) {
        return s_set_tasks(c, key + 6, value, line, from_flag, err, errlen);
    }
    if (strncmp(key, "agents/", 7) == 0) {
        return s_set_agent(c, key + 7, value, line, from_flag, err, errlen);
    }
    s_err(err, errlen, "unknown key (sections: peer, daemon, tasks, agents)");
    return -1;
}

/* ------------------------------------------------------------------------ */
/* the file: pre-scan */

typedef struct {
    int line;
    int depth;
    bool has_value; /* "name = ..." rather than "name" */
    char name[MESHD_CONFIG_LINE_MAX + 1];
} s_entry_t;

typedef struct {
    const char *file; /* as the user named it */
    meshd_config_t *c;
    s_entry_t *entries;
    size_t nentries, next;
    /* keys seen so far, for "given twice" */
    char **seen;
    int *seen_line;
    size_t nseen;
} s_load_t;

static int s_scan_error(const s_load_t *L, int line, char *err, size_t errlen, const char *what)
{
    s_err(err, errlen, "%s:%d: %s", L->file, line, what);
    return -1;
}

/*  One line, as zconfig reads it. Returns 0 (entry filled, or line empty:
    e->name[0] == 0) or -1. */
static int s_scan_line(const s_load_t *L, char *p, int line, int prev_depth, int prev_line,
                       s_entry_t *e, char *err, size_t errlen)
{
    char what[MESHD_ERR_MAX];
    size_t len = strlen(p);
    while (len && (p[len - 1] == ' ' || (p[len - 1] >= '\t' && p[len - 1] <= '\r'))) {
        p[--len] = '\0';
    }
    e->name[0] = '\0';
    if (len == 0 || p[0] == '#') {
        return 0;
    }
    size_t spaces = strspn(p, " ");
    if (p[spaces] >= '\t' && p[spaces] <= '\r') {
        return s_scan_error(L, line, err, errlen,
                            "tab in the indentation: indent with 4 spaces per level");
    }
    if (spaces % S_ZPL_INDENT != 0) {
        snprintf(what, sizeof what,
                 "indented by %zu spaces: indent by 4 spaces per level (0, 4, 8, ...)", spaces);
        return s_scan_error(L, line, err, errlen, what);
    }
    char *s = p + spaces;
    if (*s == '#') {
        return 0; /* an indented comment */
    }
    size_t nlen = 0;
    while (s_is_namechar(s[nlen]) || s[nlen] == '/') {
        nlen++;
    }
    if (nlen == 0) {
        snprintf(what, sizeof what, "expected a name (letters, digits, $-_@.&+/) at '%.40s'", s);
        return s_scan_error(L, line, err, errlen, what);
    }
    if (s[0] == '/' || s[nlen - 1] == '/') {
        return s_scan_error(L, line, err, errlen, "a name cannot start or end with '/'");
    }
    int depth = (int)(spaces / S_ZPL_INDENT);
    if (depth > prev_depth + 1) {
        if (prev_line == 0) {
            snprintf(what, sizeof what, "indented by %zu spaces, but nothing above it to belong to",
                     spaces);
        } else {
            snprintf(what, sizeof what,
                     "indented by %zu spaces: at most one level (4 spaces) deeper than line %d",
                     spaces, prev_line);
        }
        return s_scan_error(L, line, err, errlen, what);
    }
    memcpy(e->name, s, nlen);
    e->name[nlen] = '\0';
    e->line = line;
    e->depth = depth;
    s += nlen;
    s += strspn(s, " \t");
    e->has_value = *s == '=';
    if (!e->has_value) {
        if (*s && *s != '#') {
            snprintf(what, sizeof what,
                     "expected '%.60s = VALUE' or a section name alone, got '%.40s'", e->name, s);
            return s_scan_error(L, line, err, errlen, what);
        }
        return 0;
    }
    s++;
    s += strspn(s, " \t");
    if (*s == '"' || *s == '\'') {
        char *end = strchr(s + 1, *s);
        if (!end) {
            snprintf(what, sizeof what, "missing the closing %c of the value", *s);
            return s_scan_error(L, line, err, errlen, what);
        }
        end++;
        end += strspn(end, " \t");
        if (*end && *end != '#') {
            snprintf(what, sizeof what, "unexpected '%.40s' after the quoted value", end);
            return s_scan_error(L, line, err, errlen, what);
        }
    } else if (*s == '#') {
        return s_scan_error(L, line, err, errlen,
                            "a value starting with '#' must be quoted (else it is a comment)");
    }
    return 0;
}

static int s_prescan(s_load_t *L, char *text, size_t size, char *err, size_t errlen)
{
    size_t cap = 64;
    L->entries = malloc(cap * sizeof *L->entries);
    if (!L->entries) {
        s_err(err, errlen, "%s: out of memory", L->file);
        return -1;
    }
    int line = 0, prev_depth = -1, prev_line = 0;
    char *p = text;
    char *end = text + size;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        if (memchr(p, '\0', len)) {
            return s_scan_error(L, line, err, errlen, "NUL byte in the line");
        }
        if (len > MESHD_CONFIG_LINE_MAX) {
            char what[128];
            snprintf(what, sizeof what, "line longer than %d bytes", MESHD_CONFIG_LINE_MAX);
            return s_scan_error(L, line, err, errlen, what);
        }
        char copy[MESHD_CONFIG_LINE_MAX + 1];
        memcpy(copy, p, len);
        copy[len] = '\0';
        if (L->nentries == cap) {
            cap *= 2;
            s_entry_t *grown = realloc(L->entries, cap * sizeof *grown);
            if (!grown) {
                s_err(err, errlen, "%s: out of memory", L->file);
                return -1;
            }
            L->entries = grown;
        }
        s_entry_t *e = &L->entries[L->nentries];
        if (s_scan_line(L, copy, line, prev_depth, prev_line, e, err, errlen) != 0) {
            return -1;
        }
        if (e->name[0]) {
            prev_depth = e->depth;
            prev_line = line;
            L->nentries++;
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* the file: walking zconfig's tree */

static int s_seen(s_load_t *L, const char *key, int line, char *err, size_t errlen)
{
    for (size_t i = 0; i < L->nseen; i++) {
        if (strcmp(L->seen[i], key) == 0) {
            s_err(err, errlen, "%s:%d: %s: given twice (first on line %d)", L->file, line, key,
                  L->seen_line[i]);
            return -1;
        }
    }
    char **seen = realloc(L->seen, (L->nseen + 1) * sizeof *seen);
    int *lines = seen ? realloc(L->seen_line, (L->nseen + 1) * sizeof *lines) : NULL;
    if (seen) {
        L->seen = seen;
    }
    if (lines) {
        L->seen_line = lines;
    }
    if (!seen || !lines || !(L->seen[L->nseen] = strdup(key))) {
        s_err(err, errlen, "%s: out of memory", L->file);
        return -1;
    }
    L->seen_line[L->nseen++] = line;
    return 0;
}

/*  Sections are the nodes whose children are keys: peer, daemon, agents,
    peer/header, agents/NAME, agents/NAME/tags. */
static bool s_is_section(const char *key, int depth)
{
    if (depth == 0) {
        return true;
    }
    if (depth == 1) {
        return strcmp(key, "peer/header") == 0 || strncmp(key, "agents/", 7) == 0;
    }
    if (depth == 2 && strncmp(key, "agents/", 7) == 0) {
        const char *last = strrchr(key, '/');
        return strcmp(last, "/tags") == 0;
    }
    return false;
}

static int s_walk(s_load_t *L, zconfig_t *parent, const char *prefix, int depth, char *err,
                  size_t errlen)
{
    for (zconfig_t *node = zconfig_child(parent); node; node = zconfig_next(node)) {
        const char *name = zconfig_name(node);
        const char *value = zconfig_value(node);
        if (L->next >= L->nentries || strcmp(L->entries[L->next].name, name) != 0 ||
            L->entries[L->next].depth != depth) {
            s_err(err, errlen, "%s: zconfig read '%s' where the pre-scan expected '%s'", L->file,
                  name, L->next < L->nentries ? L->entries[L->next].name : "(end)");
            return -1;
        }
        const s_entry_t *e = &L->entries[L->next++];
        char key[2 * MESHD_CONFIG_LINE_MAX];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "/" : "", name);
        bool repeatable = strcmp(key, "peer/seed") == 0 || strcmp(key, "peer/group") == 0 ||
                          strcmp(key, "tasks/ratelimit") == 0;
        if (!repeatable && s_seen(L, key, e->line, err, errlen) != 0) {
            return -1;
        }
        if (depth == 0 && strcmp(name, "peer") != 0 && strcmp(name, "daemon") != 0 &&
            strcmp(name, "tasks") != 0 && strcmp(name, "agents") != 0) {
            s_err(err, errlen,
                  "%s:%d: unknown section '%s' (sections: peer, daemon, tasks, agents)", L->file,
                  e->line, name);
            return -1;
        }
        if (s_is_section(key, depth)) {
            if (e->has_value && value && *value) {
                s_err(err, errlen, "%s:%d: %s is a section: it takes indented keys, not a value",
                      L->file, e->line, key);
                return -1;
            }
            if (depth == 1 && strncmp(key, "agents/", 7) == 0 &&
                !s_agent_get(L->c, name, e->line, err, errlen)) {
                char what[MESHD_ERR_MAX];
                snprintf(what, sizeof what, "%s", err);
                s_err(err, errlen, "%s:%d: %s", L->file, e->line, what);
                return -1;
            }
            if (s_walk(L, node, key, depth + 1, err, errlen) != 0) {
                return -1;
            }
            continue;
        }
        if (zconfig_child(node)) {
            s_err(err, errlen,
                  "%s:%d: %s takes a value: the lines indented under it do not belong there",
                  L->file, L->entries[L->next].line, key);
            return -1;
        }
        if (!e->has_value) {
            s_err(err, errlen, "%s:%d: %s: missing value (write '%s = VALUE')", L->file, e->line,
                  key, name);
            return -1;
        }
        char what[MESHD_ERR_MAX];
        if (meshd_config_set(L->c, key, value ? value : "", e->line, false, what, sizeof what) !=
            0) {
            s_err(err, errlen, "%s:%d: %s: %s", L->file, e->line, key, what);
            return -1;
        }
    }
    return 0;
}

static char *s_read_file(const char *file, size_t *size, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        s_err(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return NULL;
    }
    char *text = malloc(MESHD_CONFIG_SIZE_MAX + 2);
    size_t n = text ? fread(text, 1, MESHD_CONFIG_SIZE_MAX + 1, f) : 0;
    bool failed = !text || ferror(f);
    int errnum = errno;
    fclose(f);
    if (failed) {
        s_err(err, errlen, "%s: cannot read: %s", file, text ? strerror(errnum) : "out of memory");
        free(text);
        return NULL;
    }
    if (n > MESHD_CONFIG_SIZE_MAX) {
        s_err(err, errlen, "%s: larger than %d bytes", file, MESHD_CONFIG_SIZE_MAX);
        free(text);
        return NULL;
    }
    text[n] = '\0';
    *size = n;
    return text;
}

int meshd_config_load(meshd_config_t *c, const char *file, char *err, size_t errlen)
{
    size_t size = 0;
    char *text = s_read_file(file, &size, err, errlen);
    if (!text) {
        return -1;
    }
    s_load_t L = {.file = file, .c = c};
    char *real = realpath(file, NULL);
    int rc = -1;
    if (!real || s_replace(&c->file, file, err, errlen) != 0) {
        s_err(err, errlen, "%s: %s", file, real ? "out of memory" : strerror(errno));
        goto done;
    }
    free(c->base_dir);
    c->base_dir = strdup(dirname(real));
    if (!c->base_dir) {
        s_err(err, errlen, "%s: out of memory", file);
        goto done;
    }
    if (s_prescan(&L, text, size, err, errlen) != 0) {
        goto done;
    }
    /* zconfig stops at a NUL; the pre-scan refused those */
    zconfig_t *root = zconfig_str_load(text);
    if (!root) {
        s_err(err, errlen, "%s: zconfig could not parse it (its log names the line)", file);
        goto done;
    }
    rc = s_walk(&L, root, "", 0, err, errlen);
    zconfig_destroy(&root);
done:
    for (size_t i = 0; i < L.nseen; i++) {
        free(L.seen[i]);
    }
    free(L.seen);
    free(L.seen_line);
    free(L.entries);
    free(real);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* checks across keys */

static void s_where(const meshd_config_t *c, int line, char *buf, size_t len)
{
    if (line > 0 && c->file) {
        snprintf(buf, len, "%s:%d: ", c->file, line);
    } else {
        buf[0] = '\0';
    }
}

static int s_check_agent(const meshd_config_t *c, const meshd_agent_conf_t *a, char *err,
                         size_t errlen)
{
    char at[PATH_MAX + 32];
    s_where(c, a->line[MESHD_AKEY_SECTION], at, sizeof at);
    if (!a->kind) {
        s_err(err, errlen, "%sagents/%s: missing 'kind = exec' or 'kind = plugin'", at, a->name);
        return -1;
    }
    if (!a->path) {
        s_err(err, errlen, "%sagents/%s: missing 'path = %s'", at, a->name,
              strcmp(a->kind, "exec") == 0 ? "DIRECTORY" : "FILE.so");
        return -1;
    }
    bool exec = strcmp(a->kind, "exec") == 0;
    static const int exec_only[] = {MESHD_AKEY_WORKERS, MESHD_AKEY_TIMEOUT, MESHD_AKEY_FILTER,
                                    MESHD_AKEY_ACTIVE_CHECK};
    for (size_t i = 0; i < sizeof exec_only / sizeof exec_only[0]; i++) {
        int k = exec_only[i];
        if (!exec && a->given[k]) {
            s_where(c, a->line[k], at, sizeof at);
            s_err(err, errlen, "%sagents/%s/%s: only exec agents take it (this one is a plugin)",
                  at, a->name, s_agent_key_names[k]);
            return -1;
        }
    }
    if (exec && a->given[MESHD_AKEY_CONFIG]) {
        s_where(c, a->line[MESHD_AKEY_CONFIG], at, sizeof at);
        s_err(err, errlen, "%sagents/%s/config: only plugin agents take it (this one is exec)", at,
              a->name);
        return -1;
    }
    struct stat st;
    s_where(c, a->line[MESHD_AKEY_PATH], at, sizeof at);
    if (stat(a->path, &st) != 0) {
        s_err(err, errlen, "%sagents/%s/path: '%s': %s", at, a->name, a->path, strerror(errno));
        return -1;
    }
    if (exec && !S_ISDIR(st.st_mode)) {
        s_err(err, errlen,
              "%sagents/%s/path: '%s' is not a directory (an exec agent is a "
              "directory of executables)",
              at, a->name, a->path);
        return -1;
    }
    if (!exec && !S_ISREG(st.st_mode)) {
        s_err(err, errlen, "%sagents/%s/path: '%s' is not a file (a plugin is a shared object)", at,
              a->name, a->path);
        return -1;
    }
    return 0;
}

static int s_check_seed(const meshd_config_t *c, size_t i, char *err, size_t errlen)
{
    char host[256];
    const char *h = c->seeds[i] + 6;
    const char *colon = strrchr(h, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - h), h);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (res) {
        freeaddrinfo(res);
    }
    if (rc != 0) {
        char at[PATH_MAX + 32];
        s_where(c, c->seed_lines[i], at, sizeof at);
        s_err(err, errlen, "%speer/seed: '%s': host '%s' does not resolve to IPv4: %s", at,
              c->seeds[i], host, gai_strerror(rc));
        return -1;
    }
    return 0;
}

int meshd_config_check(const meshd_config_t *c, char *err, size_t errlen)
{
    if (!c->name) {
        s_err(err, errlen, "no name: give --name NAME or 'name = NAME' in the peer section");
        return -1;
    }
    for (size_t i = 0; i < c->nseeds; i++) {
        if (s_check_seed(c, i, err, errlen) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < c->nagents; i++) {
        if (s_check_agent(c, &c->agents[i], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* printing */

static void s_put(FILE *out, int depth, const char *name, const char *value)
{
    fprintf(out, "%*s%s", depth * S_ZPL_INDENT, "", name);
    if (!value) {
        fputc('\n', out);
        return;
    }
    size_t n = strlen(value);
    bool quote = n == 0 || value[0] == ' ' || value[n - 1] == ' ' || value[0] == '"' ||
                 value[0] == '\'' || strchr(value, '#');
    if (!quote) {
        fprintf(out, " = %s\n", value);
    } else {
        char q = strchr(value, '"') ? '\'' : '"';
        fprintf(out, " = %c%s%c\n", q, value, q);
    }
}

static void s_put_int(FILE *out, int depth, const char *name, long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    s_put(out, depth, name, buf);
}

void meshd_config_print(const meshd_config_t *c, FILE *out, unsigned sections)
{
    if (sections & MESHD_PRINT_PEER) {
        s_put(out, 0, "peer", NULL);
        if (c->name) {
            s_put(out, 1, "name", c->name);
        }
        s_put(out, 1, "realm", c->realm ? c->realm : MESH_DEFAULT_REALM);
        s_put(out, 1, "iface", c->iface ? c->iface : MESH_DEFAULT_IFACE);
        s_put_int(out, 1, "beacon-port", c->beacon_port);
        s_put_int(out, 1, "port", c->port);
        s_put(out, 1, "beacon", c->beacon ? "true" : "false");
        s_put_int(out, 1, "beacon-interval", c->beacon_interval_ms);
        s_put_int(out, 1, "evasive", c->evasive_ms);
        s_put_int(out, 1, "expired", c->expired_ms);
        s_put_int(out, 1, "ping-interval", c->ping_interval_ms);
        for (size_t i = 0; i < c->nseeds; i++) {
            s_put(out, 1, "seed", c->seeds[i]);
        }
        for (size_t i = 0; i < c->ngroups; i++) {
            s_put(out, 1, "group", c->groups[i]);
        }
        if (c->nheaders) {
            s_put(out, 1, "header", NULL);
            for (size_t i = 0; i < c->nheaders; i++) {
                s_put(out, 2, c->header_keys[i], c->header_values[i]);
            }
        }
    }
    if (sections & MESHD_PRINT_DAEMON) {
        s_put(out, 0, "daemon", NULL);
        s_put_int(out, 1, "grace", c->grace_ms);
        s_put(out, 1, "log-level", s_levels[c->log_level]);
        s_put(out, 1, "syslog", c->syslog ? "true" : "false");
    }
    if (sections & (MESHD_PRINT_TASKS | MESHD_PRINT_RATELIMITS)) {
        s_put(out, 0, "tasks", NULL);
    }
    if (sections & MESHD_PRINT_TASKS) {
        s_put(out, 1, "enabled", c->tasks_enabled ? "true" : "false");
        s_put_int(out, 1, "replicas", c->task_replicas);
        s_put_int(out, 1, "replica-offset", c->task_replica_offset_ms);
        if (c->data_dir) {
            s_put(out, 1, "data-dir", c->data_dir);
        }
        s_put(out, 1, "journal-sync", s_syncs[c->journal_sync]);
        if (c->quorum_memory_ms == MESHD_QUORUM_OFF) {
            s_put(out, 1, "quorum-memory", "off");
        } else {
            s_put_int(out, 1, "quorum-memory", c->quorum_memory_ms);
        }
        s_put_int(out, 1, "startup-grace", c->startup_grace_ms);
        s_put_int(out, 1, "run-timeout", c->run_timeout_ms);
    }
    if (sections & MESHD_PRINT_RATELIMITS) {
        for (size_t i = 0; i < c->ratelimits.n; i++) {
            char v[MESH_CODEC_PATH_MAX + MESH_RATELIMIT_TEXT_MAX + 2];
            snprintf(v, sizeof v, "%s=%s", c->ratelimits.path[i], c->ratelimits.limit[i]);
            s_put(out, 1, "ratelimit", v);
        }
    }
    if ((sections & MESHD_PRINT_AGENTS) && c->nagents) {
        s_put(out, 0, "agents", NULL);
        for (size_t i = 0; i < c->nagents; i++) {
            const meshd_agent_conf_t *a = &c->agents[i];
            bool exec = a->kind && strcmp(a->kind, "exec") == 0;
            s_put(out, 1, a->name, NULL);
            if (a->kind) {
                s_put(out, 2, "kind", a->kind);
            }
            if (a->path) {
                s_put(out, 2, "path", a->path);
            }
            if (exec) {
                s_put_int(out, 2, "workers", a->workers);
                s_put_int(out, 2, "timeout", a->timeout_ms);
                if (a->filter) {
                    s_put(out, 2, "filter", a->filter);
                }
                if (a->active_check) {
                    s_put(out, 2, "active-check", a->active_check);
                }
            } else if (a->config) {
                s_put(out, 2, "config", a->config);
            }
            if (a->ntags) {
                s_put(out, 2, "tags", NULL);
                for (size_t t = 0; t < a->ntags; t++) {
                    const char *eq = strchr(a->tags[t], '=');
                    char key[MESH_ZRE_STRING_MAX + 1];
                    snprintf(key, sizeof key, "%.*s", (int)(eq - a->tags[t]), a->tags[t]);
                    s_put(out, 3, key, eq + 1);
                }
            }
        }
    }
}

void meshd_config_agent(const meshd_agent_conf_t *a, agent_config_t *out)
{
    memset(out, 0, sizeof *out);
    out->name = a->name;
    out->kind = a->kind;
    out->path = a->path;
    out->workers = a->workers;
    out->timeout_ms = a->timeout_ms;
    out->filter = a->filter;
    out->active_check = a->active_check;
    out->tags = (const char *const *)a->tags;
    out->ntags = a->ntags;
    out->config = a->config;
}
