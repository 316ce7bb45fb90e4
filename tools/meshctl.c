/*  meshctl: drive a mesh from the shell. A short-lived node joins, acts and
    leaves cleanly. See docs/meshctl.md. */
#include "cli.h"
#include "reactor.h"
#include "zre.h"

#include <mesh/mesh.h>

#include <ev.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PROG             "meshctl"
#define S_DEFAULT_WAIT_MS  3000 /* peers: give up settling after this long */
#define S_SETTLE_MS        300  /* peers: done once nothing new arrived for this long */

typedef struct {
    struct ev_loop *loop;
    mesh__zre_t *node;
    int64_t start_ms;
    int64_t last_change_ms;
    int64_t min_wait_ms; /* at least one beacon interval (or a seed round trip) */
    int64_t max_wait_ms;
    ev_timer poll;
    ev_signal sigint, sigterm;
    bool interrupted;
} s_ctl_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: meshctl COMMAND [OPTIONS]\n"
            "commands:\n"
            "  peers   list the peers of the mesh\n"
            "discovery options (all commands):\n"
            "  --iface IFACE  --beacon-port PORT  --port PORT  --no-beacon\n"
            "  --seed tcp://HOST:PORT (repeatable)  --beacon-interval MS\n"
            "  --evasive MS  --expired MS\n"
            "peers options:\n"
            "  --json      print a JSON array instead of a table\n"
            "  --wait MS   wait at most this long for the mesh to settle (default %d)\n"
            "See meshctl(1).\n",
            S_DEFAULT_WAIT_MS);
}

static void s_on_event(mesh__zre_t *node, const mesh__zre_event_t *ev, void *arg)
{
    s_ctl_t *c = arg;
    if (ev->type == MESH_ZRE_EV_ENTER || ev->type == MESH_ZRE_EV_EXIT ||
        ev->type == MESH_ZRE_EV_JOIN || ev->type == MESH_ZRE_EV_LEAVE) {
        c->last_change_ms = mesh_cli_now_ms();
    }
}

static void s_on_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_ctl_t *c = w->data;
    int64_t now = mesh_cli_now_ms();
    bool settled = now - c->start_ms >= c->min_wait_ms && now - c->last_change_ms >= S_SETTLE_MS;
    if (settled || now - c->start_ms >= c->max_wait_ms) {
        ev_break(loop, EVBREAK_ALL);
    }
}

static void s_on_sigint(struct ev_loop *loop, ev_signal *w, int revents)
{
    s_ctl_t *c = w->data;
    c->interrupted = true;
    ev_break(loop, EVBREAK_ALL);
}

static void s_print_table(mesh__zre_t *node)
{
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
            hl += (size_t)snprintf(headers + hl, sizeof headers - hl, "%s%s=%s", i ? "," : "", k,
                                   v);
        }
        printf("%-32s  %-16s  %-22s  %-16s  %s\n", mesh__zre_peer_uuid_str(p),
               mesh__zre_peer_name(p), mesh__zre_peer_endpoint(p), groups[0] ? groups : "-",
               headers[0] ? headers : "-");
    }
}

static int s_cmd_peers(int argc, char **argv)
{
    enum { OPT_JSON = 1000, OPT_WAIT, OPT_HELP };
    static const struct option options[] = {
        MESH_CLI_DISCOVERY_OPTIONS,
        {"json", no_argument, NULL, OPT_JSON},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    mesh_cli_discovery_t disc = {0};
    bool json = false;
    long wait_ms = S_DEFAULT_WAIT_MS;
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int rc = mesh_cli_discovery_opt(&disc, opt, optarg, S_PROG);
        if (rc < 0) {
            return MESH_EXIT_USAGE;
        }
        if (rc > 0) {
            continue;
        }
        switch (opt) {
        case OPT_JSON:
            json = true;
            break;
        case OPT_WAIT:
            if (mesh_cli_parse_long(optarg, 1, 3600 * 1000, &wait_ms) != 0) {
                fprintf(stderr, "%s: --wait '%s': expected milliseconds, 1 to 3600000\n", S_PROG,
                        optarg);
                return MESH_EXIT_USAGE;
            }
            break;
        case OPT_HELP:
            s_usage(stdout);
            return MESH_EXIT_OK;
        default:
            fprintf(stderr, "%s peers: unknown or incomplete option '%s'\n", S_PROG,
                    argv[optind - 1]);
            return MESH_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s peers: unexpected argument '%s'\n", S_PROG, argv[optind]);
        return MESH_EXIT_USAGE;
    }
    char name[64];
    snprintf(name, sizeof name, "meshctl-%d", (int)getpid());
    disc.zre.name = name;
    mesh__zre_t *node = mesh__zre_new(&disc.zre, NULL);
    if (!node) {
        fprintf(stderr, "%s: cannot create a node\n", S_PROG);
        return MESH_EXIT_FAILURE;
    }
    mesh__zre_set_header(node, "X-MESH-ROLE", "ctl");
    if (mesh_cli_add_seeds(&disc, node, S_PROG) != 0) {
        mesh__zre_destroy(&node);
        return MESH_EXIT_USAGE;
    }
    s_ctl_t c = {0};
    c.loop = ev_default_loop(EVFLAG_AUTO);
    c.node = node;
    int rc = mesh__zre_start(node, mesh__reactor_now(c.loop));
    if (rc != 0) {
        fprintf(stderr, "%s: cannot start on interface '%s': %s\n", S_PROG,
                disc.zre.iface ? disc.zre.iface : MESH_DEFAULT_IFACE, mesh_strerror(rc));
        mesh__zre_destroy(&node);
        return MESH_EXIT_FAILURE;
    }
    mesh__zre_set_handler(node, s_on_event, &c);
    mesh__reactor_t *reactor = mesh__reactor_new(c.loop, node);
    c.start_ms = c.last_change_ms = mesh_cli_now_ms();
    int interval = disc.zre.beacon_interval_ms ? disc.zre.beacon_interval_ms
                                               : MESH_DEFAULT_BEACON_INTERVAL_MS;
    /* Every beaconing peer is heard within one interval; seeds need a round trip. */
    c.min_wait_ms = disc.zre.beacon_off ? S_SETTLE_MS : interval + 100;
    c.max_wait_ms = wait_ms;
    ev_timer_init(&c.poll, s_on_poll, 0.05, 0.05);
    c.poll.data = &c;
    ev_timer_start(c.loop, &c.poll);
    ev_signal_init(&c.sigint, s_on_sigint, SIGINT);
    ev_signal_init(&c.sigterm, s_on_sigint, SIGTERM);
    c.sigint.data = c.sigterm.data = &c;
    ev_signal_start(c.loop, &c.sigint);
    ev_signal_start(c.loop, &c.sigterm);

    ev_run(c.loop, 0);

    if (json) {
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
    } else {
        s_print_table(node);
    }
    ev_timer_stop(c.loop, &c.poll);
    ev_signal_stop(c.loop, &c.sigint);
    ev_signal_stop(c.loop, &c.sigterm);
    mesh__reactor_destroy(&reactor);
    mesh__zre_set_handler(node, NULL, NULL);
    mesh__zre_destroy(&node);
    ev_loop_destroy(c.loop);
    return c.interrupted ? MESH_EXIT_FAILURE : MESH_EXIT_OK;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
        s_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MESH_EXIT_USAGE : MESH_EXIT_OK;
    }
    if (strcmp(argv[1], "peers") == 0) {
        return s_cmd_peers(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command '%s'\n", S_PROG, argv[1]);
    s_usage(stderr);
    return MESH_EXIT_USAGE;
}
