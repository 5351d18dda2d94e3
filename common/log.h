/* Leveled, one-line-per-event logging to stderr.
 *
 * Every line carries a UTC timestamp, the level and the process role, so an
 * operator can merge gateway and relay logs. Callers put the ids that matter
 * (app, socket_id, channel, node) into the message as key=value pairs.
 * Never pass a secret to these functions. */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

enum log_level {
    LOG_LEVEL_DEBUG = 0,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
};

/* Sets the role shown on every line ("gateway", "relay") and the minimum level. */
void log_init(const char *role, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parses "debug", "info", "warn" or "error". Returns 0, or -1 when unknown. */
int log_parse_level(const char *name, enum log_level *level);

void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) \
    do { if (log_get_level() <= LOG_LEVEL_DEBUG) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
