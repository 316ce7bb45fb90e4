/*  meshctl_task.c: `meshctl task ...`, the task service from the command
    line (mesh/tasks.h, docs/meshctl.md).

        meshctl task submit PATH [JSON|-] [--countdown S | --eta ISO8601]
                            [--replicas N] [--idempotency-key K] [--ttl S]
                            [--max-attempts N]          prints the task id
        meshctl task submit PATH --batch FILE|- [--json] [the options above
                            but --idempotency-key: defaults of every line]
                                                        one line per task
        meshctl task status ID                          one JSON object
        meshctl task cancel ID                          its status after
        meshctl task list [--state S]                   one JSON object a line

    Like the other commands it joins the realm as a control peer (never on
    the ring), waits until it sees a task service (at most --wait), acts,
    and leaves. Exit codes: tools/cli.h.

    --batch reads every line first (one JSON object a line: payload,
    countdown, eta, idempotency_key, replicas, ttl, max_attempts), and
    submits nothing if one is bad (exit 2, each bad line named). Then it
    keeps S_BATCH_WINDOW submits in flight over its one peer and prints
    the results in input order as they complete. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* timegm, strptime */
#endif
#include <mesh/mesh.h>

#include "cli.h"
#include "jsonpack.h"
#include "peer_internal.h"

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_PROG        "meshctl task"
#define S_WAIT_MS     3000 /* give up finding a task service after this long */
#define S_WAIT_MAX_MS 3600000
#define S_POLL_MS     50
#define S_SETTLE_MS   300 /* beacons off: the seeds' answers */
#define S_PAYLOAD_MAX (1024 * 1024)
#define S_SECONDS_MAX (100L * 366 * 24 * 3600)
#define S_SUBMIT_PATH "/sys/task/submit"

/* --batch */
#define S_BATCH_WINDOW     100                        /* submits in flight at once */
#define S_BATCH_TASKS_MAX  1000000                    /* lines of a batch */
#define S_BATCH_LINE_MAX   (2 * S_PAYLOAD_MAX + 4096) /* bytes of a line (JSON escapes) */
#define S_BATCH_ERRORS_MAX 20                         /* bad lines reported one by one */
#define S_BATCH_BYTES_MAX  (256 * 1024 * 1024)        /* encoded payloads of a batch, in all */

typedef enum { T_SUBMIT, T_STATUS, T_CANCEL, T_LIST } s_tcmd_t;

enum {
    OPT_COUNTDOWN = 1000,
    OPT_ETA,
    OPT_REPLICAS,
    OPT_IDEM,
    OPT_TTL,
    OPT_MAX_ATTEMPTS,
    OPT_STATE,
    OPT_WAIT,
    OPT_BATCH,
    OPT_JSON,
    OPT_HELP,
};

static const struct option s_options[] = {
    MESH_CLI_DISCOVERY_OPTIONS,
    MESH_CLI_REALM_OPTION,
    {"countdown", required_argument, NULL, OPT_COUNTDOWN},
    {"eta", required_argument, NULL, OPT_ETA},
    {"replicas", required_argument, NULL, OPT_REPLICAS},
    {"idempotency-key", required_argument, NULL, OPT_IDEM},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"state", required_argument, NULL, OPT_STATE},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct {
    s_tcmd_t cmd;
    mesh_cli_discovery_t disc;
    const char *path; /* submit */
    const char *json; /* submit: the payload, "-": stdin */
    const char *id;   /* status, cancel */
    const char *state;
    long wait_ms;
    const char *batch; /* submit --batch: a file, "-": stdin */
    bool json_out;     /* submit --batch --json */
    mesh_task_opts_t opts;
    bool has_countdown, has_eta;
} s_topts_t;

/*  One line of a batch. */
typedef struct {
    long line;
    uint8_t *payload;
    size_t payload_size;
    char *key; /* the idempotency key, or NULL */
    mesh_task_opts_t opts;
    bool sent, done;
    int status;                    /* 0, or the submit's MESH_ERR_* */
    char id[MESH_TASK_ID_HEX + 1]; /* status 0 */
    char *error;                   /* why it failed (status != 0), or NULL */
    void *ctl;                     /* the s_tctl_t running it */
} s_item_t;

typedef struct {
    s_item_t *items;
    size_t n;
    size_t next;    /* the first not sent */
    size_t printed; /* the first not printed */
    size_t inflight;
    size_t failed;
} s_batch_t;

