/* ch_fault.h - network faults of one chaos-proxy link: parsing and validating their JSON
 * into an immutable, reference-counted list, and the list's JSON for the control API.
 *
 * A fault list is what `PUT /links/{name}/faults` sets: {"faults":[FAULT,...]} where each
 * FAULT is {"type":T,"direction":"upstream"|"downstream"|"both","probability":P,...} (see
 * chaos/README.md for every type and field). Bad input is refused with a message naming
 * the JSON path of the problem ("faults[1].ms: must be a non-negative integer").
 *
 * A list never changes once made, so a connection can hold a reference and read it without
 * a lock while the link swaps in a new one. Pure code, no sockets, no clock: thread-safe
 * (reference counts are atomic).
 */
#ifndef CH_FAULT_H
#define CH_FAULT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_err.h"

/* A link holds at most this many faults (a mask of 32 bits says which ones apply). */
#define CH_FAULT_MAX 32
/* Durations (ms, jitter_ms, delay_ms) are capped at one day. */
#define CH_FAULT_MAX_MS 86400000LL
/* Sizes (bytes, after_bytes, bytes_per_s) are capped at 1 TiB. */
#define CH_FAULT_MAX_BYTES (1LL << 40)

typedef enum {
    CH_FAULT_LATENCY = 0,
    CH_FAULT_BANDWIDTH,
    CH_FAULT_SLICE,
    CH_FAULT_RESET,
    CH_FAULT_BLACKHOLE,
    CH_FAULT_TIMEOUT,
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
    int dirs;            /* CH_DIR_* bits; CH_DIR_BOTH for down */
    double probability;  /* 0..1; 1 for down */
    int64_t ms;          /* latency, timeout */
    int64_t jitter_ms;   /* latency */
    int64_t bytes_per_s; /* bandwidth */
    int64_t bytes;       /* slice: average piece */
    int64_t delay_ms;    /* slice: pause between pieces */
    int64_t after_bytes; /* reset */
} ch_fault_t;

/* An immutable list; share it with ch_faults_ref, drop it with ch_faults_unref. */
typedef struct {
    size_t n;
    int has_down; /* some fault is `down` */
    ch_fault_t items[CH_FAULT_MAX];
    /* private */
    int _refs;
} ch_faults_t;

/* Parses a request body {"faults":[...]} (borrowed). On success *out is a new list with one
 * reference (an empty array gives an empty list); on error *out is NULL, err (CM_ERR_LEN)
 * names the path and the problem, and CM_EINVAL (or CM_ENOMEM) is returned. */
cm_err_t ch_faults_parse(const json_t *body, ch_faults_t **out, char *err) CM_WUR;

/* Parses one FAULT object (borrowed) into *f. at is the path used in messages
 * ("faults[0]"). 0 on success, -1 with err set. */
int ch_fault_parse_one(const json_t *v, const char *at, ch_fault_t *f, char *err);

/* A new empty list with one reference; NULL when out of memory. */
ch_faults_t *ch_faults_empty(void);
/* Adds a reference and returns l (NULL stays NULL). */
ch_faults_t *ch_faults_ref(ch_faults_t *l);
/* Drops a reference (freeing the list at the last one), sets *l to NULL, accepts NULL. */
void ch_faults_unref(ch_faults_t **l);

/* The list as a new JSON array, each fault with every field spelled out (defaults filled
 * in): {"type":"latency","direction":"both","probability":1,"ms":100,"jitter_ms":0}.
 * `down` shows as {"type":"down"}. NULL when out of memory. */
json_t *ch_faults_json(const ch_faults_t *l);
json_t *ch_fault_json(const ch_fault_t *f);

/* "latency", "bandwidth", ...; "?" for an unknown value. Static. */
const char *ch_fault_type_name(ch_fault_type_t t);
/* "upstream", "downstream", "both". Static. */
const char *ch_dir_name(int dirs);

#endif
