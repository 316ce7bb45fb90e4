/*  mesh/defaults.h: every default and limit, named once. */
#ifndef MESH_DEFAULTS_H
#define MESH_DEFAULTS_H

/*  ZRE discovery (RFC 36). */
#define MESH_DEFAULT_BEACON_PORT        5670    /* UDP, IANA "ZRE-DISC" */
#define MESH_DEFAULT_BEACON_INTERVAL_MS 1000    /* beacon every second */
#define MESH_DEFAULT_EVASIVE_MS         5000    /* silent this long: PING it */
#define MESH_DEFAULT_EXPIRED_MS         30000   /* silent this long: gone */
#define MESH_DEFAULT_REAP_MS            1000    /* liveness scan period (capped by evasive) */
#define MESH_DEFAULT_IFACE              "lo"    /* nothing leaves the machine unless asked */
#define MESH_DEFAULT_SEED_RETRY_MS      5000    /* re-HELLO an unanswered seed this often */
#define MESH_DEFAULT_SNDHWM             100000  /* messages queued per peer before EAGAIN */
#define MESH_DEFAULT_MAX_MSG_SIZE       (4 * 1024 * 1024) /* ZMQ_MAXMSGSIZE on the inbox */
#define MESH_ZRE_SEED_RETRY_MAX_MS      60000   /* unanswered seed retries back off to this */
#define MESH_ZRE_GOSSIP_INTERVAL_MS     5000    /* beacons off: peer list to a random peer */
#define MESH_ZRE_PEERS_MAX              4096    /* known peers (each costs a connection) */
#define MESH_ZRE_LEAVE_GRACE_MS         1000    /* a mesh peer's leaving beacon: wait for its BYE */
#define MESH_ZRE_RESET_DAMP_MS          1000    /* a 2nd HELLO this soon after a reset: refresh */

/*  The mesh layer. */
#define MESH_DEFAULT_REALM              "default"
#define MESH_DEFAULT_PING_INTERVAL_MS   1000    /* status announcement period */
#define MESH_DEFAULT_PING_TIMEOUT_PINGS 3       /* silent this many intervals: out of dispatch */
#define MESH_DEFAULT_CALL_TIMEOUT_MS    5000    /* a call's deadline */
#define MESH_DEFAULT_MAX_ATTEMPTS       3       /* reject / lost provider: next candidate */
#define MESH_SERVICES_REFRESH_PINGS     10      /* SERVICES repeated every this many pings */
#define MESH_PAYLOAD_MAX  (MESH_DEFAULT_MAX_MSG_SIZE - 64 * 1024) /* a request's or reply's
                                                  payload; the rest of the frame is envelope */
#define MESH_BATCH_ENVELOPES_MAX        256     /* envelopes to one peer per frame */
#define MESH_BATCH_BYTES_MAX            (256 * 1024) /* a batch this big goes out at once */
#define MESH_CALL_TRIED_INLINE          4       /* attempts remembered without an allocation */
#define MESH_CALL_POOL_MAX              256     /* finished calls kept for reuse */
#define MESH_CALL_POOL_BUF_MAX          4096    /* larger call buffers are not kept */
#define MESH_ONCE_RETENTION_MS          600000  /* a "once" success is replayed this long */
#define MESH_ONCE_ENTRIES_MAX           100000  /* "once" runs remembered (oldest go first) */
#define MESH_ONCE_BYTES_MAX             (64 * 1024 * 1024) /* replies they keep, in all */

/*  ZRE wire limits. */
#define MESH_ZRE_STRING_MAX   255   /* ZRE `string`: u8 length */
#define MESH_ZRE_LONGSTR_MAX  65536 /* our cap on a received `longstr` (header value, group) */
#define MESH_ZRE_GROUPS_MAX   1024  /* groups in one HELLO */
#define MESH_ZRE_HEADERS_MAX  256   /* headers in one HELLO */
#define MESH_ZRE_BEACON_SIZE  22    /* 'Z' 'R' 'E' 0x01 + UUID + port */
#define MESH_ZRE_UUID_SIZE    16
#define MESH_ZRE_IDENTITY_SIZE 17   /* 0x01 + UUID */
#define MESH_GOSSIP_PEERS_MAX 1024  /* entries in one peer-list gossip */
#define MESH_RECV_BATCH       64    /* messages handled per wake-up before yielding */
#define MESH_ENDPOINT_MAX     64    /* "tcp://255.255.255.255:65535" and room to spare */
#define MESH_IFACE_NAME_MAX   64    /* interface name or IPv4 address, with its NUL */

#endif
