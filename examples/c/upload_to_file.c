/* An upload server: each `POST /upload` body is streamed to a file of its own in a
 * temporary directory as it arrives, in bounded memory (corral holds at most its
 * `body_window` of an upload, 64 KiB by default, and stops reading the socket while
 * the app is behind), and answered with its size. Uploads may be of any size up to
 * `max_body` (1 GiB by default; over it corral answers 413 itself).
 *
 *   upload_to_file [PORT]      serve on 127.0.0.1:PORT until stdin closes
 *   upload_to_file --self-test serve, upload 20 MB (and a chunked and a small body) to
 *                              itself over loopback, check each file, clean up, exit
 *
 * The handler runs on a corral I/O worker, which must never wait for a body: it takes
 * the body (corral_request_take_body) and hands it to a thread that writes the file
 * with blocking reads (corral_body_read_blocking). A small body that came whole with
 * its request is written at once.
 *
 *   curl -T big.iso http://127.0.0.1:PORT/upload
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The self-test's HTTP client comes from the C tests' helpers (tests/c/testlib.c). */
#include "../../tests/c/testlib.h"

static char dir[64];

/* Uploads in progress, so the program can wait for their threads before it exits. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_done = PTHREAD_COND_INITIALIZER;
static int jobs = 0;
static unsigned long next_id = 0;

struct job {
    corral_body *body;
    corral_responder *res;
    char path[128];
};

static void job_started(void) {
    pthread_mutex_lock(&jobs_lock);
    jobs++;
    pthread_mutex_unlock(&jobs_lock);
}

static void job_ended(void) {
    pthread_mutex_lock(&jobs_lock);
    if (--jobs == 0) pthread_cond_broadcast(&jobs_done);
    pthread_mutex_unlock(&jobs_lock);
}

static void reply(corral_responder *res, uint16_t status, const char *text) {
    corral_header ct = {"content-type", "text/plain"};
    corral_responder_send_http(res, status, &ct, 1, (const uint8_t *)text, strlen(text));
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answers where the upload went: "stored N bytes in PATH\n". */
static void stored(corral_responder *res, unsigned long long n, const char *path) {
    char text[256];
    snprintf(text, sizeof text, "stored %llu bytes in %s\n", n, path);
    reply(res, 200, text);
}

/* A thread per upload: blocking reads, each piece written to the file as it comes. */
static void *store(void *arg) {
    struct job *j = arg;
    static const size_t cap = 64 * 1024;
    uint8_t *buf = malloc(cap);
    unsigned long long total = 0;
    corral_status s = CORRAL_STATUS_OK;
    int fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int ok = fd >= 0 && buf != NULL;
    while (ok) {
        size_t n = 0;
        s = corral_body_read_blocking(j->body, buf, cap, CORRAL_WAIT_FOREVER, &n);
        if (s != CORRAL_STATUS_OK) break;
        total += n;
        ok = write_all(fd, buf, n) == 0;
    }
    if (fd >= 0 && close(fd) != 0) ok = 0;
    free(buf);
    /* Freed before the reply: once the reply is sent, the client may send its next
     * request on the connection. Freeing an unfinished body discards its rest. */
    corral_body_free(j->body);
    if (ok && s == CORRAL_STATUS_END) {
        stored(j->res, total, j->path);
    } else {
        char msg[256], text[320];
        if (!ok) {
            snprintf(msg, sizeof msg, "cannot write %s: %s", j->path, strerror(errno));
        } else {
            /* Too large, malformed, too slow or the client left: for the first three
             * corral has answered the client already and this reply is not sent. */
            corral_status_message(s, msg, sizeof msg, NULL);
        }
        fprintf(stderr, "upload_to_file: %s\n", msg);
        unlink(j->path);
        snprintf(text, sizeof text, "upload failed: %s\n", msg);
        reply(j->res, ok ? 400 : 500, text);
    }
    free(j);
    job_ended();
    return NULL;
}

/* Runs on a corral I/O worker: never waits here. */
static void handle(void *userdata, const corral_request *req, corral_responder *res) {
    const uint8_t *method, *path;
    size_t mlen, plen;
    corral_body *body = NULL;
    struct job *j;
    pthread_t t;
    pthread_attr_t attr;
    unsigned long id;
    (void)userdata;
    if (corral_request_method(req, &method, &mlen) != CORRAL_STATUS_OK ||
        corral_request_path(req, &path, &plen) != CORRAL_STATUS_OK) {
        corral_responder_free(res);
        return;
    }
    if (!(plen == 7 && memcmp(path, "/upload", 7) == 0)) {
        reply(res, plen == 1 && path[0] == '/' ? 200 : 404, plen == 1 ? "POST a file to /upload\n" : "not found\n");
        return;
    }
    if (!(mlen == 4 && memcmp(method, "POST", 4) == 0) && !(mlen == 3 && memcmp(method, "PUT", 3) == 0)) {
        reply(res, 405, "POST or PUT the file to /upload\n");
        return;
    }
    pthread_mutex_lock(&jobs_lock);
    id = ++next_id;
    pthread_mutex_unlock(&jobs_lock);
    j = calloc(1, sizeof *j);
    if (!j) {
        reply(res, 503, "out of memory\n");
        return;
    }
    snprintf(j->path, sizeof j->path, "%s/upload-%lu", dir, id);
    if (corral_request_take_body(req, &body) == CORRAL_STATUS_NOT_FOUND) {
        /* It came whole with the request (a small upload): write it now. */
        const uint8_t *data;
        size_t len;
        int fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        int ok = fd >= 0 && corral_request_body(req, &data, &len) == CORRAL_STATUS_OK && write_all(fd, data, len) == 0;
        if (fd >= 0 && close(fd) != 0) ok = 0;
        if (ok) {
            stored(res, (unsigned long long)len, j->path);
        } else {
            unlink(j->path);
            reply(res, 500, "cannot write the file\n");
        }
        free(j);
        return;
    }
    j->body = body;
    j->res = res;
    job_started();
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, store, j) != 0) {
        corral_body_free(body);
        reply(res, 503, "cannot start a thread for the upload\n");
        free(j);
        job_ended();
    }
    pthread_attr_destroy(&attr);
}

