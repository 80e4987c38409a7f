/* An HTTP server whose handler runs on corral's workers: GET / is answered inline on
 * the I/O worker; GET /work?us=N spins N microseconds and, classified heavy by the
 * path-prefix rule, runs on corral's CPU pool.
 *
 *   http_serve [PORT]      serve on 127.0.0.1:PORT until stdin closes
 *   http_serve --self-test serve, send requests from a thread, check, exit
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The self-test's HTTP client comes from the C tests' helpers (tests/c/testlib.c). */
#include "../../tests/c/testlib.h"

static void spin_us(long us) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do {
        clock_gettime(CLOCK_MONOTONIC, &b);
    } while ((b.tv_sec - a.tv_sec) * 1000000L + (b.tv_nsec - a.tv_nsec) / 1000 < us);
}

/* Runs on an I/O worker (light) or a CPU-pool thread (heavy). */
static void handle(void *userdata, const corral_request *req, corral_responder *res) {
    const uint8_t *path;
    size_t len;
    char body[128];
    corral_header ct = {"content-type", "text/plain"};
    (void)userdata;
    if (corral_request_path(req, &path, &len) != CORRAL_STATUS_OK) {
        corral_responder_free(res);
        return;
    }
    if (len >= 5 && memcmp(path, "/work", 5) == 0) {
        const char *q = memchr(path, '=', len) ? (const char *)memchr(path, '=', len) + 1 : "1000";
        long us = strtol(q, NULL, 10);
        spin_us(us < 0 || us > 10000000 ? 0 : us);
        snprintf(body, sizeof body, "spun %ld us\n", us);
    } else if (len == 1 && path[0] == '/') {
        snprintf(body, sizeof body, "hello\n");
    } else {
        corral_responder_send_http(res, 404, &ct, 1, (const uint8_t *)"not found\n", 10);
        return;
    }
    corral_responder_send_http(res, 200, &ct, 1, (const uint8_t *)body, strlen(body));
}

static uint16_t port;
static int failures = -1, passed = 0;

static void *client(void *arg) {
    char body[256];
    int i, f = 0;
    (void)arg;
    for (i = 0; i < 20; i++) {
        const char *path = i % 4 == 0 ? "/work?us=1000" : "/";
        int st = tl_get(port, path, body, sizeof body);
        if (st == 200 && (i % 4 ? strcmp(body, "hello\n") == 0 : strcmp(body, "spun 1000 us\n") == 0)) {
            passed++;
        } else {
            f++;
        }
    }
    if (tl_get(port, "/nope", body, sizeof body) == 404) passed++; else f++;
    failures = f;
    return NULL;
}

int main(int argc, char **argv) {
    int self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
    const char *heavy[] = {"/work"};
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *engine = NULL;
    corral_stats *st = NULL;
    double requests = 0, on_pool = 0;
    corral_status s;
    char addr[64];

    snprintf(addr, sizeof addr, "127.0.0.1:%s", (argc > 1 && !self_test) ? argv[1] : "0");
    serve.handler = handle;
    serve.heavy_path_prefixes = heavy;
    serve.heavy_path_prefix_count = 1;
    if ((s = corral_config_add_address(cfg, addr)) != CORRAL_STATUS_OK ||
        (s = corral_engine_new_serve(cfg, &serve, &engine)) != CORRAL_STATUS_OK ||
        (s = corral_engine_start(engine)) != CORRAL_STATUS_OK) {
        char msg[256];
        corral_status_message(s, msg, sizeof msg, NULL);
        fprintf(stderr, "http_serve: %s\n", msg);
        return 1;
    }
    corral_config_free(cfg);
    port = tl_port(engine);
    printf("http_serve: listening on http://127.0.0.1:%u\n", port);
    fflush(stdout);
    if (self_test) {
        pthread_t t;
        pthread_create(&t, NULL, client, NULL);
        pthread_join(t, NULL);
    } else {
        while (getchar() != EOF) {
        }
    }
    if (corral_engine_stats(engine, &st) == CORRAL_STATUS_OK) {
        corral_stats_get(st, "worker_requests", &requests);
        corral_stats_get(st, "cpu_jobs", &on_pool);
        corral_stats_free(st);
    }
    printf("http_serve: %.0f requests, %.0f heavy on the CPU pool\n", requests, on_pool);
    corral_engine_shutdown(engine, 5000, NULL);
    corral_engine_free(engine);
    if (self_test) {
        printf("http_serve: %d passed, %d failed\n", passed, failures);
        return failures == 0 && on_pool >= 5 ? 0 : 1;
    }
    return 0;
}
