/* sc_pg.h - a fresh PostgreSQL database for a scenario that says "store": "postgres".
 *
 * Scenarios run in parallel and simulators hand out the same seeded ids in every scenario,
 * so two scenarios must never share a database: each gets its own, created on the server
 * that $GW_PG_URL names (its role needs CREATEDB; ci/pg's has it) and dropped when the
 * scenario ends. The gateway is given the new database's URL as GW_PG_URL.
 * Without libpq in this build, or without $GW_PG_URL, such a scenario is skipped with the
 * reason (run it under `ci/pg run`). Thread-safe: each call has its own connection.
 *
 * Dropping a database forces a checkpoint on the server, a second or two on a busy one;
 * a scenario need not wait for it, so its database goes to the dropper (sc_pg_drop_later):
 * one thread of the runner's, started on first use, that drops them in turn while the next
 * scenarios run. sc_pg_drop_wait, before the runner exits, waits for it.
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

/* Hands name (copied) to the dropper and returns at once. When the dropper cannot take it
 * (SC_PG_DROP_QUEUE names wait already, or no thread could be started) it is dropped here
 * and now: the return is sc_pg_drop's. Any thread. */
#define SC_PG_DROP_QUEUE 64
cm_err_t sc_pg_drop_later(const char *name, char *err) CM_WUR;

/* Waits until every database handed to sc_pg_drop_later is dropped and ends the dropper (a
 * later sc_pg_drop_later starts it again). Returns how many could not be dropped since the
 * last call; err (CM_ERR_LEN) then names the first and why. Call it when no scenario runs
 * (the runner's main thread, before it exits), from one thread at a time. */
size_t sc_pg_drop_wait(char *err);

#endif
