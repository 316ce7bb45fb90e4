/*  meshctl: drive a mesh from the shell. A short-lived peer joins the realm,
    waits only until it has found what the command needs, acts, and leaves
    cleanly (port-0 beacon and BYE). See docs/meshctl.md.

    One ev loop, one peer (mesh_peer_attach). Every ZRE event is seen by an
    observer that schedules a check (an idle watcher, so the check runs after
    the peer has handled the event and updated its routing table); a timer
    re-checks for the deadlines in between. The check decides, per command,
    whether the target is there (a provider for the path, a quiet routing
    table, ...), and acts at once when it is. */
#include "cli.h"
#include "codec.h"
#include "jsonpack.h"
#include "peer_internal.h"
#include "ring.h"
#include "zre.h"

#include <mesh/mesh.h>

#include <errno.h>
#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define S_PROG              "meshctl"
#define S_DEFAULT_WAIT_MS   3000 /* give up finding the target after this long */
#define S_WAIT_MAX_MS       3600000
#define S_SETTLE_MS         300 /* peers: done once no peer came or went for this long */
#define S_QUIET_MS          200 /* services, fanout, cast --all, pub: routing unchanged */
#define S_POLL_MS           50  /* re-check at least this often while waiting */
#define S_FLUSH_MS          25  /* cast, pub: let the messages out before the leaving beacon */
#define S_WATCH_INTERVAL_MS 1000
#define S_PING_PATH         "/sys/ping"
#define S_RING_REPLICAS     2 /* ring KEY: the owner and one replica */
#define S_TAGS_MAX          MESH_CODEC_TAGS_MAX
#define S_STDIN_MAX         ((size_t)MESH_DEFAULT_MAX_MSG_SIZE)        /* bytes read from stdin */
#define S_PAYLOAD_MAX       ((size_t)MESH_DEFAULT_MAX_MSG_SIZE - 4096) /* room for the envelope */
#define S_ERR_LEN           256

/* ------------------------------------------------------------------------ */
/* commands and options */

typedef enum {
    CMD_PEERS,
    CMD_SERVICES,
    CMD_CALL,
    CMD_CAST,
    CMD_FANOUT,
    CMD_PUB,
    CMD_SUB,
    CMD_WATCH,
    CMD_PING,
    CMD_RING,
    CMD_COUNT
} s_cmd_t;

#define S_M(cmd) (1u << (cmd))
#define S_ALL    ((1u << CMD_COUNT) - 1)

static const struct {
    const char *name;
    int min_args, max_args; /* positional arguments */
} s_cmds[CMD_COUNT] = {
    /* clang-format off */
    [CMD_PEERS]    = {"peers", 0, 0},
    [CMD_SERVICES] = {"services", 0, 0},
    [CMD_CALL]     = {"call", 1, 2},
    [CMD_CAST]     = {"cast", 1, 2},
    [CMD_FANOUT]   = {"fanout", 1, 2},
    [CMD_PUB]      = {"pub", 1, 2},
    [CMD_SUB]      = {"sub", 1, 1},
    [CMD_WATCH]    = {"watch", 0, 0},
    [CMD_PING]     = {"ping", 1, 1},
    [CMD_RING]     = {"ring", 0, 1},
    /* clang-format on */
};

enum {
    OPT_JSON = 1000,
    OPT_WAIT,
    OPT_HELP,
    OPT_SELECTOR,
    OPT_KEY,
    OPT_TAG,
    OPT_TIMEOUT,
    OPT_PEER,
    OPT_IDEMPOTENT,
    OPT_ALL,
    OPT_PREFIX,
    OPT_RAW,
    OPT_COUNT,
    OPT_INTERVAL,
    OPT_PRETTY,
    OPT_FROM,
    OPT_REPLICAS,
};

/*  Each command's own options: which commands take it. */
static const struct {
    struct option opt;
    unsigned cmds;
} s_options[] = {
    {{"json", no_argument, NULL, OPT_JSON},
     S_M(CMD_PEERS) | S_M(CMD_SERVICES) | S_M(CMD_FANOUT) | S_M(CMD_PING) | S_M(CMD_RING)},
    {{"wait", required_argument, NULL, OPT_WAIT}, S_ALL & ~S_M(CMD_SUB)},
    {{"help", no_argument, NULL, OPT_HELP}, S_ALL},
    {{"selector", required_argument, NULL, OPT_SELECTOR}, S_M(CMD_CALL) | S_M(CMD_CAST)},
    {{"key", required_argument, NULL, OPT_KEY}, S_M(CMD_CALL) | S_M(CMD_CAST) | S_M(CMD_FANOUT)},
    {{"tag", required_argument, NULL, OPT_TAG}, S_M(CMD_CALL) | S_M(CMD_CAST) | S_M(CMD_FANOUT)},
    {{"timeout", required_argument, NULL, OPT_TIMEOUT},
     S_M(CMD_CALL) | S_M(CMD_FANOUT) | S_M(CMD_PING)},
    {{"peer", required_argument, NULL, OPT_PEER}, S_M(CMD_CALL) | S_M(CMD_CAST)},
    {{"idempotent", no_argument, NULL, OPT_IDEMPOTENT}, S_M(CMD_CALL)},
    {{"all", no_argument, NULL, OPT_ALL}, S_M(CMD_CAST)},
    {{"prefix", no_argument, NULL, OPT_PREFIX}, S_M(CMD_SUB)},
    {{"raw", no_argument, NULL, OPT_RAW},
     S_M(CMD_CALL) | S_M(CMD_CAST) | S_M(CMD_FANOUT) | S_M(CMD_PUB) | S_M(CMD_SUB)},
    {{"count", required_argument, NULL, OPT_COUNT},
     S_M(CMD_SUB) | S_M(CMD_WATCH) | S_M(CMD_PING) | S_M(CMD_CALL)},
    {{"interval", required_argument, NULL, OPT_INTERVAL}, S_M(CMD_WATCH) | S_M(CMD_PING)},
    {{"pretty", no_argument, NULL, OPT_PRETTY}, S_M(CMD_CALL) | S_M(CMD_FANOUT) | S_M(CMD_PING)},
    {{"from", no_argument, NULL, OPT_FROM}, S_M(CMD_CALL)},
    {{"replicas", required_argument, NULL, OPT_REPLICAS}, S_M(CMD_RING)},
};

#define S_NOPTIONS (sizeof s_options / sizeof s_options[0])

typedef struct {
    s_cmd_t cmd;
    mesh_cli_discovery_t disc;
    bool json, raw, all, prefix, idempotent, pretty, from;
    long wait_ms, timeout_ms, count, interval_ms, replicas;
    const char *selector, *key, *peer;
    const char *tags[S_TAGS_MAX];
    size_t ntags;
    const char *target;  /* PATH, TOPIC, PATTERN, PEER or KEY */
    const char *payload; /* JSON text, "-" (stdin), or NULL */
} s_opts_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: meshctl COMMAND [OPTIONS] [ARGS]\n"
            "commands:\n"
            "  peers                   list the ZRE peers (mesh nodes and plain ZRE peers)\n"
            "  services                list the services of the realm: PATH PEER LOAD TAGS ALIVE\n"
            "  call PATH [JSON | -]    request/reply; prints the reply as JSON\n"
            "  cast PATH [JSON | -]    fire and forget (--all: to every provider)\n"
            "  fanout PATH [JSON | -]  to every provider; each answer with its peer's name\n"
            "  pub TOPIC [JSON | -]    publish to the realm's subscribers\n"
            "  sub PATTERN             print what is published, as JSON lines, until Ctrl-C\n"
            "  watch                   a live view of peers, load and services (q quits)\n"
            "  ping PEER               round trip of /sys/ping on one peer (name or id)\n"
            "  task submit|status|cancel|list   scheduled tasks (see docs/tasks.md)\n"
            "  ring [KEY]              the ring: members, shares, digest; KEY: its owners\n"
            "discovery options (all commands):\n"
            "  --realm NAME  --iface IFACE  --beacon-port PORT  --port PORT  --no-beacon\n"
            "  --seed tcp://HOST:PORT (repeatable)  --beacon-interval MS  --evasive MS  "
            "--expired MS\n"
            "  --wait MS        give up finding the target after MS (default %d)\n"
            "request options:\n"
            "  --selector least_loaded|random|round_robin|key|direct  --key KEY  --peer NAME|ID\n"
            "  --tag K=V (repeatable)  --timeout MS  --idempotent  --all (cast)  --raw\n"
            "  --from (call: print \"PEER: \" before the reply)  --count N (call: N calls)\n"
            "other options:\n"
            "  --json (peers, services, fanout, ping, ring)  --pretty  --prefix (sub)\n"
            "  --count N (sub, watch, ping)  --interval MS (watch, ping)\n"
            "  --replicas N (ring KEY: the owner and N-1 replicas; default %d)\n"
            "'-' reads the payload from standard input. Exit status: 0 ok, 1 failure, 2 usage\n"
            "or bad input, 3 no providers, 4 timeout, 5 remote error, 6 peer lost, 7 rejected.\n"
            "See meshctl(1).\n",
            S_DEFAULT_WAIT_MS, S_RING_REPLICAS);
}

