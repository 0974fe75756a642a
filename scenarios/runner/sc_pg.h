/* sc_pg.h - a fresh PostgreSQL database for a scenario that says "store": "postgres".
 *
 * Scenarios run in parallel and simulators hand out the same seeded ids in every scenario,
 * so two scenarios must never share a database: each gets its own, created on the server
 * that $GW_PG_URL names (its role needs CREATEDB; ci/pg's has it) and dropped when the
 * scenario ends. The gateway is given the new database's URL as GW_PG_URL.
 * Without libpq in this build, or without $GW_PG_URL, such a scenario is skipped with the
 * reason (run it under `ci/pg run`). Thread-safe: each call has its own connection.
 */
#ifndef SC_PG_H
#define SC_PG_H

#include <stddef.h>

#include "cm_err.h"

/* 1 when a database can be made: libpq is built in and $GW_PG_URL is set; otherwise 0
 * and why (cap bytes) says what is missing. */
int sc_pg_available(char *why, size_t cap);

/* Creates database name (letters, digits, '_') on $GW_PG_URL's server and writes its URL
 * (the same with the database replaced) into url (cap bytes). err (CM_ERR_LEN) names the
 * failure: CM_EINVAL (bad name or URL), CM_EIO (the server refused or is unreachable). */
cm_err_t sc_pg_create(const char *name, char *url, size_t cap, char *err) CM_WUR;

/* Drops it (WITH FORCE: a gateway killed by the scenario may have left connections). */
cm_err_t sc_pg_drop(const char *name, char *err) CM_WUR;

#endif
