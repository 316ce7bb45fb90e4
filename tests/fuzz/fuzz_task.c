/*  fuzz_task.c: mesh__task_record_decode and mesh__tasks_import on arbitrary
    bytes (task records come from replicas and the journal).

    Properties: the result is 0 or MALFORMED (record zeroed); every slice of
    an accepted record lies inside the input and within its limit; one byte
    less never decodes; an accepted record re-encodes to exactly the input
    (the format has one spelling); import accepts exactly what decodes, and
    the imported task encodes back to the same record but for what import
    defines: the replica index given, RUNNING seen as STANDBY. */
#include "fuzz.h"

#include "tasks.h"

#include <mesh/mesh.h>
#include <string.h>

#define S_NOW     1000000 /* the importer's clock */
#define S_REPLICA 3

static void s_check_slice(mesh__slice_t s, const uint8_t *data, size_t size, size_t max)
{
    MESH_FUZZ_CHECK(s.len <= max);
    if (s.ptr) {
        MESH_FUZZ_CHECK(s.ptr >= data && s.len <= (size_t)(data + size - s.ptr));
    } else {
        MESH_FUZZ_CHECK(s.len == 0);
    }
}

static bool s_same(mesh__slice_t a, mesh__slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[MESH_TASKS_RECORD_MAX];
    mesh__task_record_t r, back;
    int rc = mesh__task_record_decode(data, size, &r);

    mesh__tasks_t *q = mesh__tasks_new(NULL);
    MESH_FUZZ_CHECK(q != NULL);
    mesh__task_t *t = NULL;
    int irc = mesh__tasks_import(q, data, size, S_REPLICA, S_NOW, &t);

    if (rc != 0) {
        MESH_FUZZ_CHECK(rc == MESH_ERR_MALFORMED);
        MESH_FUZZ_CHECK(r.path.ptr == NULL && r.state == 0 && r.attempt == 0);
        MESH_FUZZ_CHECK(irc == MESH_ERR_MALFORMED && t == NULL);
        MESH_FUZZ_CHECK(mesh__tasks_size(q) == 0 && mesh__tasks_stats(q)->malformed == 1);
        mesh__tasks_destroy(&q);
        return 0;
    }
    s_check_slice(r.path, data, size, MESH_TASKS_PATH_MAX);
    s_check_slice(r.key, data, size, MESH_TASKS_KEY_MAX);
    s_check_slice(r.payload, data, size, MESH_TASKS_PAYLOAD_MAX);
    s_check_slice(r.result, data, size, MESH_TASKS_RESULT_MAX);
    MESH_FUZZ_CHECK(r.path.len >= 1 && !memchr(r.path.ptr, 0, r.path.len));
    MESH_FUZZ_CHECK(r.state < MESH_TASK_STATE_COUNT);
    MESH_FUZZ_CHECK(r.failures <= r.max_attempts && r.max_attempts <= MESH_TASKS_ATTEMPTS_MAX);
    MESH_FUZZ_CHECK(mesh__task_record_decode(data, size - 1, &back) == MESH_ERR_MALFORMED);

    size_t n = mesh__task_record_encode(&r, out, sizeof out);
    MESH_FUZZ_CHECK(n == size && memcmp(out, data, size) == 0);

    MESH_FUZZ_CHECK(irc == MESH_TASKS_ADDED && t != NULL);
    MESH_FUZZ_CHECK(mesh__tasks_size(q) == 1);
    n = mesh__task_encode(t, S_NOW, out, sizeof out);
    MESH_FUZZ_CHECK(n == size);
    MESH_FUZZ_CHECK(mesh__task_record_decode(out, n, &back) == 0);
    MESH_FUZZ_CHECK(back.replica == S_REPLICA);
    MESH_FUZZ_CHECK(back.state == (r.state == MESH_TASK_RUNNING ? MESH_TASK_STANDBY : r.state));
    MESH_FUZZ_CHECK(memcmp(back.id, r.id, MESH_TASKS_ID_SIZE) == 0);
    MESH_FUZZ_CHECK(back.flags == r.flags && back.jitter_pct == r.jitter_pct);
    MESH_FUZZ_CHECK(back.attempt == r.attempt && back.failures == r.failures &&
                    back.max_attempts == r.max_attempts);
    MESH_FUZZ_CHECK(back.due_in == r.due_in && back.created_age == r.created_age &&
                    back.started_age == r.started_age && back.finished_age == r.finished_age);
    MESH_FUZZ_CHECK(back.ttl_ms == r.ttl_ms && back.backoff_base_ms == r.backoff_base_ms &&
                    back.backoff_max_ms == r.backoff_max_ms);
    MESH_FUZZ_CHECK(s_same(back.path, r.path) && s_same(back.key, r.key) &&
                    s_same(back.payload, r.payload) && s_same(back.result, r.result));

    /* the same record again is held: EXISTING, nothing added */
    MESH_FUZZ_CHECK(mesh__tasks_import(q, data, size, S_REPLICA, S_NOW, NULL) ==
                    MESH_TASKS_EXISTING);
    MESH_FUZZ_CHECK(mesh__tasks_size(q) == 1);
    /* and the queue runs on: due and tick never trip over it */
    mesh__task_t *due[1];
    mesh__tasks_on_tick(q, S_NOW + MESH_TASKS_TIME_MAX_MS);
    mesh__tasks_due(q, S_NOW + MESH_TASKS_TIME_MAX_MS, due, 1);
    mesh__tasks_destroy(&q);
    return 0;
}