typedef struct {
    s_topts_t *o;
    struct ev_loop *loop;
    mesh_peer_t *peer;
    ev_timer poll;
    ev_signal sigint, sigterm;
    int64_t start_ms, min_wait_ms;
    uint8_t *payload;
    size_t payload_size;
    s_batch_t batch;
    bool sent, done;
    int exit_code;
} s_tctl_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: meshctl task submit PATH [JSON|-] [--countdown S | --eta ISO8601]\n"
            "                   [--replicas N] [--idempotency-key K] [--ttl S]\n"
            "                   [--max-attempts N]\n"
            "       meshctl task submit PATH --batch FILE|- [--json] [--countdown S | --eta T]\n"
            "                   [--replicas N] [--ttl S] [--max-attempts N]\n"
            "         one JSON object a line: {\"payload\": ANY, \"countdown\": S, \"eta\": T,\n"
            "         \"idempotency_key\": K, \"replicas\": N, \"ttl\": S, \"max_attempts\": N}\n"
            "       meshctl task status ID\n"
            "       meshctl task cancel ID\n"
            "       meshctl task list [--state STATE]\n"
            "options: --wait MS, --realm REALM and the discovery flags of meshctl\n"
            "         (--iface, --beacon-port, --port, --no-beacon, --seed, ...)\n"
            "states: scheduled, running, standby, succeeded, failed, expired, cancelled\n");
}

static int s_bad(const char *flag, const char *arg, const char *want)
{
    fprintf(stderr, "%s: --%s '%s': %s\n", S_PROG, flag, arg, want);
    return MESH_EXIT_USAGE;
}

/*  "2026-11-29T09:00:00Z", "...T09:00:00+01:00", "...T09:00:00.250Z" or
    without a zone (UTC). Returns 0 and unix ms, or -1. */
static int s_parse_eta(const char *s, int64_t *out)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) {
        p = strptime(s, "%Y-%m-%d %H:%M:%S", &tm);
    }
    if (!p) {
        return -1;
    }
    long ms = 0;
    if (*p == '.') {
        p++;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3) {
                ms = ms * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 3) {
            ms *= 10;
        }
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2 || hh > 23 || mm > 59) {
            return -1;
        }
        off = sign * (hh * 3600L + mm * 60L);
        p += 6;
    }
    if (*p) {
        return -1;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return -1;
    }
    *out = ((int64_t)t - off) * 1000 + ms;
    return 0;
}

static int s_parse(s_topts_t *o, int argc, char **argv, bool *help)
{
    int opt;
    long n;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", s_options, NULL)) != -1) {
        int rc = mesh_cli_discovery_opt(&o->disc, opt, optarg, "meshctl");
        if (rc < 0) {
            return MESH_EXIT_USAGE;
        }
        if (rc > 0) {
            continue;
        }
        switch (opt) {
        case OPT_COUNTDOWN:
            if (mesh_cli_parse_long(optarg, 0, S_SECONDS_MAX, &n) != 0) {
                return s_bad("countdown", optarg, "expected seconds");
            }
            o->opts.countdown_ms = (int64_t)n * 1000;
            o->has_countdown = true;
            break;
        case OPT_ETA:
            if (s_parse_eta(optarg, &o->opts.eta_unix_ms) != 0 || o->opts.eta_unix_ms <= 0) {
                return s_bad("eta", optarg, "expected YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]");
            }
            o->has_eta = true;
            break;
        case OPT_REPLICAS:
            if (mesh_cli_parse_long(optarg, 1, 15, &n) != 0) {
                return s_bad("replicas", optarg, "expected 1 to 15");
            }
            o->opts.replicas = (unsigned)n;
            break;
        case OPT_IDEM:
            if (!optarg[0] || strlen(optarg) > 255) {
                return s_bad("idempotency-key", optarg, "expected 1 to 255 bytes");
            }
            o->opts.idempotency_key = optarg;
            break;
        case OPT_TTL:
            if (mesh_cli_parse_long(optarg, 1, S_SECONDS_MAX, &n) != 0) {
                return s_bad("ttl", optarg, "expected seconds, at least 1");
            }
            o->opts.ttl_ms = (int64_t)n * 1000;
            break;
        case OPT_MAX_ATTEMPTS:
            if (mesh_cli_parse_long(optarg, 1, 100, &n) != 0) {
                return s_bad("max-attempts", optarg, "expected 1 to 100");
            }
            o->opts.max_attempts = (unsigned)n;
            break;
        case OPT_STATE:
            o->state = optarg;
            break;
        case OPT_WAIT:
            if (mesh_cli_parse_long(optarg, 1, S_WAIT_MAX_MS, &o->wait_ms) != 0) {
                return s_bad("wait", optarg, "expected milliseconds, 1 to 3600000");
            }
            break;
        case OPT_BATCH:
            o->batch = optarg;
            break;
        case OPT_JSON:
            o->json_out = true;
            break;
        case OPT_HELP:
            *help = true;
            return 0;
        default:
            fprintf(stderr, "%s: unknown option or missing value: '%s'\n", S_PROG,
                    argv[optind - 1]);
            return MESH_EXIT_USAGE;
        }
    }
    return 0;
}

