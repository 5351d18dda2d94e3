#include "hashmap.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* A deleted slot keeps probing chains intact until the next rehash. */
static const char tombstone_key[1];
#define TOMBSTONE (tombstone_key)

static uint64_t hash_seed;
static bool hash_seeded;

static void seed_once(void)
{
    if (hash_seeded)
        return;
    if (getrandom(&hash_seed, sizeof hash_seed, 0) != (ssize_t)sizeof hash_seed)
        hash_seed = (uint64_t)(uintptr_t)&hash_seed ^ 0x9e3779b97f4a7c15ull;
    hash_seeded = true;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    x *= 0xd6e8feb86659fd93ull;
    x ^= x >> 32;
    return x;
}

/* Seeded multiply-mix over 8-byte words. Not a cryptographic MAC, but with a
 * secret per-process seed an outsider cannot aim keys at one bucket. */
static uint64_t hash_bytes(const char *key, size_t len)
{
    uint64_t h = hash_seed ^ (len * 0x9e3779b97f4a7c15ull);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t word;
        memcpy(&word, key + i, 8);
        h = mix64(h ^ word) + 0x9e3779b97f4a7c15ull;
    }
    uint64_t tail = 0;
    memcpy(&tail, key + i, len - i);
    return mix64(h ^ tail ^ ((uint64_t)(len - i) << 56));
}

void hashmap_init(struct hashmap *map)
{
    seed_once();
    memset(map, 0, sizeof *map);
}

void hashmap_free(struct hashmap *map)
{
    free(map->entries);
    memset(map, 0, sizeof *map);
}

static struct hashmap_entry *find_slot(const struct hashmap *map, const char *key, size_t len,
                                       uint64_t hash)
{
    size_t mask = map->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        struct hashmap_entry *e = &map->entries[i];
        if (!e->key)
            return NULL;
        if (e->key != TOMBSTONE && e->hash == hash && e->key_len == len &&
            memcmp(e->key, key, len) == 0)
            return e;
    }
}

static void resize(struct hashmap *map, size_t capacity)
{
    struct hashmap_entry *old = map->entries;
    size_t old_capacity = map->capacity;

    map->entries = calloc(capacity, sizeof *map->entries);
    if (!map->entries) {
        fprintf(stderr, "herald: out of memory growing a hash map to %zu slots\n", capacity);
        abort();
    }
    map->capacity = capacity;
    map->tombstones = 0;

    size_t mask = capacity - 1;
    for (size_t i = 0; i < old_capacity; i++) {
        if (!old[i].key || old[i].key == TOMBSTONE)
            continue;
        size_t j = old[i].hash & mask;
        while (map->entries[j].key)
            j = (j + 1) & mask;
        map->entries[j] = old[i];
    }
    free(old);
}

void *hashmap_get(const struct hashmap *map, const char *key, size_t key_len)
{
    if (map->count == 0)
        return NULL;
    struct hashmap_entry *e = find_slot(map, key, key_len, hash_bytes(key, key_len));
    return e ? e->value : NULL;
}

void *hashmap_put(struct hashmap *map, const char *key, size_t key_len, void *value)
{
    /* Keep the load, tombstones included, under 3/4 so probes stay short. */
    if ((map->count + map->tombstones + 1) * 4 > map->capacity * 3) {
        size_t capacity = map->capacity ? map->capacity : 16;
        while ((map->count + 1) * 2 > capacity)
            capacity *= 2;
        resize(map, capacity);
    }

    uint64_t hash = hash_bytes(key, key_len);
    struct hashmap_entry *existing = find_slot(map, key, key_len, hash);
    if (existing) {
        void *previous = existing->value;
        existing->key = key;
        existing->value = value;
        return previous;
    }

    size_t mask = map->capacity - 1;
    size_t i = hash & mask;
    while (map->entries[i].key && map->entries[i].key != TOMBSTONE)
        i = (i + 1) & mask;
    if (map->entries[i].key == TOMBSTONE)
        map->tombstones--;
    map->entries[i] = (struct hashmap_entry){ key, key_len, hash, value };
    map->count++;
    return NULL;
}

void *hashmap_remove(struct hashmap *map, const char *key, size_t key_len)
{
    if (map->count == 0)
        return NULL;
    struct hashmap_entry *e = find_slot(map, key, key_len, hash_bytes(key, key_len));
    if (!e)
        return NULL;

    void *value = e->value;
    e->key = TOMBSTONE;
    e->value = NULL;
    map->count--;
    map->tombstones++;
    return value;
}

struct hashmap_entry *hashmap_next(const struct hashmap *map, size_t *cursor)
{
    while (*cursor < map->capacity) {
        struct hashmap_entry *e = &map->entries[(*cursor)++];
        if (e->key && e->key != TOMBSTONE)
            return e;
    }
    return NULL;
}
