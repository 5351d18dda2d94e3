/* herald-unit-tests: runs the CUnit suites of common/.
 *
 * Usage: herald-unit-tests [--sdk-vectors FILE]
 *
 * With --sdk-vectors, the vectors that sdk-vectors.mjs wrote with the
 * official pusher Node SDK are checked too. The exit status is 0 only when
 * every suite initialised and every assertion passed. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit_tests.h"

/* ------------------------------------------------------------------------
 * Assertion helpers
 * ------------------------------------------------------------------------ */

/* CUnit copies the condition text into its failure record, so a stack
 * buffer is fine here. */
static void record(bool passed, const char *text, const char *file, unsigned line)
{
    CU_assertImplementation(passed ? CU_TRUE : CU_FALSE, line, text, file, "", CU_FALSE);
}

void unit_assert_str_equal(const char *actual, const char *expected, const char *expression,
                           const char *file, unsigned line)
{
    bool passed = actual && expected ? strcmp(actual, expected) == 0 : actual == expected;
    char text[600];
    snprintf(text, sizeof text, "%s: got \"%.200s\", expected \"%.200s\"", expression,
             actual ? actual : "(null)", expected ? expected : "(null)");
    record(passed, text, file, line);
}

static void describe_bytes(char *out, size_t out_size, const unsigned char *bytes, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 5 < out_size; i++) {
        unsigned char c = bytes[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, out_size - n, "\\x%02x", c);
    }
    out[n < out_size ? n : out_size - 1] = '\0';
}

void unit_assert_mem_equal(const void *actual, size_t actual_len, const void *expected,
                           size_t expected_len, const char *expression, const char *file,
                           unsigned line)
{
    bool passed = actual_len == expected_len && memcmp(actual, expected, actual_len) == 0;
    char got[200], want[200], text[600];
    describe_bytes(got, sizeof got, actual, actual_len);
    describe_bytes(want, sizeof want, expected, expected_len);
    snprintf(text, sizeof text, "%s: got %zu bytes \"%s\", expected %zu bytes \"%s\"",
             expression, actual_len, got, expected_len, want);
    record(passed, text, file, line);
}

void unit_assert_long_equal(long long actual, long long expected, const char *expression,
                            const char *file, unsigned line)
{
    char text[300];
    snprintf(text, sizeof text, "%s: got %lld, expected %lld", expression, actual, expected);
    record(actual == expected, text, file, line);
}

void unit_assert_contains(const char *haystack, const char *needle, const char *expression,
                          const char *file, unsigned line)
{
    char text[600];
    snprintf(text, sizeof text, "%s: \"%.300s\" should contain \"%.200s\"", expression,
             haystack ? haystack : "(null)", needle);
    record(haystack && strstr(haystack, needle), text, file, line);
}

void unit_assert_not_contains(const char *haystack, const char *needle, const char *expression,
                              const char *file, unsigned line)
{
    char text[600];
    snprintf(text, sizeof text, "%s: \"%.300s\" should not contain \"%.200s\"", expression,
             haystack ? haystack : "(null)", needle);
    record(haystack && !strstr(haystack, needle), text, file, line);
}

/* ------------------------------------------------------------------------
 * Registration and run
 * ------------------------------------------------------------------------ */

CU_pSuite unit_add_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                         const struct unit_test *tests)
{
    CU_pSuite suite = CU_add_suite(name, init, cleanup);
    if (!suite)
        return NULL;
    for (const struct unit_test *t = tests; t->name; t++) {
        if (!CU_add_test(suite, t->name, t->run))
            return NULL;
    }
    return suite;
}

static void print_usage(FILE *out)
{
    fprintf(out, "usage: herald-unit-tests [--sdk-vectors FILE]\n"
                 "  --sdk-vectors FILE  also check the signatures in FILE, written by\n"
                 "                      `node tests/unit/sdk-vectors.mjs FILE`\n");
}

int main(int argc, char **argv)
{
    const char *sdk_vectors = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sdk-vectors") == 0 && i + 1 < argc) {
            sdk_vectors = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "herald-unit-tests: unknown or incomplete argument \"%s\"\n",
                    argv[i]);
            print_usage(stderr);
            return 2;
        }
    }

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "herald-unit-tests: cannot initialise CUnit: %s\n", CU_get_error_msg());
        return 1;
    }

    CU_ErrorCode (*const registrations[])(void) = {
        test_strbuf_register,   test_log_register,     test_channel_register,
        test_envelope_register, test_frame_register,   test_keys_register,
        test_hashmap_register,  test_config_register,  test_signature_register,
    };
    for (size_t i = 0; i < sizeof registrations / sizeof registrations[0]; i++) {
        if (registrations[i]() != CUE_SUCCESS) {
            fprintf(stderr, "herald-unit-tests: cannot register a suite: %s\n",
                    CU_get_error_msg());
            CU_cleanup_registry();
            return 1;
        }
    }
    if (sdk_vectors && test_sdk_vectors_register(sdk_vectors) != CUE_SUCCESS) {
        fprintf(stderr, "herald-unit-tests: cannot register the SDK vector suite: %s\n",
                CU_get_error_msg());
        CU_cleanup_registry();
        return 1;
    }

    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();

    /* A suite whose init failed ran none of its tests, so it must fail the
     * run as surely as a failed assertion. */
    const CU_RunSummary *summary = CU_get_run_summary();
    bool failed = CU_get_error() != CUE_SUCCESS || summary->nSuitesFailed > 0 ||
                  summary->nTestsFailed > 0 || summary->nAssertsFailed > 0;
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