/*  The task's words after its options (getopt permutes them to the end). */
static int s_args(s_topts_t *o, int nargs, char **args)
{
    static const struct {
        const char *name;
        int min, max;
    } s_arity[] = {{"submit", 1, 2}, {"status", 1, 1}, {"cancel", 1, 1}, {"list", 0, 0}};
    int given = nargs - 1;
    if (given < s_arity[o->cmd].min || given > s_arity[o->cmd].max) {
        fprintf(stderr, "%s %s: wrong number of arguments\n", S_PROG, s_arity[o->cmd].name);
        s_usage(stderr);
        return MESH_EXIT_USAGE;
    }
    if (o->cmd == T_SUBMIT) {
        o->path = args[1];
        o->json = given > 1 ? args[2] : NULL;
        if (o->batch && o->json) {
            fprintf(stderr, "%s: --batch reads the payloads from its lines: no JSON argument\n",
                    S_PROG);
            return MESH_EXIT_USAGE;
        }
        if (o->batch && o->opts.idempotency_key) {
            fprintf(stderr, "%s: --batch: each line has its own idempotency_key\n", S_PROG);
            return MESH_EXIT_USAGE;
        }
        if (o->path[0] != '/' || strlen(o->path) > 255) {
            fprintf(stderr, "%s: '%s': a service path starts with '/' (at most 255 bytes)\n",
                    S_PROG, o->path);
            return MESH_EXIT_USAGE;
        }
        if (o->has_countdown && o->has_eta) {
            fprintf(stderr, "%s: --countdown or --eta, not both\n", S_PROG);
            return MESH_EXIT_USAGE;
        }
    } else if (o->cmd == T_STATUS || o->cmd == T_CANCEL) {
        o->id = args[1];
        if (strlen(o->id) != MESH_TASK_ID_HEX ||
            strspn(o->id, "0123456789abcdefABCDEF") != MESH_TASK_ID_HEX) {
            fprintf(stderr, "%s: '%s': a task id is 32 hex digits\n", S_PROG, o->id);
            return MESH_EXIT_USAGE;
        }
    }
    if ((o->batch || o->json_out) && o->cmd != T_SUBMIT) {
        fprintf(stderr, "%s: --batch and --json are for task submit\n", S_PROG);
        return MESH_EXIT_USAGE;
    }
    if (o->json_out && !o->batch) {
        fprintf(stderr, "%s: --json goes with --batch\n", S_PROG);
        return MESH_EXIT_USAGE;
    }
    if (o->state && o->cmd != T_LIST) {
        fprintf(stderr, "%s: --state is for task list\n", S_PROG);
        return MESH_EXIT_USAGE;
    }
    static const char *const states[] = {"scheduled", "running", "standby",  "succeeded",
                                         "failed",    "expired", "cancelled"};
    if (o->state) {
        size_t i = 0;
        while (i < sizeof states / sizeof states[0] && strcmp(states[i], o->state) != 0) {
            i++;
        }
        if (i == sizeof states / sizeof states[0]) {
            return s_bad("state", o->state,
                         "expected scheduled, running, standby, succeeded, failed, expired or "
                         "cancelled");
        }
    }
    bool opts_given = o->opts.countdown_ms || o->opts.eta_unix_ms || o->opts.replicas ||
                      o->opts.idempotency_key || o->opts.ttl_ms || o->opts.max_attempts;
    if (opts_given && o->cmd != T_SUBMIT) {
        fprintf(stderr,
                "%s: --countdown, --eta, --replicas, --idempotency-key, --ttl and "
                "--max-attempts are for task submit\n",
                S_PROG);
        return MESH_EXIT_USAGE;
    }
    return 0;
}

/*  The JSON argument (or stdin) as msgpack; no argument: null. */
static int s_payload(const char *json, uint8_t **out, size_t *len)
{
    json_error_t jerr;
    json_t *v;
    if (!json) {
        v = json_null();
    } else if (strcmp(json, "-") == 0) {
        v = json_loadf(stdin, JSON_DECODE_ANY, &jerr);
    } else {
        v = json_loads(json, JSON_DECODE_ANY, &jerr);
    }
    if (!v) {
        fprintf(stderr, "%s: bad JSON payload (line %d, column %d): %s\n", S_PROG, jerr.line,
                jerr.column, jerr.text);
        return MESH_EXIT_USAGE;
    }
    return mesh_cli_payload_encode(v, S_PAYLOAD_MAX, out, len, S_PROG);
}

/* ------------------------------------------------------------------------ */
/* --batch: reading every line before anything is sent */

