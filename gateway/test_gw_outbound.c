/* test_gw_outbound.c - what /metrics shows of the outbound stacks: the breaker state gauge
 * is the breakers' state at the scrape, as /admin/breakers reports it, with exactly one
 * state at 1 per provider whatever the breakers do meanwhile. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_log.h"
#include "gw_outbound.h"

static char dir[64], cfgpath[128];
static gw_config_t *cfg;
static gw_obs_t *obs;
static gw_outbound_t *ob;

static void setup(void)
{
    char err[CM_ERR_LEN] = "";
    int n = 0;
    snprintf(dir, sizeof dir, "/tmp/test_gw_outbound_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(cfgpath, sizeof cfgpath, "%s/gw.json", dir);
    FILE *f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "{\"data_dir\":\"%s\",\"admin_token\":\"tok\","
            "\"providers\":{\"calcom\":{\"base_url\":\"http://127.0.0.1:9\","
            "\"breaker\":{\"failures\":2,\"open_ms\":1000}},"
            "\"stripe\":{\"base_url\":\"http://127.0.0.1:9\"}},"
            "\"tenants\":[{\"id\":\"t\",\"retell\":{\"agent_ids\":[\"ag\"],\"api_keys\":"
            "[\"key_t\"]},\"calcom\":{\"api_key\":\"cal_t\",\"event_type_id\":1},"
            "\"stripe\":{\"api_key\":\"sk_t\",\"webhook_secrets\":[\"whsec_t\"]}}]}",
            dir);
    fclose(f);
    cr_assert_eq(gw_config_load(cfgpath, &cfg, stderr, &n), CM_OK);
    cm_log_set_level("error"); /* breaker transitions are logged as warnings */
    cr_assert_eq(gw_obs_new(NULL, &obs, err), CM_OK, "%s", err);
    cr_assert_eq(gw_outbound_new(cfg, obs, &ob, err), CM_OK, "%s", err);
}

