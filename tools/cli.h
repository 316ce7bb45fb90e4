/*  cli.h: plumbing shared by meshd and meshctl: discovery flags, exit codes,
    JSON views of peers, base64, strict number parsing. */
#ifndef MESH_CLI_H
#define MESH_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mesh/peer.h>

#include "zre.h"

/*  Exit codes shared by meshd and meshctl (documented in their man pages).
    3 to 7 tell apart how a request failed (meshctl). */
#define MESH_EXIT_OK         0
#define MESH_EXIT_FAILURE    1 /* runtime failure */
#define MESH_EXIT_USAGE      2 /* bad flag, value, config or input (bad JSON) */
#define MESH_EXIT_NOPROVIDER 3 /* nobody offers it (or no subscriber, or no such peer) */
#define MESH_EXIT_TIMEOUT    4 /* no answer before the deadline */
#define MESH_EXIT_REMOTE     5 /* the handler answered with an error */
#define MESH_EXIT_PEERLOST   6 /* the provider went away before answering */
#define MESH_EXIT_REJECTED   7 /* every candidate rejected the request */

/*  The exit code for a mesh status (0 or a MESH_ERR_*): 0, 3 to 7, or 1. */
int mesh_cli_exit_code(int status);

/*  Longest realm name: the realm's ZRE group is "mesh:<realm>" (<= 255). */
#define MESH_CLI_REALM_MAX 250

/*  Discovery settings common to meshd and meshctl. */
typedef struct {
    mesh__zre_config_t zre;
    const char *seeds[64];
    size_t nseeds;
    const char *realm; /* --realm (tools that include MESH_CLI_REALM_OPTION); NULL: default */
} mesh_cli_discovery_t;

/*  getopt_long ids for the shared flags; each tool starts its own at 1000. */
enum {
    MESH_CLI_OPT_IFACE = 500,
    MESH_CLI_OPT_BEACON_PORT,
    MESH_CLI_OPT_PORT,
    MESH_CLI_OPT_NO_BEACON,
    MESH_CLI_OPT_SEED,
    MESH_CLI_OPT_BEACON_INTERVAL,
    MESH_CLI_OPT_EVASIVE,
    MESH_CLI_OPT_EXPIRED,
    MESH_CLI_OPT_REALM,
};

#define MESH_CLI_DISCOVERY_OPTIONS                                                                 \
    {"iface", required_argument, NULL, MESH_CLI_OPT_IFACE},                                        \
        {"beacon-port", required_argument, NULL, MESH_CLI_OPT_BEACON_PORT},                        \
        {"port", required_argument, NULL, MESH_CLI_OPT_PORT},                                      \
        {"no-beacon", no_argument, NULL, MESH_CLI_OPT_NO_BEACON},                                  \
        {"seed", required_argument, NULL, MESH_CLI_OPT_SEED},                                      \
        {"beacon-interval", required_argument, NULL, MESH_CLI_OPT_BEACON_INTERVAL},                \
        {"evasive", required_argument, NULL, MESH_CLI_OPT_EVASIVE},                                \
        {"expired", required_argument, NULL, MESH_CLI_OPT_EXPIRED}

/*  --realm NAME, for tools built on the peer API (kept out of the list above
    so that a tool with a --realm of its own is not shadowed). */
/* clang-format off */
#define MESH_CLI_REALM_OPTION {"realm", required_argument, NULL, MESH_CLI_OPT_REALM}
/* clang-format on */

/*  Handles one shared flag. Returns 1 if it was one (and valid), 0 if opt is
    not a discovery flag, -1 after printing an error for a bad value. */
int mesh_cli_discovery_opt(mesh_cli_discovery_t *d, int opt, const char *arg, const char *prog);

/*  Adds the seeds to a node. Returns 0, or -1 after printing an error. */
int mesh_cli_add_seeds(const mesh_cli_discovery_t *d, mesh__zre_t *node, const char *prog);

/*  A peer configuration from the discovery flags (strings borrowed from d).
    Seeds are left out: add them to the peer's node with mesh_cli_add_seeds
    (mesh__peer_zre), which reports a bad one by name. */
void mesh_cli_peer_config(const mesh_cli_discovery_t *d, mesh_config_t *out);

/*  Strict decimal parse of [min, max]. Returns 0 or -1. */
int mesh_cli_parse_long(const char *s, long min, long max, long *out);

/*  JSON string from bytes that may not be UTF-8 (invalid bytes become U+FFFD). */
json_t *mesh_cli_json_bytes(const void *data, size_t len);

/*  {"id","name","endpoint","groups":[..],"headers":{..}} (new reference). */
json_t *mesh_cli_peer_json(const mesh__zre_peer_t *peer);

/*  Encodes a JSON payload as msgpack for the mesh (value is consumed).
    Returns 0 with a fresh buffer in *out, or MESH_EXIT_USAGE after printing
    why (not encodable, or over max bytes once encoded). */
int mesh_cli_payload_encode(json_t *value, size_t max, uint8_t **out, size_t *len,
                            const char *prog);

/*  Monotonic milliseconds. */
int64_t mesh_cli_now_ms(void);

#endif
