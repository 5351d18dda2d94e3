/* Unit tests of common/hashmap.c: insert, replace, remove, growth,
 * tombstones and iteration over borrowed byte-string keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"
#include "unit_tests.h"

static int values[4];

static void test_empty_map(void)
{
    struct hashmap map;
    hashmap_init(&map);
    CU_ASSERT_PTR_NULL(hashmap_get(&map, "news", 4));
    CU_ASSERT_PTR_NULL(hashmap_remove(&map, "news", 4));
    size_t cursor = 0;
    CU_ASSERT_PTR_NULL(hashmap_next(&map, &cursor));
    hashmap_free(&map);
}

static void test_put_get_replace(void)
{
    struct hashmap map;
    hashmap_init(&map);
    CU_ASSERT_PTR_NULL(hashmap_put(&map, "news", 4, &values[0]));
    CU_ASSERT_PTR_NULL(hashmap_put(&map, "private-orders.7", 16, &values[1]));
    ASSERT_INT_EQ(map.count, 2);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "news", 4), &values[0]);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "private-orders.7", 16), &values[1]);

    /* Replacing returns the old value and keeps the count. */
    CU_ASSERT_PTR_EQUAL(hashmap_put(&map, "news", 4, &values[2]), &values[0]);
    ASSERT_INT_EQ(map.count, 2);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "news", 4), &values[2]);
    hashmap_free(&map);
}

static void test_keys_compared_by_bytes_and_length(void)
{
    struct hashmap map;
    hashmap_init(&map);
    hashmap_put(&map, "abc", 3, &values[0]);
    hashmap_put(&map, "ab", 2, &values[1]);
    hashmap_put(&map, "a\0c", 3, &values[2]);
    hashmap_put(&map, "", 0, &values[3]);
    ASSERT_INT_EQ(map.count, 4);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "abc", 3), &values[0]);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "abcdef", 2), &values[1]);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "a\0c", 3), &values[2]);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "x", 0), &values[3]);
    CU_ASSERT_PTR_NULL(hashmap_get(&map, "ABC", 3));
    CU_ASSERT_PTR_NULL(hashmap_get(&map, "a", 1));
    hashmap_free(&map);
}

static void test_remove(void)
{
    struct hashmap map;
    hashmap_init(&map);
    hashmap_put(&map, "a", 1, &values[0]);
    hashmap_put(&map, "b", 1, &values[1]);
    CU_ASSERT_PTR_EQUAL(hashmap_remove(&map, "a", 1), &values[0]);
    ASSERT_INT_EQ(map.count, 1);
    CU_ASSERT_PTR_NULL(hashmap_get(&map, "a", 1));
    CU_ASSERT_PTR_NULL(hashmap_remove(&map, "a", 1));
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "b", 1), &values[1]);

    /* A removed key can come back. */
    CU_ASSERT_PTR_NULL(hashmap_put(&map, "a", 1, &values[2]));
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "a", 1), &values[2]);
    ASSERT_INT_EQ(map.count, 2);
    hashmap_free(&map);
}

#define MANY 20000

/* Builds MANY distinct keys "channel-<i>" in one block. */
static char *make_keys(size_t *stride)
{
    *stride = 24;
    char *keys = calloc(MANY, *stride);
    for (size_t i = 0; i < MANY; i++)
        snprintf(keys + i * *stride, *stride, "channel-%zu", i);
    return keys;
}

static void test_growth_keeps_every_entry(void)
{
    size_t stride;
    char *keys = make_keys(&stride);
    struct hashmap map;
    hashmap_init(&map);
    for (size_t i = 0; i < MANY; i++) {
        const char *key = keys + i * stride;
        hashmap_put(&map, key, strlen(key), (void *)(keys + i * stride));
    }
    ASSERT_INT_EQ(map.count, MANY);
    CU_ASSERT(map.capacity >= MANY);
    CU_ASSERT((map.capacity & (map.capacity - 1)) == 0);

    size_t missing = 0;
    for (size_t i = 0; i < MANY; i++) {
        const char *key = keys + i * stride;
        if (hashmap_get(&map, key, strlen(key)) != key)
            missing++;
    }
    ASSERT_INT_EQ(missing, 0);
    hashmap_free(&map);
    free(keys);
}

