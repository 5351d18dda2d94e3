/* herald-relay-http-rate-tests: CUnit tests of relay/http_rate.c, the
 * token bucket behind each app's max_api_requests_per_second.
 *
 * Built with the relay when HERALD_TESTS is on, and run by ctest. */
#include <stdbool.h>
#include <stdint.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include "http_rate.h"

#define MS (UINT64_C(1000000))
#define START_NS (UINT64_C(5000) * MS) /* any clock value but 0 */

static void test_first_second_allows_burst(void)
{
    struct http_rate_bucket bucket = { 0 };
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(http_rate_take(&bucket, 10, START_NS), 0);

    CU_ASSERT_EQUAL(http_rate_take(&bucket, 10, START_NS), 1);
    CU_ASSERT_EQUAL(bucket.rejected, 1);
}

static void test_refills_over_time(void)
{
    struct http_rate_bucket bucket = { 0 };
    for (int i = 0; i < 10; i++)
        http_rate_take(&bucket, 10, START_NS);
    CU_ASSERT_NOT_EQUAL(http_rate_take(&bucket, 10, START_NS + 50 * MS), 0);

    /* 100 ms at 10 per second refill one token. */
    CU_ASSERT_EQUAL(http_rate_take(&bucket, 10, START_NS + 100 * MS), 0);
    CU_ASSERT_NOT_EQUAL(http_rate_take(&bucket, 10, START_NS + 100 * MS), 0);
}

static void test_capacity_is_one_second(void)
{
    struct http_rate_bucket bucket = { 0 };
    http_rate_take(&bucket, 5, START_NS);

    /* A long pause refills the bucket to 5 tokens, not more. */
    uint64_t later = START_NS + 60000 * MS;
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(http_rate_take(&bucket, 5, later), 0);
    CU_ASSERT_NOT_EQUAL(http_rate_take(&bucket, 5, later), 0);
}

static void test_retry_after_rounds_up(void)
{
    struct http_rate_bucket bucket = { 0 };
    CU_ASSERT_EQUAL(http_rate_take(&bucket, 1, START_NS), 0);

    /* At one request per second the next token is a whole second away. */
    CU_ASSERT_EQUAL(http_rate_take(&bucket, 1, START_NS), 1);
    CU_ASSERT_EQUAL(http_rate_take(&bucket, 1, START_NS + 999 * MS), 1);
    CU_ASSERT_EQUAL(http_rate_take(&bucket, 1, START_NS + 1000 * MS), 0);
}

static void test_clock_going_back_is_ignored(void)
{
    struct http_rate_bucket bucket = { 0 };
    http_rate_take(&bucket, 1, START_NS);
    CU_ASSERT_NOT_EQUAL(http_rate_take(&bucket, 1, START_NS - 500 * MS), 0);
}

int main(void)
{
    static const struct {
        const char *name;
        CU_TestFunc run;
    } tests[] = {
        { "first second allows burst", test_first_second_allows_burst },
        { "refills over time", test_refills_over_time },
        { "capacity is one second", test_capacity_is_one_second },
        { "retry after rounds up", test_retry_after_rounds_up },
        { "clock going back ignored", test_clock_going_back_is_ignored },
    };

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite suite = CU_add_suite("http rate", NULL, NULL);
    if (!suite) {
        CU_cleanup_registry();
        return 1;
    }
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (!CU_add_test(suite, tests[i].name, tests[i].run)) {
            CU_cleanup_registry();
            return 1;
        }
    }

    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    bool passed = CU_get_number_of_failures() == 0 && CU_get_number_of_tests_failed() == 0;
    CU_cleanup_registry();
    return passed ? 0 : 1;
}
