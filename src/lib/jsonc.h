/*
 * jsonc.h - json-c, loaded the first time qgate parses or writes JSON.
 *
 * `qgate show` and `qgate history` read a store and print; they touch
 * JSON only when --config names a file.  Yet a program that links json-c
 * has the loader map and relocate it at every start: some 5% of a start,
 * over a quarter of what kept `qgate show` above `mdb_stat`
 * (docs/PERFORMANCE.md, "json-c, loaded when used").  So, as ossl.h does for
 * libcrypto, the files that use json-c reach it through a table that dlopen()
 * and dlsym() fill on first use, and the macros below route their calls through
 * it; json-c's headers still give the types, the constants and the inline
 * helpers that json_object_object_foreach() expands to (which read json-c's
 * structs and call json_object_get_object(), in the table).
 *
 * As with libcrypto, the packages depend on json-c, so a json-c that
 * cannot be loaded is met as the loader would meet it: the process is
 * told why and stops (qg__jsonc_load()).  qg__jsonc() never returns NULL.
 *
 * The programs do not include this: they read their configuration
 * files through qg_config_walk() (config.c), and the gate's own files
 * link json-c.  jsonc.c, which names the functions themselves, defines
 * QG__JSONC_LINKED first.
 * Private.
 */
#ifndef QG_JSONC_H
#define QG_JSONC_H

#include <stdatomic.h>

#include <json-c/json.h>

/* The file dlopen() takes: json-c's SONAME, from the library CMake found
 * (5 since json-c 0.15). */
#ifndef QG__LIBJSONC_SONAME
#define QG__LIBJSONC_SONAME "libjson-c.so.5"
#endif

/* Every json-c function libqgate calls. */
#define QG__JSONC_FUNCTIONS(XX)                                                \
    XX(json_object_array_add)                                                  \
    XX(json_object_array_get_idx)                                              \
    XX(json_object_array_length)                                               \
    XX(json_object_from_file)                                                  \
    XX(json_object_get)                                                        \
    XX(json_object_get_boolean)                                                \
    XX(json_object_get_double)                                                 \
    XX(json_object_get_int64)                                                  \
    XX(json_object_get_object)                                                 \
    XX(json_object_get_string)                                                 \
    XX(json_object_get_string_len)                                             \
    XX(json_object_get_type)                                                   \
    XX(json_object_get_uint64)                                                 \
    XX(json_object_is_type)                                                    \
    XX(json_object_new_array)                                                  \
    XX(json_object_new_object)                                                 \
    XX(json_object_new_string)                                                 \
    XX(json_object_object_add)                                                 \
    XX(json_object_object_get_ex)                                              \
    XX(json_object_object_length)                                              \
    XX(json_object_put)                                                        \
    XX(json_object_to_json_string)                                             \
    XX(json_object_to_json_string_ext)                                         \
    XX(json_tokener_error_desc)                                                \
    XX(json_tokener_free)                                                      \
    XX(json_tokener_get_error)                                                 \
    XX(json_tokener_get_parse_end)                                             \
    XX(json_tokener_new_ex)                                                    \
    XX(json_tokener_parse_ex)                                                  \
    XX(json_tokener_reset)                                                     \
    XX(json_tokener_set_flags)

typedef struct qg__libjsonc {
#define QG__JSONC_MEMBER(f) __typeof__(f) *f;
    QG__JSONC_FUNCTIONS(QG__JSONC_MEMBER)
#undef QG__JSONC_MEMBER
} qg__libjsonc;

/* The table once loaded, NULL before: set by qg__jsonc_load(). */
extern const qg__libjsonc *_Atomic qg__jsonc_table;

/* Loads the table on the first call in the process (thread-safe) and
 * returns it; stops the process if json-c cannot be loaded. */
const qg__libjsonc *qg__jsonc_load(void);

/* The table.  json-c is called in the engine's inner loop: once loaded,
 * this is one load, as a call through the PLT would be. */
static inline const qg__libjsonc *
qg__jsonc(void)
{
    const qg__libjsonc *t =
        atomic_load_explicit(&qg__jsonc_table, memory_order_acquire);

    return t ? t : qg__jsonc_load();
}

#ifndef QG__JSONC_LINKED
#define json_object_array_add      (qg__jsonc()->json_object_array_add)
#define json_object_array_get_idx  (qg__jsonc()->json_object_array_get_idx)
#define json_object_array_length   (qg__jsonc()->json_object_array_length)
#define json_object_from_file      (qg__jsonc()->json_object_from_file)
#define json_object_get            (qg__jsonc()->json_object_get)
#define json_object_get_boolean    (qg__jsonc()->json_object_get_boolean)
#define json_object_get_double     (qg__jsonc()->json_object_get_double)
#define json_object_get_int64      (qg__jsonc()->json_object_get_int64)
#define json_object_get_object     (qg__jsonc()->json_object_get_object)
#define json_object_get_string     (qg__jsonc()->json_object_get_string)
#define json_object_get_string_len (qg__jsonc()->json_object_get_string_len)
#define json_object_get_type       (qg__jsonc()->json_object_get_type)
#define json_object_get_uint64     (qg__jsonc()->json_object_get_uint64)
#define json_object_is_type        (qg__jsonc()->json_object_is_type)
#define json_object_new_array      (qg__jsonc()->json_object_new_array)
#define json_object_new_object     (qg__jsonc()->json_object_new_object)
#define json_object_new_string     (qg__jsonc()->json_object_new_string)
#define json_object_object_add     (qg__jsonc()->json_object_object_add)
#define json_object_object_get_ex  (qg__jsonc()->json_object_object_get_ex)
#define json_object_object_length  (qg__jsonc()->json_object_object_length)
#define json_object_put            (qg__jsonc()->json_object_put)
#define json_object_to_json_string (qg__jsonc()->json_object_to_json_string)
#define json_object_to_json_string_ext                                         \
    (qg__jsonc()->json_object_to_json_string_ext)
#define json_tokener_error_desc    (qg__jsonc()->json_tokener_error_desc)
#define json_tokener_free          (qg__jsonc()->json_tokener_free)
#define json_tokener_get_error     (qg__jsonc()->json_tokener_get_error)
#define json_tokener_get_parse_end (qg__jsonc()->json_tokener_get_parse_end)
#define json_tokener_new_ex        (qg__jsonc()->json_tokener_new_ex)
#define json_tokener_parse_ex      (qg__jsonc()->json_tokener_parse_ex)
#define json_tokener_reset         (qg__jsonc()->json_tokener_reset)
#define json_tokener_set_flags     (qg__jsonc()->json_tokener_set_flags)
#endif

#endif /* QG_JSONC_H */
