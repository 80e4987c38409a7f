/* The tiny test harness and loopback HTTP client behind testlib.h. */
#include "testlib.h"

#include <pthread.h>

int tl_passed, tl_failed;

int tl_finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, tl_passed, tl_failed);
    return tl_failed == 0 ? 0 : 1;
}

int tl_connect(uint16_t port) {
    struct sockaddr_in a;
    struct timeval tv;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    tv.tv_sec = 30;
    tv.tv_usec = 0;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tl_write_all(int fd, const char *s, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int tl_read_response(int fd, char *body, size_t cap) {
    char head[4096];
    size_t n = 0;
    char *end = NULL;
    int status;
    size_t len = 0, have;
    const char *cl;
    head[0] = 0;
    while (!(end = strstr(head, "\r\n\r\n"))) {
        ssize_t r;
        if (n + 1 >= sizeof head) return -1;
        r = read(fd, head + n, 1);
        if (r <= 0) return -1;
        n += (size_t)r;
        head[n] = 0;
    }
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) return -1;
    cl = strstr(head, "content-length: ");
    if (cl) len = (size_t)strtoul(cl + 16, NULL, 10);
    if (len + 1 > cap) return -1;
    for (have = 0; have < len;) {
        ssize_t r = read(fd, body + have, len - have);
        if (r <= 0) return -1;
        have += (size_t)r;
    }
    body[len] = 0;
    return status;
}

int tl_get(uint16_t port, const char *path, char *body, size_t cap) {
    char req[512];
    int fd = tl_connect(port), status;
    if (fd < 0) return -1;
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    if (tl_write_all(fd, req, strlen(req)) != 0) {
        close(fd);
        return -1;
    }
    status = tl_read_response(fd, body, cap);
    close(fd);
    return status;
}

uint16_t tl_port(const corral_engine *e) {
    corral_peer p;
    if (corral_engine_local_addr(e, 0, &p) != CORRAL_STATUS_OK) return 0;
    return p.port;
}

int tl_make_cert(const char *cert, const char *key, const char *cn) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s -out %s -days 2 "
             "-subj /CN=%s -addext subjectAltName=DNS:localhost >/dev/null 2>&1",
             key, cert, cn);
    return system(cmd);
}


uint8_t tl_pattern(uint64_t i) {
    return (uint8_t)((i * 7u + (i >> 16)) % 251u);
}

static int send_all(int fd, const void *p, size_t n) {
    const char *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

int tl_send_pattern(int fd, uint64_t size, size_t chunk, int chunked, const char *trailers) {
    static const size_t piece = 65536;
    uint8_t *buf = malloc(piece);
    uint64_t at = 0;
    int rc = 0;
    if (!buf) return -1;
    if (!chunked || chunk == 0 || chunk > piece) chunk = piece;
    while (rc == 0 && at < size) {
        size_t n = size - at < chunk ? (size_t)(size - at) : chunk, i;
        char line[32];
        for (i = 0; i < n; i++) buf[i] = tl_pattern(at + i);
        if (chunked) {
            snprintf(line, sizeof line, "%zx\r\n", n);
            rc = send_all(fd, line, strlen(line));
        }
        if (rc == 0) rc = send_all(fd, buf, n);
        if (rc == 0 && chunked) rc = send_all(fd, "\r\n", 2);
        at += n;
    }
    if (rc == 0 && chunked) {
        rc = send_all(fd, "0\r\n", 3);
        if (rc == 0) rc = send_all(fd, trailers, strlen(trailers));
        if (rc == 0) rc = send_all(fd, "\r\n", 2);
    }
    free(buf);
    return rc;
}

struct tl_writer {
    pthread_t thread;
    int fd, chunked, rc;
    uint64_t size;
    size_t chunk;
    const char *trailers;
};

static void *writer_main(void *arg) {
    tl_writer *w = arg;
    w->rc = tl_send_pattern(w->fd, w->size, w->chunk, w->chunked, w->trailers);
    return NULL;
}

tl_writer *tl_writer_start(int fd, uint64_t size, size_t chunk, int chunked, const char *trailers) {
    tl_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = fd;
    w->size = size;
    w->chunk = chunk;
    w->chunked = chunked;
    w->trailers = trailers ? trailers : "";
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

int tl_writer_join(tl_writer *w) {
    int rc;
    if (!w) return -1;
    pthread_join(w->thread, NULL);
    rc = w->rc;
    free(w);
    return rc;
}

int tl_upload(uint16_t port, const char *path, uint64_t size, int chunked, const char *trailers, char *body,
              size_t cap) {
    char head[512];
    int fd = tl_connect(port), status;
    tl_writer *w;
    if (fd < 0) return -1;
    if (chunked) {
        snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", path);
    } else {
        snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %llu\r\n\r\n", path,
                 (unsigned long long)size);
    }
    if (send_all(fd, head, strlen(head)) != 0) {
        close(fd);
        return -1;
    }
    w = tl_writer_start(fd, size, 8192, chunked, trailers);
    status = tl_read_response(fd, body, cap);
    /* The reply may come before the body is sent (an early reply, a 413): stop the
     * writer by shutting the socket, then wait for it. */
    shutdown(fd, SHUT_RDWR);
    tl_writer_join(w);
    close(fd);
    return status;
}
