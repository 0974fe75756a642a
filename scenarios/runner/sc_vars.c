/* sc_vars.c - variable store (a small array: a scenario has tens of variables, not
 * thousands) and ${...} expansion. */
#include "sc_vars.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cm_buf.h"
#include "cm_json.h"

#define SC_VARS_MAX_TEXT (16u << 20)

typedef struct {
    char *name;
    json_t *value;
} var_t;

struct sc_vars {
    var_t *v;
    size_t n, cap;
};

sc_vars_t *sc_vars_new(void)
{
    return calloc(1, sizeof(sc_vars_t));
}

void sc_vars_free(sc_vars_t **vp)
{
    if (!vp || !*vp)
        return;
    sc_vars_t *s = *vp;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        json_decref(s->v[i].value);
    }
    free(s->v);
    free(s);
    *vp = NULL;
}

int sc_vars_valid_name(const char *name)
{
    if (!name || !(isalpha((unsigned char)*name) || *name == '_'))
        return 0;
    for (const char *p = name + 1; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return 1;
}

static var_t *find(const sc_vars_t *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i].name) == len && strncmp(s->v[i].name, name, len) == 0)
            return &s->v[i];
    return NULL;
}

cm_err_t sc_vars_set(sc_vars_t *s, const char *name, json_t *value)
{
    if (!sc_vars_valid_name(name) || !value)
        return CM_EINVAL;
    var_t *e = find(s, name, strlen(name));
    if (e) {
        json_incref(value);
        json_decref(e->value);
        e->value = value;
        return CM_OK;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 16;
        var_t *p = realloc(s->v, ncap * sizeof *p);
        if (!p)
            return CM_ENOMEM;
        s->v = p;
        s->cap = ncap;
    }
    char *n = strdup(name);
    if (!n)
        return CM_ENOMEM;
    s->v[s->n].name = n;
    s->v[s->n].value = json_incref(value);
    s->n++;
    return CM_OK;
}

void sc_vars_unset(sc_vars_t *s, const char *name)
{
    var_t *e = find(s, name, strlen(name));
    if (!e)
        return;
    free(e->name);
    json_decref(e->value);
    *e = s->v[--s->n];
}

sc_vars_t *sc_vars_clone(const sc_vars_t *s)
{
    sc_vars_t *c = sc_vars_new();
    for (size_t i = 0; c && i < s->n; i++) {
        json_t *copy = json_deep_copy(s->v[i].value);
        cm_err_t rc = copy ? sc_vars_set(c, s->v[i].name, copy) : CM_ENOMEM;
        json_decref(copy);
        if (rc)
            sc_vars_free(&c);
    }
    return c;
}

cm_err_t sc_vars_set_str(sc_vars_t *s, const char *name, const char *str)
{
    json_t *j = json_string(str);
    cm_err_t rc = j ? sc_vars_set(s, name, j) : CM_ENOMEM;
    json_decref(j);
    return rc;
}

cm_err_t sc_vars_set_int(sc_vars_t *s, const char *name, long long n)
{
    json_t *j = json_integer(n);
    cm_err_t rc = j ? sc_vars_set(s, name, j) : CM_ENOMEM;
    json_decref(j);
    return rc;
}

const json_t *sc_vars_lookup(const sc_vars_t *s, const char *ref)
{
    size_t nlen = strcspn(ref, ".");
    var_t *e = find(s, ref, nlen);
    if (!e)
        return NULL;
    return ref[nlen] ? cm_json_path(e->value, ref + nlen + 1) : e->value;
}

/* Checks the reference between "${" and "}" and resolves it; err explains a miss. */
static const json_t *resolve(const sc_vars_t *s, const char *ref, char *err)
{
    size_t nlen = strcspn(ref, ".");
    char name[128];
    if (nlen == 0 || nlen >= sizeof name) {
        cm_errf(err, "bad variable reference ${%s}", ref);
        return NULL;
    }
    memcpy(name, ref, nlen);
    name[nlen] = '\0';
    if (!sc_vars_valid_name(name)) {
        cm_errf(err, "bad variable reference ${%s}", ref);
        return NULL;
    }
    const var_t *e = find(s, ref, nlen);
    if (!e) {
        /* List what exists: the usual cause is a typo or a capture that has not run. */
        cm_buf_t known;
        cm_buf_init(&known, 160);
        for (size_t i = 0; i < s->n; i++)
            if (cm_buf_printf(&known, "%s%s", i ? ", " : "", s->v[i].name))
                break;
        cm_errf(err, "unknown variable ${%s} (known: %s)", ref, known.data ? known.data : "none");
        cm_buf_free(&known);
        return NULL;
    }
    const json_t *val = ref[nlen] ? cm_json_path(e->value, ref + nlen + 1) : e->value;
    if (!val)
        cm_errf(err, "${%s}: variable \"%s\" has no \"%s\"", ref, name, ref + nlen + 1);
    return val;
}

