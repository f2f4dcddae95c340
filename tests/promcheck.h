/*
 * promcheck.h - a checker for the Prometheus text exposition format, for
 * the tests of /metrics.
 */
#ifndef QG_PROMCHECK_H
#define QG_PROMCHECK_H

#include <stddef.h>

/*
 * A checker for the Prometheus text exposition format (version 0.0.4):
 * "# HELP name text" and "# TYPE name type" lines, other comments, and
 * samples `name{label="value",...} value [timestamp]`.  Every sample's
 * family is typed before it and its lines are together; histogram buckets
 * are cumulative per label set and end at le="+Inf", equal to _count.
 * Returns the number of samples, or -1 with err set.
 */
int prom_check(const char *text, char *err, size_t errlen);

#endif
