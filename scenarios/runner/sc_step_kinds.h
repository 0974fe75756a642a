/* sc_step_kinds.h - every step kind, listed once (an X-macro, as varnishtest lists its
 * commands once): SC_STEP_KIND(ENUM, "key", definition).
 *
 * The enum sc_step_kind_t (sc_scenario.h) and the table sc_steps.c dispatches through are
 * made from this list; each definition (sc_step_def.h) lives in its kind's own file. A new
 * step kind is one line here, one sc_step_def_t in its file and its part of the schema
 * (docs/scenario.schema.json). No include guard: it is meant to be included several times. */
SC_STEP_KIND(REQUEST, "request", sc_step_request)    /* sc_step_http.c */
SC_STEP_KIND(CALL, "call", sc_step_call)             /* sc_step_provider.c */
SC_STEP_KIND(WEBHOOK, "webhook", sc_step_webhook)    /* sc_step_provider.c */
SC_STEP_KIND(WAIT, "wait", sc_step_wait)             /* sc_step_http.c */
SC_STEP_KIND(GATEWAY, "gateway", sc_step_gateway)    /* sc_step_parts.c */
SC_STEP_KIND(POSTGRES, "postgres", sc_step_postgres) /* sc_step_parts.c */
SC_STEP_KIND(REPEAT, "repeat", sc_step_repeat)       /* sc_step_flow.c */
SC_STEP_KIND(INCLUDE, "include", sc_step_include)    /* sc_step_flow.c */
SC_STEP_KIND(CHAOS, "chaos", sc_step_chaos)          /* sc_step_parts.c */
SC_STEP_KIND(FAULT, "fault", sc_step_fault)          /* sc_step_provider.c */
SC_STEP_KIND(EXPECT, "expect", sc_step_expect)       /* sc_step_expect.c; high-level checks,
                                                        rewritten into requests at load */
SC_STEP_KIND(LOG, "log", sc_step_log)                /* sc_step_expect.c; the gateway's output */