static void s_batch_free(s_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].payload);
        free(b->items[i].key);
        free(b->items[i].error);
    }
    free(b->items);
    memset(b, 0, sizeof *b);
}

/*  Seconds (a JSON number, fractions allowed) as ms in [min_ms, S_SECONDS_MAX s]. */
static int s_json_seconds(const json_t *v, int64_t min_ms, int64_t *out)
{
    double d;
    if (json_is_integer(v)) {
        d = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        d = json_real_value(v);
    } else {
        return -1;
    }
    if (!(d >= 0) || d > (double)S_SECONDS_MAX) {
        return -1;
    }
    int64_t ms = (int64_t)(d * 1000 + 0.5);
    if (ms < min_ms) {
        return -1;
    }
    *out = ms;
    return 0;
}

static int s_json_count(const json_t *v, long min, long max, unsigned *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        return -1;
    }
    *out = (unsigned)json_integer_value(v);
    return 0;
}

/*  One line of a batch into it (the flags' options are its defaults).
    0, or -1 with why in msg. */
static int s_batch_item(const s_topts_t *o, const char *text, size_t len, s_item_t *it, char *msg,
                        size_t msglen)
{
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!v) {
        snprintf(msg, msglen, "bad JSON (column %d): %s", jerr.column, jerr.text);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(v)) {
        snprintf(msg, msglen, "expected a JSON object ({\"payload\": ..., \"countdown\": S, ...})");
        goto done;
    }
    it->opts = o->opts;
    it->opts.idempotency_key = NULL;
    bool countdown = false, eta = false;
    const json_t *payload = NULL;
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x)
    {
        if (strcmp(k, "payload") == 0) {
            payload = x;
        } else if (strcmp(k, "countdown") == 0) {
            if (s_json_seconds(x, 0, &it->opts.countdown_ms) != 0) {
                snprintf(msg, msglen, "countdown: expected seconds, 0 to %ld", S_SECONDS_MAX);
                goto done;
            }
            it->opts.eta_unix_ms = 0;
            countdown = true;
        } else if (strcmp(k, "eta") == 0) {
            if (!json_is_string(x) || s_parse_eta(json_string_value(x), &it->opts.eta_unix_ms) ||
                it->opts.eta_unix_ms <= 0) {
                snprintf(msg, msglen, "eta: expected \"YYYY-MM-DDTHH:MM:SS[.mmm][Z|+HH:MM]\"");
                goto done;
            }
            it->opts.countdown_ms = 0;
            eta = true;
        } else if (strcmp(k, "idempotency_key") == 0) {
            size_t n = json_is_string(x) ? json_string_length(x) : 0;
            if (n == 0 || n > 255 || strlen(json_string_value(x)) != n) {
                snprintf(msg, msglen, "idempotency_key: expected a string of 1 to 255 bytes");
                goto done;
            }
            it->key = strdup(json_string_value(x));
            if (!it->key) {
                snprintf(msg, msglen, "out of memory");
                goto done;
            }
        } else if (strcmp(k, "replicas") == 0) {
            if (s_json_count(x, 1, 15, &it->opts.replicas) != 0) {
                snprintf(msg, msglen, "replicas: expected an integer, 1 to 15");
                goto done;
            }
        } else if (strcmp(k, "ttl") == 0) {
            if (s_json_seconds(x, 1, &it->opts.ttl_ms) != 0) {
                snprintf(msg, msglen, "ttl: expected seconds, more than 0");
                goto done;
            }
        } else if (strcmp(k, "max_attempts") == 0) {
            if (s_json_count(x, 1, 100, &it->opts.max_attempts) != 0) {
                snprintf(msg, msglen, "max_attempts: expected an integer, 1 to 100");
                goto done;
            }
        } else {
            snprintf(msg, msglen,
                     "unknown key '%.64s' (payload, countdown, eta, idempotency_key, %s)", k,
                     "replicas, ttl, max_attempts");
            goto done;
        }
    }
    if (countdown && eta) {
        snprintf(msg, msglen, "countdown or eta, not both");
        goto done;
    }
    char err[256];
    if (jsonpack_from_json(payload ? payload : json_null(), &it->payload, &it->payload_size, err,
                           sizeof err) != 0) {
        snprintf(msg, msglen, "payload: cannot encode: %s", err);
        goto done;
    }
    if (it->payload_size > S_PAYLOAD_MAX) {
        snprintf(msg, msglen, "payload: over %d bytes once encoded", S_PAYLOAD_MAX);
        goto done;
    }
    it->opts.idempotency_key = it->key;
    rc = 0;
done:
    json_decref(v);
    return rc;
}

