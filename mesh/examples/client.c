/*  client.c: calls a mesh service once and prints the reply.

        client [--beacon-port P] PATH PAYLOAD

    For programs without an event loop: the peer runs on a thread of its
    own, and this thread talks to it with mesh_peer_post (run a function on
    the peer's thread) and mesh_peer_call_sync (a blocking call).
    Exit status: 0 on a reply, 1 otherwise. */
#include <mesh/mesh.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 5000 /* how long to wait for a provider to be discovered */

/*  A question for the peer's thread, and a lock to wait for its answer. */
typedef struct {
    const char *path;
    bool done, found;
    pthread_mutex_t lock;
    pthread_cond_t cond;
} s_query_t;

static void s_route(const mesh_route_info_t *r, void *arg)
{
    s_query_t *q = arg;
    if (r->path && r->alive && strcmp(r->path, q->path) == 0) {
        q->found = true;
    }
}

/*  Runs on the peer's thread, where every peer function may be called. */
static void s_lookup(mesh_peer_t *peer, void *arg)
{
    s_query_t *q = arg;
    pthread_mutex_lock(&q->lock);
    mesh_peer_routes(peer, s_route, q);
    q->done = true;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

/*  True once some peer is known to offer path. */
static bool s_known(mesh_peer_t *peer, const char *path)
{
    s_query_t q = {.path = path};
    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.cond, NULL);
    if (mesh_peer_post(peer, s_lookup, &q) == 0) {
        pthread_mutex_lock(&q.lock);
        while (!q.done) {
            pthread_cond_wait(&q.cond, &q.lock);
        }
        pthread_mutex_unlock(&q.lock);
    }
    pthread_mutex_destroy(&q.lock);
    pthread_cond_destroy(&q.cond);
    return q.found;
}

int main(int argc, char **argv)
{
    mesh_config_t config;
    mesh_config_init(&config);
    config.name = "client";
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--beacon-port") == 0) {
        config.beacon_port = (uint16_t)atoi(argv[2]);
        i = 3;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: %s [--beacon-port P] PATH PAYLOAD\n", argv[0]);
        return 1;
    }
    const char *path = argv[i], *payload = argv[i + 1];

    mesh_peer_t *peer = mesh_peer_new(&config);
    int rc = peer ? mesh_peer_start_thread(peer) : MESH_ERR_CONFIG;
    if (rc != 0) {
        fprintf(stderr, "client: %s\n", mesh_strerror(rc));
        mesh_peer_destroy(&peer);
        return 1;
    }
    /* Discovery takes a beacon or two: wait until the service is known. */
    for (int waited = 0; !s_known(peer, path) && waited < WAIT_MS; waited += 100) {
        nanosleep(&(struct timespec){0, 100 * 1000000L}, NULL);
    }
    void *reply = NULL;
    size_t size = 0;
    char *error = NULL;
    rc = mesh_peer_call_sync(peer, path, payload, strlen(payload), NULL, &reply, &size, &error);
    if (rc == 0) {
        printf("%.*s\n", (int)size, (const char *)reply);
    } else {
        fprintf(stderr, "client: %s: %s%s%s\n", path, mesh_strerror(rc), error ? ": " : "",
                error ? error : "");
    }
    free(reply); /* both are ours to free */
    free(error);
    mesh_peer_destroy(&peer); /* leaves the mesh, joins the thread */
    return rc == 0 ? 0 : 1;
}
