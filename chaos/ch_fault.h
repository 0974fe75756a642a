/* ch_fault.h - network faults of one chaos-proxy link: parsing and validating their JSON
 * into an immutable, reference-counted list, and the list's JSON for the control API.
 *
 * A fault list is what `PUT /links/{name}/faults` sets: {"faults":[FAULT,...]}. A FAULT is
 * written in the vocabulary of the simulators' fault rules (docs/interfaces.md), keyed by
 * its one effect, with durations in the project's grammar (cm_duration.h):
 *   {"latency":"300ms","jitter":"100ms"}   {"latency":{"uniform":["200ms","400ms"]}}
 *   {"bandwidth":20000}  {"slice":64,"interval":"1ms"}  {"socket":"reset","after_bytes":0}
 *   {"socket":"hang"}  {"socket":"hang","hang_max":"2s"}  {"down":true}
 * each (but down) with "direction" and "probability" (chaos/README.md has every field).
 * The older form {"type":"latency","ms":300,...} with integer milliseconds is still parsed,
 * for one release, and the faults written in it are marked deprecated in the list.
 * Bad input is refused with a message naming the JSON path of the problem
 * ("faults[1].latency: \"5x\" is not a duration ...").
 *
 * A list never changes once made, so a connection can hold a reference and read it without
 * a lock while the link swaps in a new one. Pure code, no sockets, no clock, no logging:
 * thread-safe (reference counts are atomic).
 */
#ifndef CH_FAULT_H
#define CH_FAULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* A link holds at most this many faults (a mask of 32 bits says which ones apply). */
#define CH_FAULT_MAX 32
/* Durations (latency, jitter, interval, hang_max) are capped at one day. */
#define CH_FAULT_MAX_MS 86400000LL
/* Sizes (bandwidth, slice, after_bytes) are capped at 1 TiB. */
#define CH_FAULT_MAX_BYTES (1LL << 40)

/* The effects; their names ("latency", ..., "hang", "down") are also the journal's. */
typedef enum {
    CH_FAULT_LATENCY = 0,
    CH_FAULT_BANDWIDTH,
    CH_FAULT_SLICE,
    CH_FAULT_RESET,
    CH_FAULT_HANG, /* data discarded, FIN after hang_max (or never) */
    CH_FAULT_DOWN,
    CH_FAULT__COUNT
} ch_fault_type_t;

/* Directions as a bit set: a fault's direction is one or both bits. */
enum {
    CH_DIR_UPSTREAM = 1,   /* client -> upstream: requests */
    CH_DIR_DOWNSTREAM = 2, /* upstream -> client: responses */
    CH_DIR_BOTH = 3
};

typedef struct {
    ch_fault_type_t type;
    int dirs;           /* CH_DIR_* bits; CH_DIR_BOTH for down */
    double probability; /* 0..1; 1 for down */
    /* latency: each chunk's delay is drawn uniformly from [min_ms, max_ms] and clamped at
     * 0; min_ms is negative when a jitter is wider than its latency */
    int64_t min_ms, max_ms;
    int64_t bytes_per_s; /* bandwidth */
    int64_t slice_bytes; /* slice: average piece */
    int64_t interval_ms; /* slice: pause after each piece */
    int64_t after_bytes; /* reset */
    int64_t hang_max_ms; /* hang: FIN on both sides after this long; 0: never */
} ch_fault_t;

/* An immutable list; share it with ch_faults_ref, drop it with ch_faults_unref. */
typedef struct {
    size_t n;
    int has_down;        /* some fault is `down` */
    uint32_t deprecated; /* bit i: items[i] was written in the deprecated {"type":...} form */
    ch_fault_t items[CH_FAULT_MAX];
    /* private */
    int _refs;
} ch_faults_t;

/* Parses a request body {"faults":[...]} (borrowed). On success *out is a new list with one
 * reference (an empty array gives an empty list); on error *out is NULL, err (CM_ERR_LEN)
 * names the path and the problem, and CM_EINVAL (or CM_ENOMEM) is returned. */
cm_err_t ch_faults_parse(const json_t *body, ch_faults_t **out, char *err) CM_WUR;

/* A new empty list with one reference; NULL when out of memory. */
ch_faults_t *ch_faults_empty(void);
/* Adds a reference and returns l (NULL stays NULL). */
ch_faults_t *ch_faults_ref(ch_faults_t *l);
/* Drops a reference (freeing the list at the last one), sets *l to NULL, accepts NULL. */
void ch_faults_unref(ch_faults_t **l);

/* The list as a new JSON array in the current form, every field spelled out (defaults
 * filled in) so that it parses back to the same list:
 * {"latency":"100ms","jitter":"0ms","direction":"both","probability":1.0}; `down` shows as
 * {"down":true}. NULL when out of memory. */
json_t *ch_faults_json(const ch_faults_t *l);
json_t *ch_fault_json(const ch_fault_t *f);

/* One note per fault of l written in the deprecated form, saying how to write it now:
 * a new array of strings ("faults[0]: {\"type\":...} is deprecated ...; write
 * {\"latency\":\"100ms\"}"), or NULL when there is none (or when out of memory). */
json_t *ch_faults_deprecation_notes(const ch_faults_t *l);

/* "latency", "bandwidth", "slice", "reset", "hang", "down"; "?" for an unknown value.
 * Static. */
const char *ch_fault_type_name(ch_fault_type_t t);
/* "upstream", "downstream", "both". Static. */
const char *ch_dir_name(int dirs);

#endif