static bool s_path_ok(const char *path, bool slash)
{
    size_t len = strlen(path);
    return len > 0 && len <= MESH_CODEC_PATH_MAX && (!slash || path[0] == '/');
}

static bool s_selector_known(const char *name)
{
    static const char *const names[] = {"least_loaded", "random", "round_robin", "key", "direct"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(names[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static int s_bad_value(const char *flag, const char *arg, const char *want)
{
    fprintf(stderr, "%s: --%s '%s': %s\n", S_PROG, flag, arg, want);
    return MESH_EXIT_USAGE;
}

/*  One of the command's own options. Returns 0 or an exit code. */
static int s_own_option(s_opts_t *o, int opt, const char *arg)
{
    switch (opt) {
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_WAIT:
        if (mesh_cli_parse_long(arg, 1, S_WAIT_MAX_MS, &o->wait_ms) != 0) {
            return s_bad_value("wait", arg, "expected milliseconds, 1 to 3600000");
        }
        return 0;
    case OPT_SELECTOR:
        if (!s_selector_known(arg)) {
            return s_bad_value("selector", arg,
                               "expected least_loaded, random, round_robin, key or direct");
        }
        o->selector = arg;
        return 0;
    case OPT_KEY:
        if (strlen(arg) > MESH_CODEC_KEY_MAX) {
            return s_bad_value("key", arg, "longer than 1024 bytes");
        }
        o->key = arg;
        return 0;
    case OPT_TAG: {
        const char *eq = strchr(arg, '=');
        if (!eq || eq == arg || strlen(arg) > MESH_CODEC_TAG_MAX) {
            return s_bad_value("tag", arg, "expected K=V");
        }
        if (o->ntags == S_TAGS_MAX) {
            return s_bad_value("tag", arg, "too many tags (32 at most)");
        }
        o->tags[o->ntags++] = arg;
        return 0;
    }
    case OPT_TIMEOUT:
        if (mesh_cli_parse_long(arg, 1, S_WAIT_MAX_MS, &o->timeout_ms) != 0) {
            return s_bad_value("timeout", arg, "expected milliseconds, 1 to 3600000");
        }
        return 0;
    case OPT_PEER:
        if (!*arg) {
            return s_bad_value("peer", arg, "expected a peer name or id");
        }
        o->peer = arg;
        return 0;
    case OPT_IDEMPOTENT:
        o->idempotent = true;
        return 0;
    case OPT_ALL:
        o->all = true;
        return 0;
    case OPT_PREFIX:
        o->prefix = true;
        return 0;
    case OPT_RAW:
        o->raw = true;
        return 0;
    case OPT_COUNT:
        if (mesh_cli_parse_long(arg, 1, 1000000000L, &o->count) != 0) {
            return s_bad_value("count", arg, "expected a number, 1 to 1000000000");
        }
        return 0;
    case OPT_INTERVAL:
        if (mesh_cli_parse_long(arg, 10, S_WAIT_MAX_MS, &o->interval_ms) != 0) {
            return s_bad_value("interval", arg, "expected milliseconds, 10 to 3600000");
        }
        return 0;
    case OPT_PRETTY:
        o->pretty = true;
        return 0;
    case OPT_FROM:
        o->from = true;
        return 0;
    case OPT_REPLICAS:
        if (mesh_cli_parse_long(arg, 1, MESH_RING_MEMBERS_MAX, &o->replicas) != 0) {
            return s_bad_value("replicas", arg, "expected a number, 1 to 65536");
        }
        return 0;
    default:
        return MESH_EXIT_USAGE;
    }
}

/*  Checks the options against each other and the positional arguments. */
static int s_check_options(s_opts_t *o, int nargs, char **args)
{
    const char *cmd = s_cmds[o->cmd].name;
    if (nargs < s_cmds[o->cmd].min_args) {
        fprintf(stderr, "%s %s: missing argument (see %s --help)\n", S_PROG, cmd, S_PROG);
        return MESH_EXIT_USAGE;
    }
    if (nargs > s_cmds[o->cmd].max_args) {
        fprintf(stderr, "%s %s: unexpected argument '%s'\n", S_PROG, cmd,
                args[s_cmds[o->cmd].max_args]);
        return MESH_EXIT_USAGE;
    }
    o->target = nargs > 0 ? args[0] : NULL;
    o->payload = nargs > 1 ? args[1] : NULL;
    bool is_path = o->cmd == CMD_CALL || o->cmd == CMD_CAST || o->cmd == CMD_FANOUT;
    if (o->target && (o->cmd == CMD_PUB || o->cmd == CMD_SUB || is_path) &&
        !s_path_ok(o->target, is_path)) {
        fprintf(stderr, "%s %s: '%s': expected %s of 1 to 255 bytes\n", S_PROG, cmd, o->target,
                is_path ? "a path starting with '/'" : "a topic");
        return MESH_EXIT_USAGE;
    }
    if (o->peer && o->selector && strcmp(o->selector, "direct") != 0) {
        fprintf(stderr, "%s %s: --peer goes with --selector direct only\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    if (o->peer && !o->selector) {
        o->selector = "direct";
    }
    if (o->selector && strcmp(o->selector, "direct") == 0 && !o->peer) {
        fprintf(stderr, "%s %s: --selector direct needs --peer NAME|ID\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    if (o->key && !o->selector && o->cmd != CMD_FANOUT) {
        o->selector = "key";
    }
    if (o->selector && strcmp(o->selector, "key") == 0 && !o->key) {
        fprintf(stderr, "%s %s: --selector key needs --key KEY\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    if (o->all && (o->selector || o->peer)) {
        fprintf(stderr, "%s %s: --all goes with neither --selector nor --peer\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    if (o->cmd == CMD_RING && o->replicas && !o->target) {
        fprintf(stderr, "%s %s: --replicas goes with a KEY\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    if (o->cmd == CMD_RING && o->target && strlen(o->target) > MESH_CODEC_KEY_MAX) {
        fprintf(stderr, "%s %s: the key is longer than 1024 bytes\n", S_PROG, cmd);
        return MESH_EXIT_USAGE;
    }
    return 0;
}

/*  Parses argv (argv[0] is the command). Returns 0, or an exit code after
    printing why; *help is set for --help. */
static int s_parse(s_opts_t *o, int argc, char **argv, bool *help)
{
    static const struct option discovery[] = {MESH_CLI_DISCOVERY_OPTIONS, MESH_CLI_REALM_OPTION};
    struct option options[sizeof discovery / sizeof discovery[0] + S_NOPTIONS + 1];
    size_t n = 0;
    for (size_t i = 0; i < sizeof discovery / sizeof discovery[0]; i++) {
        options[n++] = discovery[i];
    }
    for (size_t i = 0; i < S_NOPTIONS; i++) {
        options[n++] = s_options[i].opt;
    }
    options[n] = (struct option){NULL, 0, NULL, 0};

    const char *cmd = s_cmds[o->cmd].name;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int rc = mesh_cli_discovery_opt(&o->disc, opt, optarg, S_PROG);
        if (rc < 0) {
            return MESH_EXIT_USAGE;
        }
        if (rc > 0) {
            continue;
        }
        size_t i = 0;
        while (i < S_NOPTIONS && s_options[i].opt.val != opt) {
            i++;
        }
        if (i == S_NOPTIONS) {
            fprintf(stderr, "%s %s: unknown or incomplete option '%s'\n", S_PROG, cmd,
                    argv[optind - 1]);
            return MESH_EXIT_USAGE;
        }
        if (!(s_options[i].cmds & S_M(o->cmd))) {
            fprintf(stderr, "%s %s: --%s does not apply to %s\n", S_PROG, cmd,
                    s_options[i].opt.name, cmd);
            return MESH_EXIT_USAGE;
        }
        if (opt == OPT_HELP) {
            *help = true;
            return 0;
        }
        rc = s_own_option(o, opt, optarg);
        if (rc != 0) {
            return rc;
        }
    }
    return s_check_options(o, argc - optind, argv + optind);
}

/* ------------------------------------------------------------------------ */
/* payloads: JSON in, msgpack on the mesh, JSON out */

/*  Reads all of standard input, at most S_STDIN_MAX bytes. Returns 0 or an
    exit code. */
static int s_read_stdin(char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        return MESH_EXIT_FAILURE;
    }
    for (;;) {
        if (n == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return MESH_EXIT_FAILURE;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(STDIN_FILENO, buf + n, cap - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "%s: cannot read standard input: %s\n", S_PROG, strerror(errno));
            free(buf);
            return MESH_EXIT_FAILURE;
        }
        if (r == 0) {
            break;
        }
        n += (size_t)r;
        if (n > S_STDIN_MAX) {
            fprintf(stderr, "%s: the payload on standard input is over %zu bytes\n", S_PROG,
                    S_STDIN_MAX);
            free(buf);
            return MESH_EXIT_USAGE;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

/*  The bytes to send: the argument or stdin, as is (--raw) or JSON encoded
    to msgpack (no payload: null). Returns 0 or an exit code. */
static int s_payload_prepare(const s_opts_t *o, uint8_t **out, size_t *len)
{
    char *text = NULL;
    size_t tlen = 0;
    bool from_stdin = o->payload && strcmp(o->payload, "-") == 0;
    if (from_stdin) {
        int rc = s_read_stdin(&text, &tlen);
        if (rc != 0) {
            return rc;
        }
    } else if (o->payload) {
        tlen = strlen(o->payload);
        text = malloc(tlen + 1);
        if (!text) {
            return MESH_EXIT_FAILURE;
        }
        memcpy(text, o->payload, tlen + 1);
    }
    if (o->raw) {
        if (tlen > S_PAYLOAD_MAX) {
            fprintf(stderr, "%s: the payload is over %zu bytes\n", S_PROG, S_PAYLOAD_MAX);
            free(text);
            return MESH_EXIT_USAGE;
        }
        *out = (uint8_t *)text;
        *len = tlen;
        return 0;
    }
    json_t *value;
    if (text) {
        json_error_t jerr;
        value = json_loadb(text, tlen, JSON_DECODE_ANY, &jerr);
        free(text);
        if (!value) {
            fprintf(stderr, "%s: bad JSON payload%s (line %d, column %d): %s\n", S_PROG,
                    from_stdin ? " on standard input" : "", jerr.line, jerr.column, jerr.text);
            return MESH_EXIT_USAGE;
        }
    } else {
        value = json_null();
    }
    return mesh_cli_payload_encode(value, S_PAYLOAD_MAX, out, len, S_PROG);
}

/*  A payload from the mesh as JSON (new reference): msgpack decoded; with
    --raw, the bytes as a string; bytes that are not msgpack as
    {"$raw": BASE64}. *raw_fallback tells the last case. */
static json_t *s_payload_json(const s_opts_t *o, const void *data, size_t size, bool *raw_fallback)
{
    if (raw_fallback) {
        *raw_fallback = false;
    }
    if (o->raw) {
        return mesh_cli_json_bytes(data, size);
    }
    char err[S_ERR_LEN];
    json_t *v = jsonpack_to_json(data, size, err, sizeof err);
    if (v) {
        return v;
    }
    if (raw_fallback) {
        *raw_fallback = true;
    }
    char *b64 = jsonpack_base64_encode(data, size);
    v = json_pack("{s:s}", "$raw", b64 ? b64 : "");
    free(b64);
    return v;
}

/*  One JSON document and a newline on stdout, flushed. False when stdout is
    gone (a closed pipe: SIGPIPE is ignored). */
static bool s_print_json(const s_opts_t *o, json_t *v)
{
    size_t flags = JSON_ENCODE_ANY | (o->pretty ? JSON_INDENT(2) : JSON_COMPACT);
    char *text = v ? json_dumps(v, flags) : NULL;
    printf("%s\n", text ? text : "null");
    free(text);
    return fflush(stdout) == 0 && !ferror(stdout);
}

/* ------------------------------------------------------------------------ */
/* the routing table, copied */

typedef struct {
    char id[33];
    char *name;
    char *path; /* NULL: a member that offers nothing */
    char **tags;
    size_t ntags;
    bool alive;
    double load;
    uint64_t inflight;
    int64_t heard_ms_ago;
} s_row_t;

typedef struct {
    s_row_t *v;
    size_t n, cap;
    bool failed;
} s_rows_t;

static char *s_strdup0(const char *s)
{
    return strdup(s ? s : "");
}

static void s_rows_add(const mesh_route_info_t *r, void *arg)
{
    s_rows_t *rows = arg;
    if (r->is_self || rows->failed) {
        return;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        s_row_t *v = realloc(rows->v, cap * sizeof *v);
        if (!v) {
            rows->failed = true;
            return;
        }
        rows->v = v;
        rows->cap = cap;
    }
    s_row_t *row = &rows->v[rows->n];
    memset(row, 0, sizeof *row);
    snprintf(row->id, sizeof row->id, "%s", r->id ? r->id : "");
    row->name = s_strdup0(r->name);
    row->path = r->path ? strdup(r->path) : NULL;
    row->tags = calloc(r->ntags ? r->ntags : 1, sizeof *row->tags);
    row->alive = r->alive;
    row->load = r->load;
    row->inflight = r->inflight;
    row->heard_ms_ago = r->heard_ms_ago;
    rows->n++;
    if (!row->name || (r->path && !row->path) || !row->tags) {
        rows->failed = true;
        return;
    }
    for (size_t i = 0; i < r->ntags; i++) {
        if (!(row->tags[row->ntags] = strdup(r->tags[i]))) {
            rows->failed = true;
            return;
        }
        row->ntags++;
    }
}

static void s_rows_free(s_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].name);
        free(rows->v[i].path);
        for (size_t t = 0; t < rows->v[i].ntags; t++) {
            free(rows->v[i].tags[t]);
        }
        free(rows->v[i].tags);
    }
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

/*  Services first by path, then by peer name and id; members offering
    nothing last. */
static int s_row_cmp(const void *a, const void *b)
{
    const s_row_t *x = a, *y = b;
    if (!x->path != !y->path) {
        return x->path ? -1 : 1;
    }
    int c = x->path ? strcmp(x->path, y->path) : 0;
    if (c == 0) {
        c = strcmp(x->name, y->name);
    }
    return c ? c : strcmp(x->id, y->id);
}

/*  "k=v,k=v" or "-" (a fresh string). */
static char *s_tags_joined(const s_row_t *row)
{
    size_t len = 2;
    for (size_t i = 0; i < row->ntags; i++) {
        len += strlen(row->tags[i]) + 1;
    }
    char *s = malloc(len);
    if (!s) {
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < row->ntags; i++) {
        n += (size_t)snprintf(s + n, len - n, "%s%s", i ? "," : "", row->tags[i]);
    }
    if (n == 0) {
        snprintf(s, len, "-");
    }
    return s;
}

/* ------------------------------------------------------------------------ */
/* the run */

typedef enum { S_WAITING, S_ACTING, S_DONE } s_phase_t;

typedef struct {
    s_opts_t *o;
    struct ev_loop *loop;
    mesh_peer_t *peer;
    mesh__zre_t *zre;
    uint8_t *payload;
    size_t payload_size;
    s_phase_t phase;
    int exit_code;
    bool trace; /* MESH_DEBUG: timings of discovery on stderr */
    /* waiting */
    int64_t start_ms;
    int64_t min_wait_ms;     /* services, watch: an empty mesh is empty after this */
    int64_t zre_change_ms;   /* peers: a ZRE peer came, went, joined or left */
    int64_t route_change_ms; /* the routing table (or the ZRE peer list) changed */
    uint64_t fingerprint;
    size_t members;   /* mesh members other than us */
    size_t providers; /* alive providers of the target path */
    ev_idle check_idle;
    ev_timer wake;
    ev_signal sigint, sigterm, sigwinch;
    /* commands that repeat (sub, watch, ping) */
    long done; /* messages printed, screens drawn, pings answered */
    long failed;
    ev_timer repeat;
    ev_timer flush;
    int64_t sent_us;
    double rtt_min, rtt_max, rtt_sum;
    /* watch on a terminal */
    bool tty;
    bool alt_screen;
    bool keys_raw;
    struct termios saved_termios;
    ev_io keys;
} s_ctl_t;

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_trace(const s_ctl_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_trace(const s_ctl_t *c, const char *fmt, ...)
{
    if (!c->trace) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: +%lld ms: ", S_PROG, (long long)(mesh_cli_now_ms() - c->start_ms));
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void s_finish(s_ctl_t *c, int code)
{
    if (c->phase == S_DONE) {
        return;
    }
    c->phase = S_DONE;
    c->exit_code = code;
    ev_break(c->loop, EVBREAK_ALL);
}

static void s_on_flush(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_ctl_t *c = w->data;
    s_finish(c, c->exit_code);
}

/*  Finishes once what was just sent (cast, publish) is on its way. The
    leaving beacon goes out over UDP at once when the peer stops, while the
    sent envelopes wait for libzmq's I/O thread: a receiver that hears the
    beacon first forgets us and drops them. */
static void s_finish_after_flush(s_ctl_t *c, int code)
{
    c->phase = S_ACTING;
    c->exit_code = code;
    ev_timer_set(&c->flush, S_FLUSH_MS / 1000.0, 0.0);
    ev_timer_start(c->loop, &c->flush);
}

static const char *s_status_text(int status)
{
    switch (status) {
    case MESH_ERR_NOPROVIDER:
        return "no providers";
    case MESH_ERR_TIMEOUT:
        return "timed out";
    case MESH_ERR_PEERLOST:
        return "the provider went away before answering";
    case MESH_ERR_REJECTED:
        return "rejected by every candidate";
    case MESH_ERR_CLOSED:
        return "interrupted";
    default:
        return mesh_strerror(status);
    }
}

/*  Reports a failed request on stderr; returns its exit code. */
static int s_report(s_ctl_t *c, const char *what, int status, const char *error,
                    const char *peer_name)
{
    if (status == MESH_ERR_REMOTE) {
        fprintf(stderr, "%s: %s: remote error from %s: %s\n", S_PROG, what,
                peer_name && *peer_name ? peer_name : "?", error ? error : "");
    } else if (status == MESH_ERR_TIMEOUT && peer_name && *peer_name) {
        fprintf(stderr, "%s: %s: timed out waiting for %s\n", S_PROG, what, peer_name);
    } else {
        fprintf(stderr, "%s: %s: %s\n", S_PROG, what, s_status_text(status));
    }
    return mesh_cli_exit_code(status);
}

static void s_call_opts(const s_ctl_t *c, mesh_call_opts_t *opts)
{
    const s_opts_t *o = c->o;
    memset(opts, 0, sizeof *opts);
    opts->selector = o->all ? "all" : o->selector;
    opts->key = o->key;
    opts->peer = o->peer;
    opts->tags = o->ntags ? o->tags : NULL;
    opts->ntags = o->ntags;
    opts->timeout_ms = (int)o->timeout_ms;
    opts->idempotent = o->idempotent;
}

/* --- the routing table's fingerprint ------------------------------------ */

typedef struct {
    uint64_t h;
    size_t providers;
    const char *path;
} s_scan_t;

static uint64_t s_fnv(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

static void s_scan_route(const mesh_route_info_t *r, void *arg)
{
    s_scan_t *s = arg;
    if (r->is_self) {
        return;
    }
    const char *path = r->path ? r->path : "";
    s->h = s_fnv(s->h, r->id, strlen(r->id) + 1);
    s->h = s_fnv(s->h, path, strlen(path) + 1);
    s->h = s_fnv(s->h, &r->alive, sizeof r->alive);
    if (r->alive && r->path && s->path && strcmp(r->path, s->path) == 0) {
        s->providers++;
    }
}

/*  Re-reads the routing table; notes when it changed. */
static void s_scan(s_ctl_t *c, int64_t now)
{
    const char *path = c->o->cmd == CMD_PING   ? S_PING_PATH
                       : c->o->cmd == CMD_RING ? NULL
                                               : c->o->target;
    s_scan_t s = {.h = 0xcbf29ce484222325ull, .path = path};
    size_t members = mesh_peer_routes(c->peer, s_scan_route, &s);
    size_t zre_peers = mesh__zre_peer_count(c->zre);
    s.h = s_fnv(s.h, &zre_peers, sizeof zre_peers);
    if (s.h != c->fingerprint) {
        c->fingerprint = s.h;
        c->route_change_ms = now;
        s_trace(c, "routing: %zu members, %zu providers of %s", members > 0 ? members - 1 : 0,
                s.providers, path ? path : "-");
    }
    c->members = members > 0 ? members - 1 : 0;
    c->providers = s.providers;
}

/* --- peers ---------------------------------------------------------------- */

static void s_peers_print(s_ctl_t *c)
{
    mesh__zre_t *node = c->zre;
    if (c->o->json) {
        json_t *list = json_array();
        size_t pos = 0;
        const mesh__zre_peer_t *p;
        while ((p = mesh__zre_peer_next(node, &pos))) {
            json_array_append_new(list, mesh_cli_peer_json(p));
        }
        char *text = json_dumps(list, JSON_INDENT(2));
        puts(text ? text : "[]");
        free(text);
        json_decref(list);
        return;
    }
    printf("%-32s  %-16s  %-22s  %-16s  %s\n", "ID", "NAME", "ENDPOINT", "GROUPS", "HEADERS");
    size_t pos = 0;
    const mesh__zre_peer_t *p;
    while ((p = mesh__zre_peer_next(node, &pos))) {
        char groups[512] = "", headers[1024] = "";
        size_t gl = 0, hl = 0;
        for (size_t i = 0; i < mesh__zre_peer_group_count(p) && gl < sizeof groups; i++) {
            gl += (size_t)snprintf(groups + gl, sizeof groups - gl, "%s%s", i ? "," : "",
                                   mesh__zre_peer_group_at(p, i));
        }
        for (size_t i = 0; i < mesh__zre_peer_header_count(p) && hl < sizeof headers; i++) {
            const char *k, *v;
            mesh__zre_peer_header_at(p, i, &k, &v);
            hl +=
                (size_t)snprintf(headers + hl, sizeof headers - hl, "%s%s=%s", i ? "," : "", k, v);
        }
        printf("%-32s  %-16s  %-22s  %-16s  %s\n", mesh__zre_peer_uuid_str(p),
               mesh__zre_peer_name(p), mesh__zre_peer_endpoint(p), groups[0] ? groups : "-",
               headers[0] ? headers : "-");
    }
}

/* --- services -------------------------------------------------------------- */

static int s_services_print(s_ctl_t *c)
{
    s_rows_t rows = {0};
    mesh_peer_routes(c->peer, s_rows_add, &rows);
    if (rows.failed) {
        s_rows_free(&rows);
        fprintf(stderr, "%s: out of memory\n", S_PROG);
        return MESH_EXIT_FAILURE;
    }
    qsort(rows.v, rows.n, sizeof *rows.v, s_row_cmp);
    if (c->o->json) {
        json_t *list = json_array();
        for (size_t i = 0; i < rows.n && rows.v[i].path; i++) {
            const s_row_t *r = &rows.v[i];
            json_t *tags = json_array();
            for (size_t t = 0; t < r->ntags; t++) {
                json_array_append_new(tags, mesh_cli_json_bytes(r->tags[t], strlen(r->tags[t])));
            }
            json_array_append_new(
                list, json_pack("{s:o, s:o, s:s, s:f, s:I, s:o, s:b}", "path",
                                mesh_cli_json_bytes(r->path, strlen(r->path)), "peer",
                                mesh_cli_json_bytes(r->name, strlen(r->name)), "id", r->id, "load",
                                r->load, "inflight", (json_int_t)r->inflight, "tags", tags, "alive",
                                r->alive));
        }
        char *text = json_dumps(list, JSON_INDENT(2));
        puts(text ? text : "[]");
        free(text);
        json_decref(list);
    } else {
        printf("%-24s  %-16s  %6s  %-24s  %s\n", "PATH", "PEER", "LOAD", "TAGS", "ALIVE");
        for (size_t i = 0; i < rows.n && rows.v[i].path; i++) {
            const s_row_t *r = &rows.v[i];
            char *tags = s_tags_joined(r);
            printf("%-24s  %-16s  %6.2f  %-24s  %s\n", r->path, r->name, r->load, tags ? tags : "-",
                   r->alive ? "yes" : "no");
            free(tags);
        }
    }
    fflush(stdout);
    s_rows_free(&rows);
    return MESH_EXIT_OK;
}

/* --- ring ------------------------------------------------------------------ */

typedef struct {
    char id[33];
    char *name;
    unsigned vnodes;
    double share;
    uint64_t digest; /* 0: no STATUS heard yet */
    bool agrees;
} s_ring_row_t;

typedef struct {
    s_ring_row_t *v;
    size_t n, cap;
    size_t unheard, disagree;
    bool failed;
} s_ring_rows_t;

static void s_ring_row_add(const mesh_ring_member_t *m, void *arg)
{
    s_ring_rows_t *rows = arg;
    rows->unheard += !m->is_self && m->digest == 0;
    rows->disagree += !m->is_self && m->digest != 0 && !m->agrees;
    if (rows->failed) {
        return;
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap ? rows->cap * 2 : 16;
        s_ring_row_t *v = realloc(rows->v, cap * sizeof *v);
        if (!v) {
            rows->failed = true;
            return;
        }
        rows->v = v;
        rows->cap = cap;
    }
    s_ring_row_t *row = &rows->v[rows->n++];
    snprintf(row->id, sizeof row->id, "%s", m->id);
    row->name = s_strdup0(m->name);
    row->vnodes = m->vnodes;
    row->share = m->share;
    row->digest = m->digest;
    row->agrees = m->agrees;
    rows->failed = !row->name;
}

static void s_ring_rows_free(s_ring_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        free(rows->v[i].name);
    }
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

/*  Members of the ring that have not announced a digest yet. */
static void s_ring_count_unheard(const mesh_ring_member_t *m, void *arg)
{
    *(size_t *)arg += !m->is_self && m->digest == 0;
}

static size_t s_ring_unheard(s_ctl_t *c)
{
    size_t n = 0;
    mesh_peer_ring_members(c->peer, s_ring_count_unheard, &n);
    return n;
}

typedef struct {
    char id[33];
    char *name;
} s_owner_t;

typedef struct {
    s_owner_t *v;
    size_t n, cap;
    bool failed;
} s_owners_t;

static void s_owner_add(const char *id, const char *name, size_t rank, void *arg)
{
    s_owners_t *o = arg;
    if (o->failed || rank != o->n || o->n == o->cap) {
        o->failed = true;
        return;
    }
    snprintf(o->v[o->n].id, sizeof o->v[o->n].id, "%s", id);
    o->failed = !(o->v[o->n++].name = s_strdup0(name));
}

static const char *s_agrees_text(const s_ring_row_t *r)
{
    return r->digest == 0 ? "?" : r->agrees ? "yes" : "no";
}

static json_t *s_ring_json(const s_ring_rows_t *rows, uint64_t digest, const char *key,
                           const s_owners_t *owners)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llX", (unsigned long long)digest);
    json_t *members = json_array();
    for (size_t i = 0; i < rows->n; i++) {
        const s_ring_row_t *r = &rows->v[i];
        char d[17];
        snprintf(d, sizeof d, "%016llX", (unsigned long long)r->digest);
        json_array_append_new(members,
                              json_pack("{s:s, s:o, s:i, s:f, s:o, s:o}", "id", r->id, "name",
                                        mesh_cli_json_bytes(r->name, strlen(r->name)), "vnodes",
                                        (int)r->vnodes, "share", r->share, "digest",
                                        r->digest ? json_string(d) : json_null(), "agrees",
                                        r->digest ? json_boolean(r->agrees) : json_null()));
    }
    json_t *doc =
        json_pack("{s:s, s:i, s:o}", "digest", hex, "vnodes", MESH_RING_VNODES, "members", members);
    if (key) {
        json_t *list = json_array();
        for (size_t i = 0; i < owners->n; i++) {
            const s_owner_t *o = &owners->v[i];
            json_array_append_new(list, json_pack("{s:i, s:s, s:s, s:o}", "rank", (int)i, "role",
                                                  i ? "replica" : "owner", "id", o->id, "name",
                                                  mesh_cli_json_bytes(o->name, strlen(o->name))));
        }
        json_object_set_new(doc, "key", mesh_cli_json_bytes(key, strlen(key)));
        json_object_set_new(doc, "owners", list);
    }
    return doc;
}

/*  Prints the ring (and the key's owners). Returns the exit code. */
static int s_ring_print(s_ctl_t *c)
{
    const s_opts_t *o = c->o;
    s_ring_rows_t rows = {0};
    mesh_peer_ring_members(c->peer, s_ring_row_add, &rows);
    uint64_t digest = mesh_peer_ring_digest(c->peer);
    s_owners_t owners = {0};
    int code = MESH_EXIT_OK;
    if (!rows.failed && o->target) {
        size_t want = o->replicas ? (size_t)o->replicas : S_RING_REPLICAS;
        owners.cap = want < rows.n ? want : rows.n;
        owners.v = calloc(owners.cap ? owners.cap : 1, sizeof *owners.v);
        owners.failed = !owners.v;
        int rc = owners.failed ? MESH_ERR_NOMEM
                               : mesh_peer_ring_owners(c->peer, o->target, strlen(o->target), want,
                                                       s_owner_add, &owners);
        if (rc == MESH_ERR_NOTFOUND) {
            fprintf(stderr, "%s: ring: no members: nobody owns '%s'\n", S_PROG, o->target);
            code = MESH_EXIT_NOPROVIDER;
        } else if (rc != 0) {
            owners.failed = true;
        }
    }
    if (rows.failed || owners.failed) {
        fprintf(stderr, "%s: out of memory\n", S_PROG);
        code = MESH_EXIT_FAILURE;
    } else if (o->json && code == MESH_EXIT_OK) {
        json_t *doc = s_ring_json(&rows, digest, o->target, &owners);
        char *text = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
        puts(text ? text : "{}");
        free(text);
        json_decref(doc);
    } else if (code == MESH_EXIT_OK && o->target) {
        printf("%-8s  %-32s  %s\n", "ROLE", "ID", "NAME");
        for (size_t i = 0; i < owners.n; i++) {
            printf("%-8s  %-32s  %s\n", i ? "replica" : "owner", owners.v[i].id, owners.v[i].name);
        }
        printf("digest %016llX, %zu members\n", (unsigned long long)digest, rows.n);
    } else if (code == MESH_EXIT_OK) {
        printf("%-32s  %-16s  %6s  %7s  %s\n", "ID", "NAME", "VNODES", "SHARE", "AGREES");
        for (size_t i = 0; i < rows.n; i++) {
            const s_ring_row_t *r = &rows.v[i];
            printf("%-32s  %-16s  %6u  %6.2f%%  %s\n", r->id, r->name, r->vnodes, r->share * 100.0,
                   s_agrees_text(r));
        }
        printf("digest %016llX, %zu members\n", (unsigned long long)digest, rows.n);
    }
    fflush(stdout);
    if (code == MESH_EXIT_OK && rows.disagree) {
        fprintf(stderr,
                "%s: ring: %zu of %zu members announce another digest: their view of the "
                "membership differs from this one\n",
                S_PROG, rows.disagree, rows.n);
    }
    if (code == MESH_EXIT_OK && rows.unheard) {
        fprintf(stderr, "%s: ring: %zu of %zu members have not announced a digest yet\n", S_PROG,
                rows.unheard, rows.n);
    }
    for (size_t i = 0; i < owners.n; i++) {
        free(owners.v[i].name);
    }
    free(owners.v);
    s_ring_rows_free(&rows);
    return code;
}

/* --- call and ping ------------------------------------------------------- */

static void s_ping_next(s_ctl_t *c);

static int s_send_call(s_ctl_t *c);

static void s_on_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    s_ctl_t *c = arg;
    if (c->phase == S_DONE) {
        return; /* completed with CLOSED as we leave */
    }
    s_trace(c, "reply from %s: %s", r->peer_name ? r->peer_name : "?",
            r->status ? mesh_err_name(r->status) : "ok");
    if (r->status != 0) {
        s_finish(c, s_report(c, c->o->target, r->status, r->error, r->peer_name));
        return;
    }
    if (c->o->raw) {
        if (r->size && fwrite(r->data, 1, r->size, stdout) != r->size) {
            s_finish(c, MESH_EXIT_FAILURE);
            return;
        }
        fflush(stdout);
        s_finish(c, MESH_EXIT_OK);
        return;
    }
    bool fallback;
    json_t *v = s_payload_json(c->o, r->data, r->size, &fallback);
    if (fallback) {
        fprintf(stderr,
                "%s: the reply from %s is not msgpack: printed as {\"$raw\": BASE64} "
                "(see --raw)\n",
                S_PROG, r->peer_name ? r->peer_name : "?");
    }
    if (c->o->from) {
        /* "NAME: reply", as fanout prints each answer */
        printf("%s: ", r->peer_name ? r->peer_name : "?");
    }
    s_print_json(c->o, v);
    json_decref(v);
    if (c->o->count > 1 && ++c->done < c->o->count) {
        int rc = s_send_call(c); /* --count: the next call, from this same peer */
        if (rc != 0) {
            s_finish(c, s_report(c, c->o->target, rc, NULL, NULL));
        }
        return;
    }
    s_finish(c, MESH_EXIT_OK);
}

static void s_on_ping_reply(mesh_peer_t *peer, const mesh_reply_t *r, void *arg)
{
    s_ctl_t *c = arg;
    if (c->phase == S_DONE) {
        return;
    }
    double ms = (double)(s_now_us() - c->sent_us) / 1000.0;
    if (r->status != 0) {
        c->failed++;
        c->exit_code = s_report(c, S_PING_PATH, r->status, r->error,
                                r->peer_name ? r->peer_name : c->o->target);
    } else {
        c->done++;
        c->rtt_sum += ms;
        c->rtt_min = c->done == 1 || ms < c->rtt_min ? ms : c->rtt_min;
        c->rtt_max = ms > c->rtt_max ? ms : c->rtt_max;
        if (c->o->json) {
            json_t *reply = s_payload_json(c->o, r->data, r->size, NULL);
            const char *name = r->peer_name ? r->peer_name : "";
            json_t *line =
                json_pack("{s:o, s:s, s:f, s:o}", "peer", mesh_cli_json_bytes(name, strlen(name)),
                          "id", r->peer_id ? r->peer_id : "", "ms", ms, "reply", reply);
            s_print_json(c->o, line);
            json_decref(line);
        } else {
            printf("pong from %s (%s): time=%.3f ms\n", r->peer_name ? r->peer_name : "?",
                   r->peer_id ? r->peer_id : "?", ms);
            fflush(stdout);
        }
    }
    if (c->done + c->failed >= c->o->count) {
        if (c->o->count > 1 && !c->o->json) {
            printf("%ld sent, %ld answered", c->done + c->failed, c->done);
            if (c->done) {
                printf(", min/avg/max = %.3f/%.3f/%.3f ms", c->rtt_min,
                       c->rtt_sum / (double)c->done, c->rtt_max);
            }
            printf("\n");
            fflush(stdout);
        }
        s_finish(c, c->failed ? c->exit_code : MESH_EXIT_OK);
        return;
    }
    ev_timer_set(&c->repeat, (double)c->o->interval_ms / 1000.0, 0.0);
    ev_timer_start(c->loop, &c->repeat);
}

/*  Sends the request. Returns 0 (a reply will follow), or a status. */
static int s_send_call(s_ctl_t *c)
{
    mesh_call_opts_t opts;
    s_call_opts(c, &opts);
    if (c->o->cmd == CMD_PING) {
        opts.selector = "direct";
        opts.peer = c->o->target;
        c->sent_us = s_now_us();
        return mesh_peer_call(c->peer, S_PING_PATH, c->payload, c->payload_size, &opts,
                              s_on_ping_reply, c);
    }
    return mesh_peer_call(c->peer, c->o->target, c->payload, c->payload_size, &opts, s_on_reply, c);
}

static void s_on_repeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_ping_next(w->data);
}

/*  The next ping of --count, the target already found. */
static void s_ping_next(s_ctl_t *c)
{
    int rc = s_send_call(c);
    if (rc != 0) {
        mesh_reply_t r = {.status = rc, .peer_name = c->o->target};
        s_on_ping_reply(c->peer, &r, c);
    }
}

/* --- fanout ----------------------------------------------------------------- */

static void s_on_gather(mesh_peer_t *peer, const mesh_gather_t *g, void *arg)
{
    s_ctl_t *c = arg;
    if (c->phase == S_DONE) {
        return;
    }
    int code = MESH_EXIT_OK;
    json_t *doc = c->o->json ? json_pack("{s:[], s:[]}", "replies", "missing") : NULL;
    for (size_t i = 0; i < g->nreplies; i++) {
        const mesh_reply_t *r = &g->replies[i];
        const char *name = r->peer_name ? r->peer_name : "?";
        json_t *data = r->status == 0 ? s_payload_json(c->o, r->data, r->size, NULL) : NULL;
        if (r->status != 0 && code == MESH_EXIT_OK) {
            code = mesh_cli_exit_code(r->status);
        }
        const char *error =
            r->status == MESH_ERR_REMOTE && r->error ? r->error : s_status_text(r->status);
        if (doc) {
            json_t *item = json_pack("{s:o, s:s}", "peer", mesh_cli_json_bytes(name, strlen(name)),
                                     "id", r->peer_id ? r->peer_id : "");
            if (r->status == 0) {
                json_object_set_new(item, "data", data);
            } else {
                json_object_set_new(item, "error", mesh_cli_json_bytes(error, strlen(error)));
                json_object_set_new(item, "status", json_string(mesh_err_name(r->status)));
            }
            json_array_append_new(json_object_get(doc, "replies"), item);
            continue;
        }
        if (r->status == 0) {
            char *text = json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT);
            printf("%s: %s\n", name, text ? text : "null");
            free(text);
            json_decref(data);
        } else {
            printf("%s: error: %s\n", name, error);
        }
    }
    for (size_t i = 0; i < g->nmissing; i++) {
        const char *name = g->missing_names[i] ? g->missing_names[i] : "?";
        if (doc) {
            json_array_append_new(json_object_get(doc, "missing"),
                                  json_pack("{s:o, s:s}", "peer",
                                            mesh_cli_json_bytes(name, strlen(name)), "id",
                                            g->missing_ids[i] ? g->missing_ids[i] : ""));
        } else {
            printf("%s: no answer\n", name);
        }
    }
    if (doc) {
        s_print_json(c->o, doc);
        json_decref(doc);
    }
    fflush(stdout);
    if (g->nmissing) {
        fprintf(stderr, "%s: %s: %zu of %zu peers did not answer in time\n", S_PROG, c->o->target,
                g->nmissing, g->nmissing + g->nreplies);
        code = MESH_EXIT_TIMEOUT;
    } else if (code != MESH_EXIT_OK) {
        fprintf(stderr, "%s: %s: not every peer answered successfully\n", S_PROG, c->o->target);
    }
    s_finish(c, code);
}

/* --- sub -------------------------------------------------------------------- */

static void s_name_of(const mesh_route_info_t *r, void *arg)
{
    const char **want = arg; /* [0] id in, [1] name out (borrowed for the call only) */
    if (!want[1] && strcmp(r->id, want[0]) == 0) {
        want[1] = r->name;
    }
}

static void s_on_message(mesh_peer_t *peer, const char *topic, const void *data, size_t size,
                         const char *from_id, void *arg)
{
    s_ctl_t *c = arg;
    if (c->phase == S_DONE) {
        return;
    }
    const char *who[2] = {from_id, NULL};
    mesh_peer_routes(peer, s_name_of, who);
    json_t *line = json_pack(
        "{s:o, s:o, s:s, s:o}", "topic", mesh_cli_json_bytes(topic, strlen(topic)), "from",
        mesh_cli_json_bytes(who[1] ? who[1] : from_id, strlen(who[1] ? who[1] : from_id)),
        "from_id", from_id, "data", s_payload_json(c->o, data, size, NULL));
    bool written = s_print_json(c->o, line);
    json_decref(line);
    if (!written || (c->o->count && ++c->done >= c->o->count)) {
        s_finish(c, MESH_EXIT_OK); /* enough, or nobody reads any more */
    }
}

/* --- watch ------------------------------------------------------------------ */

/*  Writes one screen into out. */
static void s_watch_render(s_ctl_t *c, FILE *out)
{
    s_rows_t rows = {0};
    mesh_peer_routes(c->peer, s_rows_add, &rows);
    qsort(rows.v, rows.n, sizeof *rows.v, s_row_cmp);
    /* members: one line each, by name */
    size_t nmembers = 0, nservices = 0;
    s_row_t **members = calloc(rows.n ? rows.n : 1, sizeof *members);
    for (size_t i = 0; members && i < rows.n; i++) {
        bool seen = false;
        for (size_t k = 0; k < nmembers && !seen; k++) {
            seen = strcmp(members[k]->id, rows.v[i].id) == 0;
        }
        if (!seen) {
            members[nmembers++] = &rows.v[i];
        }
        if (rows.v[i].path &&
            (i == 0 || !rows.v[i - 1].path || strcmp(rows.v[i - 1].path, rows.v[i].path) != 0)) {
            nservices++;
        }
    }
    char clock[16] = "";
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm)) {
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    }
    fprintf(out, "mesh realm %s: %zu peers, %zu services, %zu ZRE peers  %s%s\n",
            mesh_peer_realm(c->peer), nmembers, nservices, mesh__zre_peer_count(c->zre), clock,
            c->tty ? "  (q quits)" : "");
    fprintf(out, "\n%-16s  %-8s  %-5s  %6s  %8s  %6s  %s\n", "PEER", "ID", "ALIVE", "LOAD",
            "INFLIGHT", "HEARD", "SERVICES");
    for (size_t k = 0; k < nmembers; k++) {
        const s_row_t *m = members[k];
        size_t ns = 0;
        for (size_t i = 0; i < rows.n; i++) {
            ns += rows.v[i].path && strcmp(rows.v[i].id, m->id) == 0;
        }
        fprintf(out, "%-16s  %-8.8s  %-5s  %6.2f  %8llu  %5.1fs  %zu\n", m->name, m->id,
                m->alive ? "yes" : "no", m->load, (unsigned long long)m->inflight,
                (double)m->heard_ms_ago / 1000.0, ns);
    }
    fprintf(out, "\n%-24s  %s\n", "PATH", "PROVIDERS");
    for (size_t i = 0; i < rows.n && rows.v[i].path;) {
        const char *path = rows.v[i].path;
        fprintf(out, "%-24s ", path);
        for (; i < rows.n && rows.v[i].path && strcmp(rows.v[i].path, path) == 0; i++) {
            fprintf(out, " %s%s", rows.v[i].name, rows.v[i].alive ? "" : "(silent)");
        }
        fputc('\n', out);
    }
    free(members);
    s_rows_free(&rows);
}

static void s_watch_draw(s_ctl_t *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) {
        return;
    }
    s_watch_render(c, mem);
    fclose(mem);
    if (!c->tty) {
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            s_finish(c, MESH_EXIT_OK); /* nobody reads any more */
        }
        free(text);
        return;
    }
    struct winsize ws;
    size_t cols = 80, lines = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        cols = ws.ws_col;
        lines = ws.ws_row;
    }
    /* home, then each line cut to the width and its rest cleared, then the rest of the screen */
    fputs("\033[H", stdout);
    size_t row = 0;
    for (char *line = text; line && *line && row + 1 < lines; row++) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        fwrite(line, 1, n < cols ? n : cols, stdout);
        fputs("\033[K\r\n", stdout);
        line = nl ? nl + 1 : NULL;
    }
    fputs("\033[J", stdout);
    fflush(stdout);
    free(text);
}

static void s_on_watch_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_ctl_t *c = w->data;
    s_watch_draw(c);
    if (c->o->count && ++c->done >= c->o->count) {
        s_finish(c, MESH_EXIT_OK);
    }
}