/*  A line of f into *buf (NUL-terminated, without its '\n'), at most
    S_BATCH_LINE_MAX bytes kept (*toolong: there were more). false at the
    end of the input. */
static bool s_read_line(FILE *f, char **buf, size_t *cap, size_t *len, bool *toolong)
{
    int ch;
    *len = 0;
    *toolong = false;
    if (!*buf) {
        *buf = malloc(4096);
        if (!*buf) {
            return false;
        }
        *cap = 4096;
    }
    bool any = false;
    while ((ch = getc(f)) != EOF) {
        any = true;
        if (ch == '\n') {
            break;
        }
        if (*len >= S_BATCH_LINE_MAX) {
            *toolong = true;
            continue;
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *nbuf = realloc(*buf, ncap);
            if (!nbuf) {
                *toolong = true; /* reported as too long: the line cannot be held */
                continue;
            }
            *buf = nbuf;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)ch;
    }
    (*buf)[*len] = '\0';
    return any;
}

/*  Reads and checks every line of --batch. 0 (b filled, maybe empty), or
    an exit code after printing why (nothing kept). */
static int s_batch_read(const s_topts_t *o, s_batch_t *b)
{
    bool from_stdin = strcmp(o->batch, "-") == 0;
    FILE *f = from_stdin ? stdin : fopen(o->batch, "r");
    if (!f) {
        fprintf(stderr, "%s: --batch '%s': %s\n", S_PROG, o->batch, strerror(errno));
        return MESH_EXIT_USAGE;
    }
    const char *name = from_stdin ? "stdin" : o->batch;
    char *line = NULL;
    size_t cap = 0, len, cap_items = 0, bytes = 0, bad = 0;
    long lineno = 0;
    bool toolong;
    int rc = 0;
    while (rc == 0 && s_read_line(f, &line, &cap, &len, &toolong)) {
        lineno++;
        if (!toolong && strspn(line, " \t\r") == len) {
            continue; /* blank */
        }
        char msg[320];
        s_item_t it = {.line = lineno};
        int ok = -1;
        if (toolong) {
            snprintf(msg, sizeof msg, "line over %d bytes", S_BATCH_LINE_MAX);
        } else if (b->n == S_BATCH_TASKS_MAX) {
            fprintf(stderr, "%s: %s: more than %d tasks\n", S_PROG, name, S_BATCH_TASKS_MAX);
            rc = MESH_EXIT_USAGE;
            break;
        } else {
            ok = s_batch_item(o, line, len, &it, msg, sizeof msg);
        }
        if (ok == 0 && bytes + it.payload_size > S_BATCH_BYTES_MAX) {
            fprintf(stderr, "%s: %s: the payloads are over %d bytes in all\n", S_PROG, name,
                    S_BATCH_BYTES_MAX);
            rc = MESH_EXIT_USAGE;
            ok = -1;
        } else if (ok == 0 && b->n == cap_items) {
            size_t ncap = cap_items ? cap_items * 2 : 256;
            s_item_t *items = realloc(b->items, ncap * sizeof *items);
            if (!items) {
                fprintf(stderr, "%s: out of memory\n", S_PROG);
                rc = MESH_EXIT_FAILURE;
                ok = -1;
            } else {
                b->items = items;
                cap_items = ncap;
            }
        }
        if (ok == 0) {
            bytes += it.payload_size;
            b->items[b->n++] = it;
            continue;
        }
        free(it.payload);
        free(it.key);
        if (rc == 0 && ++bad <= S_BATCH_ERRORS_MAX) {
            fprintf(stderr, "%s: %s:%ld: %s\n", S_PROG, name, lineno, msg);
        }
    }
    if (rc == 0 && !line) {
        fprintf(stderr, "%s: out of memory\n", S_PROG);
        rc = MESH_EXIT_FAILURE;
    }
    if (rc == 0 && ferror(f)) {
        fprintf(stderr, "%s: --batch '%s': %s\n", S_PROG, o->batch, strerror(errno));
        rc = MESH_EXIT_USAGE;
    }
    free(line);
    if (!from_stdin) {
        fclose(f);
    }
    if (rc == 0 && bad > 0) {
        if (bad > S_BATCH_ERRORS_MAX) {
            fprintf(stderr, "%s: %s: ... and %zu more bad lines\n", S_PROG, name,
                    bad - S_BATCH_ERRORS_MAX);
        }
        fprintf(stderr, "%s: %s: %zu bad line%s: nothing submitted\n", S_PROG, name, bad,
                bad == 1 ? "" : "s");
        rc = MESH_EXIT_USAGE;
    }
    if (rc != 0) {
        s_batch_free(b);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* output */

static json_t *s_task_json(const mesh_task_status_t *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "id", t->id, "path", t->path, "state",
                          t->state, "attempt", (json_int_t)t->attempt, "failures",
                          (json_int_t)t->failures, "max_attempts", (json_int_t)t->max_attempts);
    if (!o) {
        return NULL;
    }
    if (t->idempotency_key) {
        json_object_set_new(o, "idempotency_key", json_string(t->idempotency_key));
    }
    if (strcmp(t->state, "scheduled") == 0) {
        json_object_set_new(o, "due_in_ms", json_integer(t->due_in_ms));
    }
    if (t->finished_ms_ago >= 0) {
        json_object_set_new(o, "finished_ms_ago", json_integer(t->finished_ms_ago));
    }
    if (t->result) {
        json_t *r = NULL;
        if (strcmp(t->state, "succeeded") == 0) {
            char err[128];
            r = jsonpack_to_json(t->result, t->result_size, err, sizeof err);
        }
        if (!r) {
            r = mesh_cli_json_bytes(t->result, t->result_size);
        }
        json_object_set_new(o, strcmp(t->state, "succeeded") == 0 ? "result" : "error", r);
    }
    return o;
}

static void s_print(json_t *v)
{
    if (v) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (s) {
            printf("%s\n", s);
            free(s);
        }
        json_decref(v);
    }
    fflush(stdout);
}

