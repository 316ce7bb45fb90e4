/*  meshd: runs one mesh node in the foreground until SIGTERM/SIGINT.

    See docs/meshd.md. Logs go to stderr; with --events every node event is
    one JSON line on stdout; with --stdin JSON commands are read from stdin. */
#include "cli.h"
#include "reactor.h"
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
#include <unistd.h>

#define S_PROG        "meshd"
#define S_LINE_MAX    (1024 * 1024) /* one stdin command line */
#define S_MAX_GROUPS  64
#define S_MAX_HEADERS 64

enum { S_LOG_ERROR, S_LOG_WARN, S_LOG_INFO, S_LOG_DEBUG };

typedef struct {
    struct ev_loop *loop;
    mesh__zre_t *node;
    bool events;
    int log_level;
    int64_t started_ms;
    char *line;
    size_t line_len;
    bool line_overflow;
    ev_io stdin_io;
    ev_signal sigterm, sigint;
    int signal_seen;
} s_daemon_t;

static void s_log(const s_daemon_t *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_log(const s_daemon_t *d, int level, const char *fmt, ...)
{
    if (level > d->log_level) {
        return;
    }
    static const char *const tags[] = {"error", "warn", "info", "debug"};
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s[%d] %s: ", S_PROG, (int)getpid(), tags[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void s_print(json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        free(text);
    }
    json_decref(obj);
}

static json_t *s_peer_event(const char *ev, const mesh__zre_peer_t *peer)
{
    const char *name = mesh__zre_peer_name(peer);
    return json_pack("{s:s, s:s, s:o}", "ev", ev, "id", mesh__zre_peer_uuid_str(peer), "name",
                     mesh_cli_json_bytes(name, strlen(name)));
}

static void s_on_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    s_daemon_t *d = arg;
    const mesh__zre_peer_t *p = ev->peer;
    json_t *out = NULL;
    switch (ev->type) {
    case MESH_ZRE_EV_ENTER:
        s_log(d, S_LOG_INFO, "peer %s (%s) entered at %s", mesh__zre_peer_name(p),
              mesh__zre_peer_uuid_str(p), mesh__zre_peer_endpoint(p));
        out = mesh_cli_peer_json(p);
        json_object_set_new(out, "ev", json_string("enter"));
        json_object_set_new(out, "ms", json_integer(mesh_cli_now_ms() - d->started_ms));
        break;
    case MESH_ZRE_EV_EXIT:
        s_log(d, S_LOG_INFO, "peer %s (%s) exited: %s", mesh__zre_peer_name(p),
              mesh__zre_peer_uuid_str(p), ev->reason);
        out = s_peer_event("exit", p);
        json_object_set_new(out, "reason", json_string(ev->reason));
        break;
    case MESH_ZRE_EV_EVASIVE:
        s_log(d, S_LOG_DEBUG, "peer %s is evasive", mesh__zre_peer_name(p));
        out = s_peer_event("evasive", p);
        break;
    case MESH_ZRE_EV_BACK:
        s_log(d, S_LOG_DEBUG, "peer %s is back", mesh__zre_peer_name(p));
        out = s_peer_event("back", p);
        break;
    case MESH_ZRE_EV_JOIN:
    case MESH_ZRE_EV_LEAVE:
        s_log(d, S_LOG_DEBUG, "peer %s %s %s", mesh__zre_peer_name(p),
              ev->type == MESH_ZRE_EV_JOIN ? "joined" : "left", ev->group);
        out = s_peer_event(ev->type == MESH_ZRE_EV_JOIN ? "join" : "leave", p);
        json_object_set_new(out, "group", mesh_cli_json_bytes(ev->group, strlen(ev->group)));
        break;
    case MESH_ZRE_EV_WHISPER:
    case MESH_ZRE_EV_SHOUT: {
        char *b64 = mesh_cli_base64_encode(ev->data, ev->size);
        out = s_peer_event(ev->type == MESH_ZRE_EV_WHISPER ? "whisper" : "shout", p);
        if (ev->group) {
            json_object_set_new(out, "group", mesh_cli_json_bytes(ev->group, strlen(ev->group)));
        }
        json_object_set_new(out, "data", json_string(b64 ? b64 : ""));
        free(b64);
        break;
    }
    }
    if (out && d->events) {
        s_print(out);
    } else {
        json_decref(out);
    }
}

