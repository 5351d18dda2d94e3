#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int read_file(const char *path, char *buf, size_t size)
{
    FILE *file = fopen(path, "r");
    if (!file)
        return -1;
    size_t n = fread(buf, 1, size - 1, file);
    fclose(file);
    buf[n] = '\0';
    return 0;
}

/* utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
 * Field 2 (comm) may contain spaces and parentheses, so counting starts
 * after its last ')'. */
static int read_cpu_seconds(pid_t pid, double *seconds)
{
    char path[64];
    char buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof buf) != 0)
        return -1;

    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;

    unsigned long long utime = 0, stime = 0;
    /* After ')' come field 3 (state) to field 13, then utime and stime. */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;

    long ticks = sysconf(_SC_CLK_TCK);
    *seconds = (double)(utime + stime) / (double)(ticks > 0 ? ticks : 100);
    return 0;
}

static int read_rss_kb(pid_t pid, uint64_t *rss_kb)
{
    char path[64];
    char buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof buf) != 0)
        return -1;

    const char *line = strstr(buf, "\nVmRSS:");
    if (!line)
        return -1;
    *rss_kb = strtoull(line + strlen("\nVmRSS:"), NULL, 10);
    return 0;
}

int procstat_read(pid_t pid, struct procstat *out)
{
    if (read_cpu_seconds(pid, &out->cpu_seconds) != 0)
        return -1;
    if (read_rss_kb(pid, &out->rss_kb) != 0)
        return -1;
    return 0;
}

int procstat_read_machine(struct machine_cpu *out)
{
    char buf[1024];
    if (read_file("/proc/stat", buf, sizeof buf) != 0)
        return -1;

    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
    if (sscanf(buf, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle,
               &iowait, &irq, &softirq, &steal) != 8)
        return -1;

    long ticks = sysconf(_SC_CLK_TCK);
    double per_tick = 1.0 / (double)(ticks > 0 ? ticks : 100);
    out->process_seconds = (double)(user + nice + system) * per_tick;
    out->interrupt_seconds = (double)(irq + softirq + steal) * per_tick;
    out->total_seconds = (double)(user + nice + system + idle + iowait + irq + softirq + steal) *
                         per_tick;
    return 0;
}

double procstat_sum_all_processes(void)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;

    double sum = 0;
    struct dirent *entry;
    while ((entry = readdir(proc))) {
        if (!isdigit((unsigned char)entry->d_name[0]))
            continue;
        double seconds;
        if (read_cpu_seconds((pid_t)atoi(entry->d_name), &seconds) == 0)
            sum += seconds;
    }
    closedir(proc);
    return sum;
}
