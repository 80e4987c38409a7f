/* The websocket client behind wslib.h. Blocking reads rely on the socket's receive
 * timeout (tl_connect sets a generous one), so a silent server fails a test instead of
 * hanging it. */
#define _POSIX_C_SOURCE 200809L
#include "wslib.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* RFC 6455's own example key and the accept value it must produce (section 1.3). */
static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char ACCEPT[] = "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static int send_all(int fd, const void *p, size_t n) {
    const uint8_t *s = p;
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int read_all(int fd, void *p, size_t n) {
    uint8_t *d = p;
    while (n > 0) {
        ssize_t r = read(fd, d, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Lowercases the header names of a response head (not the values), so checks can
 * search for "name: value" whatever case the server wrote. */
static void lower_names(char *head) {
    char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2] != 0) {
        char *p = line + 2;
        for (; *p && *p != ':' && *p != '\r'; p++) *p = (char)tolower((unsigned char)*p);
        line = strstr(p, "\r\n");
    }
}

int ws_handshake(int fd, const char *path, const char *extra, char *head, size_t cap) {
    char req[1024];
    size_t n = 0;
    int status;
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             path, KEY, extra);
    if (cap < 2 || send_all(fd, req, strlen(req)) != 0) return -1;
    head[0] = 0;
    /* One byte at a time: the frames that follow the head must stay in the socket. */
    while (!strstr(head, "\r\n\r\n")) {
        if (n + 1 >= cap || read_all(fd, head + n, 1) != 0) return -1;
        head[++n] = 0;
    }
    if (sscanf(head, "HTTP/1.%*d %d", &status) != 1) return -1;
    lower_names(head);
    if (status == 101 && !strstr(head, ACCEPT)) return -1;
    return status;
}

int ws_send(int fd, int opcode, const void *data, size_t len) {
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t hdr[14], buf[4096];
    const uint8_t *src = data;
    size_t h = 0, i, done;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (i = 0; i < 8; i++) hdr[h++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(hdr + h, mask, 4);
    if (send_all(fd, hdr, h + 4) != 0) return -1;
    for (done = 0; done < len;) {
        size_t n = len - done < sizeof buf ? len - done : sizeof buf;
        for (i = 0; i < n; i++) buf[i] = src[done + i] ^ mask[(done + i) % 4];
        if (send_all(fd, buf, n) != 0) return -1;
        done += n;
    }
    return 0;
}

int ws_send_close(int fd, uint16_t code, const char *reason) {
    uint8_t p[125];
    size_t n = strlen(reason);
    if (n > sizeof p - 2) n = sizeof p - 2;
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    memcpy(p + 2, reason, n);
    return ws_send(fd, WS_CLOSE, p, n + 2);
}

int ws_recv(int fd, int *opcode, uint8_t *buf, size_t cap, size_t *len) {
    for (;;) {
        uint8_t h[2], ext[8];
        uint64_t n;
        int i;
        if (read_all(fd, h, 2) != 0) return -1;
        if (h[1] & 0x80) return -1; /* a server never masks */
        n = h[1] & 0x7f;
        if (n == 126 || n == 127) {
            int k = n == 126 ? 2 : 8;
            if (read_all(fd, ext, (size_t)k) != 0) return -1;
            for (n = 0, i = 0; i < k; i++) n = n << 8 | ext[i];
        }
        if (n > cap) return -1;
        if (read_all(fd, buf, (size_t)n) != 0) return -1;
        if ((h[0] & 0x0f) == WS_PING) {
            if (ws_send(fd, WS_PONG, buf, (size_t)n) != 0) return -1;
            continue;
        }
        *opcode = h[0] & 0x0f;
        *len = (size_t)n;
        return 0;
    }
}

uint16_t ws_close_code(const uint8_t *payload, size_t len, char *reason, size_t cap) {
    size_t n = len > 2 ? len - 2 : 0;
    if (cap == 0) return 0;
    if (n >= cap) n = cap - 1;
    if (len >= 2) memcpy(reason, payload + 2, n);
    reason[n] = 0;
    return len >= 2 ? (uint16_t)(payload[0] << 8 | payload[1]) : 1005;
}

int ws_at_eof(int fd) {
    char c;
    ssize_t r;
    do {
        r = read(fd, &c, 1);
    } while (r < 0 && errno == EINTR);
    return r == 0;
}