static void s_finish(s_tctl_t *c, int code)
{
    c->done = true;
    c->exit_code = code;
    ev_break(c->loop, EVBREAK_ALL);
}

static void s_on_submit(mesh_peer_t *peer, int status, const char *id, const char *error, void *arg)
{
    (void)peer;
    s_tctl_t *c = arg;
    if (status != 0) {
        fprintf(stderr, "%s: submit: %s%s%s\n", S_PROG, mesh_strerror(status), error ? ": " : "",
                error ? error : "");
        s_finish(c, mesh_cli_exit_code(status));
        return;
    }
    printf("%s\n", id);
    fflush(stdout);
    s_finish(c, MESH_EXIT_OK);
}

static void s_on_status(mesh_peer_t *peer, int status, const mesh_task_status_t *t, void *arg)
{
    (void)peer;
    s_tctl_t *c = arg;
    if (status != 0) {
        fprintf(stderr, "%s: %s: %s\n", S_PROG, c->o->id,
                status == MESH_ERR_NOTFOUND ? "no such task" : mesh_strerror(status));
        s_finish(c, MESH_EXIT_FAILURE);
        return;
    }
    s_print(s_task_json(t));
    s_finish(c, MESH_EXIT_OK);
}

static void s_on_list(mesh_peer_t *peer, int status, const mesh_task_status_t *tasks, size_t n,
                      void *arg)
{
    (void)peer;
    s_tctl_t *c = arg;
    if (status != 0) {
        fprintf(stderr, "%s: list: %s\n", S_PROG, mesh_strerror(status));
        s_finish(c, mesh_cli_exit_code(status));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        s_print(s_task_json(&tasks[i]));
    }
    s_finish(c, MESH_EXIT_OK);
}

/* ------------------------------------------------------------------------ */
/* --batch: a window of submits in flight, results in input order */

static const char *s_batch_name(const s_tctl_t *c)
{
    return strcmp(c->o->batch, "-") == 0 ? "stdin" : c->o->batch;
}

static int s_item_exit(const s_item_t *it)
{
    if (it->status == MESH_ERR_INVAL || it->status == MESH_ERR_TOOLONG) {
        return MESH_EXIT_USAGE;
    }
    return mesh_cli_exit_code(it->status);
}

static void s_item_failed(s_tctl_t *c, s_item_t *it, int status, const char *error)
{
    it->done = true;
    it->status = status;
    char msg[512];
    snprintf(msg, sizeof msg, "%s%s%s", mesh_strerror(status), error ? ": " : "",
             error ? error : "");
    it->error = strdup(msg);
    c->batch.failed++;
    fprintf(stderr, "%s: %s:%ld: submit: %s\n", S_PROG, s_batch_name(c), it->line, msg);
}

/*  Prints the results that are complete up to the first one that is not. */
static void s_batch_flush(s_tctl_t *c)
{
    s_batch_t *b = &c->batch;
    while (b->printed < b->n && b->items[b->printed].done) {
        const s_item_t *it = &b->items[b->printed++];
        if (c->o->json_out) {
            json_t *j = json_pack("{s:I}", "line", (json_int_t)it->line);
            if (!j) {
                continue;
            }
            if (it->status == 0) {
                json_object_set_new(j, "id", json_string(it->id));
            }
            if (it->key) {
                json_object_set_new(j, "idempotency_key",
                                    mesh_cli_json_bytes(it->key, strlen(it->key)));
            }
            if (it->status != 0) {
                json_object_set_new(j, "error", json_string(it->error ? it->error : ""));
                json_object_set_new(j, "exit", json_integer(s_item_exit(it)));
            }
            char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
            if (text) {
                printf("%s\n", text);
                free(text);
            }
            json_decref(j);
        } else {
            printf("%s%s%s\n", it->status == 0 ? it->id : "-", it->key ? " " : "",
                   it->key ? it->key : "");
        }
    }
    fflush(stdout);
}

