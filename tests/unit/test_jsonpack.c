/*  test_jsonpack.c: JSON <-> msgpack at the edges (tools/jsonpack.c), ring 1.

    Every mapping in both directions, with the exact bytes the encoder picks
    (the shortest form), and every rejection of the strict decoder with the
    reason it gives. */
#include <criterion/criterion.h>

#include "jsonpack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ERR_LEN 256

/*  Decodes len bytes that must be accepted. */
static json_t *s_dec(const void *buf, size_t len)
{
    char err[ERR_LEN] = "unset";
    json_t *v = jsonpack_to_json(buf, len, err, sizeof err);
    cr_assert_not_null(v, "refused: %s", err);
    cr_expect_str_empty(err, "an accepted value left a message: %s", err);
    return v;
}

#define DEC(lit) s_dec(lit, sizeof(lit) - 1)

/*  Decodes len bytes that must be refused with a message containing want. */
static void s_refused(const void *buf, size_t len, const char *want)
{
    char err[ERR_LEN] = "";
    json_t *v = jsonpack_to_json(buf, len, err, sizeof err);
    cr_expect_null(v, "accepted, expected \"%s\"", want);
    json_decref(v);
    cr_expect(strstr(err, want) != NULL, "message \"%s\", expected \"%s\"", err, want);
}

#define REFUSED(lit, want) s_refused(lit, sizeof(lit) - 1, want)

/*  Encodes v (stolen) and checks the exact bytes; then decodes them back to
    an equal value. */
static void s_enc(json_t *v, const void *want, size_t want_len)
{
    cr_assert_not_null(v);
    uint8_t *out = NULL;
    size_t len = 0;
    char err[ERR_LEN] = "unset";
    cr_assert_eq(jsonpack_from_json(v, &out, &len, err, sizeof err), 0, "%s", err);
    cr_expect_str_empty(err);
    cr_expect_eq(len, want_len, "encoded to %zu bytes, expected %zu", len, want_len);
    if (len == want_len) {
        cr_expect_arr_eq(out, want, len);
    }
    json_t *back = s_dec(out, len);
    cr_expect(json_equal(v, back), "did not survive the round trip");
    json_decref(back);
    free(out);
    json_decref(v);
}

#define ENC(v, lit) s_enc(v, lit, sizeof(lit) - 1)

/*  The header bytes of an encoding (first n). */
static void s_enc_head(json_t *v, const void *want, size_t n, size_t want_len)
{
    uint8_t *out = NULL;
    size_t len = 0;
    char err[ERR_LEN];
    cr_assert_eq(jsonpack_from_json(v, &out, &len, err, sizeof err), 0, "%s", err);
    cr_expect_eq(len, want_len);
    cr_expect_arr_eq(out, want, n);
    json_t *back = s_dec(out, len);
    cr_expect(json_equal(v, back));
    json_decref(back);
    free(out);
    json_decref(v);
}

static json_t *s_nested(int depth)
{
    json_t *v = json_array();
    for (int i = 1; i < depth; i++) {
        json_t *outer = json_array();
        json_array_append_new(outer, v);
        v = outer;
    }
    return v;
}

/* ------------------------------------------------------------------------ */
/* msgpack -> JSON */

