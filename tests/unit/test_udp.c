/*  test_udp.c: endpoint strings, interface lookup, and the UDP beacon socket
    on loopback. Every datagram goes to 127.255.255.255 on `lo`, on a port the
    kernel picked for this test. */
#include "beacon.h"
#include "udp.h"

#include <mesh/mesh.h>

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_WAIT_MS 2000 /* generous: loopback delivery is immediate */

static struct in_addr s_ip(const char *text)
{
    struct in_addr a;
    cr_assert_eq(inet_pton(AF_INET, text, &a), 1, "bad literal %s", text);
    return a;
}

static int s_parse(const char *ep, struct in_addr *addr, uint16_t *port)
{
    /* parse a copy of exactly strlen bytes: no NUL after it for the parser to lean on */
    size_t len = strlen(ep);
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, ep, len);
    int rc = mesh__tcp_endpoint_parse(copy, len, addr, port);
    free(copy);
    return rc;
}

/* ---------------------------------------------------------------- endpoints */

Test(endpoint, parse_good)
{
    static const struct {
        const char *ep;
        const char *ip;
        uint16_t port;
    } good[] = {
        {"tcp://127.0.0.1:49152", "127.0.0.1", 49152},
        {"tcp://10.0.0.1:1", "10.0.0.1", 1},
        {"tcp://192.168.1.254:5670", "192.168.1.254", 5670},
        {"tcp://255.255.255.255:65535", "255.255.255.255", 65535},
        {"tcp://0.0.0.0:80", "0.0.0.0", 80},
        {"tcp://1.2.3.4:00080", "1.2.3.4", 80},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct in_addr addr = {0};
        uint16_t port = 0;
        cr_assert_eq(s_parse(good[i].ep, &addr, &port), 0, "%s refused", good[i].ep);
        cr_assert_eq(addr.s_addr, s_ip(good[i].ip).s_addr, "%s: wrong address", good[i].ep);
        cr_assert_eq(port, good[i].port, "%s: port %u", good[i].ep, port);
    }
}

Test(endpoint, parse_bad)
{
    static const char *const bad[] = {
        "",
        "tcp://",
        "tcp:/",
        "tcp:",
        "TCP://1.2.3.4:5",
        "udp://1.2.3.4:5",
        "tcp:/1.2.3.4:5",
        "tcp://1.2.3.4",
        "tcp://1.2.3.4:",
        "tcp://1.2.3.4:0",
        "tcp://1.2.3.4:00",
        "tcp://1.2.3.4:65536",
        "tcp://1.2.3.4:99999",
        "tcp://1.2.3.4:99999999999999999999999",
        "tcp://1.2.3.4:-1",
        "tcp://1.2.3.4:+80",
        "tcp://1.2.3.4: 80",
        "tcp://1.2.3.4:80 ",
        "tcp://1.2.3.4:8a",
        "tcp://1.2.3.4:0x50",
        "tcp://:80",
        "tcp://*:80",
        "tcp://localhost:80",
        "tcp://1.2.3:80",
        "tcp://1.2.3.4.5:80",
        "tcp://256.1.1.1:80",
        "tcp://1.2.3.4:80:80",
        "tcp:// 1.2.3.4:80",
        "tcp://[::1]:80",
        "tcp://::1:80",
        "tcp://eth0;1.2.3.4:80",
        /* 65 bytes: one over the parser's limit */
        "tcp://127.0.0.1:00000000000000000000000000000000000000000000049152",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct in_addr addr;
        uint16_t port;
        cr_assert_eq(s_parse(bad[i], &addr, &port), MESH_ERR_INVAL, "\"%s\" accepted", bad[i]);
    }
    struct in_addr addr;
    uint16_t port;
    cr_assert_eq(mesh__tcp_endpoint_parse(NULL, 0, &addr, &port), MESH_ERR_INVAL);
    cr_assert_eq(mesh__tcp_endpoint_parse(NULL, 20, &addr, &port), MESH_ERR_INVAL);
}

