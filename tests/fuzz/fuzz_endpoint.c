/*  fuzz_endpoint.c: mesh__tcp_endpoint_parse on arbitrary bytes (the HELLO
    endpoint field is a slice of a frame, not a C string).

    Properties: only MESH_ERR_INVAL or success; an accepted endpoint starts with
    "tcp://", holds no NUL, has a port other than 0; formatting the result and
    parsing that again gives the same address and port. */
#include "fuzz.h"

#include "udp.h"

#include <mesh/mesh.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct in_addr addr;
    uint16_t port;
    int rc = mesh__tcp_endpoint_parse((const char *)data, size, &addr, &port);
    if (rc != 0) {
        MESH_FUZZ_CHECK(rc == MESH_ERR_INVAL);
        return 0;
    }
    MESH_FUZZ_CHECK(size > 6 && memcmp(data, "tcp://", 6) == 0);
    MESH_FUZZ_CHECK(memchr(data, '\0', size) == NULL);
    MESH_FUZZ_CHECK(port != 0);

    char text[32];
    mesh__tcp_endpoint(text, sizeof text, addr, port);
    struct in_addr addr2;
    uint16_t port2;
    MESH_FUZZ_CHECK(mesh__tcp_endpoint_parse(text, strlen(text), &addr2, &port2) == 0);
    MESH_FUZZ_CHECK(addr2.s_addr == addr.s_addr);
    MESH_FUZZ_CHECK(port2 == port);
    /* the canonical text is never longer than the input it came from */
    MESH_FUZZ_CHECK(strlen(text) <= size);
    return 0;
}
