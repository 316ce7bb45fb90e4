/*  service.c: a small mesh service.

        service [--name N] [--beacon-port P]

    Joins the mesh (realm "default", loopback) and offers two services:

        /echo/upper   replies with the payload in upper case
        /math/add     payload "a b" -> replies with the sum

    The peer runs on the program's own libev loop. SIGINT or SIGTERM leaves
    the mesh cleanly (peers forget this one at once) and exits with 0.
    Try it with the client example:  client /math/add "2 40"  */
#include <mesh/mesh.h>

#include <ctype.h>
#include <ev.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*  A handler gets each request and must finish it exactly once: here at
    once, with mesh_request_reply or mesh_request_error. The payload is
    bytes, not a C string: use its size. */
static void s_upper(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    size_t size = mesh_request_size(req);
    const char *in = mesh_request_data(req);
    char *out = malloc(size ? size : 1);
    if (!out) {
        mesh_request_error(req, "out of memory");
        return;
    }
    for (size_t i = 0; i < size; i++) {
        out[i] = (char)toupper((unsigned char)in[i]);
    }
    mesh_request_reply(req, out, size); /* the reply is copied */
    free(out);
}

static void s_add(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    char text[64], sum[64];
    double a, b;
    char extra;
    size_t size = mesh_request_size(req);
    if (size >= sizeof text) {
        mesh_request_error(req, "payload too long");
        return;
    }
    memcpy(text, mesh_request_data(req), size);
    text[size] = '\0';
    if (sscanf(text, "%lf %lf %c", &a, &b, &extra) != 2) {
        /* the caller gets MESH_ERR_REMOTE with this message */
        mesh_request_error(req, "expected two numbers: \"a b\"");
        return;
    }
    int n = snprintf(sum, sizeof sum, "%.15g", a + b);
    mesh_request_reply(req, sum, (size_t)n);
}

/*  The library never installs signal handlers: the program does. */
static void s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    mesh_peer_stop(w->data); /* the leaving beacon: peers drop us now */
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    mesh_config_t config;
    mesh_config_init(&config); /* zero means "default" everywhere */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) {
            config.name = argv[++i];
        } else if (strcmp(argv[i], "--beacon-port") == 0 && i + 1 < argc) {
            config.beacon_port = (uint16_t)atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--name N] [--beacon-port P]\n", argv[0]);
            return 2;
        }
    }
    mesh_peer_t *peer = mesh_peer_new(&config);
    if (!peer) {
        fprintf(stderr, "service: bad configuration\n");
        return 1;
    }
    /* Services may be offered before or after the peer starts. */
    mesh_peer_expose(peer, "/echo/upper", s_upper, NULL, NULL);
    mesh_peer_expose(peer, "/math/add", s_add, NULL, NULL);

    struct ev_loop *loop = EV_DEFAULT;
    int rc = mesh_peer_attach(peer, loop); /* runs on our loop from now on */
    if (rc != 0) {
        fprintf(stderr, "service: %s\n", mesh_strerror(rc));
        mesh_peer_destroy(&peer);
        return 1;
    }
    ev_signal sigint, sigterm;
    ev_signal_init(&sigint, s_on_signal, SIGINT);
    ev_signal_init(&sigterm, s_on_signal, SIGTERM);
    sigint.data = sigterm.data = peer;
    ev_signal_start(loop, &sigint);
    ev_signal_start(loop, &sigterm);
    printf("service %s (%s) at %s\n", mesh_peer_name(peer), mesh_peer_id(peer),
           mesh_peer_endpoint(peer));
    fflush(stdout);

    ev_run(loop, 0); /* until a signal breaks it */

    ev_signal_stop(loop, &sigint);
    ev_signal_stop(loop, &sigterm);
    mesh_peer_destroy(&peer);
    return 0;
}
