/*  plugin_hello.c: an example plugin agent (see <mesh/agent_plugin.h>).

    Loaded as agent NAME with config text GREETING (default "hello"), it
    offers:
      /NAME/greet    replies the msgpack string "GREETING, <caller's name>"
      /NAME/echo     replies the request's payload unchanged
      /NAME/count    replies how many requests this plugin has answered
      /NAME/hold     keeps the request unanswered until /NAME/release is
                     called (which answers every held one with "released"
                     and replies their number) or the plugin is unloaded
                     (held ones then fail with "agent unloaded"); shows
                     mesh_agent_inflight and what fini must do

    Payloads are msgpack, as everywhere on the mesh; this example packs its
    replies with msgpack-c. */
#include <mesh/agent_plugin.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELLO_HELD_MAX     64
#define HELLO_GREETING_MAX 64
#define HELLO_PATH_MAX     256

static const char *const s_methods[] = {"greet", "echo", "count", "hold", "release"};
#define HELLO_NMETHODS (sizeof s_methods / sizeof s_methods[0])

typedef struct {
    mesh_peer_t *peer;
    char greeting[HELLO_GREETING_MAX];
    char paths[HELLO_NMETHODS][HELLO_PATH_MAX];
    size_t nexposed;
    unsigned long answered;
    mesh_request_t *held[HELLO_HELD_MAX];
    size_t nheld;
} hello_t;

MESH_AGENT_PLUGIN()

static void s_reply_str(mesh_request_t *req, const char *text)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, text, strlen(text));
    mesh_request_reply(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void s_reply_uint(mesh_request_t *req, unsigned long n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_uint64(&pk, n);
    mesh_request_reply(req, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void s_handler(mesh_peer_t *peer, mesh_request_t *req, void *arg)
{
    hello_t *self = arg;
    const char *path = mesh_request_path(req);
    const char *method = strrchr(path, '/') + 1;
    if (strcmp(method, "greet") == 0) {
        char text[HELLO_GREETING_MAX + 128];
        snprintf(text, sizeof text, "%s, %s", self->greeting, mesh_request_from_name(req));
        self->answered++;
        s_reply_str(req, text);
    } else if (strcmp(method, "echo") == 0) {
        self->answered++;
        mesh_request_reply(req, mesh_request_data(req), mesh_request_size(req));
    } else if (strcmp(method, "count") == 0) {
        s_reply_uint(req, ++self->answered);
    } else if (strcmp(method, "hold") == 0) {
        if (self->nheld == HELLO_HELD_MAX) {
            mesh_request_reject(req);
            return;
        }
        self->held[self->nheld++] = req;
    } else {
        size_t n = self->nheld;
        for (size_t i = 0; i < n; i++) {
            s_reply_str(self->held[i], "released");
        }
        self->nheld = 0;
        self->answered += n + 1;
        s_reply_uint(req, n);
    }
}

int mesh_agent_init(mesh_peer_t *peer, const char *name, const char *config, void **state)
{
    hello_t *self = calloc(1, sizeof *self);
    if (!self) {
        return -1;
    }
    self->peer = peer;
    snprintf(self->greeting, sizeof self->greeting, "%s", *config ? config : "hello");
    for (size_t i = 0; i < HELLO_NMETHODS; i++) {
        snprintf(self->paths[i], sizeof self->paths[i], "/%s/%s", name, s_methods[i]);
        if (mesh_peer_expose(peer, self->paths[i], s_handler, self, NULL) != 0) {
            /* undo what this init did: fini is not called after a failure */
            mesh_agent_fini(self);
            return -1;
        }
        self->nexposed++;
    }
    *state = self;
    return 0;
}

void mesh_agent_fini(void *state)
{
    hello_t *self = state;
    for (size_t i = 0; i < self->nheld; i++) {
        mesh_request_error(self->held[i], "agent unloaded");
    }
    for (size_t i = 0; i < self->nexposed; i++) {
        mesh_peer_unexpose(self->peer, self->paths[i]);
    }
    free(self);
}

size_t mesh_agent_inflight(void *state)
{
    return ((hello_t *)state)->nheld;
}
