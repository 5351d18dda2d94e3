/* Unit tests of common/log.c: level names, filtering and the line format
 * written to stderr. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "unit_tests.h"

/* Runs `write_lines` with stderr sent to a temporary file and returns what
 * it wrote, as a new string. */
static char *capture_stderr(void (*write_lines)(void))
{
    char path[] = "/tmp/herald-unit-log-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return NULL;
    unlink(path);

    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    write_lines();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);

    off_t size = lseek(fd, 0, SEEK_END);
    char *text = calloc((size_t)size + 1, 1);
    if (text && pread(fd, text, (size_t)size, 0) != size) {
        free(text);
        text = NULL;
    }
    close(fd);
    return text;
}

static void test_parse_level_names(void)
{
    static const struct {
        const char *name;
        enum log_level level;
    } cases[] = {
        { "debug", LOG_LEVEL_DEBUG }, { "info", LOG_LEVEL_INFO },
        { "warn", LOG_LEVEL_WARN },   { "error", LOG_LEVEL_ERROR },
        { "WARNING", LOG_LEVEL_WARN }, { "Info", LOG_LEVEL_INFO },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum log_level level = LOG_LEVEL_ERROR + 1;
        ASSERT_INT_EQ(log_parse_level(cases[i].name, &level), 0);
        ASSERT_INT_EQ(level, cases[i].level);
    }
}

static void test_parse_level_unknown(void)
{
    enum log_level level = LOG_LEVEL_WARN;
    ASSERT_INT_EQ(log_parse_level("verbose", &level), -1);
    ASSERT_INT_EQ(log_parse_level("", &level), -1);
    ASSERT_INT_EQ(log_parse_level("info ", &level), -1);
    ASSERT_INT_EQ(level, LOG_LEVEL_WARN);
}

static void test_set_and_get_level(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    ASSERT_INT_EQ(log_get_level(), LOG_LEVEL_ERROR);
    log_init("unit", LOG_LEVEL_DEBUG);
    ASSERT_INT_EQ(log_get_level(), LOG_LEVEL_DEBUG);
    log_init("herald", LOG_LEVEL_INFO);
}

static void write_one_info_line(void)
{
    log_init("relay", LOG_LEVEL_INFO);
    log_info("app=%s channel=%s", "42", "news");
}

static void test_line_format(void)
{
    char *text = capture_stderr(write_one_info_line);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);

    regex_t re;
    CU_ASSERT_FATAL(regcomp(&re,
                            "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                            "info  relay: app=42 channel=news\n$",
                            REG_EXTENDED) == 0);
    int match = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    ASSERT_INT_EQ(match, 0);
    if (match != 0)
        ASSERT_STR_EQ(text, "(timestamp) info  relay: app=42 channel=news\\n");
    free(text);
    log_init("herald", LOG_LEVEL_INFO);
}

static int debug_argument_evaluations;

static const char *count_evaluation(void)
{
    debug_argument_evaluations++;
    return "x";
}

static void write_below_minimum_level(void)
{
    log_init("gateway", LOG_LEVEL_WARN);
    log_debug("debug %s", count_evaluation());
    log_info("info");
    log_warn("shown %d", 1);
    log_error("shown %d", 2);
}

static void test_levels_below_minimum_dropped(void)
{
    debug_argument_evaluations = 0;
    char *text = capture_stderr(write_below_minimum_level);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    ASSERT_NOT_CONTAINS(text, "debug x");
    ASSERT_NOT_CONTAINS(text, "gateway: info");
    ASSERT_CONTAINS(text, "warn  gateway: shown 1\n");
    ASSERT_CONTAINS(text, "error gateway: shown 2\n");
    /* log_debug must not even build its arguments when filtered out. */
    ASSERT_INT_EQ(debug_argument_evaluations, 0);
    free(text);
    log_init("herald", LOG_LEVEL_INFO);
}

static void write_overlong_line(void)
{
    char message[5000];
    memset(message, 'm', sizeof message - 1);
    message[sizeof message - 1] = '\0';
    log_init("relay", LOG_LEVEL_INFO);
    log_info("%s", message);
}

static void test_overlong_line_truncated(void)
{
    char *text = capture_stderr(write_overlong_line);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    size_t len = strlen(text);
    /* One line, cut to the 2048-byte line buffer, still ending in '\n'. */
    CU_ASSERT(len > 2000);
    CU_ASSERT(len < 2048);
    ASSERT_INT_EQ(text[len - 1], '\n');
    CU_ASSERT_PTR_EQUAL(strchr(text, '\n'), text + len - 1);
    free(text);
    log_init("herald", LOG_LEVEL_INFO);
}

CU_ErrorCode test_log_register(void)
{
    static const struct unit_test tests[] = {
        { "parse level names", test_parse_level_names },
        { "parse level unknown", test_parse_level_unknown },
        { "set and get level", test_set_and_get_level },
        { "line format", test_line_format },
        { "levels below minimum dropped", test_levels_below_minimum_dropped },
        { "overlong line truncated", test_overlong_line_truncated },
        { NULL, NULL },
    };
    return unit_add_suite("log", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