static void s_on_key(struct ev_loop *loop, ev_io *w, int revents)
{
    s_ctl_t *c = w->data;
    char buf[64];
    ssize_t n = read(w->fd, buf, sizeof buf);
    if (n <= 0) {
        ev_io_stop(loop, w); /* end of input: only Ctrl-C quits now */
        return;
    }
    if (memchr(buf, 'q', (size_t)n) || memchr(buf, 'Q', (size_t)n)) {
        s_finish(c, MESH_EXIT_OK);
    }
}

static void s_watch_start(s_ctl_t *c)
{
    c->phase = S_ACTING;
    if (c->tty) {
        fputs("\033[?1049h\033[?25l\033[2J", stdout); /* alternate screen, no cursor */
        c->alt_screen = true;
        if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &c->saved_termios) == 0) {
            struct termios t = c->saved_termios;
            t.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C still interrupts */
            t.c_cc[VMIN] = 1;
            t.c_cc[VTIME] = 0;
            if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
                c->keys_raw = true;
            }
            ev_io_init(&c->keys, s_on_key, STDIN_FILENO, EV_READ);
            c->keys.data = c;
            ev_io_start(c->loop, &c->keys);
        }
    }
    ev_timer_set(&c->repeat, 0.0, (double)c->o->interval_ms / 1000.0);
    ev_timer_start(c->loop, &c->repeat);
}

