#include "histogram.h"

#include <math.h>

static unsigned bucket_of(uint64_t value)
{
    if (value > HISTOGRAM_MAX_VALUE)
        value = HISTOGRAM_MAX_VALUE;
    if (value < 2 * HISTOGRAM_SUB_COUNT)
        return (unsigned)value;

    unsigned msb = 63u - (unsigned)__builtin_clzll(value);
    unsigned shift = msb - HISTOGRAM_SUB_BITS;
    return shift * HISTOGRAM_SUB_COUNT + (unsigned)(value >> shift);
}

static uint64_t bucket_midpoint(unsigned bucket)
{
    if (bucket < 2 * HISTOGRAM_SUB_COUNT)
        return bucket;

    unsigned shift = bucket / HISTOGRAM_SUB_COUNT - 1;
    uint64_t mantissa = bucket - shift * HISTOGRAM_SUB_COUNT;
    uint64_t lower = mantissa << shift;
    return lower + ((UINT64_C(1) << shift) - 1) / 2;
}

void histogram_record(struct histogram *h, uint64_t value)
{
    h->counts[bucket_of(value)]++;
    h->total++;
    if (value > h->max)
        h->max = value;
}

void histogram_add(struct histogram *into, const struct histogram *from)
{
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
        into->counts[i] += from->counts[i];
    into->total += from->total;
    if (from->max > into->max)
        into->max = from->max;
}

void histogram_subtract(struct histogram *out, const struct histogram *later,
                        const struct histogram *earlier)
{
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
        out->counts[i] = later->counts[i] - earlier->counts[i];
    out->total = later->total - earlier->total;
    out->max = later->max;
}

uint64_t histogram_quantile(const struct histogram *h, double q)
{
    if (h->total == 0)
        return 0;

    uint64_t rank = (uint64_t)ceil(q * (double)h->total);
    if (rank < 1)
        rank = 1;

    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t value = bucket_midpoint(i);
            return value > h->max ? h->max : value;
        }
    }
    return h->max;
}
