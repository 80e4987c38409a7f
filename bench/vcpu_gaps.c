/* Does the machine take the CPU away from a thread that never sleeps?
 *
 * One thread per CPU, each pinned to its CPU, reads CLOCK_MONOTONIC in a loop for the
 * given seconds and counts the gaps between two reads: a gap of milliseconds is time the
 * thread did not run. Run it on an otherwise quiet machine; beside `perf sched record -a`
 * it tells the guest's own tasks (kdamond, kworkers: they appear in the trace) from the
 * hypervisor's (the trace shows the thread running throughout the gap).
 *
 *     cc -O2 -pthread -o /tmp/vcpu_gaps bench/vcpu_gaps.c && /tmp/vcpu_gaps 10
 *
 * On the 2-vCPU VM of docs/lab.md each vCPU lost 1-6 ms about once a second.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds;

static long long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *watch(void *arg) {
    long cpu = (long)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "cpu%ld: cannot pin to it\n", cpu);
        return NULL;
    }
    static const long long edges[] = {100000, 250000, 500000, 1000000, 2000000, 3000000, 5000000};
    int counts[8] = {0};
    long long start = now_ns(), last = start, end = start + (long long)(seconds * 1e9), worst = 0;
    for (;;) {
        long long t = now_ns(), gap = t - last;
        last = t;
        if (t > end)
            break;
        if (gap < edges[0])
            continue;
        int b = 0;
        while (b < 7 && gap >= edges[b])
            b++;
        counts[b - 1]++;
        if (gap > worst)
            worst = gap;
        if (gap >= 1000000)
            printf("cpu%ld: lost %.2f ms at %.3f s\n", cpu, gap / 1e6, (t - start) / 1e9);
    }
    printf("cpu%ld: gaps 0.1-0.25 ms %d, 0.25-0.5 %d, 0.5-1 %d, 1-2 %d, 2-3 %d, 3-5 %d, >5 %d; worst %.2f ms\n",
           cpu, counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6], worst / 1e6);
    return NULL;
}

int main(int argc, char **argv) {
    seconds = argc > 1 ? atof(argv[1]) : 10;
    long cpus = 0;
    cpu_set_t allowed;
    sched_getaffinity(0, sizeof allowed, &allowed);
    pthread_t threads[CPU_SETSIZE];
    for (long c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &allowed))
            pthread_create(&threads[cpus++], NULL, watch, (void *)c);
    for (long i = 0; i < cpus; i++)
        pthread_join(threads[i], NULL);
    return 0;
}
