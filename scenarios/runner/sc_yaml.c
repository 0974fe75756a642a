/* sc_yaml.c - YAML (libyaml events) to jansson, JSON's data model only. */
#include "sc_yaml.h"

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Deeper than any scenario needs; a bound so hostile input cannot exhaust anything. */
#define MAX_DEPTH 64
#define MAX_ANCHORS 256
/* Aliases copy nodes, so a small file can stand for a huge document ("a billion laughs":
 * ten anchors each aliasing the previous one ten times). The document is bounded instead. */
#define MAX_NODES 1000000

#define TAG(x) "tag:yaml.org,2002:" x

typedef struct {
    json_t *node; /* object or array being filled (owned by the frame until attached) */
    char *key;    /* mapping: the key waiting for its value, or NULL */
    char *anchor; /* the node's anchor, registered when it ends, or NULL */
} frame_t;

typedef struct {
    frame_t stack[MAX_DEPTH];
    int depth;
    json_t *root;
    struct {
        char *name;
        json_t *node;
        size_t size; /* nodes in it, copies included */
    } anchors[MAX_ANCHORS];
    int nanchors;
    size_t nodes; /* nodes in the document so far, copies included */
    char *err;
} conv_t;

int sc_yaml_path(const char *path)
{
    size_t n = strlen(path);
    return (n > 5 && strcmp(path + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(path + n - 4, ".yml") == 0);
}

static cm_err_t fail_at(conv_t *c, const yaml_mark_t *m, const char *what)
{
    cm_errf(c->err, "line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
    return CM_EINVAL;
}

/* The core schema's number forms, compiled once for every file and thread. */
enum { RE_INT, RE_FLOAT, RE_SPECIAL, RE_COUNT };
static const char *const patterns[RE_COUNT] = {
    "^[-+]?[0-9]+$", "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$",
    "^([-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN))$"};
static regex_t compiled[RE_COUNT];
static int compiled_ok;
static pthread_once_t compile_once = PTHREAD_ONCE_INIT;

static void compile_patterns(void)
{
    compiled_ok = 1;
    for (int k = 0; k < RE_COUNT; k++)
        compiled_ok &= regcomp(&compiled[k], patterns[k], REG_EXTENDED | REG_NOSUB) == 0;
}

/* Fixed patterns: compilation cannot fail but for memory, and then nothing matches (a
 * number reads as a string, or a tagged one is refused). */
static int matches(int re, const char *s)
{
    pthread_once(&compile_once, compile_patterns);
    return compiled_ok && regexec(&compiled[re], s, 0, NULL, 0) == 0;
}

/* The value of a scalar event as JSON, or NULL with c->err set. */
static json_t *scalar(conv_t *c, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (strlen(s) != len) {
        fail_at(c, &ev->start_mark, "a string holds a NUL character");
        return NULL;
    }
    /* Which type: an explicit tag says it, else a plain scalar resolves by its text and
     * anything quoted or block-styled is a string. */
    const char *type = "str";
    if (tag && strcmp(tag, "!") != 0) {
        if (!strcmp(tag, TAG("str")))
            type = "str";
        else if (!strcmp(tag, TAG("int")))
            type = "int";
        else if (!strcmp(tag, TAG("float")))
            type = "float";
        else if (!strcmp(tag, TAG("bool")))
            type = "bool";
        else if (!strcmp(tag, TAG("null")))
            type = "null";
        else {
            char m[160];
            snprintf(m, sizeof m, "the tag %.100s is not supported (JSON's types only)", tag);
            fail_at(c, &ev->start_mark, m);
            return NULL;
        }
    } else if (plain) {
        if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
            !strcmp(s, "NULL"))
            type = "null";
        else if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE") ||
                 !strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
            type = "bool";
        else if (matches(RE_INT, s))
            type = "int";
        else if (matches(RE_FLOAT, s) || matches(RE_SPECIAL, s))
            type = "float";
    }
    json_t *v = NULL;
    if (!strcmp(type, "str")) {
        v = json_stringn(s, len);
    } else if (!strcmp(type, "null")) {
        if (*s && strcmp(s, "~") && strcmp(s, "null") && strcmp(s, "Null") && strcmp(s, "NULL")) {
            fail_at(c, &ev->start_mark, "!!null holds something other than null");
            return NULL;
        }
        v = json_null();
    } else if (!strcmp(type, "bool")) {
        int t = !strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE");
        if (!t && strcmp(s, "false") && strcmp(s, "False") && strcmp(s, "FALSE")) {
            fail_at(c, &ev->start_mark, "!!bool holds something other than true or false");
            return NULL;
        }
        v = json_boolean(t);
    } else if (!strcmp(type, "int")) {
        char *end;
        errno = 0;
        long long n = strtoll(s, &end, 10);
        if (!matches(RE_INT, s) || errno || *end) {
            fail_at(c, &ev->start_mark,
                    errno ? "an integer out of range" : "!!int holds no decimal integer");
            return NULL;
        }
        v = json_integer((json_int_t)n);
    } else {
        if (matches(RE_SPECIAL, s)) {
            fail_at(c, &ev->start_mark, ".inf and .nan have no JSON form");
            return NULL;
        }
        char *end;
        errno = 0;
        double d = strtod(s, &end);
        if (!matches(RE_FLOAT, s) || errno || *end) {
            fail_at(c, &ev->start_mark,
                    errno ? "a number out of range" : "!!float holds no decimal number");
            return NULL;
        }
        v = json_real(d);
    }
    if (!v)
        cm_errf(c->err, "out of memory");
    return v;
}

/* Nodes in v, itself included. */
static size_t count_nodes(const json_t *v)
{
    size_t n = 1;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            n += count_nodes(json_array_get(v, i));
    } else if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x) n += count_nodes(x);
    }
    return n;
}