/* ---- the self-test: uploads to itself, then checks each file byte for byte ---------- */

static uint16_t port;
static int failures = 0, passed = 0;

static void expect(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failures++;
        fprintf(stderr, "upload_to_file: self-test failed: %s\n", what);
    }
}

/* True if the file the reply names holds exactly `size` bytes of the test pattern. */
static int file_holds(const char *reply_text, unsigned long long size) {
    char path[256];
    unsigned long long n = 0;
    uint8_t buf[65536];
    uint64_t at = 0;
    struct stat st;
    int fd, same = 1;
    if (sscanf(reply_text, "stored %llu bytes in %255s", &n, path) != 2 || n != size) return 0;
    if (stat(path, &st) != 0 || (unsigned long long)st.st_size != size) return 0;
    if ((fd = open(path, O_RDONLY)) < 0) return 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf), i;
        if (r <= 0) break;
        for (i = 0; i < r; i++) same &= buf[i] == tl_pattern(at + (uint64_t)i);
        at += (uint64_t)r;
    }
    close(fd);
    unlink(path);
    return same && at == size;
}

static void *client(void *arg) {
    char body[512];
    const unsigned long long big = 20ull * 1000 * 1000;
    (void)arg;
    expect(tl_upload(port, "/upload", big, 0, "", body, sizeof body) == 200 && file_holds(body, big),
           "a 20 MB upload lands whole in its file");
    expect(tl_upload(port, "/upload", 3000000, 1, "", body, sizeof body) == 200 && file_holds(body, 3000000),
           "a 3 MB chunked upload lands whole in its file");
    expect(tl_upload(port, "/upload", 1000, 0, "", body, sizeof body) == 200 && file_holds(body, 1000),
           "a small upload lands whole in its file");
    {
        /* Head and body in one write: the body comes whole with its request. */
        const char *head = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n";
        char req[256];
        size_t n = strlen(head), i;
        int fd = tl_connect(port);
        memcpy(req, head, n);
        for (i = 0; i < 100; i++) req[n + i] = (char)tl_pattern(i);
        expect(fd >= 0 && tl_write_all(fd, req, n + 100) == 0 &&
                   tl_read_response(fd, body, sizeof body) == 200 && file_holds(body, 100),
               "an upload that came whole with its request lands in its file");
        if (fd >= 0) close(fd);
    }
    expect(tl_get(port, "/upload", body, sizeof body) == 405, "GET /upload is refused");
    return NULL;
}

int main(int argc, char **argv) {
    int self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *engine = NULL;
    corral_stats *st = NULL;
    double streamed = 0, bytes_in = 0;
    corral_status s;
    char addr[64];

    strcpy(dir, "/tmp/corral-uploads-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("upload_to_file: mkdtemp");
        return 1;
    }
    snprintf(addr, sizeof addr, "127.0.0.1:%s", (argc > 1 && !self_test) ? argv[1] : "0");
    serve.handler = handle;
    serve.stream_bodies = true; /* bodies reach the handler as they arrive */
    if ((s = corral_config_add_address(cfg, addr)) != CORRAL_STATUS_OK ||
        (s = corral_engine_new_serve(cfg, &serve, &engine)) != CORRAL_STATUS_OK ||
        (s = corral_engine_start(engine)) != CORRAL_STATUS_OK) {
        char msg[256];
        corral_status_message(s, msg, sizeof msg, NULL);
        fprintf(stderr, "upload_to_file: %s\n", msg);
        corral_config_free(cfg);
        corral_engine_free(engine);
        rmdir(dir);
        return 1;
    }
    corral_config_free(cfg);
    port = tl_port(engine);
    printf("upload_to_file: listening on http://127.0.0.1:%u, storing uploads in %s\n", port, dir);
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
        corral_stats_get(st, "bodies_streamed", &streamed);
        corral_stats_get(st, "body_bytes_in", &bytes_in);
        corral_stats_free(st);
    }
    printf("upload_to_file: %.0f uploads streamed, %.0f body bytes read\n", streamed, bytes_in);
    /* Shutdown closes the connections: a reader still waiting gets
     * CORRAL_STATUS_BODY_CLOSED, removes its partial file and ends. */
    corral_engine_shutdown(engine, 5000, NULL);
    pthread_mutex_lock(&jobs_lock);
    while (jobs > 0) pthread_cond_wait(&jobs_done, &jobs_lock);
    pthread_mutex_unlock(&jobs_lock);
    corral_engine_free(engine);
    if (self_test) {
        rmdir(dir);
        printf("upload_to_file: %d passed, %d failed\n", passed, failures);
        return failures == 0 && streamed >= 2 ? 0 : 1;
    }
    return 0;
}
