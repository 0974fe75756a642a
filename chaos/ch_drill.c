/* ch_drill.c - chaos-drill: writes a randomised chaos drill as a scenario file.
 *
 *   chaos-drill [--seed N] [--rounds R] [--calls K] [--kill-pct P] [--instances N]
 *               [--out FILE]
 *
 * A drill is an ordinary scenario (scenarios/README.md), so the runner starts the parts,
 * puts the chaos proxy on every link, checks, and reports it like any other: JUnit, JSON,
 * HTML timeline. Each round draws, from the seed, a set of faults per link (latency,
 * jitter, slicing, bandwidth, resets, hangs with and without hang_max, a link down; written
 * in the simulators' fault vocabulary, chaos/README.md), sends K booking calls through the
 * Retell simulator while those faults hold, and sometimes kills the gateway with SIGKILL
 * and starts it again. With --instances N (2-8) the drill runs N gateway instances on one
 * PostgreSQL database ("store": "postgres": the runner needs GW_PG_URL, ci/pg gives one),
 * the chaos proxy hands Retell's deliveries to them in turn, and each kill picks one
 * instance (its own random stream: the faults of a seed are the same for any N). At the
 * end the links are cleared, every call's
 * webhook is delivered once more (as Retell's replay or an operator would: a webhook the
 * gateway never acknowledged was the provider's to retry, not ours to have lost) and the
 * invariants are checked: every saga completed, exactly one booking and one charge per
 * call, no refund, nothing dead-lettered.
 *
 * The same arguments always give the same file (the seed is printed in its name and
 * description). Exit status: 0 written, 2 usage error, 1 I/O error.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_clock.h"
#include "cm_duration.h"
#include "cm_json.h"
#include "cm_rand.h"

#define MAX_ROUNDS 200
#define MAX_CALLS 50
/* Calls go into the simulated host's working day (09:00-17:00 UTC, 30-minute event type),
 * one distinct slot each, starting on this day. */
#define FIRST_DAY_MS 2545981200000LL /* 2050-09-05T09:00:00Z */
#define SLOTS_PER_DAY 16

typedef struct {
    long long seed, rounds, calls, kill_pct, instances;
    const char *out;
} opts_t;

static int parse_num(const char *flag, const char *v, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || errno || *end || !*v || n < min || n > max) {
        fprintf(stderr, "chaos-drill: %s needs a whole number from %lld to %lld\n", flag, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.seed = 1, .rounds = 6, .calls = 4, .kill_pct = 25, .instances = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc;
        if (!strcmp(a, "--seed"))
            rc = parse_num(a, v, 0, (long long)1 << 53, &o->seed);
        else if (!strcmp(a, "--rounds"))
            rc = parse_num(a, v, 1, MAX_ROUNDS, &o->rounds);
        else if (!strcmp(a, "--calls"))
            rc = parse_num(a, v, 1, MAX_CALLS, &o->calls);
        else if (!strcmp(a, "--kill-pct"))
            rc = parse_num(a, v, 0, 100, &o->kill_pct);
        else if (!strcmp(a, "--instances"))
            rc = parse_num(a, v, 1, 8, &o->instances);
        else if (!strcmp(a, "--out") && v && *v)
            o->out = v, rc = 0;
        else {
            fprintf(stderr,
                    "chaos-drill: unknown or incomplete option '%s'\n"
                    "usage: chaos-drill [--seed N] [--rounds R] [--calls K] [--kill-pct P] "
                    "[--instances N] [--out FILE]\n",
                    a);
            return -1;
        }
        if (rc)
            return -1;
        i++;
    }
    if (o->rounds * o->calls > SLOTS_PER_DAY * 60) {
        fprintf(stderr, "chaos-drill: rounds x calls must stay under %d\n", SLOTS_PER_DAY * 60);
        return -1;
    }
    return 0;
}

static long long between(cm_rand_t *r, long long lo, long long hi)
{
    return lo + (long long)cm_rand_below(r, (uint64_t)(hi - lo + 1));
}

/* A duration as the faults write it ("250ms", "1.5s"): a new JSON string. */
static json_t *dur(long long ms)
{
    char text[32];
    return json_string(cm_duration_format(ms, text));
}

