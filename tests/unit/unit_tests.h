/* Shared declarations of the unit test runner: one register function per
 * test_<unit>.c file, and assertions whose failure report shows the values. */
#ifndef HERALD_UNIT_TESTS_H
#define HERALD_UNIT_TESTS_H

#include <stddef.h>

#include <CUnit/CUnit.h>

struct unit_test {
    const char *name;
    CU_TestFunc run;
};

/* Adds a suite with the tests of `tests`, which ends with a { NULL, NULL }
 * entry. Returns the suite, or NULL with the CUnit error set. */
CU_pSuite unit_add_suite(const char *name, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                         const struct unit_test *tests);

CU_ErrorCode test_strbuf_register(void);
CU_ErrorCode test_log_register(void);
CU_ErrorCode test_channel_register(void);
CU_ErrorCode test_envelope_register(void);
CU_ErrorCode test_frame_register(void);
CU_ErrorCode test_keys_register(void);
CU_ErrorCode test_hashmap_register(void);
CU_ErrorCode test_config_register(void);
CU_ErrorCode test_signature_register(void);

/* Registers the suite that checks the vectors of sdk-vectors.mjs in the
 * JSON file at `path`. The suite fails when the file cannot be read. */
CU_ErrorCode test_sdk_vectors_register(const char *path);

/* Assertion helpers. On failure each records a CUnit failure whose text
 * contains the expression and both values, with strings cut at 200 bytes. */
void unit_assert_str_equal(const char *actual, const char *expected, const char *expression,
                           const char *file, unsigned line);
void unit_assert_mem_equal(const void *actual, size_t actual_len, const void *expected,
                           size_t expected_len, const char *expression, const char *file,
                           unsigned line);
void unit_assert_long_equal(long long actual, long long expected, const char *expression,
                            const char *file, unsigned line);
void unit_assert_contains(const char *haystack, const char *needle, const char *expression,
                          const char *file, unsigned line);
void unit_assert_not_contains(const char *haystack, const char *needle, const char *expression,
                              const char *file, unsigned line);

#define ASSERT_STR_EQ(actual, expected) \
    unit_assert_str_equal((actual), (expected), #actual, __FILE__, __LINE__)
/* The expected bytes are given as (pointer, length), or as LITERAL("..."). */
#define ASSERT_MEM_EQ(actual, actual_len, ...) \
    unit_assert_mem_equal((actual), (actual_len), __VA_ARGS__, #actual, __FILE__, __LINE__)
#define ASSERT_INT_EQ(actual, expected) \
    unit_assert_long_equal((long long)(actual), (long long)(expected), #actual, __FILE__, \
                           __LINE__)
#define ASSERT_CONTAINS(haystack, needle) \
    unit_assert_contains((haystack), (needle), #haystack, __FILE__, __LINE__)
#define ASSERT_NOT_CONTAINS(haystack, needle) \
    unit_assert_not_contains((haystack), (needle), #haystack, __FILE__, __LINE__)

/* Appends a string literal's bytes without its NUL, for ASSERT_MEM_EQ. */
#define LITERAL(s) (s), (sizeof(s) - 1)

#endif