/* Counts n more nodes; CM_EINVAL past MAX_NODES. */
static cm_err_t grow(conv_t *c, const yaml_mark_t *m, size_t n)
{
    c->nodes += n;
    if (c->nodes > MAX_NODES)
        return fail_at(c, m, "the document holds more than 1000000 nodes (aliases included)");
    return CM_OK;
}

static cm_err_t add_anchor(conv_t *c, const yaml_mark_t *m, const char *name, json_t *node)
{
    if (!name)
        return CM_OK;
    if (c->nanchors >= MAX_ANCHORS)
        return fail_at(c, m, "more than 256 anchors");
    char *copy = strdup(name);
    if (!copy) {
        cm_errf(c->err, "out of memory");
        return CM_ENOMEM;
    }
    /* A later anchor of the same name replaces the earlier one from here on (YAML). */
    c->anchors[c->nanchors].name = copy;
    c->anchors[c->nanchors].node = json_incref(node);
    c->anchors[c->nanchors].size = count_nodes(node);
    c->nanchors++;
    return CM_OK;
}

/* Puts v (taken) where the document is: the root, an array's next item, or the value of
 * the waiting key. */
static cm_err_t attach(conv_t *c, const yaml_mark_t *m, json_t *v)
{
    if (c->depth == 0) {
        if (c->root) {
            json_decref(v);
            return fail_at(c, m, "a second document node");
        }
        c->root = v;
        return CM_OK;
    }
    frame_t *f = &c->stack[c->depth - 1];
    if (json_is_array(f->node)) {
        if (json_array_append_new(f->node, v) != 0) {
            cm_errf(c->err, "out of memory");
            return CM_ENOMEM;
        }
        return CM_OK;
    }
    cm_err_t rc = json_object_set_new(f->node, f->key, v) == 0 ? CM_OK : CM_ENOMEM;
    if (rc)
        cm_errf(c->err, "out of memory");
    free(f->key);
    f->key = NULL;
    return rc;
}

/* 1 when the next node of the innermost mapping is a key. */
static int want_key(const conv_t *c)
{
    return c->depth > 0 && json_is_object(c->stack[c->depth - 1].node) &&
           !c->stack[c->depth - 1].key;
}

static cm_err_t open_node(conv_t *c, const yaml_event_t *ev, json_t *node, const char *anchor,
                          const char *tag, const char *want_tag)
{
    if (!node) {
        cm_errf(c->err, "out of memory");
        return CM_ENOMEM;
    }
    if (tag && strcmp(tag, want_tag) != 0 && strcmp(tag, "!") != 0) {
        json_decref(node);
        char m[160];
        snprintf(m, sizeof m, "the tag %.100s is not supported here", tag);
        return fail_at(c, &ev->start_mark, m);
    }
    if (want_key(c)) {
        json_decref(node);
        return fail_at(c, &ev->start_mark, "a mapping key must be a plain string");
    }
    if (c->depth >= MAX_DEPTH) {
        json_decref(node);
        return fail_at(c, &ev->start_mark, "nested deeper than 64 levels");
    }
    frame_t *f = &c->stack[c->depth++];
    *f = (frame_t){.node = node, .key = NULL, .anchor = anchor ? strdup(anchor) : NULL};
    if (anchor && !f->anchor) {
        cm_errf(c->err, "out of memory");
        return CM_ENOMEM;
    }
    return CM_OK;
}

