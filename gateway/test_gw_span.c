/* test_gw_span.c - span contexts and sampling, the exporter's bounded queue against a
 * collector that never answers (nothing waits, every span is counted), and the tracing
 * section of the configuration. The spans' wire format and tree are checked end to end by
 * tests/otlp/test_otlp.py against a receiver. */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_clock.h"
#include "cm_http_client.h"
#include "gw_config.h"
#include "gw_obs.h"
#include "gw_otlp.h"
#include "gw_span.h"

Test(span, without_an_exporter_the_context_still_flows)
{
    gw_span_t root, child;
    gw_span_start(&root, NULL, "root", GW_SPAN_SERVER, NULL);
    cr_assert_eq(root.recording, 0);
    cr_assert_eq(root.ctx.flags, GW_TRACE_SAMPLED, "providers keep seeing sampled traces");
    cr_assert_str_eq(root.parent_span_id, "");
    gw_traceparent_t t;
    cr_assert_eq(gw_trace_parse(root.traceparent, &t, NULL), CM_OK, "%s", root.traceparent);
    gw_span_start(&child, NULL, "child", GW_SPAN_INTERNAL, root.traceparent);
    cr_assert_str_eq(child.ctx.trace_id, root.ctx.trace_id);
    cr_assert_str_eq(child.parent_span_id, root.ctx.parent_id);
    cr_assert_str_neq(child.ctx.parent_id, root.ctx.parent_id);
    gw_span_end(&child); /* no-ops */
    gw_span_end(&root);
}

