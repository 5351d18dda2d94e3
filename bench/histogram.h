/* Log-linear latency histogram with fixed buckets, so that histograms of
 * several processes can be added and two snapshots of one can be
 * subtracted. Values below 64 are exact. Above, each power of two is split
 * into 32 buckets, so a reported value is off by at most about 3 %. */
#ifndef HERALD_BENCH_HISTOGRAM_H
#define HERALD_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 5
#define HISTOGRAM_SUB_COUNT (1u << HISTOGRAM_SUB_BITS)
/* Values are clamped to 2^36 - 1 (about 19 hours in microseconds). */
#define HISTOGRAM_MAX_VALUE ((UINT64_C(1) << 36) - 1)
#define HISTOGRAM_BUCKETS ((36 - HISTOGRAM_SUB_BITS + 1) * HISTOGRAM_SUB_COUNT)

struct histogram {
    uint64_t counts[HISTOGRAM_BUCKETS];
    uint64_t total;
    uint64_t max;
};

void histogram_record(struct histogram *h, uint64_t value);

/* Adds every bucket of `from` to `into`. */
void histogram_add(struct histogram *into, const struct histogram *from);

/* Stores `later - earlier` in `out`, bucket by bucket, for two snapshots of
 * the same histogram. `out->max` is later's max, which is only an upper
 * bound for the interval. */
void histogram_subtract(struct histogram *out, const struct histogram *later,
                        const struct histogram *earlier);

/* Returns the value at quantile `q` (0 to 1): the midpoint of the bucket
 * that contains the ceil(q * total)-th value, but never more than `max`.
 * Returns 0 for an empty histogram. */
uint64_t histogram_quantile(const struct histogram *h, double q);

#endif
