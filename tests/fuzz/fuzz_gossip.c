/*  fuzz_gossip.c: mesh__gossip_decode on arbitrary WHISPER content.

    Properties: the result is PEERS, BYE or MALFORMED; mesh__gossip_is is a
    necessary condition for acceptance; every endpoint slice lies inside the
    input; an accepted list re-encodes to bytes that decode to the same list. */
#include "fuzz.h"

#include "gossip.h"

#include <mesh/mesh.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mesh__gossip_entry_t entries[MESH_GOSSIP_PEERS_MAX];
    size_t count = 99;
    int rc = mesh__gossip_decode(data, size, entries, MESH_GOSSIP_PEERS_MAX, &count);
    if (rc == MESH_ERR_MALFORMED) {
        MESH_FUZZ_CHECK(count == 0);
        return 0;
    }
    MESH_FUZZ_CHECK(rc == MESH_GOSSIP_PEERS || rc == MESH_GOSSIP_BYE);
    MESH_FUZZ_CHECK(mesh__gossip_is(data, size));
    if (rc == MESH_GOSSIP_BYE) {
        MESH_FUZZ_CHECK(count == 0);
        uint8_t bye[8];
        size_t n = mesh__gossip_encode_bye(bye, sizeof bye);
        MESH_FUZZ_CHECK(n == size && memcmp(bye, data, n) == 0);
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *ep = (const uint8_t *)entries[i].endpoint;
        MESH_FUZZ_CHECK(ep >= data && ep + entries[i].endpoint_len <= data + size);
        MESH_FUZZ_CHECK(entries[i].endpoint_len > 0);
    }
    size_t need = mesh__gossip_encode_peers(NULL, 0, entries, count);
    uint8_t *again = malloc(need ? need : 1);
    MESH_FUZZ_CHECK(again != NULL);
    MESH_FUZZ_CHECK(mesh__gossip_encode_peers(again, need, entries, count) == need);
    /* The encoder writes one canonical form (the decoder also takes fixstr
       endpoints and long array headers): what it writes must decode back to
       the same entries. */
    static mesh__gossip_entry_t back[MESH_GOSSIP_PEERS_MAX];
    size_t nback = 0;
    MESH_FUZZ_CHECK(mesh__gossip_decode(again, need, back, MESH_GOSSIP_PEERS_MAX, &nback) ==
                    MESH_GOSSIP_PEERS);
    MESH_FUZZ_CHECK(nback == count);
    for (size_t i = 0; i < count; i++) {
        MESH_FUZZ_CHECK(memcmp(back[i].uuid, entries[i].uuid, MESH_ZRE_UUID_SIZE) == 0);
        MESH_FUZZ_CHECK(back[i].endpoint_len == entries[i].endpoint_len);
        MESH_FUZZ_CHECK(memcmp(back[i].endpoint, entries[i].endpoint, back[i].endpoint_len) == 0);
    }
    free(again);
    return 0;
}
