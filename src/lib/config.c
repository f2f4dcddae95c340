/*
 * config.c - a configuration file's values handed over one by one
 * (qg_config_walk()), so that the programs read their settings with no
 * JSON parser of their own: json-c stays libqgate's, loaded only when a
 * file is read (jsonc.h), whether the programs link libqgate statically
 * or as libqgate.so, which keeps its json-c table to itself.
 */
#include <limits.h>
#include <string.h>

#include "jsonc.h"
#include "qgate.h"
#include "qgate_int.h"

static qg_config_type
type_of(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_boolean:
        return QG_CONFIG_BOOLEAN;
    case json_type_int:
        return QG_CONFIG_INTEGER;
    case json_type_double:
        return QG_CONFIG_DOUBLE;
    case json_type_string:
        return QG_CONFIG_STRING;
    case json_type_array:
        return QG_CONFIG_ARRAY;
    case json_type_object:
        return QG_CONFIG_OBJECT;
    case json_type_null:
        break;
    }
    return QG_CONFIG_NULL;
}

/* Hands o, the member key or the element at index, to fn. */
static int
hand(const char *key, size_t index, size_t count, json_object *o,
     qg_config_fn fn, void *arg)
{
    qg_config_value v = {.key = key, .index = index, .count = count};

    v.type = type_of(o);
    if (v.type == QG_CONFIG_STRING)
        v.string = json_object_get_string(o);
    else if (v.type == QG_CONFIG_INTEGER)
        v.integer = json_object_get_int64(o);
    else if (v.type == QG_CONFIG_BOOLEAN)
        v.integer = json_object_get_boolean(o) != 0;
    /* json-c writes null (o is NULL) as "null"; NULL means no memory. */
    if ((v.json = json_object_to_json_string(o)) == NULL)
        return QG_ENOMEM;
    return fn(arg, &v);
}

/* Parses text, one JSON value and nothing but white space after it, into
 * *root (NULL for null), checked as qg_config_read() checks a file.
 * Returns 0, QG_ECONFIG or QG_ENOMEM. */
static int
parse(const char *text, json_object **root)
{
    struct json_tokener *tok;
    size_t len = strlen(text), end;
    char detail[160];
    int ok;

    *root = NULL;
    if (len > INT_MAX)
        return QG_ECONFIG;
    if ((tok = json_tokener_new_ex(QG__JSON_DEPTH)) == NULL)
        return QG_ENOMEM;
    json_tokener_set_flags(tok,
                           JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    *root = json_tokener_parse_ex(tok, text, (int)len);
    ok = json_tokener_get_error(tok) == json_tokener_success;
    end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    /* json-c stops at the end of the value: white space may follow (a
     * file's last newline), nothing else. */
    if (ok && end + strspn(text + end, " \t\r\n") == len &&
        qg__json_strict(text, len, NULL, detail, sizeof(detail)) == QG_R_NONE)
        return 0;
    json_object_put(*root);
    *root = NULL;
    return QG_ECONFIG;
}

int
qg_config_walk(const char *text, qg_config_type type, qg_config_fn fn,
               void *arg)
{
    json_object *root;
    size_t i, n;
    int rc;

    if (text == NULL || fn == NULL ||
        (type != QG_CONFIG_OBJECT && type != QG_CONFIG_ARRAY))
        return QG_EINVAL;
    if ((rc = parse(text, &root)))
        return rc;
    if (type_of(root) != type) {
        rc = QG_ECONFIG;
    } else if (type == QG_CONFIG_ARRAY) {
        n = json_object_array_length(root);
        for (i = 0; i < n && rc == 0; i++)
            rc = hand(NULL, i, n, json_object_array_get_idx(root, i), fn, arg);
    } else {
        n = (size_t)json_object_object_length(root);
        i = 0;
        json_object_object_foreach(root, key, val)
        {
            if ((rc = hand(key, i++, n, val, fn, arg)))
                break;
        }
    }
    json_object_put(root);
    return rc;
}
