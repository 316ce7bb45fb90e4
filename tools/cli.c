/*  cli.c: plumbing shared by meshd and meshctl. */
#include "cli.h"
#include "jsonpack.h"

#include <mesh/mesh.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int mesh_cli_parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s) {
        return -1;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int s_bad(const char *prog, const char *flag, const char *arg, const char *want)
{
    fprintf(stderr, "%s: --%s '%s': %s\n", prog, flag, arg, want);
    return -1;
}

int mesh_cli_discovery_opt(mesh_cli_discovery_t *d, int opt, const char *arg, const char *prog)
{
    long v;
    switch (opt) {
    case MESH_CLI_OPT_IFACE:
        if (!*arg || strlen(arg) >= MESH_IFACE_NAME_MAX) {
            return s_bad(prog, "iface", arg, "expected an interface name or IPv4 address");
        }
        d->zre.iface = arg;
        return 1;
    case MESH_CLI_OPT_BEACON_PORT:
        if (mesh_cli_parse_long(arg, 1, 65535, &v) != 0) {
            return s_bad(prog, "beacon-port", arg, "expected a UDP port 1-65535");
        }
        d->zre.beacon_port = (uint16_t)v;
        return 1;
    case MESH_CLI_OPT_PORT:
        if (mesh_cli_parse_long(arg, 1, 65535, &v) != 0) {
            return s_bad(prog, "port", arg, "expected a TCP port 1-65535");
        }
        d->zre.inbox_port = (uint16_t)v;
        return 1;
    case MESH_CLI_OPT_NO_BEACON:
        d->zre.beacon_off = true;
        return 1;
    case MESH_CLI_OPT_SEED:
        if (d->nseeds == sizeof d->seeds / sizeof d->seeds[0]) {
            return s_bad(prog, "seed", arg, "too many seeds (64 at most)");
        }
        d->seeds[d->nseeds++] = arg;
        return 1;
    case MESH_CLI_OPT_BEACON_INTERVAL:
    case MESH_CLI_OPT_EVASIVE:
    case MESH_CLI_OPT_EXPIRED: {
        const char *flag = opt == MESH_CLI_OPT_BEACON_INTERVAL ? "beacon-interval"
                           : opt == MESH_CLI_OPT_EVASIVE       ? "evasive"
                                                               : "expired";
        if (mesh_cli_parse_long(arg, 10, 24L * 3600 * 1000, &v) != 0) {
            return s_bad(prog, flag, arg, "expected milliseconds, 10 to 86400000");
        }
        if (opt == MESH_CLI_OPT_BEACON_INTERVAL) {
            d->zre.beacon_interval_ms = (int)v;
        } else if (opt == MESH_CLI_OPT_EVASIVE) {
            d->zre.evasive_ms = (int)v;
        } else {
            d->zre.expired_ms = (int)v;
        }
        return 1;
    }
    case MESH_CLI_OPT_REALM:
        if (!*arg || strlen(arg) > MESH_CLI_REALM_MAX) {
            return s_bad(prog, "realm", arg, "expected a realm name of 1 to 250 bytes");
        }
        d->realm = arg;
        return 1;
    default:
        return 0;
    }
}

void mesh_cli_peer_config(const mesh_cli_discovery_t *d, mesh_config_t *out)
{
    mesh_config_init(out);
    out->name = d->zre.name;
    out->realm = d->realm;
    out->iface = d->zre.iface;
    out->beacon_port = d->zre.beacon_port;
    out->beacon_off = d->zre.beacon_off;
    out->port = d->zre.inbox_port;
    out->beacon_interval_ms = d->zre.beacon_interval_ms;
    out->evasive_ms = d->zre.evasive_ms;
    out->expired_ms = d->zre.expired_ms;
}

int mesh_cli_exit_code(int status)
{
    switch (status) {
    case 0:
        return MESH_EXIT_OK;
    case MESH_ERR_NOPROVIDER:
        return MESH_EXIT_NOPROVIDER;
    case MESH_ERR_TIMEOUT:
        return MESH_EXIT_TIMEOUT;
    case MESH_ERR_REMOTE:
        return MESH_EXIT_REMOTE;
    case MESH_ERR_PEERLOST:
        return MESH_EXIT_PEERLOST;
    case MESH_ERR_REJECTED:
        return MESH_EXIT_REJECTED;
    default:
        return MESH_EXIT_FAILURE;
    }
}

int mesh_cli_add_seeds(const mesh_cli_discovery_t *d, mesh__zre_t *node, const char *prog)
{
    for (size_t i = 0; i < d->nseeds; i++) {
        if (mesh__zre_add_seed(node, d->seeds[i]) != 0) {
            fprintf(stderr, "%s: --seed '%s': expected tcp://HOST:PORT (host resolvable)\n", prog,
                    d->seeds[i]);
            return -1;
        }
    }
    return 0;
}

json_t *mesh_cli_json_bytes(const void *data, size_t len)
{
    json_t *s = json_stringn(data ? data : "", data ? len : 0);
    if (s) {
        return s;
    }
    /* Not UTF-8: keep ASCII, replace everything else. */
    char *clean = malloc(len * 3 + 1);
    if (!clean) {
        return json_string("");
    }
    size_t n = 0;
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80 && p[i] != 0) {
            clean[n++] = (char)p[i];
        } else {
            memcpy(clean + n, "\xEF\xBF\xBD", 3);
            n += 3;
        }
    }
    s = json_stringn(clean, n);
    free(clean);
    return s;
}

json_t *mesh_cli_peer_json(const mesh__zre_peer_t *peer)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < mesh__zre_peer_group_count(peer); i++) {
        const char *g = mesh__zre_peer_group_at(peer, i);
        json_array_append_new(groups, mesh_cli_json_bytes(g, strlen(g)));
    }
    json_t *headers = json_object();
    for (size_t i = 0; i < mesh__zre_peer_header_count(peer); i++) {
        const char *k, *v;
        mesh__zre_peer_header_at(peer, i, &k, &v);
        json_t *key = mesh_cli_json_bytes(k, strlen(k));
        json_object_set_new(headers, json_string_value(key), mesh_cli_json_bytes(v, strlen(v)));
        json_decref(key);
    }
    const char *name = mesh__zre_peer_name(peer);
    return json_pack("{s:s, s:o, s:s, s:o, s:o}", "id", mesh__zre_peer_uuid_str(peer), "name",
                     mesh_cli_json_bytes(name, strlen(name)), "endpoint",
                     mesh__zre_peer_endpoint(peer), "groups", groups, "headers", headers);
}

int mesh_cli_payload_encode(json_t *value, size_t max, uint8_t **out, size_t *len,
                            const char *prog)
{
    char err[256];
    int rc = jsonpack_from_json(value, out, len, err, sizeof err);
    json_decref(value);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot encode the payload: %s\n", prog, err);
        return MESH_EXIT_USAGE;
    }
    if (*len > max) {
        fprintf(stderr, "%s: the payload is over %zu bytes once encoded\n", prog, max);
        free(*out);
        *out = NULL;
        return MESH_EXIT_USAGE;
    }
    return 0;
}

int64_t mesh_cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
