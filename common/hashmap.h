/* Hash map from byte-string keys to pointers, with open addressing.
 *
 * Keys are borrowed, not copied: the caller keeps each key alive and
 * unchanged while its entry is in the map (the gateway points the key at
 * the topic string inside the value it stores). The hash is seeded at
 * random per process, so clients that choose channel names cannot predict
 * collisions. */
#ifndef HERALD_HASHMAP_H
#define HERALD_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

struct hashmap_entry {
    const char *key; /* NULL: empty slot */
    size_t key_len;
    uint64_t hash;
    void *value;
};

struct hashmap {
    struct hashmap_entry *entries;
    size_t capacity; /* power of two, or 0 before the first insert */
    size_t count;
    size_t tombstones;
};

void hashmap_init(struct hashmap *map);
void hashmap_free(struct hashmap *map);

void *hashmap_get(const struct hashmap *map, const char *key, size_t key_len);

/* Inserts or replaces; returns the previous value or NULL. */
void *hashmap_put(struct hashmap *map, const char *key, size_t key_len, void *value);

/* Removes the entry; returns its value or NULL when absent. */
void *hashmap_remove(struct hashmap *map, const char *key, size_t key_len);

/* Iteration: `*cursor` starts at 0; returns the next entry or NULL at the
 * end. The map must not change during iteration, except through
 * hashmap_remove of the entry just returned. */
struct hashmap_entry *hashmap_next(const struct hashmap *map, size_t *cursor);

#endif
