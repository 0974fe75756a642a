/* test_sc_yaml.c - YAML read as JSON: types, anchors, and every refusal with its place. */
#include <criterion/criterion.h>
#include <string.h>

#include "cm_json.h"
#include "sc_yaml.h"

static json_t *yaml_ok(const char *text)
{
    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(sc_yaml_parse(text, strlen(text), &v, err), CM_OK, "%s\n---\n%s", err, text);
    cr_assert_not_null(v);
    return v;
}

Test(yaml, a_scenario_reads_as_its_json)
{
    json_t *v = yaml_ok("# yaml-language-server: $schema=../../docs/scenario.schema.json\n"
                        "name: a call books once\n"
                        "tags: [basic, saga]\n"
                        "seed: 7\n"
                        "speed: 10\n"
                        "steps:\n"
                        "  - call: { fixture: fixtures/retell/call_booking.json }\n"
                        "  - webhook: { provider: retell, call: \"${call.call_id}\" }\n"
                        "    expect: { statuses: [204] }\n"
                        "  - wait:\n"
                        "      request: { to: gateway, path: \"/admin/sagas/${call.call_id}\" }\n"
                        "      until: { json: { saga.state: completed } }\n"
                        "      within: 1.5s\n");
    json_t *want = NULL;
    const char *json =
        "{\"name\":\"a call books once\",\"tags\":[\"basic\",\"saga\"],\"seed\":7,\"speed\":10,"
        "\"steps\":[{\"call\":{\"fixture\":\"fixtures/retell/call_booking.json\"}},"
        "{\"webhook\":{\"provider\":\"retell\",\"call\":\"${call.call_id}\"},"
        "\"expect\":{\"statuses\":[204]}},"
        "{\"wait\":{\"request\":{\"to\":\"gateway\",\"path\":\"/admin/sagas/${call.call_id}\"},"
        "\"until\":{\"json\":{\"saga.state\":\"completed\"}},\"within\":\"1.5s\"}}]}";
    cr_assert_eq(cm_json_parse(json, strlen(json), 1 << 20, &want, NULL), CM_OK);
    cr_expect(json_equal(v, want), "got %s", json_dumps(v, JSON_COMPACT));
    json_decref(want);
    json_decref(v);
}

Test(yaml, scalars_resolve_as_the_core_schema_says)
{
    json_t *v = yaml_ok("a: ~\nb: null\nc:\nd: true\ne: False\nf: -12\ng: 2.5\nh: 1e3\n"
                        "i: '12'\nj: \"true\"\nk: yes\nl: 250ms\nm: 2050-09-05T09:00:00.000Z\n"
                        "n: !!str 12\no: |\n  two\n  lines\np: 0x10\nq: +7\n");
    cr_expect(json_is_null(json_object_get(v, "a")));
    cr_expect(json_is_null(json_object_get(v, "b")));
    cr_expect(json_is_null(json_object_get(v, "c")));
    cr_expect(json_is_true(json_object_get(v, "d")));
    cr_expect(json_is_false(json_object_get(v, "e")));
    cr_expect_eq(json_integer_value(json_object_get(v, "f")), -12);
    cr_expect(json_is_real(json_object_get(v, "g")) &&
              json_real_value(json_object_get(v, "g")) == 2.5);
    cr_expect(json_is_real(json_object_get(v, "h")));
    cr_expect_str_eq(json_string_value(json_object_get(v, "i")), "12", "quoted stays a string");
    cr_expect_str_eq(json_string_value(json_object_get(v, "j")), "true");
    cr_expect_str_eq(json_string_value(json_object_get(v, "k")), "yes", "YAML 1.2: not a bool");
    cr_expect_str_eq(json_string_value(json_object_get(v, "l")), "250ms");
    cr_expect_str_eq(json_string_value(json_object_get(v, "m")), "2050-09-05T09:00:00.000Z");
    cr_expect_str_eq(json_string_value(json_object_get(v, "n")), "12");
    cr_expect_str_eq(json_string_value(json_object_get(v, "o")), "two\nlines\n");
    cr_expect_str_eq(json_string_value(json_object_get(v, "p")), "0x10", "decimal only");
    cr_expect_eq(json_integer_value(json_object_get(v, "q")), 7);
    json_decref(v);
}

Test(yaml, anchors_copy_finished_nodes)
{
    json_t *v = yaml_ok("base: &b { to: gateway, path: /admin/queue }\n"
                        "one: *b\n"
                        "list: [&x 3, *x]\n");
    cr_expect(json_equal(json_object_get(v, "base"), json_object_get(v, "one")));
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(v, "list"), 1)), 3);
    /* A copy, not a shared node: changing one leaves the other. */
    json_object_set_new(json_object_get(v, "one"), "path", json_string("/x"));
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(v, "base"), "path")),
                     "/admin/queue");
    json_decref(v);
}

Test(yaml, refusals_name_the_place)
{
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"a: 1\na: 2\n", "line 2, column 1: the key \"a\" appears twice"},
        {"a: 1\n---\nb: 2\n", "more than one document"},
        {"", "holds no YAML document"},
        {"? [a]\n: 1\n", "a mapping key must be a plain string"},
        {"a: .inf\n", ".inf and .nan have no JSON form"},
        {"a: !!binary aGk=\n", "the tag tag:yaml.org,2002:binary is not supported"},
        {"a: !!int x\n", "!!int holds no decimal integer"},
        {"a: 99999999999999999999\n", "an integer out of range"},
        {"a: *nope\n", "*nope names no anchor"},
        {"a: &r [*r]\n", "*r names no anchor defined (and finished) before it"},
        {"a: [1, 2\n", "line "},
        {"a: \"x\\0y\"\n", "NUL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *v = (json_t *)1;
        char err[CM_ERR_LEN] = "";
        cr_expect_neq(sc_yaml_parse(bad[i].text, strlen(bad[i].text), &v, err), CM_OK, "%s",
                      bad[i].text);
        cr_expect_null(v, "%s", bad[i].text);
        cr_expect(strstr(err, bad[i].want), "%s: \"%s\" lacks \"%s\"", bad[i].text, err,
                  bad[i].want);
    }
}

Test(yaml, deep_nesting_is_bounded)
{
    char text[400];
    memset(text, '[', 200);
    text[200] = '\0';
    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    cr_expect_eq(sc_yaml_parse(text, strlen(text), &v, err), CM_EINVAL);
    cr_expect(strstr(err, "deeper than 64"), "%s", err);
}

/* Ten anchors, each aliasing the one before ten times: 10^10 nodes from 600 bytes. */
Test(yaml, alias_bombs_are_bounded)
{
    char text[2048];
    size_t n = (size_t)snprintf(text, sizeof text, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "a%d: &a%d [", i, i);
        for (int k = 0; k < 10; k++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%s*a%d", k ? ", " : "", i - 1);
        n += (size_t)snprintf(text + n, sizeof text - n, "]\n");
    }
    json_t *v = NULL;
    char err[CM_ERR_LEN] = "";
    cr_expect_eq(sc_yaml_parse(text, n, &v, err), CM_EINVAL);
    cr_expect_null(v);
    cr_expect(strstr(err, "more than 1000000 nodes"), "%s", err);
}

Test(yaml, names)
{
    cr_expect(sc_yaml_path("a/b.yaml"));
    cr_expect(sc_yaml_path("b.yml"));
    cr_expect_not(sc_yaml_path("b.json"));
    cr_expect_not(sc_yaml_path(".yml"));
}
