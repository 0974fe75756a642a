/* test_gw_trace.c - traceparent headers from the W3C spec and its test suite's cases. */
#include <criterion/criterion.h>
#include <string.h>

#include "gw_trace.h"

#define SPEC "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

Test(trace, the_spec_example_round_trips)
{
    gw_traceparent_t t;
    char err[CM_ERR_LEN] = "", out[GW_TRACEPARENT_LEN + 1];
    cr_assert_eq(gw_trace_parse(SPEC, &t, err), CM_OK, "%s", err);
    cr_assert_eq(t.version, 0);
    cr_assert_str_eq(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(t.parent_id, "00f067aa0ba902b7");
    cr_assert_eq(t.flags, 1);
    cr_assert_str_eq(gw_trace_format(&t, out), SPEC);
    cr_assert_eq(gw_trace_parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t, err),
                 CM_OK);
    cr_assert_eq(t.flags, 0);
    /* Optional whitespace around a header value is not part of it. */
    cr_assert_eq(gw_trace_parse(" \t" SPEC " ", &t, err), CM_OK);
}

Test(trace, future_versions_are_read_as_far_as_we_know)
{
    gw_traceparent_t t;
    char err[CM_ERR_LEN], out[GW_TRACEPARENT_LEN + 1];
    cr_assert_eq(gw_trace_parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-"
                                "the-future-holds",
                                &t, err),
                 CM_OK, "%s", err);
    cr_assert_eq(t.version, 0xcc);
    cr_assert_eq(gw_trace_parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &t, err),
                 CM_OK);
    gw_traceparent_t child;
    cm_rand_t rng;
    cm_rand_seed(&rng, 1);
    gw_trace_child(&t, &rng, &child);
    gw_trace_format(&child, out);
    cr_assert_eq(strncmp(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0, "%s", out);
    cr_assert_str_eq(out + 52, "-01", "unknown flag bits are cleared: %s", out);
}

Test(trace, invalid_headers_are_refused)
{
    const char *bad[] = {
        "",
        "00",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* version ff */
        "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* short version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",  /* uppercase */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",   /* trace id 31 */
        "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", /* trace id 33 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",   /* parent id 15 */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",   /* flags 1 char */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",  /* flags not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", /* 00 with extra */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-010", /* 00 too long */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  /* separator */
        "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.", /* future, no dash */
        "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 x",
        "00-4bf92f3577b34da6a3ce9\0019d0e0e4736-00f067aa0ba902b7-01", /* control char */
    };
    gw_traceparent_t t = {.version = 7};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(gw_trace_parse(bad[i], &t, err), CM_EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert(err[0], "no reason for \"%s\"", bad[i]);
    }
    cr_assert_eq(gw_trace_parse(NULL, &t, NULL), CM_EINVAL);
    cr_assert_eq(t.version, 7, "a refused header leaves the output alone");
}

Test(trace, children_keep_the_trace_and_get_fresh_spans)
{
    gw_traceparent_t in, c1, c2;
    char err[CM_ERR_LEN], out[GW_TRACEPARENT_LEN + 1];
    cm_rand_t rng;
    cm_rand_seed(&rng, 42);
    cr_assert_eq(gw_trace_parse(SPEC, &in, err), CM_OK);
    gw_trace_child(&in, &rng, &c1);
    gw_trace_child(&in, &rng, &c2);
    cr_assert_str_eq(c1.trace_id, in.trace_id);
    cr_assert_str_neq(c1.parent_id, in.parent_id);
    cr_assert_str_neq(c1.parent_id, c2.parent_id);
    gw_trace_format(&c1, out);
    cr_assert_eq(strlen(out), GW_TRACEPARENT_LEN);
    gw_traceparent_t back;
    cr_assert_eq(gw_trace_parse(out, &back, err), CM_OK, "%s: %s", out, err);
    cr_assert_str_eq(back.parent_id, c1.parent_id);
    /* An unsampled trace stays unsampled. */
    in.flags = 0;
    gw_trace_child(&in, &rng, &c1);
    cr_assert_eq(c1.flags, 0);
}

Test(trace, new_roots_are_valid_and_reproducible)
{
    cm_rand_t a, b;
    cm_rand_seed(&a, 9);
    cm_rand_seed(&b, 9);
    for (int i = 0; i < 1000; i++) {
        gw_traceparent_t x, y, back;
        char sx[GW_TRACEPARENT_LEN + 1], sy[GW_TRACEPARENT_LEN + 1], err[CM_ERR_LEN];
        gw_trace_new(&a, GW_TRACE_SAMPLED, &x);
        gw_trace_new(&b, GW_TRACE_SAMPLED, &y);
        cr_assert_str_eq(gw_trace_format(&x, sx), gw_trace_format(&y, sy));
        cr_assert_eq(gw_trace_parse(sx, &back, err), CM_OK, "%s: %s", sx, err);
        cr_assert_eq(back.flags, 1);
    }
}
