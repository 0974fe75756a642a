/* gw_store_purge_sql.h - the retention statements (gw_store_purge), one text for both
 * backends: P(n) is the n-th parameter, "?n" for SQLite and "$n" for PostgreSQL, defined
 * by the including file before it includes this one. P(1) is the cutoff (ms), P(2) the
 * batch.
 *
 * Each selection scans by id from the oldest row and stops at the first row newer than
 * the cutoff (ids grow with arrival), so its cost is the batch plus the old rows it must
 * keep (dead letters, a needs_human saga's history), not the table. Deleting a batch's
 * jobs does not change which events the selection picks (it only drops finished jobs of
 * events already picked), so the events delete sees the same batch.
 */
#ifndef GW_STORE_PURGE_SQL_H
#define GW_STORE_PURGE_SQL_H

#define GW_PURGE_EVENTS                                                                            \
    "SELECT e.id FROM events e WHERE e.id < COALESCE((SELECT n.id FROM events n WHERE "            \
    "n.received_at_ms >= " P(                                                                      \
        1) " ORDER BY n.id LIMIT 1), 9223372036854775807) AND "                                    \
           "e.received_at_ms < " P(                                                                \
               1) " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.event_id = e.id "                 \
                  "AND j.state NOT IN ('done', 'discarded')) ORDER BY e.id LIMIT " P(2)

#define GW_PURGE_JOBS_SQL "DELETE FROM jobs WHERE event_id IN (" GW_PURGE_EVENTS ")"
#define GW_PURGE_EVENTS_SQL "DELETE FROM events WHERE id IN (" GW_PURGE_EVENTS ")"

/* needs_human is left out of the ended states: a person still has to act on it. */
#define GW_PURGE_STEPS_SQL                                                                         \
    "DELETE FROM saga_steps WHERE id IN (SELECT s.id FROM saga_steps s JOIN sagas g ON g.id = "    \
    "s.saga_id WHERE s.id < COALESCE((SELECT n.id FROM saga_steps n WHERE n.at_ms >= " P(          \
        1) " ORDER BY n.id LIMIT 1), 9223372036854775807) AND g.updated_at_ms < " P(1) " AND "     \
                                                                                       "g.state "  \
                                                                                       "IN "       \
                                                                                       "('"        \
                                                                                       "completed" \
                                                                                       "', "       \
                                                                                       "'failed_"  \
                                                                                       "no_slot'," \
                                                                                       " 'failed_" \
                                                                                       "payment'," \
                                                                                       " '"        \
                                                                                       "compensat" \
                                                                                       "ed', "     \
                                                                                       "'failed'," \
                                                                                       " "         \
                                                                                       "'cancelle" \
                                                                                       "d_by_"     \
                                                                                       "attendee'" \
                                                                                       ") ORDER "  \
                                                                                       "BY s.id "  \
                                                                                       "LIMIT " P( \
                                                                                           2) ")"

#endif
