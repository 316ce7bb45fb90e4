/*  udp.c: interface lookup and the UDP beacon socket. */
#include "udp.h"

#include <mesh/defaults.h>
#include <mesh/error.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int mesh__iface_lookup(const char *name_or_addr, mesh__iface_t *out)
{
    if (!name_or_addr || !*name_or_addr || strlen(name_or_addr) >= MESH_IFACE_NAME_MAX) {
        return MESH_ERR_INVAL;
    }
    struct in_addr want;
    bool by_addr = inet_pton(AF_INET, name_or_addr, &want) == 1;
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0) {
        return MESH_ERR_SOCKET;
    }
    int rc = MESH_ERR_NOIFACE;
    for (struct ifaddrs *ifa = list; ifa; ifa = ifa->ifa_next) {
        if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || !ifa->ifa_netmask) {
            continue;
        }
        struct in_addr addr = ((struct sockaddr_in *)ifa->ifa_addr)->sin_addr;
        if (by_addr ? addr.s_addr != want.s_addr : strcmp(ifa->ifa_name, name_or_addr) != 0) {
            continue;
        }
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", ifa->ifa_name);
        out->addr = addr;
        out->netmask = ((struct sockaddr_in *)ifa->ifa_netmask)->sin_addr;
        out->loopback = (ifa->ifa_flags & IFF_LOOPBACK) != 0;
        /* Loopback has no broadcast flag; its subnet broadcast (127.255.255.255)
           is delivered to every local listener all the same. */
        out->broadcast.s_addr = out->addr.s_addr | ~out->netmask.s_addr;
        rc = 0;
        break;
    }
    freeifaddrs(list);
    return rc;
}

bool mesh__iface_contains(const mesh__iface_t *iface, struct in_addr addr)
{
    return (addr.s_addr & iface->netmask.s_addr) == (iface->addr.s_addr & iface->netmask.s_addr);
}

int mesh__udp_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return MESH_ERR_SOCKET;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) != 0) {
        close(fd);
        return MESH_ERR_SOCKET;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int err = errno;
        close(fd);
        return err == EADDRINUSE ? MESH_ERR_ADDRINUSE : MESH_ERR_SOCKET;
    }
    return fd;
}

int mesh__udp_send(int fd, const mesh__iface_t *iface, uint16_t port, const void *buf, size_t len)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr = iface->broadcast;
    ssize_t n = sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof sa);
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? MESH_ERR_AGAIN : MESH_ERR_SOCKET;
    }
    return 0;
}

ssize_t mesh__udp_recv(int fd, void *buf, size_t cap, struct in_addr *from)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    ssize_t n = recvfrom(fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&sa, &salen);
    if (n < 0) {
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? MESH_ERR_AGAIN
                                                                           : MESH_ERR_SOCKET;
    }
    if (salen < sizeof sa || sa.sin_family != AF_INET) {
        from->s_addr = 0;
    } else {
        *from = sa.sin_addr;
    }
    return n;
}

void mesh__tcp_endpoint(char *out, size_t cap, struct in_addr addr, uint16_t port)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &addr, ip, sizeof ip);
    snprintf(out, cap, "tcp://%s:%u", ip, (unsigned)port);
}

int mesh__tcp_endpoint_parse(const char *ep, size_t len, struct in_addr *addr, uint16_t *port)
{
    static const char prefix[] = "tcp://";
    const size_t plen = sizeof prefix - 1;
    if (!ep || len <= plen || len >= MESH_ENDPOINT_MAX || memcmp(ep, prefix, plen) != 0 ||
        memchr(ep, '\0', len) != NULL) {
        return MESH_ERR_INVAL;
    }
    char host[MESH_ENDPOINT_MAX];
    size_t hlen = len - plen;
    memcpy(host, ep + plen, hlen);
    host[hlen] = '\0';
    char *colon = strrchr(host, ':');
    if (!colon || colon == host || colon[1] == '\0') {
        return MESH_ERR_INVAL;
    }
    *colon = '\0';
    unsigned long p = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9' || (p = p * 10 + (unsigned long)(*c - '0')) > 65535) {
            return MESH_ERR_INVAL;
        }
    }
    if (p == 0 || inet_pton(AF_INET, host, addr) != 1) {
        return MESH_ERR_INVAL;
    }
    *port = (uint16_t)p;
    return 0;
}
