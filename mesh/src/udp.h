/*  udp.h: network interfaces and the UDP beacon socket.

    czmq's zbeacon cannot use loopback and aborts on some multicast set-ups,
    so mesh has its own: one non-blocking UDP socket bound to 0.0.0.0:port
    with SO_REUSEADDR + SO_REUSEPORT + SO_BROADCAST (several nodes on one host
    share the port), sending to the interface's broadcast address
    (127.255.255.255 on loopback). Beacons from outside the interface's subnet
    are dropped, so a loopback node never follows a LAN beacon. */
#ifndef MESH_UDP_H
#define MESH_UDP_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct {
    char name[IF_NAMESIZE];
    struct in_addr addr;      /* the interface's IPv4 address */
    struct in_addr netmask;
    struct in_addr broadcast; /* where beacons go */
    bool loopback;
} mesh__iface_t;

/*  Finds an interface by name ("lo", "eth0") or by one of its IPv4 addresses.
    Returns 0, MESH_ERR_NOIFACE (no such interface, or no IPv4 address on it),
    or MESH_ERR_INVAL. */
int mesh__iface_lookup(const char *name_or_addr, mesh__iface_t *out);

/*  True if addr is in the interface's subnet. */
bool mesh__iface_contains(const mesh__iface_t *iface, struct in_addr addr);

/*  Opens the beacon socket. Returns the fd, or a negative MESH_ERR_*. */
int mesh__udp_open(uint16_t port);

/*  Sends one datagram to the interface's broadcast address. Returns 0 or
    MESH_ERR_SOCKET / MESH_ERR_AGAIN. */
int mesh__udp_send(int fd, const mesh__iface_t *iface, uint16_t port, const void *buf, size_t len);

/*  Receives one datagram without blocking. Returns its size, MESH_ERR_AGAIN
    when none is waiting, or MESH_ERR_SOCKET. A datagram longer than cap is
    reported with its full size (MSG_TRUNC) so the caller can drop it. */
ssize_t mesh__udp_recv(int fd, void *buf, size_t cap, struct in_addr *from);

/*  Formats "tcp://A.B.C.D:port" into out (at least 32 bytes). */
void mesh__tcp_endpoint(char *out, size_t cap, struct in_addr addr, uint16_t port);

/*  Parses "tcp://A.B.C.D:port" (IPv4 literal only). Returns 0 or MESH_ERR_INVAL. */
int mesh__tcp_endpoint_parse(const char *ep, size_t len, struct in_addr *addr, uint16_t *port);

#endif