static void s_error_event(s_daemon_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_error_event(s_daemon_t *d, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    s_log(d, S_LOG_WARN, "%s", text);
    if (d->events) {
        s_print(json_pack("{s:s, s:s}", "ev", "error", "error", text));
    }
}

static json_t *s_stats_json(const mesh__zre_t *node)
{
    const mesh__zre_stats_t *s = mesh__zre_stats(node);
    json_t *o = json_object();
    json_object_set_new(o, "ev", json_string("stats"));
#define S_STAT(f) json_object_set_new(o, #f, json_integer((json_int_t)s->f))
    S_STAT(beacons_sent);
    S_STAT(beacons_received);
    S_STAT(beacons_bad);
    S_STAT(beacons_foreign);
    S_STAT(msgs_received);
    S_STAT(msgs_malformed);
    S_STAT(msgs_unknown_sender);
    S_STAT(msgs_ignored);
    S_STAT(msgs_not_member);
    S_STAT(sequence_gaps);
    S_STAT(send_dropped);
    S_STAT(gossip_received);
    S_STAT(gossip_bad);
    S_STAT(peers_entered);
    S_STAT(peers_exited);
    S_STAT(peers_refused);
#undef S_STAT
    json_object_set_new(o, "peers", json_integer((json_int_t)mesh__zre_peer_count(node)));
    return o;
}

/*  Decodes {"data": BASE64} into a buffer. */
static uint8_t *s_data(s_daemon_t *d, json_t *obj, size_t *len)
{
    const char *b64 = json_string_value(json_object_get(obj, "data"));
    uint8_t *data = b64 ? mesh_cli_base64_decode(b64, len) : NULL;
    if (!data || *len == 0) {
        free(data);
        s_error_event(d, "\"data\" must be non-empty base64");
        return NULL;
    }
    return data;
}

static void s_command(s_daemon_t *d, const char *line, size_t len)
{
    json_error_t err;
    json_t *cmd = json_loadb(line, len, 0, &err);
    if (!cmd || !json_is_object(cmd)) {
        s_error_event(d, "bad command: %s", cmd ? "not an object" : err.text);
        json_decref(cmd);
        return;
    }
    json_t *v;
    size_t n = 0;
    if ((v = json_object_get(cmd, "whisper"))) {
        const char *to = json_string_value(json_object_get(v, "to"));
        const mesh__zre_peer_t *peer = to ? mesh__zre_peer_lookup(d->node, to) : NULL;
        uint8_t *data = NULL;
        if (!peer) {
            s_error_event(d, "no peer %s", to ? to : "(missing \"to\")");
        } else if ((data = s_data(d, v, &n))) {
            int rc = mesh__zre_whisper(d->node, mesh__zre_peer_uuid(peer), data, n);
            if (rc != 0) {
                s_error_event(d, "whisper: %s", mesh_strerror(rc));
            }
        }
        free(data);
    } else if ((v = json_object_get(cmd, "shout"))) {
        const char *group = json_string_value(json_object_get(v, "group"));
        uint8_t *data = NULL;
        if (!group) {
            s_error_event(d, "shout needs \"group\"");
        } else if ((data = s_data(d, v, &n))) {
            int rc = mesh__zre_shout(d->node, group, data, n);
            if (rc != 0) {
                s_error_event(d, "shout: %s", mesh_strerror(rc));
            }
        }
        free(data);
    } else if ((v = json_object_get(cmd, "join")) || (v = json_object_get(cmd, "leave"))) {
        bool join = json_object_get(cmd, "join") != NULL;
        const char *group = json_string_value(v);
        int rc = group ? (join ? mesh__zre_join(d->node, group) : mesh__zre_leave(d->node, group))
                       : MESH_ERR_INVAL;
        if (rc != 0) {
            s_error_event(d, "%s: %s", join ? "join" : "leave", mesh_strerror(rc));
        }
    } else if (json_object_get(cmd, "peers")) {
        json_t *list = json_array();
        size_t pos = 0;
        const mesh__zre_peer_t *p;
        while ((p = mesh__zre_peer_next(d->node, &pos))) {
            json_array_append_new(list, mesh_cli_peer_json(p));
        }
        s_print(json_pack("{s:s, s:o}", "ev", "peers", "peers", list));
    } else if (json_object_get(cmd, "stats")) {
        s_print(s_stats_json(d->node));
    } else if (json_object_get(cmd, "stop")) {
        ev_break(d->loop, EVBREAK_ALL);
    } else {
        s_error_event(d, "unknown command");
    }
    json_decref(cmd);
}

static void s_on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    s_daemon_t *d = w->data;
    char buf[65536];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        ev_io_stop(loop, w); /* end of input: keep running */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (d->line_overflow) {
                s_error_event(d, "command line longer than %d bytes dropped", S_LINE_MAX);
            } else if (d->line_len > 0) {
                s_command(d, d->line, d->line_len);
            }
            d->line_len = 0;
            d->line_overflow = false;
        } else if (d->line_len < S_LINE_MAX) {
            d->line[d->line_len++] = buf[i];
        } else {
            d->line_overflow = true;
        }
    }
}