Test(span, a_senders_context_is_continued_and_a_bad_one_ignored)
{
    gw_span_t s;
    gw_span_start(&s, NULL, "intake", GW_SPAN_SERVER,
                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    cr_assert_str_eq(s.ctx.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    cr_assert_str_eq(s.parent_span_id, "00f067aa0ba902b7");
    cr_assert_eq(s.ctx.flags, 0, "the sender's sampling decision is kept (parent-based)");
    const char *bad[] = {"mallory@evil.example+15551234567",
                         "00-mallory@evil.example+15551234567-00f067aa0ba902b7-01",
                         "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gw_span_start(&s, NULL, "intake", GW_SPAN_SERVER, bad[i]);
        cr_assert_str_eq(s.parent_span_id, "", "\"%s\" must start a new trace", bad[i]);
        cr_assert_eq(strspn(s.ctx.trace_id, "0123456789abcdef"), 32, "%s", s.ctx.trace_id);
    }
}

Test(span, start_at_moves_the_start_back)
{
    gw_span_t s;
    int64_t before = cm_clock_mono_ns() - 50000000; /* 50 ms ago */
    gw_span_start(&s, NULL, "x", GW_SPAN_SERVER, NULL);
    int64_t started = s._start_ns;
    gw_span_start_at(&s, before);
    cr_assert_geq(started - s._start_ns, 50000000, "moved back %lld ns",
                  (long long)(started - s._start_ns));
}

static gw_otlp_t *exporter(const char *url, double ratio, unsigned queue, unsigned batch,
                           long timeout_ms, gw_obs_t *obs)
{
    gw_otlp_cfg_t c = {.endpoint = url,
                       .service_name = "t",
                       .sample_ratio = ratio,
                       .queue_size = queue,
                       .batch_size = batch,
                       .flush_ms = 1,
                       .timeout_ms = timeout_ms,
                       .exported = obs ? obs->spans_exported : NULL,
                       .dropped = obs ? obs->spans_dropped : NULL};
    gw_otlp_t *o = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(gw_otlp_new(&c, &o, err), CM_OK, "%s", err);
    return o;
}

Test(span, sampling_follows_the_ratio_on_the_trace_id)
{
    gw_otlp_t *none = exporter("http://127.0.0.1:9/v1/traces", 0, 8, 8, 100, NULL);
    gw_otlp_t *all = exporter("http://127.0.0.1:9/v1/traces", 1, 8, 8, 100, NULL);
    gw_otlp_t *half = exporter("http://127.0.0.1:9/v1/traces", 0.5, 8, 8, 100, NULL);
    cm_rand_t rng;
    cm_rand_seed(&rng, 16);
    int n_half = 0;
    for (int i = 0; i < 10000; i++) {
        gw_traceparent_t t;
        gw_trace_new(&rng, 0, &t);
        cr_assert_eq(gw_otlp_sample(none, t.trace_id), 0);
        cr_assert_eq(gw_otlp_sample(all, t.trace_id), 1);
        n_half += gw_otlp_sample(half, t.trace_id);
    }
    /* Binomial(10000, 0.5): 4700..5300 is more than 6 standard deviations wide. */
    cr_assert(n_half > 4700 && n_half < 5300, "%d of 10000 sampled at 0.5", n_half);
    gw_span_t s;
    gw_span_start(&s, none, "x", GW_SPAN_SERVER, NULL);
    cr_assert_eq(s.recording, 0);
    cr_assert_eq(s.ctx.flags, 0, "an unsampled trace goes out unsampled");
    gw_otlp_free(&none);
    gw_otlp_free(&all);
    gw_otlp_free(&half);
    cr_assert_null(half);
}

static double value(gw_mfamily_t *f, const char *label)
{
    return gw_mseries_value(gw_metrics_with(f, label ? GW_LV(label) : NULL));
}

/* A collector that takes the connection and never answers (a listening socket nobody
 * accepts from: the kernel completes the handshake). */
Test(span, a_collector_that_never_answers_costs_spans_not_time)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 16), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/v1/traces", (unsigned)ntohs(a.sin_port));
    cr_assert_eq(cm_http_global_init(), CM_OK);
    gw_obs_t *obs = NULL;
    char err[CM_ERR_LEN] = "";
    cr_assert_eq(gw_obs_new(NULL, &obs, err), CM_OK, "%s", err);
    const long timeout_ms = 3000;
    gw_otlp_t *o = exporter(url, 1, 16, 4, timeout_ms, obs);
    const int n = 2000;
    int64_t t0 = cm_clock_mono_ms();
    for (int i = 0; i < n; i++) {
        gw_span_t s;
        gw_span_start(&s, o, "work", GW_SPAN_INTERNAL, NULL);
        gw_span_int(&s, "i", i);
        gw_span_end(&s);
    }
    int64_t took = cm_clock_mono_ms() - t0;
    /* The first batch's export hangs for timeout_ms: had a span waited for it, the loop
     * would have lasted at least that long. */
    cr_assert_lt(took, timeout_ms / 2, "%d spans took %lld ms with the export hanging", n,
                 (long long)took);
    cr_assert_leq(gw_otlp_queued(o), 16);
    cr_assert_geq(value(obs->spans_dropped, "queue_full"), n - 16 - 4);
    gw_otlp_free(&o); /* the hanging export times out; what is left is dropped */
    double exported = value(obs->spans_exported, NULL);
    double full = value(obs->spans_dropped, "queue_full");
    double failed = value(obs->spans_dropped, "export_failed");
    cr_assert_eq(exported, 0);
    cr_assert_eq(full + failed, n, "every span counted: %g queue_full + %g export_failed", full,
                 failed);
    cr_assert_gt(failed, 0);
    gw_obs_free(&obs);
    close(fd);
}

/* ---- configuration ---------------------------------------------------------------- */

static char report[8192];

static int load(const char *tracing, gw_config_t **cfg)
{
    char path[64], text[2048];
    snprintf(path, sizeof path, "/tmp/test_gw_span_%d.json", (int)getpid());
    snprintf(text, sizeof text,
             "{\"data_dir\":\"/tmp/x\",\"admin_token\":\"tok\",\"providers\":{\"calcom\":"
             "{\"base_url\":\"http://127.0.0.1:1\"}},\"tenants\":[{\"id\":\"acme\",\"retell\":{"
             "\"agent_ids\":[\"ag1\"],\"api_keys\":[\"key_1\"]},\"calcom\":{\"api_key\":\"c\","
             "\"event_type_id\":1}}]%s%s}",
             tracing ? ",\"tracing\":" : "", tracing ? tracing : "");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    FILE *r = fmemopen(report, sizeof report, "w");
    int n = 0;
    memset(report, 0, sizeof report);
    cm_err_t rc = gw_config_load(path, cfg, r, &n);
    fclose(r);
    remove(path);
    cr_assert_eq(rc == CM_OK, n == 0);
    return n;
}

