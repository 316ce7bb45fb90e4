/*  testutil.h: small helpers shared by the unit tests that open sockets.
    Ports are never fixed: each test asks the kernel for a free one on
    loopback. */
#ifndef MESH_TESTUTIL_H
#define MESH_TESTUTIL_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/*  A port the kernel just handed out for this socket type (SOCK_DGRAM or
    SOCK_STREAM) on 127.0.0.1, then released: free unless raced. */
static inline uint16_t test_free_port(int type)
{
    int fd = socket(AF_INET, type, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

static inline uint16_t test_free_udp_port(void)
{
    return test_free_port(SOCK_DGRAM);
}

static inline uint16_t test_free_tcp_port(void)
{
    return test_free_port(SOCK_STREAM);
}

#endif