static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    s_daemon_t *d = w->data;
    d->signal_seen = w->signum;
    ev_break(loop, EVBREAK_ALL);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: meshd --name NAME [--iface IFACE] [--beacon-port PORT] [--port PORT]\n"
            "             [--no-beacon] [--seed tcp://HOST:PORT]... [--group G]...\n"
            "             [--header K=V]... [--beacon-interval MS] [--evasive MS]\n"
            "             [--expired MS] [--events] [--stdin]\n"
            "             [--log-level error|warn|info|debug]\n"
            "Runs a mesh node in the foreground until SIGTERM or SIGINT. See meshd(1).\n");
}

enum { OPT_NAME = 1000, OPT_GROUP, OPT_HEADER, OPT_EVENTS, OPT_STDIN, OPT_LOG, OPT_HELP };

int main(int argc, char **argv)
{
    static const struct option options[] = {
        MESH_CLI_DISCOVERY_OPTIONS,
        {"name", required_argument, NULL, OPT_NAME},
        {"group", required_argument, NULL, OPT_GROUP},
        {"header", required_argument, NULL, OPT_HEADER},
        {"events", no_argument, NULL, OPT_EVENTS},
        {"stdin", no_argument, NULL, OPT_STDIN},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    mesh_cli_discovery_t disc = {0};
    s_daemon_t d = {.log_level = S_LOG_INFO};
    const char *groups[S_MAX_GROUPS];
    size_t ngroups = 0;
    char *headers[S_MAX_HEADERS];
    size_t nheaders = 0;
    bool use_stdin = false;
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int rc = mesh_cli_discovery_opt(&disc, opt, optarg, S_PROG);
        if (rc < 0) {
            return MESH_EXIT_USAGE;
        }
        if (rc > 0) {
            continue;
        }
        switch (opt) {
        case OPT_NAME:
            if (!*optarg || strlen(optarg) > MESH_ZRE_STRING_MAX) {
                fprintf(stderr, "%s: --name must be 1 to %d bytes\n", S_PROG,
                        MESH_ZRE_STRING_MAX);
                return MESH_EXIT_USAGE;
            }
            disc.zre.name = optarg;
            break;
        case OPT_GROUP:
            if (!*optarg || strlen(optarg) > MESH_ZRE_STRING_MAX || ngroups == S_MAX_GROUPS) {
                fprintf(stderr, "%s: --group '%s': 1 to %d bytes, %d groups at most\n", S_PROG,
                        optarg, MESH_ZRE_STRING_MAX, S_MAX_GROUPS);
                return MESH_EXIT_USAGE;
            }
            groups[ngroups++] = optarg;
            break;
        case OPT_HEADER:
            if (!strchr(optarg, '=') || optarg[0] == '=' || nheaders == S_MAX_HEADERS ||
                (size_t)(strchr(optarg, '=') - optarg) > MESH_ZRE_STRING_MAX) {
                fprintf(stderr, "%s: --header '%s': expected KEY=VALUE (key 1 to %d bytes)\n",
                        S_PROG, optarg, MESH_ZRE_STRING_MAX);
                return MESH_EXIT_USAGE;
            }
            headers[nheaders++] = optarg;
            break;
        case OPT_EVENTS:
            d.events = true;
            break;
        case OPT_STDIN:
            use_stdin = true;
            break;
        case OPT_LOG: {
            static const char *const levels[] = {"error", "warn", "info", "debug"};
            int found = -1;
            for (int i = 0; i < 4; i++) {
                if (strcmp(optarg, levels[i]) == 0) {
                    found = i;
                }
            }
            if (found < 0) {
                fprintf(stderr, "%s: --log-level '%s': expected error, warn, info or debug\n",
                        S_PROG, optarg);
                return MESH_EXIT_USAGE;
            }
            d.log_level = found;
            break;
        }
        case OPT_HELP:
            s_usage(stdout);
            return MESH_EXIT_OK;
        default:
            fprintf(stderr, "%s: unknown or incomplete option '%s'\n", S_PROG, argv[optind - 1]);
            s_usage(stderr);
            return MESH_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", S_PROG, argv[optind]);
        return MESH_EXIT_USAGE;
    }
    if (!disc.zre.name) {
        fprintf(stderr, "%s: --name is required\n", S_PROG);
        s_usage(stderr);
        return MESH_EXIT_USAGE;
    }
    if (d.log_level >= S_LOG_DEBUG) {
        setenv("MESH_DEBUG", "1", 1);
    }
    signal(SIGPIPE, SIG_IGN);

    mesh__zre_t *node = mesh__zre_new(&disc.zre, NULL);
    if (!node) {
        fprintf(stderr, "%s: cannot create the node (bad settings?)\n", S_PROG);
        return MESH_EXIT_USAGE;
    }
    for (size_t i = 0; i < nheaders; i++) {
        char *eq = strchr(headers[i], '=');
        *eq = '\0';
        if (mesh__zre_set_header(node, headers[i], eq + 1) != 0) {
            fprintf(stderr, "%s: --header '%s': refused\n", S_PROG, headers[i]);
            mesh__zre_destroy(&node);
            return MESH_EXIT_USAGE;
        }
    }
    for (size_t i = 0; i < ngroups; i++) {
        mesh__zre_join(node, groups[i]);
    }
    if (mesh_cli_add_seeds(&disc, node, S_PROG) != 0) {
        mesh__zre_destroy(&node);
        return MESH_EXIT_USAGE;
    }
    d.loop = ev_default_loop(EVFLAG_AUTO);
    d.node = node;
    d.started_ms = mesh_cli_now_ms();
    int rc = mesh__zre_start(node, mesh__reactor_now(d.loop));
    if (rc != 0) {
        fprintf(stderr, "%s: cannot start on interface '%s': %s\n", S_PROG,
                disc.zre.iface ? disc.zre.iface : MESH_DEFAULT_IFACE, mesh_strerror(rc));
        mesh__zre_destroy(&node);
        return MESH_EXIT_FAILURE;
    }
    mesh__zre_set_handler(node, s_on_event, &d);
    mesh__reactor_t *reactor = mesh__reactor_new(d.loop, node);
    if (!reactor) {
        fprintf(stderr, "%s: out of memory\n", S_PROG);
        mesh__zre_destroy(&node);
        return MESH_EXIT_FAILURE;
    }
    s_log(&d, S_LOG_INFO, "%s (%s) started at %s, beacons %s", mesh__zre_name(node),
          mesh__zre_uuid_str(node), mesh__zre_endpoint(node),
          disc.zre.beacon_off ? "off" : "on");
    if (d.events) {
        s_print(json_pack("{s:s, s:s, s:s, s:s}", "ev", "ready", "id", mesh__zre_uuid_str(node),
                          "name", mesh__zre_name(node), "endpoint", mesh__zre_endpoint(node)));
    }
    ev_signal_init(&d.sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&d.sigint, s_on_signal, SIGINT);
    d.sigterm.data = d.sigint.data = &d;
    ev_signal_start(d.loop, &d.sigterm);
    ev_signal_start(d.loop, &d.sigint);
    if (use_stdin) {
        d.line = malloc(S_LINE_MAX);
        if (!d.line) {
            return MESH_EXIT_FAILURE;
        }
        ev_io_init(&d.stdin_io, s_on_stdin, STDIN_FILENO, EV_READ);
        d.stdin_io.data = &d;
        ev_io_start(d.loop, &d.stdin_io);
    }

    ev_run(d.loop, 0);

    s_log(&d, S_LOG_INFO, "stopping%s", d.signal_seen ? " on signal" : "");
    mesh__reactor_destroy(&reactor);
    mesh__zre_set_handler(node, NULL, NULL);
    mesh__zre_stop(node);
    mesh__zre_destroy(&node);
    if (d.events) {
        s_print(json_pack("{s:s}", "ev", "stopped"));
    }
    ev_io_stop(d.loop, &d.stdin_io);
    ev_signal_stop(d.loop, &d.sigterm);
    ev_signal_stop(d.loop, &d.sigint);
    ev_loop_destroy(d.loop);
    free(d.line);
    return MESH_EXIT_OK;
}