static cm_err_t on_event(conv_t *c, const yaml_event_t *ev, int *docs)
{
    cm_err_t grown = CM_OK;
    if (ev->type == YAML_SCALAR_EVENT || ev->type == YAML_MAPPING_START_EVENT ||
        ev->type == YAML_SEQUENCE_START_EVENT)
        grown = grow(c, &ev->start_mark, 1);
    if (grown)
        return grown;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*docs > 1)
            return fail_at(c, &ev->start_mark, "more than one document (one scenario per file)");
        return CM_OK;
    case YAML_MAPPING_START_EVENT:
        return open_node(c, ev, json_object(), (const char *)ev->data.mapping_start.anchor,
                         (const char *)ev->data.mapping_start.tag, TAG("map"));
    case YAML_SEQUENCE_START_EVENT:
        return open_node(c, ev, json_array(), (const char *)ev->data.sequence_start.anchor,
                         (const char *)ev->data.sequence_start.tag, TAG("seq"));
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT: {
        frame_t f = c->stack[--c->depth];
        free(f.key);
        cm_err_t rc = add_anchor(c, &ev->start_mark, f.anchor, f.node);
        free(f.anchor);
        if (rc) {
            json_decref(f.node);
            return rc;
        }
        return attach(c, &ev->start_mark, f.node);
    }
    case YAML_SCALAR_EVENT: {
        if (want_key(c)) {
            frame_t *f = &c->stack[c->depth - 1];
            const char *k = (const char *)ev->data.scalar.value;
            if (strlen(k) != ev->data.scalar.length)
                return fail_at(c, &ev->start_mark, "a key holds a NUL character");
            if (json_object_get(f->node, k)) {
                char m[160];
                snprintf(m, sizeof m, "the key \"%.100s\" appears twice", k);
                return fail_at(c, &ev->start_mark, m);
            }
            if (!(f->key = strdup(k))) {
                cm_errf(c->err, "out of memory");
                return CM_ENOMEM;
            }
            return CM_OK;
        }
        json_t *v = scalar(c, ev);
        if (!v)
            return CM_EINVAL;
        cm_err_t rc = add_anchor(c, &ev->start_mark, (const char *)ev->data.scalar.anchor, v);
        if (rc) {
            json_decref(v);
            return rc;
        }
        return attach(c, &ev->start_mark, v);
    }
    case YAML_ALIAS_EVENT: {
        if (want_key(c))
            return fail_at(c, &ev->start_mark, "a mapping key must be a plain string");
        const char *name = (const char *)ev->data.alias.anchor;
        for (int i = c->nanchors - 1; i >= 0; i--) {
            if (strcmp(c->anchors[i].name, name) == 0) {
                cm_err_t rc = grow(c, &ev->start_mark, c->anchors[i].size);
                if (rc)
                    return rc;
                json_t *copy = json_deep_copy(c->anchors[i].node);
                if (!copy) {
                    cm_errf(c->err, "out of memory");
                    return CM_ENOMEM;
                }
                return attach(c, &ev->start_mark, copy);
            }
        }
        char m[160];
        snprintf(m, sizeof m, "*%.100s names no anchor defined (and finished) before it", name);
        return fail_at(c, &ev->start_mark, m);
    }
    default:
        return CM_OK;
    }
}

cm_err_t sc_yaml_parse(const char *text, size_t len, json_t **out, char *err)
{
    *out = NULL;
    conv_t *c = calloc(1, sizeof *c);
    yaml_parser_t parser;
    if (!c || !yaml_parser_initialize(&parser)) {
        free(c);
        cm_errf(err, "out of memory");
        return CM_ENOMEM;
    }
    c->err = err;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    cm_err_t rc = CM_OK;
    int done = 0, docs = 0;
    while (!rc && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            cm_errf(err, "line %zu, column %zu: %s%s%s", parser.problem_mark.line + 1,
                    parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML",
                    parser.context ? " " : "", parser.context ? parser.context : "");
            rc = CM_EINVAL;
            break;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        rc = on_event(c, &ev, &docs);
        yaml_event_delete(&ev);
    }
    if (!rc && !c->root) {
        cm_errf(err, "the file holds no YAML document");
        rc = CM_EINVAL;
    }
    while (c->depth > 0) {
        frame_t *f = &c->stack[--c->depth];
        json_decref(f->node);
        free(f->key);
        free(f->anchor);
    }
    for (int i = 0; i < c->nanchors; i++) {
        free(c->anchors[i].name);
        json_decref(c->anchors[i].node);
    }
    if (rc)
        json_decref(c->root);
    else
        *out = c->root;
    yaml_parser_delete(&parser);
    free(c);
    return rc;
}