static const char *direction(cm_rand_t *r)
{
    static const char *const d[] = {"upstream", "downstream", "both"};
    return d[cm_rand_below(r, 3)];
}

/* Faults for a provider link (the gateway's calls out). Everything here is transient for
 * the gateway: its queue, retries and breaker must ride it out. */
static json_t *provider_faults(cm_rand_t *r)
{
    json_t *list = json_array();
    long long a, b;
    const char *d;
    switch (cm_rand_below(r, 9)) {
    case 0:
    case 1: /* a quiet round */
        break;
    case 2:
        /* Draws into locals, in reading order: C leaves the order of a call's arguments
         * unspecified, and a seed must give the same drill whatever the compiler. */
        a = between(r, 50, 900);
        b = between(r, 0, 200);
        json_array_append_new(list, json_pack("{s:o,s:o}", "latency", dur(a), "jitter", dur(b)));
        break;
    case 3:
        a = between(r, 8, 256);
        b = between(r, 0, 20);
        d = direction(r);
        json_array_append_new(
            list, json_pack("{s:I,s:o,s:s}", "slice", a, "interval", dur(b), "direction", d));
        break;
    case 4:
        json_array_append_new(list, json_pack("{s:I,s:s}", "bandwidth", between(r, 500, 20000),
                                              "direction", "downstream"));
        break;
    case 5:
        a = between(r, 0, 400);
        d = direction(r);
        b = between(r, 0, 4);
        json_array_append_new(list,
                              json_pack("{s:s,s:I,s:s,s:f}", "socket", "reset", "after_bytes", a,
                                        "direction", d, "probability", 0.2 + 0.1 * (double)b));
        break;
    case 6:
        d = direction(r);
        b = between(r, 0, 3);
        json_array_append_new(list, json_pack("{s:s,s:s,s:f}", "socket", "hang", "direction", d,
                                              "probability", 0.2 + 0.1 * (double)b));
        break;
    case 7:
        a = between(r, 100, 1000);
        b = between(r, 0, 4);
        json_array_append_new(list, json_pack("{s:s,s:o,s:f}", "socket", "hang", "hang_max", dur(a),
                                              "probability", 0.3 + 0.1 * (double)b));
        break;
    default:
        json_array_append_new(list, json_pack("{s:b}", "down", 1));
        break;
    }
    return list;
}

/* Faults for Retell's deliveries into the gateway: whatever happens, some of Retell's
 * retries must get through or the final redelivery catches the call. */
static json_t *gateway_faults(cm_rand_t *r)
{
    json_t *list = json_array();
    long long a, b;
    switch (cm_rand_below(r, 5)) {
    case 0:
    case 1:
        break;
    case 2:
        a = between(r, 20, 400);
        b = between(r, 0, 100);
        json_array_append_new(list, json_pack("{s:o,s:o}", "latency", dur(a), "jitter", dur(b)));
        break;
    case 3: /* acknowledgements lost after the gateway stored the event */
        json_array_append_new(list, json_pack("{s:s,s:s,s:f}", "socket", "reset", "direction",
                                              "downstream", "probability",
                                              0.3 + 0.1 * (double)between(r, 0, 4)));
        break;
    default:
        a = between(r, 16, 256);
        b = between(r, 0, 10);
        json_array_append_new(list, json_pack("{s:I,s:o,s:s}", "slice", a, "interval", dur(b),
                                              "direction", "upstream"));
        break;
    }
    return list;
}

static void add(json_t *steps, json_t *step)
{
    json_array_append_new(steps, step);
}

static json_t *request(const char *to, const char *method, const char *path, json_t *body)
{
    json_t *r = json_pack("{s:s,s:s,s:s}", "to", to, "method", method, "path", path);
    if (body)
        json_object_set_new(r, "json", body);
    return r;
}