Test(endpoint, parse_uses_len_not_nul)
{
    /* The endpoint of a HELLO is a slice of the frame: what follows it must not count. */
    const char frame[] = "tcp://127.0.0.1:49152XYZ";
    struct in_addr addr;
    uint16_t port;
    cr_assert_eq(mesh__tcp_endpoint_parse(frame, 21, &addr, &port), 0);
    cr_assert_eq(addr.s_addr, s_ip("127.0.0.1").s_addr);
    cr_assert_eq(port, 49152);
    cr_assert_eq(mesh__tcp_endpoint_parse(frame, 20, &addr, &port), 0);
    cr_assert_eq(port, 4915);
    cr_assert_eq(mesh__tcp_endpoint_parse(frame, 22, &addr, &port), MESH_ERR_INVAL);
}

Test(endpoint, parse_rejects_embedded_nul)
{
    /* A NUL inside the slice must not cut the string short and hide the rest. */
    const char ep[] = "tcp://127.0.0.1:49152\0garbage";
    struct in_addr addr;
    uint16_t port;
    cr_assert_eq(mesh__tcp_endpoint_parse(ep, sizeof ep - 1, &addr, &port), MESH_ERR_INVAL);
    cr_assert_eq(mesh__tcp_endpoint_parse(ep, 22, &addr, &port), MESH_ERR_INVAL);
    const char ep2[] = "tcp://127.0.0.1\0:49152";
    cr_assert_eq(mesh__tcp_endpoint_parse(ep2, sizeof ep2 - 1, &addr, &port), MESH_ERR_INVAL);
}

Test(endpoint, format_round_trips)
{
    char out[32];
    mesh__tcp_endpoint(out, sizeof out, s_ip("127.0.0.1"), 49152);
    cr_assert_str_eq(out, "tcp://127.0.0.1:49152");
    mesh__tcp_endpoint(out, sizeof out, s_ip("255.255.255.255"), 65535);
    cr_assert_str_eq(out, "tcp://255.255.255.255:65535");
    struct in_addr addr;
    uint16_t port;
    cr_assert_eq(mesh__tcp_endpoint_parse(out, strlen(out), &addr, &port), 0);
    cr_assert_eq(addr.s_addr, s_ip("255.255.255.255").s_addr);
    cr_assert_eq(port, 65535);
}

/* ---------------------------------------------------------------- interfaces */

Test(iface, lookup_lo)
{
    mesh__iface_t lo;
    cr_assert_eq(mesh__iface_lookup("lo", &lo), 0);
    cr_assert_str_eq(lo.name, "lo");
    cr_assert_eq(lo.addr.s_addr, s_ip("127.0.0.1").s_addr);
    cr_assert_eq(lo.netmask.s_addr, s_ip("255.0.0.0").s_addr);
    cr_assert_eq(lo.broadcast.s_addr, s_ip("127.255.255.255").s_addr);
    cr_assert(lo.loopback);
}

Test(iface, lookup_by_address)
{
    mesh__iface_t lo;
    cr_assert_eq(mesh__iface_lookup("127.0.0.1", &lo), 0);
    cr_assert_str_eq(lo.name, "lo");
    cr_assert(lo.loopback);
    cr_assert_eq(lo.broadcast.s_addr, s_ip("127.255.255.255").s_addr);
}

Test(iface, lookup_unknown)
{
    mesh__iface_t i;
    cr_assert_eq(mesh__iface_lookup("nosuchif0", &i), MESH_ERR_NOIFACE);
    cr_assert_eq(mesh__iface_lookup("127.0.0.2", &i), MESH_ERR_NOIFACE);
    cr_assert_eq(mesh__iface_lookup("", &i), MESH_ERR_INVAL);
    cr_assert_eq(mesh__iface_lookup(NULL, &i), MESH_ERR_INVAL);
    char longname[100];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(mesh__iface_lookup(longname, &i), MESH_ERR_INVAL);
}

Test(iface, contains)
{
    mesh__iface_t lo;
    cr_assert_eq(mesh__iface_lookup("lo", &lo), 0);
    cr_assert(mesh__iface_contains(&lo, s_ip("127.0.0.1")));
    cr_assert(mesh__iface_contains(&lo, s_ip("127.1.2.3")));
    cr_assert_not(mesh__iface_contains(&lo, s_ip("128.0.0.1")));
    cr_assert_not(mesh__iface_contains(&lo, s_ip("10.0.0.1")));
    cr_assert_not(mesh__iface_contains(&lo, s_ip("0.0.0.0")));
}

/* ---------------------------------------------------------------- UDP socket */

static uint16_t s_local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
    return ntohs(sa.sin_port);
}