/* Finds the reference starting at p ("${" already seen at p). Copies its inside into ref
 * and returns the position after "}", or NULL with err set. */
static const char *scan_ref(const char *p, char *ref, size_t cap, char *err)
{
    const char *close = strchr(p + 2, '}');
    if (!close) {
        cm_errf(err, "unterminated variable reference \"%.40s\"", p);
        return NULL;
    }
    size_t len = (size_t)(close - (p + 2));
    if (len >= cap) {
        cm_errf(err, "variable reference too long \"%.40s...\"", p);
        return NULL;
    }
    memcpy(ref, p + 2, len);
    ref[len] = '\0';
    return close + 1;
}

static cm_err_t add_value(cm_buf_t *b, const json_t *val)
{
    if (json_is_string(val))
        return cm_buf_add(b, json_string_value(val), json_string_length(val));
    char *t = cm_json_dumps(val);
    if (!t)
        return CM_ENOMEM;
    cm_err_t rc = cm_buf_addstr(b, t);
    free(t);
    return rc;
}

cm_err_t sc_vars_expand(const sc_vars_t *s, const char *in, char **out, char *err)
{
    cm_buf_t b;
    cm_err_t rc = CM_OK;
    char ref[512];
    *out = NULL;
    cm_buf_init(&b, SC_VARS_MAX_TEXT);
    const char *p = in;
    while (!rc && *p) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            rc = cm_buf_add(&b, "${", 2);
            p += 3;
            continue;
        }
        if (p[0] != '$' || p[1] != '{') {
            size_t run = 1;
            while (p[run] && p[run] != '$')
                run++;
            rc = cm_buf_add(&b, p, run);
            p += run;
            continue;
        }
        const char *next = scan_ref(p, ref, sizeof ref, err);
        const json_t *val = next ? resolve(s, ref, err) : NULL;
        if (!val) {
            rc = CM_EINVAL;
            break;
        }
        rc = add_value(&b, val);
        p = next;
    }
    if (rc == CM_ETOOBIG)
        cm_errf(err, "expanded text longer than %u bytes", SC_VARS_MAX_TEXT);
    if (!rc && !(*out = cm_buf_take(&b)))
        rc = CM_ENOMEM;
    cm_buf_free(&b);
    return rc;
}

/* A string that is nothing but one reference keeps the variable's type. */
static cm_err_t expand_string(const sc_vars_t *s, const char *str, json_t **out, char *err)
{
    char ref[512];
    size_t len = strlen(str);
    if (len > 3 && str[0] == '$' && str[1] == '{' && str[len - 1] == '}' && !strchr(str + 2, '$') &&
        strchr(str + 2, '}') == str + len - 1) {
        if (!scan_ref(str, ref, sizeof ref, err))
            return CM_EINVAL;
        const json_t *val = resolve(s, ref, err);
        if (!val)
            return CM_EINVAL;
        *out = json_deep_copy(val);
        return *out ? CM_OK : CM_ENOMEM;
    }
    char *t = NULL;
    cm_err_t rc = sc_vars_expand(s, str, &t, err);
    if (!rc && !(*out = json_string(t)))
        rc = CM_ENOMEM;
    free(t);
    return rc;
}

cm_err_t sc_vars_expand_json(const sc_vars_t *s, const json_t *in, json_t **out, char *err)
{
    cm_err_t rc = CM_OK;
    *out = NULL;
    if (json_is_string(in))
        return expand_string(s, json_string_value(in), out, err);
    if (json_is_array(in)) {
        json_t *a = json_array();
        size_t i;
        json_t *el;
        if (!a)
            return CM_ENOMEM;
        json_array_foreach(in, i, el)
        {
            json_t *x = NULL;
            rc = sc_vars_expand_json(s, el, &x, err);
            if (!rc && json_array_append_new(a, x) != 0)
                rc = CM_ENOMEM;
            if (rc)
                break;
        }
        if (rc)
            json_decref(a);
        else
            *out = a;
        return rc;
    }
    if (json_is_object(in)) {
        json_t *o = json_object();
        const char *k;
        json_t *el;
        if (!o)
            return CM_ENOMEM;
        json_object_foreach((json_t *)in, k, el)
        {
            json_t *x = NULL;
            char *key = NULL;
            rc = sc_vars_expand(s, k, &key, err);
            if (!rc)
                rc = sc_vars_expand_json(s, el, &x, err);
            if (!rc && json_object_set_new(o, key, x) != 0)
                rc = CM_ENOMEM;
            else if (rc)
                json_decref(x);
            free(key);
            if (rc)
                break;
        }
        if (rc)
            json_decref(o);
        else
            *out = o;
        return rc;
    }
    *out = json_deep_copy(in);
    return *out ? CM_OK : CM_ENOMEM;
}