static json_t *drill(const opts_t *o)
{
    static const char *const links[] = {"calcom", "stripe", "gateway"};
    cm_rand_t r, kr;
    cm_rand_seed(&r, (uint64_t)o->seed ^ 0x6472696c6cULL);
    cm_rand_seed(&kr, (uint64_t)o->seed ^ 0x6b696c6cULL); /* which instance a kill hits */
    json_t *steps = json_array();
    char name[160], path[160], var[32], email[64], start[25];
    long long n = 0, kills = 0;
    for (long long round = 0; round < o->rounds; round++) {
        for (size_t l = 0; l < 3; l++) {
            json_t *faults = l < 2 ? provider_faults(&r) : gateway_faults(&r);
            snprintf(name, sizeof name, "round %lld: %s link, %zu fault(s)", round + 1, links[l],
                     json_array_size(faults));
            add(steps, json_pack("{s:s,s:{s:s,s:o}}", "name", name, "chaos", "link", links[l],
                                 "faults", faults));
        }
        for (long long c = 0; c < o->calls; c++, n++) {
            snprintf(var, sizeof var, "call_%lld", n);
            snprintf(email, sizeof email, "drill-%lld@example.com", n);
            cm_clock_iso8601(FIRST_DAY_MS + (n / SLOTS_PER_DAY) * 86400000LL +
                                 (n % SLOTS_PER_DAY) * 1800000LL,
                             start);
            add(steps, json_pack("{s:{s:s,s:{s:s,s:s,s:I},s:s}}", "call", "fixture",
                                 "fixtures/retell/call_booking.json", "set",
                                 "call_analysis.custom_analysis_data.booking_start", start,
                                 "call_analysis.custom_analysis_data.attendee_email", email,
                                 "call_analysis.custom_analysis_data.deposit_cents",
                                 (json_int_t)(1000 + n), "as", var));
            /* Retell's own delivery: 3 retries 200 ms apart; it may fail under the faults
             * (its result is not the drill's to judge, the end state is). */
            snprintf(path, sizeof path, "/control/retell/calls/${%s.call_id}/webhook", var);
            add(steps, json_pack("{s:o,s:{s:i}}", "request",
                                 request("control", "POST", path,
                                         json_pack("{s:s,s:i,s:s}", "event", "call_analyzed",
                                                   "retries", 3, "retry_interval", "200ms")),
                                 "expect", "status", 200));
        }
        int kill = (long long)cm_rand_below(&r, 100) < o->kill_pct;
        if (kill && o->instances == 1) {
            snprintf(name, sizeof name, "round %lld: kill -9 the gateway", round + 1);
            add(steps, json_pack("{s:s,s:{s:s}}", "name", name, "gateway", "action", "kill"));
            add(steps, json_pack("{s:{s:s}}", "gateway", "action", "start"));
            kills++;
        } else if (kill) {
            int k = (int)cm_rand_below(&kr, (uint64_t)o->instances);
            snprintf(name, sizeof name, "round %lld: kill -9 gateway instance %d", round + 1, k);
            add(steps, json_pack("{s:s,s:{s:s,s:i}}", "name", name, "gateway", "action", "kill",
                                 "instance", k));
            add(steps, json_pack("{s:{s:s,s:i}}", "gateway", "action", "start", "instance", k));
            kills++;
        }
    }
    for (size_t l = 0; l < 3; l++)
        add(steps, json_pack("{s:s,s:{s:s,s:[]}}", "name", "the links clear", "chaos", "link",
                             links[l], "faults"));
    for (long long i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/control/retell/calls/${call_%lld.call_id}/webhook", i);
        add(steps,
            json_pack("{s:o,s:{s:i,s:{s:i}}}", "request",
                      request("control", "POST", path,
                              json_pack("{s:s,s:i}", "event", "call_analyzed", "retries", 3)),
                      "expect", "status", 200, "json", "deliveries.0.status", 204));
    }
    /* The invariants. Every saga makes at least two Cal.com requests (slots, booking) and
     * Cal.com takes 120 a minute per key (the simulator's default, as the real one): n
     * sagas need n seconds at best, retries after the faults more. Seed 42 with 200 calls
     * was still booking at that pace, one saga a second, when a fixed 120 s ran out. */
    char within[24];
    snprintf(within, sizeof within, "%llds", n * 3 / 2 > 120 ? n * 3 / 2 : 120);
    add(steps, json_pack("{s:s,s:{s:o,s:{s:{s:I}},s:s}}", "name", "every saga completes", "wait",
                         "request", request("gateway", "GET", "/admin/sagas?state=completed", NULL),
                         "until", "json", "count", (json_int_t)n, "within", within));
    /* Waited for, not read once: a saga ends before its job is marked done (that outcome
     * is written with the lane's next claim), so a read right after showed running 1.
     * Once the queue has drained, the counts below are final. A dead letter never goes
     * away, so waiting for dead 0 loses nothing. */
    add(steps,
        json_pack("{s:s,s:{s:o,s:{s:{s:i,s:i,s:i}},s:s}}", "name", "nothing dead-lettered or left",
                  "wait", "request", request("gateway", "GET", "/admin/queue", NULL), "until",
                  "json", "dead", 0, "pending", 0, "running", 0, "within", "60s"));
    add(steps,
        json_pack("{s:s,s:o,s:{s:{s:I,s:{s:{s:s}}}}}", "name",
                  "one booking per call, every one accepted", "request",
                  request("control", "GET", "/control/calcom/bookings", NULL), "expect", "json",
                  "count", (json_int_t)n, "bookings", "$each", "status", "accepted"));
    add(steps,
        json_pack("{s:s,s:o,s:{s:{s:I}}}", "name", "one charge per call", "request",
                  request("control", "GET", "/control/effects?provider=stripe&kind=charge", NULL),
                  "expect", "json", "count", (json_int_t)n));
    add(steps,
        json_pack("{s:s,s:o,s:{s:{s:i}}}", "name", "no refund", "request",
                  request("control", "GET", "/control/effects?provider=stripe&kind=refund", NULL),
                  "expect", "json", "count", 0));

    /* The simulators' clock is off the gateway's by up to 2 minutes either way, inside the
     * 5-minute signature window: drills run with the skew real deployments have. Its own
     * stream, so the faults drawn for a seed do not depend on it. */
    cm_rand_t sr;
    cm_rand_seed(&sr, (uint64_t)o->seed ^ 0x736b6577ULL);
    char skew[32];
    long long skew_s = between(&sr, -120, 120);
    snprintf(skew, sizeof skew, "%+llds", skew_s);

    char title[200], desc[480];
    char inst[40] = "";
    if (o->instances > 1)
        snprintf(inst, sizeof inst, ", %lld gateway instances", o->instances);
    snprintf(title, sizeof title, "chaos drill, seed %lld: %lld rounds of %lld calls%s", o->seed,
             o->rounds, o->calls, inst);
    snprintf(desc, sizeof desc,
             "Generated by chaos-drill --seed %lld --rounds %lld --calls %lld --kill-pct %lld: "
             "random link faults each round, %lld gateway kill(s), the simulators' clock %s off, "
             "then every call must end booked and charged exactly once.",
             o->seed, o->rounds, o->calls, o->kill_pct, kills, skew);
    json_t *gateway = json_pack("{s:s}", "config", "fixtures/gateway/chaos.json");
    json_t *doc = json_pack("{s:s,s:s,s:[s,s],s:I,s:o,s:{s:[s,s,s],s:{s:s}},s:o}", "name", title,
                            "description", desc, "tags", "chaos", "drill", "seed",
                            (json_int_t)o->seed, "gateway", gateway, "chaos", "links", links[0],
                            links[1], links[2], "skew", "simulators", skew, "steps", steps);
    /* Several instances need one database they all use. */
    if (doc && o->instances > 1 &&
        (json_object_set_new(gateway, "instances", json_integer(o->instances)) ||
         json_object_set_new(doc, "store", json_string("postgres")))) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int main(int argc, char **argv)
{
    opts_t o;
    if (parse_opts(argc, argv, &o))
        return 2;
    json_t *doc = drill(&o);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (!text) {
        fprintf(stderr, "chaos-drill: out of memory\n");
        return 1;
    }
    FILE *f = o.out ? fopen(o.out, "w") : stdout;
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF;
    if (f && o.out)
        ok &= fclose(f) == 0;
    free(text);
    if (!ok) {
        fprintf(stderr, "chaos-drill: cannot write %s: %s\n", o.out ? o.out : "stdout",
                strerror(errno));
        return 1;
    }
    return 0;
}
