/*
 * pq.h - libpq, loaded the first time a PostgreSQL store is opened.
 *
 * Every qgate program used to link libpq, and with it Kerberos, LDAP,
 * SASL and GnuTLS: twenty-one shared objects that the loader mapped and
 * relocated at each start of `qgate show`, most of whose start-up time
 * they were.  An LMDB store needs none of them.  So the PostgreSQL files
 * reach libpq through a table that qg__pq_load() fills with dlopen() and
 * dlsym(), and the macros below route their calls through it, as SQLite's
 * sqlite3ext.h routes an extension's calls through sqlite3_api: the code
 * reads as plain libpq.  libpq-fe.h still gives the types and constants.
 *
 * A file that links libpq itself (a test) defines QG__PQ_LINKED before
 * including this, and keeps the direct calls.
 * Private.
 */
#ifndef QG_PQ_H
#define QG_PQ_H

#include <libpq-fe.h>

/* The file dlopen() takes when QGATE_LIBPQ names none: libpq's SONAME,
 * the same since PostgreSQL 8.2. */
#ifndef QG__LIBPQ_SONAME
#define QG__LIBPQ_SONAME "libpq.so.5"
#endif

/* Every libpq function qgate calls. */
#define QG__PQ_FUNCTIONS(XX)                                                   \
    XX(PQclear)                                                                \
    XX(PQcmdStatus)                                                            \
    XX(PQcmdTuples)                                                            \
    XX(PQconnectdb)                                                            \
    XX(PQenterPipelineMode)                                                    \
    XX(PQexec)                                                                 \
    XX(PQexecPrepared)                                                         \
    XX(PQexitPipelineMode)                                                     \
    XX(PQfinish)                                                               \
    XX(PQgetResult)                                                            \
    XX(PQgetisnull)                                                            \
    XX(PQgetlength)                                                            \
    XX(PQgetvalue)                                                             \
    XX(PQntuples)                                                              \
    XX(PQpipelineSync)                                                         \
    XX(PQresultErrorField)                                                     \
    XX(PQresultStatus)                                                         \
    XX(PQsendPrepare)                                                          \
    XX(PQsendQueryParams)                                                      \
    XX(PQsendQueryPrepared)                                                    \
    XX(PQsetNoticeProcessor)                                                   \
    XX(PQstatus)                                                               \
    XX(PQtransactionStatus)

typedef struct qg__libpq {
#define QG__PQ_MEMBER(f) __typeof__(f) *f;
    QG__PQ_FUNCTIONS(QG__PQ_MEMBER)
#undef QG__PQ_MEMBER
} qg__libpq;

/* Filled by qg__pq_load(); read-only after it. */
extern qg__libpq qg__pq;

/*
 * Loads libpq once per process: the file QGATE_LIBPQ names, else
 * QG__LIBPQ_SONAME.  Thread-safe; later calls return the first one's
 * answer.  Returns 0, or QG_ENOLIB when the file is missing or lacks a
 * function (a libpq older than 14, which added pipeline mode).
 */
int qg__pq_load(void);

#ifndef QG__PQ_LINKED
#define PQclear              (qg__pq.PQclear)
#define PQcmdStatus          (qg__pq.PQcmdStatus)
#define PQcmdTuples          (qg__pq.PQcmdTuples)
#define PQconnectdb          (qg__pq.PQconnectdb)
#define PQenterPipelineMode  (qg__pq.PQenterPipelineMode)
#define PQexec               (qg__pq.PQexec)
#define PQexecPrepared       (qg__pq.PQexecPrepared)
#define PQexitPipelineMode   (qg__pq.PQexitPipelineMode)
#define PQfinish             (qg__pq.PQfinish)
#define PQgetResult          (qg__pq.PQgetResult)
#define PQgetisnull          (qg__pq.PQgetisnull)
#define PQgetlength          (qg__pq.PQgetlength)
#define PQgetvalue           (qg__pq.PQgetvalue)
#define PQntuples            (qg__pq.PQntuples)
#define PQpipelineSync       (qg__pq.PQpipelineSync)
#define PQresultErrorField   (qg__pq.PQresultErrorField)
#define PQresultStatus       (qg__pq.PQresultStatus)
#define PQsendPrepare        (qg__pq.PQsendPrepare)
#define PQsendQueryParams    (qg__pq.PQsendQueryParams)
#define PQsendQueryPrepared  (qg__pq.PQsendQueryPrepared)
#define PQsetNoticeProcessor (qg__pq.PQsetNoticeProcessor)
#define PQstatus             (qg__pq.PQstatus)
#define PQtransactionStatus  (qg__pq.PQtransactionStatus)
#endif

#endif /* QG_PQ_H */
