/* The tiny test harness and loopback HTTP client behind testlib.h. */
#include "testlib.h"

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