/*  Looks up lo and refuses to go on unless its broadcast address is loopback. */
static void s_lo(mesh__iface_t *lo)
{
    cr_assert_eq(mesh__iface_lookup("lo", lo), 0);
    cr_assert_eq(lo->broadcast.s_addr, s_ip("127.255.255.255").s_addr,
                 "lo's broadcast is not 127.255.255.255: not sending");
}

/*  Waits for a datagram on fd; returns its size (or a MESH_ERR_*). */
static ssize_t s_recv_wait(int fd, void *buf, size_t cap, struct in_addr *from)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, S_WAIT_MS);
    cr_assert_eq(n, 1, "no datagram within %d ms", S_WAIT_MS);
    return mesh__udp_recv(fd, buf, cap, from);
}

Test(udp, beacon_reaches_every_listener_on_lo)
{
    mesh__iface_t lo;
    s_lo(&lo);
    /* the kernel picks a free port for the first socket; the second shares it */
    int a = mesh__udp_open(0);
    cr_assert_geq(a, 0, "udp_open: %s", mesh_strerror(a));
    uint16_t port = s_local_port(a);
    cr_assert_neq(port, 0);
    int b = mesh__udp_open(port);
    cr_assert_geq(b, 0, "second udp_open on %u: %s", port, mesh_strerror(b));
    cr_assert_eq(s_local_port(b), port);

    static const uint8_t uuid[MESH_ZRE_UUID_SIZE] = {1, 2,  3,  4,  5,  6,  7,  8,
                                                     9, 10, 11, 12, 13, 14, 15, 16};
    uint8_t beacon[MESH_ZRE_BEACON_SIZE];
    mesh__beacon_encode(beacon, uuid, 49152);
    cr_assert_eq(mesh__udp_send(a, &lo, port, beacon, sizeof beacon), 0);

    int fds[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        uint8_t buf[64];
        struct in_addr from = {0};
        ssize_t n = s_recv_wait(fds[i], buf, sizeof buf, &from);
        cr_assert_eq(n, MESH_ZRE_BEACON_SIZE, "socket %d: got %zd", i, n);
        cr_assert_arr_eq(buf, beacon, sizeof beacon);
        cr_assert_eq(from.s_addr, s_ip("127.0.0.1").s_addr, "socket %d: source %s", i,
                     inet_ntoa(from));
        cr_assert(mesh__iface_contains(&lo, from));
        mesh__beacon_t got;
        cr_assert_eq(mesh__beacon_decode(buf, (size_t)n, &got), 0);
        cr_assert_eq(got.port, 49152);
        cr_assert_arr_eq(got.uuid, uuid, sizeof uuid);
        /* exactly one copy each */
        cr_assert_eq(mesh__udp_recv(fds[i], buf, sizeof buf, &from), MESH_ERR_AGAIN);
    }
    close(a);
    close(b);
}

Test(udp, recv_reports_full_size_of_long_datagram)
{
    mesh__iface_t lo;
    s_lo(&lo);
    int a = mesh__udp_open(0);
    cr_assert_geq(a, 0);
    uint16_t port = s_local_port(a);
    uint8_t big[100];
    memset(big, 0x5a, sizeof big);
    cr_assert_eq(mesh__udp_send(a, &lo, port, big, sizeof big), 0);
    uint8_t buf[MESH_ZRE_BEACON_SIZE];
    struct in_addr from;
    cr_assert_eq(s_recv_wait(a, buf, sizeof buf, &from), (ssize_t)sizeof big);
    /* the datagram is consumed, not left behind in pieces */
    cr_assert_eq(mesh__udp_recv(a, buf, sizeof buf, &from), MESH_ERR_AGAIN);
    close(a);
}

Test(udp, recv_without_datagram_is_again)
{
    int a = mesh__udp_open(0);
    cr_assert_geq(a, 0);
    uint8_t buf[32];
    struct in_addr from;
    cr_assert_eq(mesh__udp_recv(a, buf, sizeof buf, &from), MESH_ERR_AGAIN);
    close(a);
}

Test(udp, open_on_exclusively_held_port_is_addrinuse)
{
    /* a socket without SO_REUSEADDR/SO_REUSEPORT holds the port alone */
    int plain = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(plain, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    cr_assert_eq(bind(plain, (struct sockaddr *)&sa, sizeof sa), 0);
    uint16_t port = s_local_port(plain);
    cr_assert_eq(mesh__udp_open(port), MESH_ERR_ADDRINUSE);
    close(plain);
}
