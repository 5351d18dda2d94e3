#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

static const char *log_role = "herald";
static enum log_level log_min_level = LOG_LEVEL_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *role, enum log_level level)
{
    log_role = role;
    log_min_level = level;
}

void log_set_level(enum log_level level)
{
    log_min_level = level;
}

enum log_level log_get_level(void)
{
    return log_min_level;
}

int log_parse_level(const char *name, enum log_level *level)
{
    for (int i = 0; i <= LOG_LEVEL_ERROR; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *level = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    if (level < log_min_level)
        return;
    if (level > LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);

    /* Build the whole line first so concurrent processes sharing a terminal
     * never interleave halves of two lines. */
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level], log_role);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
