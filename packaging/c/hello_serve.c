/* hello_serve: the smallest complete libcorral program, shipped with the C packages
 * (share/corral/examples/) and built by packaging/test_c.sh against an installed
 * libcorral (tarball and .deb) to prove the header, library and corral.pc work
 * together on a machine without Rust. It needs only corral.h:
 *
 *   cc hello_serve.c $(pkg-config --cflags --libs corral) -o hello_serve
 *   ./hello_serve           serve on 127.0.0.1 (a free port), answer two requests
 *                           over loopback itself, check the replies, exit 0 if right
 *
 * GET /hello is answered on an I/O worker; GET /heavy/... is classified heavy by the
 * path-prefix rule and runs on corral's CPU pool.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "corral.h"

/* Replies "hello from corral VERSION: METHOD PATH\n". */
static void handle(void *userdata, const corral_request *req, corral_responder *res) {
    const uint8_t *method, *path;
    size_t mlen, plen;
    char body[256];
    corral_header ct = {"content-type", "text/plain"};
    int n;
    (void)userdata;
    if (corral_request_method(req, &method, &mlen) != CORRAL_STATUS_OK ||
        corral_request_path(req, &path, &plen) != CORRAL_STATUS_OK) {
        corral_responder_free(res); /* the client gets a 500 */
        return;
    }
    n = snprintf(body, sizeof body, "hello from corral %s: %.*s %.*s\n", corral_version(),
                 (int)mlen, (const char *)method, (int)plen, (const char *)path);
    if (n < 0 || (size_t)n >= sizeof body) {
        corral_responder_free(res);
        return;
    }
    corral_responder_send_http(res, 200, &ct, 1, (const uint8_t *)body, (size_t)n);
}

/* One GET over a fresh loopback connection (10 s read deadline). Returns the HTTP
 * status, or -1 on any failure; the body, NUL-terminated, goes into `body`. */
static int get(uint16_t port, const char *path, char *body, size_t cap) {
    char buf[4096], req[256];
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    size_t have = 0, want = 0, len;
    const char *end = NULL, *p;
    long clen = -1;
    int status = -1, fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    len = (size_t)snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || write(fd, req, len) != (ssize_t)len) {
        close(fd);
        return -1;
    }
    /* Read until the head and content-length bytes of body are in. */
    while (end == NULL || have < want) {
        ssize_t r;
        if (have == sizeof buf - 1) break;
        r = read(fd, buf + have, sizeof buf - 1 - have);
        if (r <= 0) break;
        have += (size_t)r;
        buf[have] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            for (p = buf; p < end; p = strstr(p, "\r\n") + 2) {
                if (strncmp(p, "\r\n", 2) == 0) break;
                if (strncmp(p, "content-length:", 15) == 0 || strncmp(p, "Content-Length:", 15) == 0)
                    clen = strtol(p + 15, NULL, 10);
            }
            if (clen < 0) break;
            want = (size_t)(end + 4 - buf) + (size_t)clen;
        }
    }
    close(fd);
    if (end == NULL || clen < 0 || have < want || sscanf(buf, "HTTP/1.1 %d", &status) != 1) return -1;
    if ((size_t)clen >= cap) return -1;
    memcpy(body, end + 4, (size_t)clen);
    body[clen] = '\0';
    return status;
}

static int fail(const char *what, corral_status s) {
    char msg[256];
    corral_status_message(s, msg, sizeof msg, NULL);
    fprintf(stderr, "hello_serve: %s: %s\n", what, msg);
    return 1;
}

int main(void) {
    const char *heavy[] = {"/heavy"};
    const char *paths[] = {"/hello", "/heavy/sum"};
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *engine = NULL;
    corral_stats *st = NULL;
    corral_peer addr;
    corral_status s;
    char want[256], body[256], header_version[32];
    double on_pool = -1;
    int i, right = 0, failed = 0;

    /* The header and the library loaded at run time must be the same release. */
    snprintf(header_version, sizeof header_version, "%d.%d.%d", CORRAL_VERSION_MAJOR,
             CORRAL_VERSION_MINOR, CORRAL_VERSION_PATCH);
    if (strcmp(header_version, corral_version()) != 0) {
        fprintf(stderr, "hello_serve: corral.h is %s but the library is %s\n", header_version,
                corral_version());
        return 1;
    }
    if (cfg == NULL) return 1;
    serve.handler = handle;
    serve.heavy_path_prefixes = heavy;
    serve.heavy_path_prefix_count = 1;
    if ((s = corral_config_add_address(cfg, "127.0.0.1:0")) != CORRAL_STATUS_OK) return fail("address", s);
    if ((s = corral_engine_new_serve(cfg, &serve, &engine)) != CORRAL_STATUS_OK) return fail("engine", s);
    corral_config_free(cfg);
    if ((s = corral_engine_start(engine)) != CORRAL_STATUS_OK) return fail("start", s);
    if ((s = corral_engine_local_addr(engine, 0, &addr)) != CORRAL_STATUS_OK) return fail("local_addr", s);

    for (i = 0; i < 2; i++) {
        int status = get(addr.port, paths[i], body, sizeof body);
        snprintf(want, sizeof want, "hello from corral %s: GET %s\n", corral_version(), paths[i]);
        if (status != 200 || strcmp(body, want) != 0) {
            fprintf(stderr, "hello_serve: GET %s gave status %d, body \"%s\"; wanted 200, \"%s\"\n",
                    paths[i], status, status < 0 ? "" : body, want);
            failed++;
        } else {
            right++;
        }
    }
    /* The pool counts its job once the job has returned, and the reply is written from
     * inside the job: the client can hold the reply before the count moves. Look again
     * for a while (a deadline, not a fixed wait). */
    for (i = 0; i < 10000 && on_pool < 1; i++) {
        if (corral_engine_stats(engine, &st) == CORRAL_STATUS_OK) {
            corral_stats_get(st, "cpu_jobs", &on_pool);
            corral_stats_free(st);
        }
        if (on_pool < 1) {
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
        }
    }
    if (on_pool < 1) {
        fprintf(stderr, "hello_serve: the heavy request did not run on the CPU pool (cpu_jobs %.0f)\n", on_pool);
        failed++;
    }
    corral_engine_shutdown(engine, 5000, NULL);
    corral_engine_free(engine);
    printf("hello_serve: libcorral %s on 127.0.0.1:%u, %d of 2 requests right, %.0f on the CPU pool\n",
           corral_version(), addr.port, right, on_pool);
    return failed == 0 ? 0 : 1;
}
