/* test_sc_duration.c - "250ms" / "1.5s" / "2m" / "1h", the day cap, and what is refused
 * (the grammar itself is tested in common/test_cm_common.c). */
#include <criterion/criterion.h>
#include <string.h>

#include "sc_duration.h"

Test(duration, units)
{
    int64_t ms = -1;
    cr_assert_eq(sc_duration_parse("250ms", &ms, NULL), CM_OK);
    cr_assert_eq(ms, 250);
    cr_assert_eq(sc_duration_parse("10s", &ms, NULL), CM_OK);
    cr_assert_eq(ms, 10000);
    cr_assert_eq(sc_duration_parse("2m", &ms, NULL), CM_OK);
    cr_assert_eq(ms, 120000);
    cr_assert_eq(sc_duration_parse("0s", &ms, NULL), CM_OK);
    cr_assert_eq(ms, 0);
    cr_assert_eq(sc_duration_parse("1440m", &ms, NULL), CM_OK);
    cr_assert_eq(ms, SC_DURATION_MAX_MS);
    cr_assert_eq(sc_duration_parse("1.5s", &ms, NULL), CM_OK);
    cr_assert_eq(ms, 1500);
    cr_assert_eq(sc_duration_parse("24h", &ms, NULL), CM_OK);
    cr_assert_eq(ms, SC_DURATION_MAX_MS);
}

Test(duration, refusals_leave_output_alone)
{
    const char *bad[] = {"",      "10",    "s",     "-1s",   "+1s",
                         " 1s",   "1s ",   "0.5ms", "25h",   "10S",
                         "1e3ms", "0x10s", "10 s",  "1441m", "99999999999999999999ms",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        int64_t ms = 42;
        char err[CM_ERR_LEN] = "";
        cr_assert_eq(sc_duration_parse(bad[i], &ms, err), CM_EINVAL, "accepted \"%s\"", bad[i]);
        cr_assert_eq(ms, 42, "\"%s\" changed the output", bad[i]);
        cr_assert_neq(err[0], '\0', "no message for \"%s\"", bad[i]);
    }
    int64_t ms = 1;
    cr_assert_eq(sc_duration_parse(NULL, &ms, NULL), CM_EINVAL);
}

Test(duration, messages_say_what)
{
    int64_t ms;
    char err[CM_ERR_LEN];
    cr_assert_eq(sc_duration_parse("5x", &ms, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "unit must be ms, s, m or h"), "%s", err);
    cr_assert_eq(sc_duration_parse("25h", &ms, err), CM_EINVAL);
    cr_assert_eq(sc_duration_parse("2000m", &ms, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "longer than 24h"), "%s", err);
}

Test(duration, format_round_trips)
{
    char out[24];
    cr_assert_str_eq(sc_duration_format(250, out), "250ms");
    cr_assert_str_eq(sc_duration_format(10000, out), "10s");
    cr_assert_str_eq(sc_duration_format(120000, out), "2m");
    cr_assert_str_eq(sc_duration_format(1500, out), "1500ms");
    cr_assert_str_eq(sc_duration_format(0, out), "0ms");
    int64_t ms;
    cr_assert_eq(sc_duration_parse(sc_duration_format(90000, out), &ms, NULL), CM_OK);
    cr_assert_eq(ms, 90000);
}