static void s_watch_end(s_ctl_t *c)
{
    if (ev_is_active(&c->keys)) {
        ev_io_stop(c->loop, &c->keys);
    }
    if (c->keys_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &c->saved_termios);
        c->keys_raw = false;
    }
    if (c->alt_screen) {
        fputs("\033[?25h\033[?1049l", stdout);
        fflush(stdout);
        c->alt_screen = false;
    }
}

/* --- the check: is the target there? ------------------------------------- */

/*  Acts once the target is there. Returns true when it acted (or finished). */
static bool s_try_act(s_ctl_t *c, int64_t now, bool expired)
{
    const s_opts_t *o = c->o;
    bool quiet = now - c->route_change_ms >= S_QUIET_MS;
    bool settled = (c->members > 0 || now - c->start_ms >= c->min_wait_ms) && quiet;
    int rc;
    switch (o->cmd) {
    case CMD_PEERS:
        if (expired ||
            (now - c->start_ms >= c->min_wait_ms && now - c->zre_change_ms >= S_SETTLE_MS)) {
            s_peers_print(c);
            s_finish(c, MESH_EXIT_OK);
            return true;
        }
        return false;
    case CMD_SERVICES:
        if (settled || expired) {
            s_finish(c, s_services_print(c));
            return true;
        }
        return false;
    case CMD_WATCH:
        if (settled || expired) {
            s_watch_start(c);
            return true;
        }
        return false;
    case CMD_RING:
        /* the table has settled, and every member has said which ring it sees */
        if (expired || (settled && s_ring_unheard(c) == 0)) {
            s_finish(c, s_ring_print(c));
            return true;
        }
        return false;
    case CMD_CALL:
    case CMD_PING:
    case CMD_CAST:
    case CMD_FANOUT:
        /* one provider is enough, unless the choice depends on all of them
           (key: consistent hashing over the providers) or all are wanted */
        if ((o->cmd == CMD_FANOUT || o->all ||
             (o->selector && (strcmp(o->selector, "key") == 0 ||
                              strcmp(o->selector, "round_robin") == 0))) &&
            !((c->providers > 0 && quiet) || expired)) {
            return false;
        }
        if (o->cmd == CMD_CAST) {
            mesh_call_opts_t opts;
            s_call_opts(c, &opts);
            rc = mesh_peer_cast(c->peer, o->target, c->payload, c->payload_size, &opts);
            if (rc == 0) {
                s_finish_after_flush(c, MESH_EXIT_OK);
                return true;
            }
        } else if (o->cmd == CMD_FANOUT) {
            mesh_call_opts_t opts;
            s_call_opts(c, &opts);
            rc = mesh_peer_fanout(c->peer, o->target, c->payload, c->payload_size, &opts,
                                  s_on_gather, c);
        } else {
            rc = s_send_call(c);
        }
        if (rc == 0) {
            c->phase = S_ACTING;
            return true;
        }
        if (rc != MESH_ERR_NOPROVIDER || expired) {
            if (rc == MESH_ERR_NOPROVIDER && o->cmd == CMD_PING) {
                fprintf(stderr, "%s: ping %s: %s\n", S_PROG, o->target,
                        c->members ? "no such peer, or it does not offer " S_PING_PATH
                                   : "no peers found");
                s_finish(c, MESH_EXIT_NOPROVIDER);
            } else {
                s_finish(c, s_report(c, o->target, rc, NULL, NULL));
            }
            return true;
        }
        return false;
    case CMD_PUB: {
        if (!((c->members > 0 && quiet) || expired)) {
            return false;
        }
        mesh_stats_t before, after;
        mesh_peer_stats(c->peer, &before);
        rc = mesh_peer_publish(c->peer, o->target, c->payload, c->payload_size);
        mesh_peer_stats(c->peer, &after);
        if (rc != 0) {
            s_finish(c, s_report(c, o->target, rc, NULL, NULL));
            return true;
        }
        if (after.publishes_out > before.publishes_out) {
            s_finish_after_flush(c, MESH_EXIT_OK);
            return true;
        }
        if (expired) {
            fprintf(stderr, "%s: %s: no subscribers\n", S_PROG, o->target);
            s_finish(c, MESH_EXIT_NOPROVIDER);
            return true;
        }
        return false;
    }
    default:
        return true;
    }
}

