/*  config.h: meshd's configuration: a ZPL file (czmq zconfig, RFC 4) and
    the command-line flags that override it. The schema is in docs/meshd.md
    (CONFIGURATION); agents/examples/meshd.cfg is an example.

    Loading validates everything: syntax (pre-scanned line by line, since
    zconfig reports no line numbers and returns NULL on a bad indent), every
    key (unknown keys are errors), every value (ranges, paths that must
    exist, regular expressions that must compile). An error is one message
    "FILE:LINE: what is wrong" (or "--flag 'value': what is wrong") in the
    caller's buffer; nothing is half-applied that the caller would use.

    Strings in meshd_config_t are owned by it (meshd_config_free). */
#ifndef MESHD_CONFIG_H
#define MESHD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "agent.h"

/*  Limits and defaults of meshd (the peer's own are in <mesh/defaults.h>,
    the agents' in agent_impl.h). */
#define MESHD_CONFIG_SIZE_MAX  (1024 * 1024) /* bytes in a config file */
#define MESHD_CONFIG_LINE_MAX  1024          /* zconfig truncates longer lines */
#define MESHD_ERR_MAX          512           /* one error message */
#define MESHD_AGENTS_MAX       64
#define MESHD_SEEDS_MAX        64
#define MESHD_GROUPS_MAX       64
#define MESHD_HEADERS_MAX      64
#define MESHD_TAGS_MAX         32   /* per agent (the codec's per-service cap) */
#define MESHD_VALUE_MAX        4096 /* any one value */
#define MESHD_MS_MAX           (24L * 3600 * 1000)
#define MESHD_REPLICAS_MAX     15    /* holders of a task (tasks/replicas) */
#define MESHD_DEFAULT_GRACE_MS 5000  /* SIGTERM: in-flight requests get this long */
#define MESHD_QUORUM_OFF       (-1)  /* tasks/quorum-memory = off: no quorum */
#define MESHD_BUILTIN_AGENT    "sys" /* reserved agent name: /sys/ping ... */

enum { MESHD_LOG_ERROR, MESHD_LOG_WARN, MESHD_LOG_INFO, MESHD_LOG_DEBUG };

/*  Which keys of an agent were given, and on which line (0: by a flag). */
enum {
    MESHD_AKEY_SECTION, /* the agent's own line */
    MESHD_AKEY_KIND,
    MESHD_AKEY_PATH,
    MESHD_AKEY_WORKERS,
    MESHD_AKEY_TIMEOUT,
    MESHD_AKEY_FILTER,
    MESHD_AKEY_ACTIVE_CHECK,
    MESHD_AKEY_CONFIG,
    MESHD_AKEY_TAGS,
    MESHD_AKEY_COUNT
};

typedef struct {
    char *name;
    char *kind; /* "exec" or "plugin" */
    char *path;
    int workers;
    int timeout_ms;
    char *filter;
    char *active_check;
    char *config;
    char *tags[MESHD_TAGS_MAX]; /* "k=v" */
    size_t ntags;
    bool given[MESHD_AKEY_COUNT];
    int line[MESHD_AKEY_COUNT];
} meshd_agent_conf_t;

/*  tasks/ratelimit: cluster-wide rate limits, one per service path. */
typedef struct {
    char *path[MESH_TASK_RATELIMITS_MAX];  /* "/image/resize" */
    char *limit[MESH_TASK_RATELIMITS_MAX]; /* "10/s" (checked by mesh__ratelimit_parse) */
    int line[MESH_TASK_RATELIMITS_MAX];    /* 0: set by a flag */
    size_t n;
} meshd_ratelimits_t;

typedef struct {
    char *file;     /* the config file as named, or NULL */
    char *base_dir; /* its directory: relative agent paths in it start there */
    /* peer */
    char *name;
    char *realm;
    char *iface;
    int beacon_port;
    int port; /* 0: ephemeral */
    bool beacon;
    int beacon_interval_ms;
    int evasive_ms;
    int expired_ms;
    int ping_interval_ms;
    char *seeds[MESHD_SEEDS_MAX];
    int seed_lines[MESHD_SEEDS_MAX];
    size_t nseeds;
    char *groups[MESHD_GROUPS_MAX];
    size_t ngroups;
    bool seeds_by_flag, groups_by_flag; /* a flag replaced the file's list */
    char *header_keys[MESHD_HEADERS_MAX];
    char *header_values[MESHD_HEADERS_MAX];
    size_t nheaders;
    /* daemon */
    int grace_ms;
    int log_level;
    bool syslog;
    /* tasks (the task service, <mesh/tasks.h>) */
    bool tasks_enabled;
    int task_replicas;
    int task_replica_offset_ms;
    char *data_dir;       /* absolute; NULL: no journal (tasks in memory only) */
    int journal_sync;     /* mesh_task_sync_t */
    int quorum_memory_ms; /* MESHD_QUORUM_OFF: no quorum */
    int startup_grace_ms; /* 0: none */
    int run_timeout_ms;   /* a task run's deadline */
    meshd_ratelimits_t ratelimits;
    /* agents */
    meshd_agent_conf_t agents[MESHD_AGENTS_MAX];
    size_t nagents;
} meshd_config_t;

/*  Fills c with the defaults. */
void meshd_config_init(meshd_config_t *c);

/*  Frees every string of c and re-initialises it. */
void meshd_config_free(meshd_config_t *c);

/*  Reads, pre-scans and loads the ZPL file into c (over its current
    values). Returns 0, or -1 with "FILE:LINE: what" (or "FILE: what") in
    err. */
int meshd_config_load(meshd_config_t *c, const char *file, char *err, size_t errlen);

/*  Sets one key, as the file would ("peer/name", "daemon/grace",
    "agents/NAME/kind", ...). from_flag: a list key (seed, group) given by a
    flag replaces the file's list on its first use; a rate limit
    (tasks/ratelimit = PATH=LIMIT) given by a flag replaces the file's limit
    of that path, where the file may give each path once. Returns 0, or -1 with
    what is wrong in err (without the location). */
int meshd_config_set(meshd_config_t *c, const char *key, const char *value, int line,
                     bool from_flag, char *err, size_t errlen);

/*  Removes an agent of that name (a flag that defines it again replaces
    the file's). */
void meshd_config_drop_agent(meshd_config_t *c, const char *name);

/*  Checks what single keys cannot: the name is set, every agent has a kind
    and a path, and keys that belong to the other kind. Returns 0 or -1 with
    err (with the file and line where there is one). */
int meshd_config_check(const meshd_config_t *c, char *err, size_t errlen);

/*  Writes c as a ZPL file that loads back to the same configuration.
    Sections: peer, daemon, agents, tasks; tasks/ratelimit on its own (a
    reload applies it, the rest of tasks needs a restart). */
#define MESHD_PRINT_PEER       0x1
#define MESHD_PRINT_DAEMON     0x2
#define MESHD_PRINT_AGENTS     0x4
#define MESHD_PRINT_TASKS      0x8
#define MESHD_PRINT_RATELIMITS 0x10
#define MESHD_PRINT_ALL        0x1f
void meshd_config_print(const meshd_config_t *c, FILE *out, unsigned sections);

/*  The agent settings as agent.h takes them (strings borrowed from a). */
void meshd_config_agent(const meshd_agent_conf_t *a, agent_config_t *out);

/*  "full", "meta", "none" (tasks/journal-sync), or NULL. */
const char *meshd_journal_sync_name(int sync);

/*  "error" ... "debug", or NULL. */
const char *meshd_log_level_name(int level);

#endif
