/*  fuzz_taskwire.c: every decoder of the task service's messages
    (taskwire.h: submit, put/sync, started, done, id, state, token, token
    reply, record reply, list reply) on the same arbitrary bytes.

    Properties: each returns 0 or MALFORMED; on MALFORMED its output is
    zeroed; on 0 every string is NUL-terminated within its field, ids are
    32 lower-case hex or empty, counts within their limits, every record
    slice lies inside the input and decodes again to the same record. */
#include "fuzz.h"

#include "taskwire.h"

#include <mesh/mesh.h>
#include <string.h>

static bool s_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i]) {
            return false;
        }
    }
    return true;
}

static void s_check_str(const char *s, size_t cap)
{
    MESH_FUZZ_CHECK(memchr(s, 0, cap) != NULL);
}

static void s_check_peer_id(const char *s)
{
    s_check_str(s, MESH_TW_ID_HEX + 1);
    MESH_FUZZ_CHECK(strlen(s) <= MESH_TW_ID_HEX);
}

static void s_check_record(const mesh__tw_record_t *r, const uint8_t *data, size_t size)
{
    MESH_FUZZ_CHECK(r->raw >= data && r->len <= (size_t)(data + size - r->raw));
    mesh__task_record_t again;
    MESH_FUZZ_CHECK(mesh__task_record_decode(r->raw, r->len, &again) == 0);
    MESH_FUZZ_CHECK(memcmp(again.id, r->rec.id, MESH_TASKS_ID_SIZE) == 0);
    MESH_FUZZ_CHECK(again.attempt == r->rec.attempt && again.state == r->rec.state);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc;

    mesh__tw_submit_t sm;
    rc = mesh__tw_submit(data, size, &sm);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        MESH_FUZZ_CHECK(sm.replicas < MESH_TASKS_REPLICAS_MAX);
        s_check_record(&sm.r, data, size);
    } else {
        MESH_FUZZ_CHECK(s_zero(&sm, sizeof sm));
    }

    mesh__tw_put_t pt;
    rc = mesh__tw_put(data, size, &pt);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        MESH_FUZZ_CHECK(pt.k < MESH_TASKS_REPLICAS_MAX);
        MESH_FUZZ_CHECK(pt.replicas > 0 && pt.replicas < MESH_TASKS_REPLICAS_MAX);
        s_check_peer_id(pt.runner);
        s_check_peer_id(pt.provider);
        s_check_record(&pt.r, data, size);
    } else {
        MESH_FUZZ_CHECK(s_zero(&pt, sizeof pt));
    }

    mesh__tw_started_t sd;
    rc = mesh__tw_started(data, size, &sd);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        s_check_peer_id(sd.provider);
        char hex[MESH_TASKS_ID_HEX + 1];
        mesh__task_id_to_hex(sd.id, hex);
        uint8_t back[MESH_TASKS_ID_SIZE];
        MESH_FUZZ_CHECK(mesh__task_id_from_hex(hex, back) == 0);
        MESH_FUZZ_CHECK(memcmp(back, sd.id, sizeof back) == 0);
    } else {
        MESH_FUZZ_CHECK(s_zero(&sd, sizeof sd));
    }

    mesh__tw_done_t dn;
    rc = mesh__tw_done(data, size, &dn);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        s_check_record(&dn.r, data, size);
    } else {
        MESH_FUZZ_CHECK(s_zero(&dn, sizeof dn));
    }

    uint8_t id[MESH_TASKS_ID_SIZE];
    char hex[MESH_TW_ID_HEX + 1];
    rc = mesh__tw_id(data, size, id, hex);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        MESH_FUZZ_CHECK(strlen(hex) == MESH_TW_ID_HEX);
    } else {
        MESH_FUZZ_CHECK(hex[0] == '\0' && s_zero(id, sizeof id));
    }

    int state;
    rc = mesh__tw_state(data, size, &state);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    MESH_FUZZ_CHECK(state >= -1 && state < MESH_TASK_STATE_COUNT);
    MESH_FUZZ_CHECK(rc == 0 || state == -1);

    mesh__tw_token_t tk;
    rc = mesh__tw_token(data, size, &tk);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        s_check_str(tk.path, sizeof tk.path);
        s_check_str(tk.limit, sizeof tk.limit);
        MESH_FUZZ_CHECK(tk.path[0] == '/');
        MESH_FUZZ_CHECK(mesh__ratelimit_valid(&tk.rl));
    } else {
        MESH_FUZZ_CHECK(s_zero(&tk, sizeof tk));
    }

    uint32_t granted = 1, next = 1;
    rc = mesh__tw_token_reply(data, size, &granted, &next);
    MESH_FUZZ_CHECK(rc == 0 || (rc == MESH_ERR_MALFORMED && granted == 0 && next == 0));

    mesh__tw_record_t tr;
    rc = mesh__tw_record(data, size, &tr);
    MESH_FUZZ_CHECK(rc == 0 || rc == MESH_ERR_MALFORMED);
    if (rc == 0) {
        s_check_record(&tr, data, size);
    } else {
        MESH_FUZZ_CHECK(s_zero(&tr, sizeof tr));
    }

    mesh__tw_reader_t r;
    uint32_t count;
    if (mesh__tw_list_begin(&r, data, size, &count) == 0) {
        for (uint32_t i = 0; i < count; i++) {
            if (mesh__tw_list_next(&r, &tr) != 0) {
                MESH_FUZZ_CHECK(s_zero(&tr, sizeof tr));
                break;
            }
            s_check_record(&tr, data, size);
            MESH_FUZZ_CHECK(r.off <= size);
        }
    } else {
        MESH_FUZZ_CHECK(count == 0);
    }
    return 0;
}
