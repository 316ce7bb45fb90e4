/*  fuzz_jsonpack.c: jsonpack_to_json on arbitrary bytes (msgpack from the
    mesh, turned into JSON for meshctl and exec agents).

    Properties: a refusal always says why; an accepted value encodes back to
    msgpack (jsonpack_from_json) that decodes to an equal value (json_equal),
    and encoding that again gives the same bytes (the canonical form is a
    fixed point); the value survives JSON text as an exec agent sees it
    (json_dumps, then json_loadb with JSON_ALLOW_NUL).

    The same input is also tried as JSON text (what meshctl and exec agents
    hand to jsonpack_from_json): when jansson accepts it and it is not nested
    deeper than the limit, it encodes, and decodes back to an equal value. */
#include "fuzz.h"

#include "jsonpack.h"

#include <string.h>

#define S_ERR_LEN 256

/*  v encodes, and what it encodes to decodes to an equal value whose
    encoding is the same bytes. */
static void s_round_trip(const json_t *v)
{
    char err[S_ERR_LEN];
    uint8_t *packed = NULL, *again = NULL;
    size_t len = 0, len2 = 0;
    MESH_FUZZ_CHECK(jsonpack_from_json(v, &packed, &len, err, sizeof err) == 0);
    MESH_FUZZ_CHECK(len > 0);
    json_t *back = jsonpack_to_json(packed, len, err, sizeof err);
    MESH_FUZZ_CHECK(back != NULL);
    MESH_FUZZ_CHECK(json_equal(v, back));
    MESH_FUZZ_CHECK(jsonpack_from_json(back, &again, &len2, err, sizeof err) == 0);
    MESH_FUZZ_CHECK(len2 == len && memcmp(packed, again, len) == 0);
    json_decref(back);
    free(packed);
    free(again);
}

static int s_depth(const json_t *v)
{
    int max = 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            int d = s_depth(e);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach((json_t *)v, k, e)
        {
            int d = s_depth(e);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[S_ERR_LEN];
    json_t *v = jsonpack_to_json(data, size, err, sizeof err);
    if (!v) {
        MESH_FUZZ_CHECK(err[0] != '\0');
    } else {
        MESH_FUZZ_CHECK(s_depth(v) <= JSONPACK_DEPTH_MAX);
        s_round_trip(v);
        char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        MESH_FUZZ_CHECK(text != NULL);
        json_error_t jerr;
        json_t *parsed = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        MESH_FUZZ_CHECK(parsed != NULL && json_equal(v, parsed));
        json_decref(parsed);
        free(text);
        json_decref(v);
    }

    /* the same bytes as JSON text */
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (j) {
        if (s_depth(j) <= JSONPACK_DEPTH_MAX) {
            s_round_trip(j);
        } else {
            uint8_t *packed = NULL;
            size_t len = 0;
            MESH_FUZZ_CHECK(jsonpack_from_json(j, &packed, &len, err, sizeof err) == -1);
            MESH_FUZZ_CHECK(packed == NULL && err[0] != '\0');
        }
        json_decref(j);
    }
    return 0;
}
