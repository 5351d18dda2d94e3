/* Readings of another process from /proc: CPU time and resident memory. */
#ifndef HERALD_BENCH_PROCSTAT_H
#define HERALD_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

struct procstat {
    double cpu_seconds; /* utime + stime */
    uint64_t rss_kb;    /* VmRSS */
};

/* Reads /proc/PID/stat and /proc/PID/status. Returns 0, or -1 when the
 * process is gone or a file has an unexpected shape. */
int procstat_read(pid_t pid, struct procstat *out);

/* Machine-wide CPU time from the first line of /proc/stat, in seconds
 * summed over all CPUs. */
struct machine_cpu {
    double process_seconds; /* user + nice + system: time charged to processes */
    double interrupt_seconds; /* irq + softirq + steal */
    double total_seconds;     /* everything, idle and iowait included */
};

/* Returns 0, or -1 when /proc/stat cannot be read. */
int procstat_read_machine(struct machine_cpu *out);

/* Returns the CPU seconds (utime + stime) of every process in /proc.
 * NOTE: a process that exits between two calls drops out of the second
 * sum, and one that starts counts with its whole lifetime, so differences
 * of this sum are estimates. */
double procstat_sum_all_processes(void);

#endif