static void test_churn_reuses_tombstones(void)
{
    /* Insert and remove far more keys than fit in the table at once. The
     * table must neither grow without bound nor lose live entries. */
    size_t stride;
    char *keys = make_keys(&stride);
    struct hashmap map;
    hashmap_init(&map);
    hashmap_put(&map, "resident", 8, &values[0]);
    for (size_t i = 0; i < MANY; i++) {
        const char *key = keys + i * stride;
        hashmap_put(&map, key, strlen(key), &values[1]);
        CU_ASSERT_PTR_EQUAL(hashmap_remove(&map, key, strlen(key)), &values[1]);
    }
    ASSERT_INT_EQ(map.count, 1);
    CU_ASSERT(map.capacity <= 64);
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "resident", 8), &values[0]);
    hashmap_free(&map);
    free(keys);
}

static void test_iteration_visits_each_once(void)
{
    size_t stride;
    char *keys = make_keys(&stride);
    struct hashmap map;
    hashmap_init(&map);
    for (size_t i = 0; i < 1000; i++) {
        const char *key = keys + i * stride;
        hashmap_put(&map, key, strlen(key), (void *)(uintptr_t)(i + 1));
    }

    char *seen = calloc(1000, 1);
    size_t cursor = 0, visited = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&map, &cursor))) {
        size_t index = (size_t)(uintptr_t)e->value - 1;
        CU_ASSERT_FATAL(index < 1000);
        seen[index]++;
        visited++;
    }
    ASSERT_INT_EQ(visited, 1000);
    size_t wrong = 0;
    for (size_t i = 0; i < 1000; i++)
        wrong += seen[i] != 1;
    ASSERT_INT_EQ(wrong, 0);
    free(seen);
    hashmap_free(&map);
    free(keys);
}

static void test_remove_during_iteration(void)
{
    size_t stride;
    char *keys = make_keys(&stride);
    struct hashmap map;
    hashmap_init(&map);
    for (size_t i = 0; i < 500; i++) {
        const char *key = keys + i * stride;
        hashmap_put(&map, key, strlen(key), (void *)(uintptr_t)i);
    }

    /* Removing the entry just returned is allowed. This removes the even ones. */
    size_t cursor = 0, removed = 0;
    struct hashmap_entry *e;
    while ((e = hashmap_next(&map, &cursor))) {
        if ((uintptr_t)e->value % 2 == 0) {
            hashmap_remove(&map, e->key, e->key_len);
            removed++;
        }
    }
    ASSERT_INT_EQ(removed, 250);
    ASSERT_INT_EQ(map.count, 250);
    CU_ASSERT_PTR_NULL(hashmap_get(&map, "channel-0", 9));
    CU_ASSERT_PTR_EQUAL(hashmap_get(&map, "channel-1", 9), (void *)(uintptr_t)1);
    hashmap_free(&map);
    free(keys);
}

CU_ErrorCode test_hashmap_register(void)
{
    static const struct unit_test tests[] = {
        { "empty map", test_empty_map },
        { "put get replace", test_put_get_replace },
        { "keys compared by bytes and length", test_keys_compared_by_bytes_and_length },
        { "remove", test_remove },
        { "growth keeps every entry", test_growth_keeps_every_entry },
        { "churn reuses tombstones", test_churn_reuses_tombstones },
        { "iteration visits each once", test_iteration_visits_each_once },
        { "remove during iteration", test_remove_during_iteration },
        { NULL, NULL },
    };
    return unit_add_suite("hashmap", NULL, NULL, tests) ? CUE_SUCCESS : CU_get_error();
}
