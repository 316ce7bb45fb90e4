/*  plugin.c: the plugin agent: a shared object loaded with dlopen, through
    the C ABI of <mesh/agent_plugin.h> (read it first: what a plugin
    exports, what each call must do).

    Loading: realpath, dlopen (RTLD_NOW | RTLD_LOCAL), mesh_agent_abi must
    return our MESH_AGENT_ABI, then mesh_agent_init. The paths of this peer
    that appear during init are the plugin's: they are unexposed if init
    fails, on a drain, and after fini (whichever of those happen; an
    unexpose that finds nothing is fine).

    Unloading: drain unexposes them and leaves the plugin running, so that
    the requests it holds can finish (mesh_agent_inflight, if exported,
    tells how many). destroy calls mesh_agent_fini (which must finish what
    is left), unexposes what is still exposed, then dlcloses.

    Configured tags are not applied: the plugin exposes its services itself
    and chooses their tags. */
#include "agent_impl.h"

#include <mesh/agent_plugin.h>

#include <assert.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char **v;
    size_t n;
    bool failed;
} s_paths_t;

typedef struct {
    agent_t base;
    mesh_peer_t *peer;
    char *file;
    void *dl;
    void *state;
    mesh_agent_fini_fn *fini;
    mesh_agent_inflight_fn *inflight;
    s_paths_t paths; /* exposed during init */
} s_plugin_t;

static void s_paths_free(s_paths_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i]);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

static bool s_paths_has(const s_paths_t *p, const char *path)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->v[i], path) == 0) {
            return true;
        }
    }
    return false;
}

static void s_paths_add(s_paths_t *p, const char *path)
{
    if (p->failed || s_paths_has(p, path)) {
        return;
    }
    char **grown = realloc(p->v, (p->n + 1) * sizeof *p->v);
    char *copy = strdup(path);
    if (!grown || !copy) {
        free(copy);
        if (grown) {
            p->v = grown;
        }
        p->failed = true;
        return;
    }
    p->v = grown;
    p->v[p->n++] = copy;
}

static void s_on_route(const mesh_route_info_t *r, void *arg)
{
    if (r->is_self && r->path) {
        s_paths_add(arg, r->path);
    }
}

/*  The services this peer offers now. */
static void s_own_paths(mesh_peer_t *peer, s_paths_t *out)
{
    mesh_peer_routes(peer, s_on_route, out);
}

static void s_unexpose(s_plugin_t *self)
{
    for (size_t i = 0; i < self->paths.n; i++) {
        mesh_peer_unexpose(self->peer, self->paths.v[i]); /* NOTFOUND is fine */
    }
}

static void s_unload(s_plugin_t *self)
{
    if (self->dl) {
        dlclose(self->dl);
    }
    s_paths_free(&self->paths);
    free(self->file);
    agent_base_fini(&self->base);
    free(self);
}

static void s_drain(agent_t *base)
{
    s_unexpose((s_plugin_t *)base);
}

static void s_destroy(agent_t *base)
{
    s_plugin_t *self = (s_plugin_t *)base;
    if (self->fini) {
        self->fini(self->state);
    }
    s_unexpose(self);
    s_unload(self);
}

static size_t s_inflight(const agent_t *base)
{
    const s_plugin_t *self = (const s_plugin_t *)base;
    return self->inflight ? self->inflight(self->state) : 0;
}

static const agent_ops_t s_ops = {
    .kind = "plugin",
    .drain = s_drain,
    .destroy = s_destroy,
    .inflight = s_inflight,
    .stats = NULL,
};

/*  dlsym for a function pointer, without the object-to-function cast
    warning. */
static void *s_sym(void *dl, const char *name)
{
    dlerror();
    return dlsym(dl, name);
}