static void s_batch_step(s_tctl_t *c);

static void s_on_batch_submit(mesh_peer_t *peer, int status, const char *id, const char *error,
                              void *arg)
{
    (void)peer;
    s_item_t *it = arg;
    s_tctl_t *c = it->ctl;
    if (c->done) {
        return;
    }
    c->batch.inflight--;
    if (status == 0) {
        it->done = true;
        snprintf(it->id, sizeof it->id, "%s", id);
    } else {
        s_item_failed(c, it, status, error);
    }
    s_batch_step(c);
}

/*  Sends while the window has room, prints what is complete, and ends the
    run once every line is printed. */
static void s_batch_step(s_tctl_t *c)
{
    s_batch_t *b = &c->batch;
    bool late = mesh_cli_now_ms() - c->start_ms >= c->o->wait_ms;
    while (b->next < b->n && b->inflight < S_BATCH_WINDOW) {
        s_item_t *it = &b->items[b->next];
        it->ctl = c;
        int rc = mesh_task_submit(c->peer, c->o->path, it->payload, it->payload_size, &it->opts,
                                  s_on_batch_submit, it);
        if (rc == MESH_ERR_NOPROVIDER && !late) {
            break; /* the owner's services are not known yet: the poll tries again */
        }
        b->next++;
        if (rc != 0) {
            s_item_failed(c, it, rc, NULL);
            continue;
        }
        it->sent = true;
        b->inflight++;
    }
    s_batch_flush(c);
    if (b->printed < b->n) {
        return;
    }
    int code = MESH_EXIT_OK;
    for (size_t i = 0; i < b->n && code == MESH_EXIT_OK; i++) {
        code = s_item_exit(&b->items[i]);
    }
    if (b->failed) {
        fprintf(stderr, "%s: %zu of %zu submits failed\n", S_PROG, b->failed, b->n);
    }
    s_finish(c, code);
}

/* ------------------------------------------------------------------------ */
/* waiting for the task services, then acting */

typedef struct {
    size_t services;
} s_seen_t;

static void s_seen_cb(const mesh_route_info_t *r, void *arg)
{
    s_seen_t *s = arg;
    if (r->alive && r->path && strcmp(r->path, S_SUBMIT_PATH) == 0) {
        s->services++;
    }
}

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    s_tctl_t *c = w->data;
    if (c->done) {
        return;
    }
    if (c->sent) {
        if (c->o->batch) {
            s_batch_step(c); /* sends what waited for its owner's services */
        }
        return;
    }
    int64_t now = mesh_cli_now_ms();
    s_seen_t seen = {0};
    mesh_peer_routes(c->peer, s_seen_cb, &seen);
    size_t members = mesh_peer_ring_members(c->peer, NULL, NULL);
    bool late = now - c->start_ms >= c->o->wait_ms;
    /* every member of the ring is heard (and its services) once min_wait passed */
    bool ready =
        seen.services > 0 && seen.services >= members && now - c->start_ms >= c->min_wait_ms;
    if (!ready && !(late && seen.services > 0)) {
        if (late) {
            fprintf(stderr, "%s: no task service found in %ld ms\n", S_PROG, c->o->wait_ms);
            s_finish(c, MESH_EXIT_NOPROVIDER);
        }
        return;
    }
    if (c->o->batch) {
        c->sent = true;
        s_batch_step(c);
        return;
    }
    int rc;
    switch (c->o->cmd) {
    case T_SUBMIT:
        rc = mesh_task_submit(c->peer, c->o->path, c->payload, c->payload_size, &c->o->opts,
                              s_on_submit, c);
        break;
    case T_STATUS:
        rc = mesh_task_status(c->peer, c->o->id, s_on_status, c);
        break;
    case T_CANCEL:
        rc = mesh_task_cancel(c->peer, c->o->id, s_on_status, c);
        break;
    default:
        rc = mesh_task_list(c->peer, c->o->state, s_on_list, c);
        break;
    }
    if (rc == MESH_ERR_NOPROVIDER && !late) {
        return; /* the owner's services are not known yet */
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", S_PROG, mesh_strerror(rc));
        s_finish(c, rc == MESH_ERR_INVAL || rc == MESH_ERR_TOOLONG ? MESH_EXIT_USAGE
                                                                   : mesh_cli_exit_code(rc));
        return;
    }
    c->sent = true;
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    s_finish(w->data, 128 + w->signum);
}

