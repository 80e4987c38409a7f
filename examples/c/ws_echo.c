/* A websocket echo server on corral: GET /ws accepts a websocket that sends every text
 * or binary message back as it came; GET / is a plain reply. The callbacks run on
 * corral's I/O workers and only send, which never blocks.
 *
 *   ws_echo [PORT]       serve on 127.0.0.1:PORT until stdin closes
 *   ws_echo --self-test  serve, talk to itself with a tiny websocket client, check, exit
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The self-test's clients come from the C tests' helpers (tests/c/). */
#include "../../tests/c/testlib.h"
#include "../../tests/c/wslib.h"

/* How many sockets closed, and with which code last: the self-test waits for it. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t closed_cond = PTHREAD_COND_INITIALIZER;
static int closes = 0;
static unsigned last_code = 0;

static void on_message(corral_ws *ws, bool is_text, const uint8_t *data, size_t len, void *user) {
    (void)user;
    /* Backpressure or dropped (a client that does not read) is not an error for an
     * echo: the message is simply not echoed. */
    corral_ws_send(ws, is_text, data, len);
}

static void on_close(corral_ws *ws, uint16_t code, const char *reason, size_t len, void *user) {
    (void)ws;
    (void)reason;
    (void)len;
    (void)user;
    pthread_mutex_lock(&lock);
    closes++;
    last_code = code;
    pthread_cond_broadcast(&closed_cond);
    pthread_mutex_unlock(&lock);
}

/* Runs on an I/O worker. */
static void handle(void *userdata, const corral_request *req, corral_responder *res) {
    static const corral_ws_callbacks echo = {NULL, on_message, NULL, on_close};
    const uint8_t *path;
    size_t len;
    corral_header ct = {"content-type", "text/plain"};
    (void)userdata;
    if (corral_request_path(req, &path, &len) != CORRAL_STATUS_OK) {
        corral_responder_free(res);
    } else if (len == 3 && memcmp(path, "/ws", 3) == 0 && corral_request_is_websocket(req)) {
        /* No handle is kept: the callbacks get the socket, and that is all an echo needs. */
        corral_ws_accept(res, NULL, &echo, NULL, NULL);
    } else if (len == 1 && path[0] == '/') {
        corral_responder_send_http(res, 200, &ct, 1, (const uint8_t *)"hello\n", 6);
    } else {
        corral_responder_send_http(res, 404, &ct, 1, (const uint8_t *)"try / or /ws\n", 13);
    }
}

/* ---- the self-test's client --------------------------------------------------- */

static uint16_t port;
static int passed = 0, failed = 0;

static void check(int ok, const char *what) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "ws_echo: failed: %s\n", what);
    }
}

/* Waits (30 s at most: the machine may be busy) until `n` sockets closed. */
static int wait_closes(int n) {
    struct timespec until;
    int ok;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&lock);
    while (closes < n && pthread_cond_timedwait(&closed_cond, &lock, &until) == 0) {
    }
    ok = closes >= n;
    pthread_mutex_unlock(&lock);
    return ok;
}

/* Sends one message and checks it comes back the same. */
static void echo_once(int fd, int opcode, const uint8_t *msg, size_t len, uint8_t *buf, size_t cap) {
    int op = -1;
    size_t got = 0;
    check(ws_send(fd, opcode, msg, len) == 0, "send a message");
    check(ws_recv(fd, &op, buf, cap, &got) == 0 && op == opcode && got == len && memcmp(buf, msg, len) == 0,
          opcode == WS_TEXT ? "text echoed" : "binary echoed");
}

static void *client(void *arg) {
    static const size_t big = 70000; /* a 64-bit length on the wire */
    uint8_t *msg = malloc(big), *buf = malloc(big);
    char head[2048], body[64], reason[128];
    size_t i, got = 0;
    int fd, op = -1;
    (void)arg;
    check(tl_get(port, "/", body, sizeof body) == 200 && strcmp(body, "hello\n") == 0, "GET / answered");
    fd = tl_connect(port);
    if (fd < 0 || ws_handshake(fd, "/ws", "", head, sizeof head) != 101) {
        check(0, "GET /ws upgraded");
        if (fd >= 0) close(fd);
        free(msg);
        free(buf);
        return NULL;
    }
    for (i = 0; i < big; i++) msg[i] = (uint8_t)(i * 31 + 7);
    echo_once(fd, WS_TEXT, (const uint8_t *)"hello, corral", 13, buf, big);
    echo_once(fd, WS_BINARY, msg, 256, buf, big);
    echo_once(fd, WS_BINARY, msg, big, buf, big);
    echo_once(fd, WS_TEXT, (const uint8_t *)"", 0, buf, big);
    /* The close handshake: corral answers a close with the same code, then ends the
     * connection, and the server hears the client's code. */
    check(ws_send_close(fd, 1000, "done") == 0, "send close");
    check(ws_recv(fd, &op, buf, big, &got) == 0 && op == WS_CLOSE && ws_close_code(buf, got, reason, sizeof reason) == 1000,
          "close answered with 1000");
    check(ws_at_eof(fd), "connection ended after the close");
    close(fd);
    check(wait_closes(1) && last_code == 1000, "on_close got the client's code");
    free(msg);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    int self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *engine = NULL;
    corral_status s;
    char addr[64];

    snprintf(addr, sizeof addr, "127.0.0.1:%s", (argc > 1 && !self_test) ? argv[1] : "0");
    serve.handler = handle;
    if ((s = corral_config_add_address(cfg, addr)) != CORRAL_STATUS_OK ||
        (s = corral_engine_new_serve(cfg, &serve, &engine)) != CORRAL_STATUS_OK ||
        (s = corral_engine_start(engine)) != CORRAL_STATUS_OK) {
        char msg[256];
        corral_status_message(s, msg, sizeof msg, NULL);
        fprintf(stderr, "ws_echo: %s\n", msg);
        corral_config_free(cfg);
        corral_engine_free(engine);
        return 1;
    }
    corral_config_free(cfg);
    port = tl_port(engine);
    printf("ws_echo: listening on http://127.0.0.1:%u (websocket: ws://127.0.0.1:%u/ws)\n", port, port);
    fflush(stdout);
    if (self_test) {
        pthread_t t;
        pthread_create(&t, NULL, client, NULL);
        pthread_join(t, NULL);
    } else {
        while (getchar() != EOF) {
        }
    }
    corral_engine_shutdown(engine, 5000, NULL);
    corral_engine_free(engine);
    if (self_test) {
        printf("ws_echo: %d passed, %d failed\n", passed, failed);
        return failed == 0 ? 0 : 1;
    }
    return 0;
}
