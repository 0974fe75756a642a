/* test_sc_pg.c - the database names and the dropper, against a server that is not there
 * (127.0.0.1 port 1 refuses at once): every drop fails, and the dropper says how many and
 * which first. The real server's side is in the PostgreSQL scenarios (scenarios_suite_pg). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_pg.h"

#define NOWHERE "postgres://u:p@127.0.0.1:1/db?connect_timeout=2"

Test(pg, bad_names_are_refused_before_any_connection)
{
    char err[CM_ERR_LEN] = "", url[256];
    setenv("GW_PG_URL", NOWHERE, 1);
    cr_assert_eq(sc_pg_create("Bad-Name", url, sizeof url, err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "letters, digits and _ only"), "%s", err);
    cr_assert_eq(sc_pg_drop("x; DROP DATABASE y", err), CM_EINVAL);
    cr_assert_not_null(strstr(err, "letters, digits and _ only"), "%s", err);
}

Test(pg, the_dropper_drops_in_turn_and_counts_what_failed)
{
    char err[CM_ERR_LEN] = "", why[160];
    setenv("GW_PG_URL", NOWHERE, 1);
    if (!sc_pg_available(why, sizeof why))
        cr_skip_test("%s", why); /* a runner without libpq */
    cr_assert_eq(sc_pg_drop_wait(err), 0, "nothing handed over, nothing failed");
    /* More than the queue holds: the rest are dropped by the caller, and fail there. */
    size_t failed_inline = 0;
    for (int i = 0; i < SC_PG_DROP_QUEUE + 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "sc_test_%d", i);
        if (sc_pg_drop_later(name, err) != CM_OK) {
            failed_inline++;
            cr_assert_not_null(strstr(err, "PostgreSQL"), "%s", err);
        }
    }
    size_t failed = sc_pg_drop_wait(err);
    cr_assert_eq(failed + failed_inline, SC_PG_DROP_QUEUE + 8, "every drop failed somewhere");
    cr_assert_gt(failed, 0);
    cr_assert_eq(strncmp(err, "sc_test_0: PostgreSQL", 21), 0, "the first, in order: %s", err);
}