static void s_check(s_ctl_t *c)
{
    if (c->phase != S_WAITING) {
        return;
    }
    int64_t now = mesh_cli_now_ms();
    s_scan(c, now);
    int64_t deadline = c->start_ms + c->o->wait_ms;
    if (s_try_act(c, now, now >= deadline)) {
        s_trace(c, "acted");
        return;
    }
    /* the next moment something could change without an event */
    int64_t next = now + S_POLL_MS;
    int64_t marks[] = {deadline, c->route_change_ms + S_QUIET_MS, c->start_ms + c->min_wait_ms,
                       c->zre_change_ms + S_SETTLE_MS};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        if (marks[i] > now && marks[i] < next) {
            next = marks[i];
        }
    }
    ev_timer_stop(c->loop, &c->wake);
    ev_timer_set(&c->wake, (double)(next - now) / 1000.0 + 0.0005, 0.0);
    ev_timer_start(c->loop, &c->wake);
}

static void s_on_check_idle(struct ev_loop *loop, ev_idle *w, int revents)
{
    ev_idle_stop(loop, w);
    s_check(w->data);
}

static void s_on_wake(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_check(w->data);
}

/*  Sees every ZRE event before the peer handles it: the check runs after. */
static void s_observer(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    s_ctl_t *c = arg;
    if (ev->type == MESH_ZRE_EV_ENTER || ev->type == MESH_ZRE_EV_EXIT ||
        ev->type == MESH_ZRE_EV_JOIN || ev->type == MESH_ZRE_EV_LEAVE) {
        c->zre_change_ms = mesh_cli_now_ms();
        static const char *const names[] = {"", "enter", "exit", "", "", "join", "leave"};
        s_trace(c, "%s %s%s%s", names[ev->type], mesh__zre_peer_name(ev->peer),
                ev->group ? " " : "", ev->group ? ev->group : "");
    }
    if (c->phase == S_WAITING && !ev_is_active(&c->check_idle)) {
        ev_idle_start(c->loop, &c->check_idle);
    }
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    s_ctl_t *c = w->data;
    if (c->o->cmd == CMD_SUB || c->o->cmd == CMD_WATCH) {
        s_finish(c, MESH_EXIT_OK); /* the normal way to end them */
        return;
    }
    if (c->o->cmd == CMD_PEERS && c->phase == S_WAITING) {
        s_peers_print(c); /* what was found so far */
    } else if (c->phase != S_DONE) {
        fprintf(stderr, "%s: interrupted\n", S_PROG);
    }
    s_finish(c, MESH_EXIT_FAILURE);
}