Test(span_config, off_by_default)
{
    gw_config_t *cfg = NULL;
    cr_assert_eq(load(NULL, &cfg), 0, "%s", report);
    cr_assert_eq(cfg->tracing.enabled, 0);
    gw_config_free(&cfg);
    cr_assert_eq(load("{\"enabled\":false}", &cfg), 0, "%s", report);
    cr_assert_eq(cfg->tracing.enabled, 0);
    gw_config_free(&cfg);
}

Test(span_config, a_full_section)
{
    gw_config_t *cfg = NULL;
    setenv("TEST_GW_SPAN_AUTH", "Bearer abc", 1);
    cr_assert_eq(load("{\"endpoint\":\"https://otel.example:4318/v1/traces\",\"headers\":{"
                      "\"Authorization\":{\"env\":\"TEST_GW_SPAN_AUTH\"},\"X-Team\":\"b\"},"
                      "\"service_name\":\"gw-eu\",\"sample_ratio\":0.25,\"queue_size\":100,"
                      "\"batch_size\":10,\"flush_ms\":200,\"timeout_ms\":500}",
                      &cfg),
                 0, "%s", report);
    const gw_tracing_t *t = &cfg->tracing;
    cr_assert_eq(t->enabled, 1);
    cr_assert_str_eq(t->endpoint, "https://otel.example:4318/v1/traces");
    cr_assert_str_eq(t->headers[0], "Authorization: Bearer abc");
    cr_assert_str_eq(t->headers[1], "X-Team: b");
    cr_assert_null(t->headers[2]);
    cr_assert_str_eq(t->service_name, "gw-eu");
    cr_assert_float_eq(t->sample_ratio, 0.25, 1e-9);
    cr_assert_eq(t->queue_size, 100);
    cr_assert_eq(t->batch_size, 10);
    cr_assert_eq(t->flush_ms, 200);
    cr_assert_eq(t->timeout_ms, 500);
    gw_config_free(&cfg);
}

Test(span_config, every_bad_setting_is_named)
{
    gw_config_t *cfg = NULL;
    int n = load("{\"endpoint\":\"otel:4318\",\"sample_ratio\":1.5,\"queue_size\":4,"
                 "\"batch_size\":8,\"headers\":{\"Bad Name\":\"x\",\"X-Ok\":\"a\\r\\nInjected: 1\","
                 "\"Content-Type\":\"text/plain\"},\"flush\":1}",
                 &cfg);
    cr_assert_null(cfg);
    cr_assert_eq(n, 7, "%s", report);
    cr_assert(strstr(report, "tracing: \"endpoint\" must start with http:// or https://"), "%s",
              report);
    cr_assert(strstr(report, "\"sample_ratio\" must be a number from 0 to 1"), "%s", report);
    cr_assert(strstr(report, "\"batch_size\" cannot exceed \"queue_size\" (4)"), "%s", report);
    cr_assert(strstr(report, "tracing.headers.Bad Name: not a header name"), "%s", report);
    cr_assert(strstr(report, "tracing.headers.X-Ok: the value holds a control character"), "%s",
              report);
    cr_assert(strstr(report, "tracing.headers.Content-Type: not a header name"), "%s", report);
    cr_assert(strstr(report, "tracing: unknown key \"flush\""), "%s", report);
    cr_assert_eq(load("{\"service_name\":\"x\"}", &cfg), 1, "%s", report);
    cr_assert(strstr(report, "tracing: \"endpoint\" is required"), "%s", report);
}