agent_t *agent_plugin_new(mesh_peer_t *peer, struct ev_loop *loop, const agent_config_t *cfg)
{
    assert(peer && cfg);
    const char *name = cfg->name ? cfg->name : "?";
    if (!agent_name_ok(cfg->name, AGENT_NAME_MAX)) {
        agent_log(AGENT_LOG_ERROR, NULL,
                  "plugin agent '%s': a name is 1-%d characters of [A-Za-z0-9._-]", name,
                  AGENT_NAME_MAX);
        return NULL;
    }
    if (!cfg->path || !*cfg->path) {
        agent_log(AGENT_LOG_ERROR, name, "no shared object given");
        return NULL;
    }
    s_plugin_t *self = calloc(1, sizeof *self);
    if (!self || agent_base_init(&self->base, &s_ops, cfg->name) != 0) {
        free(self);
        agent_log(AGENT_LOG_ERROR, name, "out of memory");
        return NULL;
    }
    self->peer = peer;
    self->file = realpath(cfg->path, NULL);
    if (!self->file) {
        agent_log(AGENT_LOG_ERROR, name, "%s: %s", cfg->path, strerror(errno));
        s_unload(self);
        return NULL;
    }
    self->dl = dlopen(self->file, RTLD_NOW | RTLD_LOCAL);
    if (!self->dl) {
        const char *why = dlerror();
        agent_log(AGENT_LOG_ERROR, name, "%s%s", why ? why : "dlopen failed",
                  why && strstr(why, "undefined symbol: mesh_")
                      ? " (the host must export the mesh API: link it with -rdynamic)"
                      : "");
        s_unload(self);
        return NULL;
    }
    mesh_agent_abi_fn *abi;
    mesh_agent_init_fn *init;
    *(void **)&abi = s_sym(self->dl, MESH_AGENT_SYM_ABI);
    *(void **)&init = s_sym(self->dl, MESH_AGENT_SYM_INIT);
    *(void **)&self->fini = s_sym(self->dl, MESH_AGENT_SYM_FINI);
    *(void **)&self->inflight = s_sym(self->dl, MESH_AGENT_SYM_INFLIGHT);
    if (!abi || !init) {
        agent_log(AGENT_LOG_ERROR, name, "%s: not a mesh agent plugin (no %s)", self->file,
                  !abi ? MESH_AGENT_SYM_ABI "()" : MESH_AGENT_SYM_INIT "()");
        s_unload(self);
        return NULL;
    }
    unsigned version = abi();
    if (version != MESH_AGENT_ABI) {
        agent_log(AGENT_LOG_ERROR, name, "%s: plugin ABI %u, this meshd speaks %u", self->file,
                  version, MESH_AGENT_ABI);
        s_unload(self);
        return NULL;
    }
    if (cfg->ntags > 0) {
        agent_log(AGENT_LOG_WARN, name, "tags are not applied to a plugin's services");
    }
    s_paths_t before = {0};
    s_own_paths(peer, &before);
    int rc = init(peer, cfg->name, cfg->config ? cfg->config : "", &self->state);
    s_paths_t after = {0};
    s_own_paths(peer, &after);
    for (size_t i = 0; i < after.n; i++) {
        if (!s_paths_has(&before, after.v[i])) {
            s_paths_add(&self->paths, after.v[i]);
        }
    }
    bool lost = before.failed || after.failed || self->paths.failed;
    s_paths_free(&before);
    s_paths_free(&after);
    if (rc != 0) {
        agent_log(AGENT_LOG_ERROR, name, "%s: %s() returned %d", self->file, MESH_AGENT_SYM_INIT,
                  rc);
        s_unexpose(self);
        s_unload(self);
        return NULL;
    }
    if (lost) {
        agent_log(AGENT_LOG_ERROR, name, "out of memory");
        s_destroy(&self->base);
        return NULL;
    }
    agent_log(AGENT_LOG_INFO, name, "plugin %s: %zu service%s", self->file, self->paths.n,
              self->paths.n == 1 ? "" : "s");
    (void)loop;
    return &self->base;
}