static int s_run(s_topts_t *o)
{
    s_tctl_t c = {0};
    c.o = o;
    if (o->cmd == T_SUBMIT && o->batch) {
        int rc = s_batch_read(o, &c.batch);
        if (rc != 0 || c.batch.n == 0) {
            return rc; /* an empty batch submits nothing */
        }
    } else if (o->cmd == T_SUBMIT) {
        int rc = s_payload(o->json, &c.payload, &c.payload_size);
        if (rc != 0) {
            return rc;
        }
    }
    char name[64];
    snprintf(name, sizeof name, "meshctl-%d", (int)getpid());
    o->disc.zre.name = name;
    mesh_config_t cfg;
    mesh_cli_peer_config(&o->disc, &cfg);
    c.peer = mesh_peer_new(&cfg);
    if (!c.peer || mesh__peer_set_ctl(c.peer) != 0) {
        fprintf(stderr, "%s: cannot create a peer\n", S_PROG);
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        s_batch_free(&c.batch);
        return MESH_EXIT_FAILURE;
    }
    if (mesh_cli_add_seeds(&o->disc, mesh__peer_zre(c.peer), "meshctl") != 0) {
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        s_batch_free(&c.batch);
        return MESH_EXIT_USAGE;
    }
    c.loop = ev_loop_new(EVFLAG_AUTO);
    int rc = c.loop ? mesh_peer_attach(c.peer, c.loop) : MESH_ERR_NOMEM;
    if (rc != 0) {
        fprintf(stderr, "%s: cannot start on interface '%s': %s\n", S_PROG,
                o->disc.zre.iface ? o->disc.zre.iface : MESH_DEFAULT_IFACE, mesh_strerror(rc));
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        s_batch_free(&c.batch);
        if (c.loop) {
            ev_loop_destroy(c.loop);
        }
        return MESH_EXIT_FAILURE;
    }
    c.start_ms = mesh_cli_now_ms();
    int interval = o->disc.zre.beacon_interval_ms ? o->disc.zre.beacon_interval_ms
                                                  : MESH_DEFAULT_BEACON_INTERVAL_MS;
    c.min_wait_ms = o->disc.zre.beacon_off ? S_SETTLE_MS : interval + 100;
    ev_timer_init(&c.poll, s_on_poll, S_POLL_MS / 1000., S_POLL_MS / 1000.);
    c.poll.data = &c;
    ev_timer_start(c.loop, &c.poll);
    ev_signal_init(&c.sigint, s_on_signal, SIGINT);
    ev_signal_init(&c.sigterm, s_on_signal, SIGTERM);
    c.sigint.data = c.sigterm.data = &c;
    ev_signal_start(c.loop, &c.sigint);
    ev_signal_start(c.loop, &c.sigterm);

    ev_run(c.loop, 0);

    ev_timer_stop(c.loop, &c.poll);
    ev_signal_stop(c.loop, &c.sigint);
    ev_signal_stop(c.loop, &c.sigterm);
    c.done = true; /* calls still out complete with CLOSED: not reported */
    mesh_peer_destroy(&c.peer);
    ev_loop_destroy(c.loop);
    free(c.payload);
    s_batch_free(&c.batch);
    return c.exit_code;
}

int meshctl_task_main(int argc, char **argv)
{
    /* argv[0] is "task", argv[1] the subcommand */
    static const char *const cmds[] = {"submit", "status", "cancel", "list"};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MESH_EXIT_USAGE : MESH_EXIT_OK;
    }
    s_topts_t o = {0};
    o.wait_ms = S_WAIT_MS;
    size_t k = 0;
    while (k < sizeof cmds / sizeof cmds[0] && strcmp(cmds[k], argv[1]) != 0) {
        k++;
    }
    if (k == sizeof cmds / sizeof cmds[0]) {
        fprintf(stderr, "%s: unknown command '%s'\n", S_PROG, argv[1]);
        s_usage(stderr);
        return MESH_EXIT_USAGE;
    }
    o.cmd = (s_tcmd_t)k;
    bool help = false;
    /* getopt over argv[1..]: the subcommand plays the program name */
    int rc = s_parse(&o, argc - 1, argv + 1, &help);
    if (help) {
        s_usage(stdout);
        return MESH_EXIT_OK;
    }
    if (rc != 0) {
        return rc;
    }
    char **args = argv + 1 + optind - 1; /* args[0]: the subcommand's slot */
    rc = s_args(&o, argc - 1 - (optind - 1), args);
    if (rc != 0) {
        return rc;
    }
    return s_run(&o);
}
