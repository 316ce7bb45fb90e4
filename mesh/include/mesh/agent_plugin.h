/*  mesh/agent_plugin.h: the C ABI of meshd's plugin agents.

    A plugin is a shared object that meshd loads with dlopen (RTLD_NOW |
    RTLD_LOCAL) for an agent configured with kind "plugin". It offers its
    services with the same API as a program embedding a peer (mesh/peer.h:
    mesh_peer_expose, mesh_request_reply, ...): meshd hands it its peer.
    The mesh_* functions resolve against meshd itself, so build the plugin
    with the mesh headers and without linking libmesh:

        cc -shared -fPIC -I<mesh>/include -o hello.so hello.c

    (agents/examples/plugin_hello.c is a complete example.)

    Exports, all with C linkage and default visibility:

      mesh_agent_abi     required. Returns MESH_AGENT_ABI as the plugin was
                         compiled; meshd refuses a plugin whose number is
                         not its own. MESH_AGENT_PLUGIN() defines it.

      mesh_agent_init    required. Called once, on meshd's loop thread,
                         after the peer is created (it may not be running
                         yet). name is the agent's configured name: offer
                         services under "/<name>/". config is the agent's
                         free-form "config" text ("" when none). Store
                         whatever the plugin needs in *state. Returns 0, or
                         non-zero to refuse loading (meshd then logs it and
                         does not start); on non-zero, init must have undone
                         its own exposes, and fini is not called.

      mesh_agent_fini    optional. Called once when the agent is unloaded
                         (meshd stopping, or reloading on SIGHUP), on the
                         loop thread, before dlclose. It must finish every
                         request the plugin still holds (mesh_request_reply,
                         _error or _reject), stop every watcher or thread it
                         started, unexpose what it exposed, and free state.

      mesh_agent_inflight
                         optional. Requests the plugin holds unfinished.
                         During a graceful stop meshd unexposes the
                         plugin's services and waits (within its grace
                         period) for this to reach 0 before calling fini.
                         Without it, the plugin is taken to hold none.

    Services are unexposed for the plugin too: meshd records which paths of
    its own peer appeared during mesh_agent_init, and after fini unexposes
    any of them still there (it ignores MESH_ERR_NOTFOUND, so fini may have
    done it already). A service exposed later than init, or exposed inactive
    at init (mesh_expose_opts_t.active returning false, so not yet listed),
    is not seen this way: fini must unexpose it, or its handler would point
    into unloaded code.

    Threads: every call is made on meshd's loop thread, and the peer API
    may be used there only (see mesh/peer.h); a plugin that runs threads of
    its own must come back to the loop with mesh_peer_post. The plugin
    receives no libev loop: timers and I/O of its own need a thread. */
#ifndef MESH_AGENT_PLUGIN_H
#define MESH_AGENT_PLUGIN_H

#include <stddef.h>

#include "peer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MESH_AGENT_ABI 1

/*  The exported names, for dlsym. */
#define MESH_AGENT_SYM_ABI      "mesh_agent_abi"
#define MESH_AGENT_SYM_INIT     "mesh_agent_init"
#define MESH_AGENT_SYM_FINI     "mesh_agent_fini"
#define MESH_AGENT_SYM_INFLIGHT "mesh_agent_inflight"

typedef unsigned(mesh_agent_abi_fn)(void);
typedef int(mesh_agent_init_fn)(mesh_peer_t *peer, const char *name, const char *config,
                                void **state);
typedef void(mesh_agent_fini_fn)(void *state);
typedef size_t(mesh_agent_inflight_fn)(void *state);

/*  The prototypes a plugin implements (declared here so that the compiler
    checks them). */
#if defined(__GNUC__)
#define MESH_AGENT_EXPORT __attribute__((visibility("default")))
#else
#define MESH_AGENT_EXPORT
#endif

MESH_AGENT_EXPORT unsigned mesh_agent_abi(void);
MESH_AGENT_EXPORT int mesh_agent_init(mesh_peer_t *peer, const char *name, const char *config,
                                      void **state);
MESH_AGENT_EXPORT void mesh_agent_fini(void *state);
MESH_AGENT_EXPORT size_t mesh_agent_inflight(void *state);

/*  Put once in a plugin's source: defines mesh_agent_abi. */
#define MESH_AGENT_PLUGIN()                                                                        \
    MESH_AGENT_EXPORT unsigned mesh_agent_abi(void)                                                \
    {                                                                                              \
        return MESH_AGENT_ABI;                                                                     \
    }

#ifdef __cplusplus
}
#endif
#endif