static void teardown(void)
{
    char cmd[128];
    gw_outbound_free(&ob);
    gw_obs_free(&obs);
    gw_config_free(&cfg);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(outbound, .init = setup, .fini = teardown);

/* One scrape of /metrics; the caller frees b. */
static void scrape(cm_buf_t *b)
{
    cm_buf_init(b, 1u << 20);
    cr_assert_eq(gw_metrics_render(obs->reg, b), CM_OK);
}

/* The states provider's gauge shows at 1 in the scrape, comma-separated into states (cap
 * bytes); returns how many. Every other series of the provider must be 0. */
static int states_at_one(const char *text, const char *provider, char *states, size_t cap)
{
    char prefix[96];
    int n = snprintf(prefix, sizeof prefix,
                     "gw_breaker_state{provider=\"%s\",tenant=\"t\",state=\"", provider);
    int ones = 0;
    states[0] = '\0';
    for (const char *p = strstr(text, prefix); p; p = strstr(p + 1, prefix)) {
        const char *name = p + n, *end = strchr(name, '"');
        cr_assert_not_null(end);
        const char *val = strchr(end, ' ');
        cr_assert_not_null(val);
        if (!strncmp(val, " 1\n", 3)) {
            size_t len = strlen(states);
            snprintf(states + len, cap - len, "%s%.*s", ones ? "," : "", (int)(end - name), name);
            ones++;
        } else {
            cr_assert(!strncmp(val, " 0\n", 3), "%.80s", p);
        }
    }
    return ones;
}

/* The state /admin/breakers reports for p at this moment. */
static void admin_state(gw_prov_rt_t *p, char *out, size_t cap)
{
    cm_buf_t b;
    cm_buf_init(&b, 1u << 20);
    cr_assert_eq(gw_breaker_json(gw_outbound_key_at(p, 0)->breaker, cm_clock_mono_ms(),
                                 cm_clock_now_ms(), &b),
                 CM_OK);
    const char *s = strstr(b.data, "\"state\":\"");
    cr_assert_not_null(s, "%s", b.data);
    s += 9;
    snprintf(out, cap, "%.*s", (int)(strchr(s, '"') - s), s);
    cm_buf_free(&b);
}

/* Every state is shown from the first scrape, closed at 1. */
Test(outbound, the_first_scrape_shows_each_provider_closed)
{
    cm_buf_t b;
    char states[128];
    scrape(&b);
    cr_assert_eq(states_at_one(b.data, "calcom", states, sizeof states), 1, "%s", b.data);
    cr_assert_str_eq(states, "closed");
    cr_assert_eq(states_at_one(b.data, "stripe", states, sizeof states), 1, "%s", b.data);
    cr_assert_str_eq(states, "closed");
    cr_assert(strstr(b.data,
                     "gw_breaker_state{provider=\"calcom\",tenant=\"t\",state=\"half_open\"} 0\n"),
              "%s", b.data);
    cm_buf_free(&b);
}

/* The breaker opened 5 s ago with a 1 s wait and no call has come since, nor a lane's
 * tick: /admin/breakers says half_open, and so must /metrics (it said open). */
Test(outbound, a_breaker_past_its_open_wait_is_scraped_half_open_without_any_call)
{
    gw_prov_rt_t *p = gw_outbound_provider(ob, "calcom");
    int64_t then = cm_clock_mono_ms() - 5000;
    for (int i = 0; i < 2; i++) {
        gw_brk_permit_t permit;
        cr_assert_eq(gw_breaker_acquire(gw_outbound_key_at(p, 0)->breaker, then, &permit),
                     GW_BRK_PERMITTED);
        gw_breaker_record(&permit, GW_BRK_FAILURE, then);
    }
    cm_buf_t b;
    char states[128], admin[32];
    scrape(&b);
    cr_assert_eq(states_at_one(b.data, "calcom", states, sizeof states), 1, "%s", b.data);
    cr_assert_str_eq(states, "half_open", "%s", b.data);
    admin_state(p, admin, sizeof admin);
    cr_assert_str_eq(admin, states);
    cr_assert(strstr(b.data, "gw_breaker_transitions_total{provider=\"calcom\",tenant=\"t\","
                             "from=\"open\",to=\"half_open\"} 1\n"),
              "%s", b.data);
    cm_buf_free(&b);
}

typedef struct {
    gw_breaker_t *b;
    atomic_int stop;
} flipper_t;

/* Moves the breaker through every operator state as fast as it can. */
static void *flip(void *arg)
{
    flipper_t *f = arg;
    while (!atomic_load(&f->stop)) {
        gw_breaker_force_open(f->b, cm_clock_mono_ms(), "test");
        gw_breaker_disable(f->b, cm_clock_mono_ms(), "test");
        gw_breaker_reset(f->b, cm_clock_mono_ms(), "test");
    }
    return NULL;
}

/* Scrapes taken while the breaker changes state all the time each show exactly one state
 * at 1 (set from the transition hook, one between its two writes showed none or two). */
Test(outbound, every_scrape_shows_exactly_one_state_while_the_breaker_moves)
{
    flipper_t f = {.b = gw_outbound_key_at(gw_outbound_provider(ob, "calcom"), 0)->breaker};
    pthread_t th;
    atomic_init(&f.stop, 0);
    cr_assert_eq(pthread_create(&th, NULL, flip, &f), 0);
    int bad = 0, scrapes = 0;
    char states[128], first_bad[128] = "";
    int64_t until = cm_clock_mono_ms() + 500;
    while (cm_clock_mono_ms() < until) {
        cm_buf_t b;
        scrape(&b);
        if (states_at_one(b.data, "calcom", states, sizeof states) != 1 && !bad++)
            snprintf(first_bad, sizeof first_bad, "%s", states);
        cm_buf_free(&b);
        scrapes++;
    }
    atomic_store(&f.stop, 1);
    pthread_join(th, NULL);
    cr_assert_eq(bad, 0, "%d of %d scrapes without exactly one state at 1 (first: \"%s\")", bad,
                 scrapes, first_bad);
}

/* Once the outbound stacks are freed, a scrape no longer reads their breakers. */
Test(outbound, a_scrape_after_the_breakers_are_freed_reads_none_of_them)
{
    cm_buf_t b;
    gw_outbound_free(&ob);
    scrape(&b);
    cm_buf_free(&b);
}