static void s_on_winch(struct ev_loop *loop, ev_signal *w, int revents)
{
    s_ctl_t *c = w->data;
    if (c->o->cmd == CMD_WATCH && c->phase == S_ACTING && c->tty) {
        fputs("\033[2J", stdout);
        s_watch_draw(c);
    }
}

/*  Joins, runs the command, leaves. Returns the exit code. */
static int s_run(s_opts_t *o)
{
    s_ctl_t c = {0};
    c.o = o;
    if (o->payload || o->cmd == CMD_CALL || o->cmd == CMD_CAST || o->cmd == CMD_FANOUT ||
        o->cmd == CMD_PUB || o->cmd == CMD_PING) {
        int rc = s_payload_prepare(o, &c.payload, &c.payload_size);
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
    if (!c.peer) {
        fprintf(stderr, "%s: cannot create a peer\n", S_PROG);
        free(c.payload);
        return MESH_EXIT_FAILURE;
    }
    c.zre = mesh__peer_zre(c.peer);
    if (mesh__peer_set_ctl(c.peer) != 0) { /* X-MESH-ROLE=ctl: never on the ring */
        fprintf(stderr, "%s: cannot create a peer\n", S_PROG);
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        return MESH_EXIT_FAILURE;
    }
    if (mesh_cli_add_seeds(&o->disc, c.zre, S_PROG) != 0) {
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        return MESH_EXIT_USAGE;
    }
    if (o->cmd == CMD_SUB) {
        int rc = mesh_peer_subscribe(c.peer, o->target, o->prefix, s_on_message, &c);
        if (rc != 0) {
            fprintf(stderr, "%s: cannot subscribe to '%s': %s\n", S_PROG, o->target,
                    mesh_strerror(rc));
            mesh_peer_destroy(&c.peer);
            free(c.payload);
            return MESH_EXIT_USAGE;
        }
    }
    c.loop = ev_default_loop(EVFLAG_AUTO);
    int rc = mesh_peer_attach(c.peer, c.loop);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot start on interface '%s': %s\n", S_PROG,
                o->disc.zre.iface ? o->disc.zre.iface : MESH_DEFAULT_IFACE, mesh_strerror(rc));
        mesh_peer_destroy(&c.peer);
        free(c.payload);
        ev_loop_destroy(c.loop);
        return MESH_EXIT_FAILURE;
    }
    c.start_ms = c.zre_change_ms = c.route_change_ms = mesh_cli_now_ms();
    int interval = o->disc.zre.beacon_interval_ms ? o->disc.zre.beacon_interval_ms
                                                  : MESH_DEFAULT_BEACON_INTERVAL_MS;
    /* Every beaconing peer is heard within one interval; seeds need a round trip. */
    c.min_wait_ms = o->disc.zre.beacon_off ? S_SETTLE_MS : interval + 100;
    c.tty = o->cmd == CMD_WATCH && isatty(STDOUT_FILENO);
    c.trace = getenv("MESH_DEBUG") != NULL;

    ev_idle_init(&c.check_idle, s_on_check_idle);
    c.check_idle.data = &c;
    ev_timer_init(&c.wake, s_on_wake, 0.0, 0.0);
    c.wake.data = &c;
    ev_timer_init(&c.repeat, o->cmd == CMD_WATCH ? s_on_watch_tick : s_on_repeat, 0.0, 0.0);
    c.repeat.data = &c;
    ev_timer_init(&c.flush, s_on_flush, 0.0, 0.0);
    c.flush.data = &c;
    ev_init(&c.keys, s_on_key);
    ev_signal_init(&c.sigint, s_on_signal, SIGINT);
    ev_signal_init(&c.sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&c.sigwinch, s_on_winch, SIGWINCH);
    c.sigint.data = c.sigterm.data = c.sigwinch.data = &c;
    ev_signal_start(c.loop, &c.sigint);
    ev_signal_start(c.loop, &c.sigterm);
    ev_signal_start(c.loop, &c.sigwinch);
    mesh__peer_set_observer(c.peer, s_observer, &c);

    if (o->cmd == CMD_SUB) {
        c.phase = S_ACTING; /* nothing to find: subscribers are found by publishers */
    } else {
        s_check(&c);
    }
    if (c.phase != S_DONE) {
        ev_run(c.loop, 0);
    }

    s_watch_end(&c);
    ev_idle_stop(c.loop, &c.check_idle);
    ev_timer_stop(c.loop, &c.wake);
    ev_timer_stop(c.loop, &c.repeat);
    ev_timer_stop(c.loop, &c.flush);
    ev_signal_stop(c.loop, &c.sigint);
    ev_signal_stop(c.loop, &c.sigterm);
    ev_signal_stop(c.loop, &c.sigwinch);
    c.phase = S_DONE; /* calls still out complete with CLOSED: not reported */
    mesh__peer_set_observer(c.peer, NULL, NULL);
    mesh_peer_destroy(&c.peer); /* leaves: port-0 beacon and BYE */
    ev_loop_destroy(c.loop);
    free(c.payload);
    return c.exit_code;
}

int meshctl_task_main(int argc, char **argv); /* meshctl_task.c */

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "task") == 0) {
        return meshctl_task_main(argc - 1, argv + 1); /* task submit|status|cancel|list */
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MESH_EXIT_USAGE : MESH_EXIT_OK;
    }
    s_opts_t o = {0};
    o.wait_ms = S_DEFAULT_WAIT_MS;
    o.count = 0;
    o.interval_ms = S_WATCH_INTERVAL_MS;
    size_t k = 0;
    while (k < CMD_COUNT && strcmp(s_cmds[k].name, argv[1]) != 0) {
        k++;
    }
    if (k == CMD_COUNT) {
        fprintf(stderr, "%s: unknown command '%s'\n", S_PROG, argv[1]);
        s_usage(stderr);
        return MESH_EXIT_USAGE;
    }
    o.cmd = (s_cmd_t)k;
    bool help = false;
    int rc = s_parse(&o, argc - 1, argv + 1, &help);
    if (help) {
        s_usage(stdout);
        return MESH_EXIT_OK;
    }
    if (rc != 0) {
        return rc;
    }
    if (o.cmd == CMD_PING && o.count == 0) {
        o.count = 1;
    }
    return s_run(&o);
}
