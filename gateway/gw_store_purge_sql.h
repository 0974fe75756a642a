/* gw_store_purge_sql.h - the retention statements (gw_store_purge), one text for both
 * backends: the including file defines the parameters before it includes this one,
 * GW_PURGE_CUT (the cutoff, ms: "?1" for SQLite, "$1" for PostgreSQL) and GW_PURGE_BATCH
 * ("?2", "$2").
 *
 * Each selection walks its time index (events_received, saga_steps_at: schema 5 on SQLite,
 * 3 on PostgreSQL) from the oldest row and stops after the batch, so its cost is the batch
 * plus the old rows it must keep (dead letters, a needs_human saga's history), not the
 * table. Deleting a batch's jobs does not change which events the selection picks (it only
 * drops finished jobs of events already picked), so the events delete sees the same batch.
 */
#ifndef GW_STORE_PURGE_SQL_H
#define GW_STORE_PURGE_SQL_H

#define GW_PURGE_EVENTS                                                                            \
    "SELECT e.id FROM events e WHERE e.received_at_ms < " GW_PURGE_CUT                             \
    " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = e.id AND j.state NOT IN "            \
    "('done', 'discarded')) ORDER BY e.received_at_ms, e.id LIMIT " GW_PURGE_BATCH

#define GW_PURGE_JOBS_SQL "DELETE FROM jobs WHERE event_id IN (" GW_PURGE_EVENTS ")"
#define GW_PURGE_EVENTS_SQL "DELETE FROM events WHERE id IN (" GW_PURGE_EVENTS ")"

/* needs_human is left out of the ended states: a person still has to act on it. */
#define GW_PURGE_STEPS_SQL                                                                         \
    "DELETE FROM saga_steps WHERE id IN (SELECT s.id FROM saga_steps s JOIN sagas g ON g.id = "    \
    "s.saga_id WHERE s.at_ms < " GW_PURGE_CUT " AND g.updated_at_ms < " GW_PURGE_CUT               \
    " AND g.state IN ('completed', 'failed_no_slot', 'failed_payment', 'compensated', 'failed', "  \
    "'cancelled_by_attendee') ORDER BY s.at_ms, s.id LIMIT " GW_PURGE_BATCH ")"

#endif