Test(jsonpack, scalars_decode)
{
    json_t *v = DEC("\xc0");
    cr_expect(json_is_null(v));
    v = DEC("\xc3");
    cr_expect(json_is_true(v));
    v = DEC("\xc2");
    cr_expect(json_is_false(v));

    struct {
        const char *bytes;
        size_t len;
        json_int_t want;
    } ints[] = {
        {"\x00", 1, 0},
        {"\x7f", 1, 127},
        {"\xe0", 1, -32},
        {"\xff", 1, -1},
        {"\xcc\xff", 2, 255},
        {"\xcd\xff\xff", 3, 65535},
        {"\xce\xff\xff\xff\xff", 5, 4294967295LL},
        {"\xcf\x7f\xff\xff\xff\xff\xff\xff\xff", 9, INT64_MAX},
        {"\xcf\x00\x00\x00\x00\x00\x00\x00\x05", 9, 5}, /* long forms are fine */
        {"\xd0\x80", 2, -128},
        {"\xd0\x7f", 2, 127},
        {"\xd1\x80\x00", 3, -32768},
        {"\xd2\x80\x00\x00\x00", 5, INT32_MIN},
        {"\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9, INT64_MIN},
        {"\xd3\x00\x00\x00\x00\x00\x00\x00\x01", 9, 1},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        v = s_dec(ints[i].bytes, ints[i].len);
        cr_expect(json_is_integer(v), "case %zu is not an integer", i);
        cr_expect_eq(json_integer_value(v), ints[i].want, "case %zu: %lld", i,
                     (long long)json_integer_value(v));
        json_decref(v);
    }

    /* uint64 beyond INT64_MAX: a real */
    v = DEC("\xcf\xff\xff\xff\xff\xff\xff\xff\xff");
    cr_expect(json_is_real(v));
    cr_expect_eq(json_real_value(v), 18446744073709551615.0);
    json_decref(v);
    v = DEC("\xcf\x80\x00\x00\x00\x00\x00\x00\x00");
    cr_expect(json_is_real(v));
    cr_expect_eq(json_real_value(v), 9223372036854775808.0);
    json_decref(v);

    /* float32 and float64: reals */
    v = DEC("\xca\x3f\xc0\x00\x00");
    cr_expect(json_is_real(v) && json_real_value(v) == 1.5);
    json_decref(v);
    v = DEC("\xcb\xbf\xb9\x99\x99\x99\x99\x99\x9a");
    cr_expect(json_is_real(v) && json_real_value(v) == -0.1);
    json_decref(v);
    v = DEC("\xcb\x40\x00\x00\x00\x00\x00\x00\x00"); /* 2.0 stays a real */
    cr_expect(json_is_real(v) && json_real_value(v) == 2.0);
    json_decref(v);
}

Test(jsonpack, strings_decode_in_every_form)
{
    json_t *v = DEC("\xa5hello");
    cr_expect_str_eq(json_string_value(v), "hello");
    json_decref(v);
    v = DEC("\xa0");
    cr_expect(json_is_string(v) && json_string_length(v) == 0);
    json_decref(v);
    v = DEC("\xd9\x03\xe2\x82\xac"); /* str8, the euro sign */
    cr_expect_str_eq(json_string_value(v), "\xe2\x82\xac");
    json_decref(v);
    v = DEC("\xda\x00\x04\xf0\x9f\x98\x80"); /* str16, a 4-byte code point */
    cr_expect_str_eq(json_string_value(v), "\xf0\x9f\x98\x80");
    json_decref(v);
    v = DEC("\xdb\x00\x00\x00\x02ok");
    cr_expect_str_eq(json_string_value(v), "ok");
    json_decref(v);
    /* a NUL inside is kept, with the length */
    v = DEC("\xa3"
            "a\0b");
    cr_expect_eq(json_string_length(v), 3);
    cr_expect_arr_eq(json_string_value(v), "a\0b", 3);
    json_decref(v);
}

Test(jsonpack, bin_becomes_a_base64_object)
{
    json_t *v = DEC("\xc4\x03\x00\xff\x10");
    cr_assert(json_is_object(v) && json_object_size(v) == 1);
    cr_expect_str_eq(json_string_value(json_object_get(v, "$bin")), "AP8Q");
    json_decref(v);
    v = DEC("\xc5\x00\x01\x41");
    cr_expect_str_eq(json_string_value(json_object_get(v, "$bin")), "QQ==");
    json_decref(v);
    v = DEC("\xc6\x00\x00\x00\x02\x41\x42");
    cr_expect_str_eq(json_string_value(json_object_get(v, "$bin")), "QUI=");
    json_decref(v);
    v = DEC("\xc4\x00");
    cr_expect_str_eq(json_string_value(json_object_get(v, "$bin")), "");
    json_decref(v);
}

Test(jsonpack, containers_decode_in_every_form)
{
    json_t *v = DEC("\x93\x01\xc0\xa1x");
    json_t *want = json_pack("[i,n,s]", 1, "x");
    cr_expect(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    v = DEC("\xdc\x00\x02\xc3\xc2");
    want = json_pack("[b,b]", 1, 0);
    cr_expect(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    v = DEC("\xdd\x00\x00\x00\x01\x90");
    want = json_pack("[[]]");
    cr_expect(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    v = DEC("\x82\xa1"
            "a\x01\xa1"
            "b\x92\xc0\xc3");
    want = json_pack("{s:i,s:[n,b]}", "a", 1, "b", 1);
    cr_expect(json_equal(v, want));
    /* order is kept */
    cr_expect_str_eq(json_object_iter_key(json_object_iter(v)), "a");
    json_decref(v);
    json_decref(want);

    v = DEC("\xde\x00\x01\xa0\x80");
    want = json_pack("{s:{}}", "");
    cr_expect(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    v = DEC("\xdf\x00\x00\x00\x01\xd9\x01k\xa1v");
    want = json_pack("{s:s}", "k", "v");
    cr_expect(json_equal(v, want));
    json_decref(v);
    json_decref(want);

    /* 64 levels are fine */
    uint8_t deep[64];
    memset(deep, 0x91, sizeof deep);
    deep[63] = 0x90;
    v = s_dec(deep, sizeof deep);
    json_t *nested = s_nested(64);
    cr_expect(json_equal(v, nested));
    json_decref(nested);
    json_decref(v);
}

Test(jsonpack, malformed_input_is_refused_with_a_reason)
{
    char err[ERR_LEN];
    cr_expect_null(jsonpack_to_json(NULL, 0, err, sizeof err));
    cr_expect_str_eq(err, "empty msgpack");
    REFUSED("", "empty");
    REFUSED("\xc1", "invalid byte 0xc1 at offset 0");
    REFUSED("\xc0\xc0", "1 trailing bytes at offset 1");
    REFUSED("\x91\x01\x02", "trailing");
    REFUSED("\xce\x00\x00", "truncated at offset 1");
    REFUSED("\xcb\x00", "truncated");
    REFUSED("\xd9", "truncated");
    REFUSED("\xa5hi", "5 bytes declared at offset 1, 2 left");
    REFUSED("\xc4\x05\x00", "5 bytes declared");
    REFUSED("\x81\xa1"
            "a",
            "truncated at offset 3");
    REFUSED("\x92\x91\x01", "truncated at offset 3");
    REFUSED("\x82\xa1"
            "a\x01\xa1",
            "1 bytes declared at offset 5, 0 left");
}

Test(jsonpack, declared_counts_beyond_the_input_are_refused_before_allocating)
{
    REFUSED("\xdf\xff\xff\xff\xff", "map of 4294967295 at offset 0, only 0 bytes left");
    REFUSED("\xdd\xff\xff\xff\xff", "array of 4294967295 at offset 0, only 0 bytes left");
    REFUSED("\xdb\xff\xff\xff\xff", "4294967295 bytes declared");
    REFUSED("\xc6\xff\xff\xff\xff", "4294967295 bytes declared");
    REFUSED("\xde\x00\x02\xa1"
            "a\x01",
            "map of 2 at offset 0, only 3 bytes left");
    REFUSED("\xdc\x00\x03\xc0\xc0", "array of 3");
}

Test(jsonpack, nesting_past_the_limit_is_refused)
{
    uint8_t deep[65];
    memset(deep, 0x91, sizeof deep);
    deep[64] = 0x90;
    s_refused(deep, sizeof deep, "nested deeper than 64 at offset 64");
    uint8_t maps[2 * 64 + 1];
    for (int i = 0; i < 64; i++) {
        maps[2 * i] = 0x81;
        maps[2 * i + 1] = 0xa0;
    }
    maps[128] = 0x80;
    s_refused(maps, sizeof maps, "nested deeper than 64");
    /* deep enough to overflow a naive recursive reader's stack */
    size_t n = 100000;
    uint8_t *huge = malloc(n);
    memset(huge, 0x91, n);
    s_refused(huge, n, "nested deeper than 64");
    free(huge);
}

Test(jsonpack, ext_has_no_json_form)
{
    REFUSED("\xd4\x01\x00", "ext type at offset 0 has no JSON form");
    REFUSED("\xd5\x01\x00\x00", "ext type");
    REFUSED("\xd6\x01\x00\x00\x00\x00", "ext type");
    REFUSED("\xd7\xff\x00\x00\x00\x00\x00\x00\x00\x00", "ext type"); /* timestamp */
    REFUSED("\xd8\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "ext type");
    REFUSED("\xc7\x01\x05\x00", "ext type");
    REFUSED("\xc8\x00\x01\x05\x00", "ext type");
    REFUSED("\xc9\xff\xff\xff\xff\x01", "ext type");
    REFUSED("\x91\xd4\x01\x00", "ext type at offset 1");
}

Test(jsonpack, invalid_utf8_is_refused)
{
    REFUSED("\xa2\xc3\x28", "invalid UTF-8 in the string at offset 0");
    REFUSED("\xa2\xc0\xaf", "invalid UTF-8");         /* overlong '/' */
    REFUSED("\xa3\xe0\x80\xaf", "invalid UTF-8");     /* overlong, 3 bytes */
    REFUSED("\xa3\xed\xa0\x80", "invalid UTF-8");     /* a surrogate */
    REFUSED("\xa4\xf4\x90\x80\x80", "invalid UTF-8"); /* past U+10FFFF */
    REFUSED("\xa1\xe2", "invalid UTF-8");             /* cut short */
    REFUSED("\xa1\xff", "invalid UTF-8");
    REFUSED("\xa1\x80", "invalid UTF-8"); /* a lone continuation byte */
    REFUSED("\x91\xa1\xfe", "invalid UTF-8 in the string at offset 1");
}

Test(jsonpack, map_keys_must_be_unique_strings)
{
    REFUSED("\x81\x01\x02", "map key at offset 1 is not a string");
    REFUSED("\x81\xc0\x02", "not a string");
    REFUSED("\x81\xc4\x01"
            "a\x01",
            "not a string");
    REFUSED("\x81\x90\x01", "not a string");
    REFUSED("\x81\xa1\xff\x01", "invalid UTF-8 in the map key at offset 1");
    REFUSED("\x82\xa1"
            "a\x01\xa1"
            "a\x02",
            "duplicate map key at offset 4");
    REFUSED("\x82\xa1"
            "a\x01\xd9\x01"
            "a\x02",
            "duplicate map key"); /* another form */
    /* jansson looks keys up as C strings: a NUL inside one is refused */
    REFUSED("\x81\xa3"
            "a\0b\x01",
            "NUL byte in the map key at offset 1");
    REFUSED("\x81\xa1\0\x01", "NUL byte in the map key");
}

Test(jsonpack, non_finite_floats_are_refused)
{
    REFUSED("\xca\x7f\xc0\x00\x00", "non-finite float at offset 0");
    REFUSED("\xca\x7f\x80\x00\x00", "non-finite");
    REFUSED("\xcb\x7f\xf0\x00\x00\x00\x00\x00\x00", "non-finite");
    REFUSED("\xcb\xff\xf0\x00\x00\x00\x00\x00\x00", "non-finite");
    REFUSED("\xcb\x7f\xf8\x00\x00\x00\x00\x00\x01", "non-finite");
}

/* ------------------------------------------------------------------------ */
/* JSON -> msgpack */

Test(jsonpack, scalars_encode_in_the_shortest_form)
{
    ENC(json_null(), "\xc0");
    ENC(json_true(), "\xc3");
    ENC(json_false(), "\xc2");
    ENC(json_integer(0), "\x00");
    ENC(json_integer(127), "\x7f");
    ENC(json_integer(128), "\xcc\x80");
    ENC(json_integer(255), "\xcc\xff");
    ENC(json_integer(256), "\xcd\x01\x00");
    ENC(json_integer(65535), "\xcd\xff\xff");
    ENC(json_integer(65536), "\xce\x00\x01\x00\x00");
    ENC(json_integer(4294967295LL), "\xce\xff\xff\xff\xff");
    ENC(json_integer(4294967296LL), "\xcf\x00\x00\x00\x01\x00\x00\x00\x00");
    ENC(json_integer(INT64_MAX), "\xcf\x7f\xff\xff\xff\xff\xff\xff\xff");
    ENC(json_integer(-1), "\xff");
    ENC(json_integer(-32), "\xe0");
    ENC(json_integer(-33), "\xd0\xdf");
    ENC(json_integer(-128), "\xd0\x80");
    ENC(json_integer(-129), "\xd1\xff\x7f");
    ENC(json_integer(-32768), "\xd1\x80\x00");
    ENC(json_integer(-32769), "\xd2\xff\xff\x7f\xff");
    ENC(json_integer(INT32_MIN), "\xd2\x80\x00\x00\x00");
    ENC(json_integer((json_int_t)INT32_MIN - 1), "\xd3\xff\xff\xff\xff\x7f\xff\xff\xff");
    ENC(json_integer(INT64_MIN), "\xd3\x80\x00\x00\x00\x00\x00\x00\x00");
    ENC(json_real(1.5), "\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00");
    ENC(json_real(-0.1), "\xcb\xbf\xb9\x99\x99\x99\x99\x99\x9a");
    ENC(json_real(2.0), "\xcb\x40\x00\x00\x00\x00\x00\x00\x00");
}

Test(jsonpack, strings_encode_in_the_shortest_form)
{
    ENC(json_string(""), "\xa0");
    ENC(json_string("hello"), "\xa5hello");
    ENC(json_stringn("a\0b", 3), "\xa3"
                                 "a\0b");
    static char text[70000];
    memset(text, 'x', sizeof text);
    s_enc_head(json_stringn(text, 31), "\xbf", 1, 32);
    s_enc_head(json_stringn(text, 32), "\xd9\x20", 2, 34);
    s_enc_head(json_stringn(text, 255), "\xd9\xff", 2, 257);
    s_enc_head(json_stringn(text, 256), "\xda\x01\x00", 3, 259);
    s_enc_head(json_stringn(text, 65535), "\xda\xff\xff", 3, 65538);
    s_enc_head(json_stringn(text, 65536), "\xdb\x00\x01\x00\x00", 5, 65541);
}

Test(jsonpack, containers_encode_in_the_shortest_form)
{
    ENC(json_array(), "\x90");
    ENC(json_object(), "\x80");
    ENC(json_pack("[i,n,s]", 1, "x"), "\x93\x01\xc0\xa1x");
    ENC(json_pack("{s:i,s:[n,b]}", "a", 1, "b", 1), "\x82\xa1"
                                                    "a\x01\xa1"
                                                    "b\x92\xc0\xc3");
    json_t *o;

    json_t *a = json_array();
    for (int i = 0; i < 15; i++) {
        json_array_append_new(a, json_null());
    }
    s_enc_head(json_deep_copy(a), "\x9f", 1, 16);
    json_array_append_new(a, json_null());
    s_enc_head(a, "\xdc\x00\x10", 3, 19);
    a = json_array();
    for (int i = 0; i < 65536; i++) {
        json_array_append_new(a, json_null());
    }
    s_enc_head(a, "\xdd\x00\x01\x00\x00", 5, 65541);

    o = json_object();
    char key[16];
    for (int i = 0; i < 15; i++) {
        snprintf(key, sizeof key, "%c", 'a' + i);
        json_object_set_new(o, key, json_null());
    }
    s_enc_head(json_deep_copy(o), "\x8f", 1, 1 + 15 * 3);
    json_object_set_new(o, "z", json_null());
    s_enc_head(o, "\xde\x00\x10", 3, 3 + 16 * 3);
}

Test(jsonpack, bin_object_encodes_as_a_plain_map)
{
    /* {"$bin": ...} is how bin reads in JSON; JSON -> msgpack keeps it a map */
    ENC(json_pack("{s:s}", "$bin", "AP8Q"), "\x81\xa4$bin\xa4"
                                            "AP8Q");
}

Test(jsonpack, nul_in_an_object_key_is_not_encoded)
{
    json_t *o = json_object();
    json_object_setn_new(o, "k\0z", 3, json_true());
    uint8_t *out = NULL;
    size_t len = 0;
    char err[ERR_LEN];
    cr_expect_eq(jsonpack_from_json(o, &out, &len, err, sizeof err), -1);
    cr_expect_null(out);
    cr_expect_str_eq(err, "NUL byte in an object key");
    json_decref(o);
}

Test(jsonpack, nesting_past_the_limit_is_not_encoded)
{
    uint8_t *out = NULL;
    size_t len = 0;
    char err[ERR_LEN];
    json_t *ok = s_nested(64);
    cr_expect_eq(jsonpack_from_json(ok, &out, &len, err, sizeof err), 0, "%s", err);
    cr_expect_eq(len, 64);
    free(out);
    json_decref(ok);

    json_t *deep = s_nested(65);
    out = (uint8_t *)"x";
    len = 7;
    cr_expect_eq(jsonpack_from_json(deep, &out, &len, err, sizeof err), -1);
    cr_expect_null(out);
    cr_expect_eq(len, 0);
    cr_expect_str_eq(err, "nested deeper than 64");
    json_decref(deep);

    cr_expect_eq(jsonpack_from_json(NULL, &out, &len, err, sizeof err), -1);
    cr_expect_str_eq(err, "no JSON value");
}

/* ------------------------------------------------------------------------ */
/* both ways */

Test(jsonpack, json_text_survives_the_round_trip)
{
    static const char *texts[] = {
        "null",
        "[1, -1, 3.25, \"x\", true, false, null]",
        "{\"a\": {\"b\": [{}, [], \"\"]}, \"c\": \"\\u0000\"}",
        "{\"big\": 9223372036854775807, \"small\": -9223372036854775808, \"r\": 1e300}",
        "\"\\u20ac \\ud83d\\ude00\"",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        json_error_t jerr;
        json_t *v = json_loads(texts[i], JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        cr_assert_not_null(v, "%s: %s", texts[i], jerr.text);
        uint8_t *out = NULL;
        size_t len = 0;
        char err[ERR_LEN];
        cr_assert_eq(jsonpack_from_json(v, &out, &len, err, sizeof err), 0, "%s", err);
        json_t *back = s_dec(out, len);
        cr_expect(json_equal(v, back), "%s did not survive", texts[i]);
        json_decref(back);
        json_decref(v);
        free(out);
    }
}
