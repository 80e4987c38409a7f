/* Websockets through the C API on real loopback sockets: the offer as the handler sees
 * it, accept with a subprotocol and headers, echo of text and binary, send from another
 * thread, close codes both ways, topics (publish to two subscribers, not to the sender),
 * backpressure and drain, send after close, and NULL and malformed arguments.
 *
 * Each accepted socket's `user` is a struct made by the handler and freed by its
 * on_close: run under valgrind, that checks corral never touches `user` afterwards. */
#include "testlib.h"
#include "wslib.h"

#include <pthread.h>
#include <time.h>

/* ---- what the callbacks saw, under `mu` ------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static corral_ws *echo_handle;       /* /echo's reference from corral_ws_accept() */
static corral_ws *echo_seen;         /* the pointer /echo's on_open got */
static uint64_t echo_conn_id;        /* the upgrade request's connection id */
static int echo_handler_checks = -1; /* the offer's protocols and can_upgrade held */
static int bad_text = -1;            /* corral_ws_send() of invalid UTF-8 */
static int plain_checks = -1;        /* a plain GET: not an offer, accept refused */
static int null_callbacks = -1;      /* accept with NULL callbacks */
static int room_open = 0, room_subscribe_checks = 1, room_sender_count = -1, room_leave_checks = -1;
static int pressure_done = 0, pressure_queued = 0, pressure_after_bp = -1, drained = 0;
static corral_status pressure_first = CORRAL_STATUS_OK;
static int closes = 0;
static unsigned last_code = 0;
static char last_reason[128];
static size_t last_reason_len = 0;

/* Waits (30 s at most: the machine may be busy) until `*counter` reaches `n`. */
static int wait_for(const int *counter, int n) {
    struct timespec until;
    int ok;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&mu);
    while (*counter < n && pthread_cond_timedwait(&cv, &mu, &until) == 0) {
    }
    ok = *counter >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void note(void) {
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* One accepted socket's `user`. */
struct sock {
    char path[16];
};

static int text_is(bool is_text, const uint8_t *d, size_t n, const char *want) {
    return is_text && n == strlen(want) && memcmp(d, want, n) == 0;
}

static void on_close(corral_ws *ws, uint16_t code, const char *reason, size_t len, void *user) {
    (void)ws;
    pthread_mutex_lock(&mu);
    last_code = code;
    last_reason_len = len;
    snprintf(last_reason, sizeof last_reason, "%s", reason);
    closes++;
    free(user);
    note();
}

/* /echo: every message back, except "bad-utf8", which checks corral_ws_send refuses
 * text that is not UTF-8 and answers "checked". */
static void echo_open(corral_ws *ws, void *user) {
    (void)user;
    pthread_mutex_lock(&mu);
    echo_seen = ws;
    note();
}

static void echo_message(corral_ws *ws, bool is_text, const uint8_t *data, size_t len, void *user) {
    (void)user;
    if (text_is(is_text, data, len, "bad-utf8")) {
        corral_status s = corral_ws_send(ws, true, (const uint8_t *)"\xff\xfe", 2);
        pthread_mutex_lock(&mu);
        bad_text = s == CORRAL_STATUS_INVALID_ARGUMENT;
        note();
        corral_ws_send(ws, true, (const uint8_t *)"checked", 7);
        return;
    }
    corral_ws_send(ws, is_text, data, len);
}

/* /close: the server closes as soon as the socket opens. */
static void close_open(corral_ws *ws, void *user) {
    (void)user;
    corral_ws_close(ws, 4002, "server bye");
}

/* /room: subscribes to "room"; a message is published to the others, "leave"
 * unsubscribes. */
static void room_opened(corral_ws *ws, void *user) {
    bool first = false, again = true;
    int ok = corral_ws_subscribe(ws, "room", &first) == CORRAL_STATUS_OK &&
             corral_ws_subscribe(ws, "room", &again) == CORRAL_STATUS_OK && first && !again;
    (void)user;
    pthread_mutex_lock(&mu);
    room_subscribe_checks &= ok;
    room_open++;
    note();
}

static void room_message(corral_ws *ws, bool is_text, const uint8_t *data, size_t len, void *user) {
    size_t n = 99;
    (void)user;
    if (text_is(is_text, data, len, "leave")) {
        bool first = false, again = true;
        int ok = corral_ws_unsubscribe(ws, "room", &first) == CORRAL_STATUS_OK &&
                 corral_ws_unsubscribe(ws, "room", &again) == CORRAL_STATUS_OK && first && !again;
        pthread_mutex_lock(&mu);
        room_leave_checks = ok;
        note();
        corral_ws_send(ws, true, (const uint8_t *)"left", 4);
        return;
    }
    if (corral_ws_publish(ws, "room", is_text, data, len, &n) != CORRAL_STATUS_OK) n = 99;
    pthread_mutex_lock(&mu);
    room_sender_count = (int)n;
    note();
}

/* /pressure: sends 64 KiB messages to a client that does not read yet, until one is
 * answered with backpressure; the next must be dropped; on_drain (once the client has
 * read the backlog down) says "drained". */
static void pressure_open(corral_ws *ws, void *user) {
    static uint8_t block[65536];
    corral_status s = CORRAL_STATUS_OK;
    int queued = 0, i;
    (void)user;
    for (i = 0; i < 10000 && s == CORRAL_STATUS_OK; i++) {
        s = corral_ws_send(ws, false, block, sizeof block);
        queued += s == CORRAL_STATUS_OK || s == CORRAL_STATUS_BACKPRESSURE;
    }
    pthread_mutex_lock(&mu);
    pressure_first = s;
    pressure_queued = queued;
    pressure_after_bp = corral_ws_send(ws, false, block, sizeof block) == CORRAL_STATUS_DROPPED;
    pressure_done = 1;
    note();
}

static void pressure_drain(corral_ws *ws, void *user) {
    (void)user;
    pthread_mutex_lock(&mu);
    drained++;
    note();
    corral_ws_send(ws, true, (const uint8_t *)"drained", 7);
}

/* ---- the handler ------------------------------------------------------------------- */

static int path_is(const corral_request *req, const char *want) {
    const uint8_t *p;
    size_t n;
    return corral_request_path(req, &p, &n) == CORRAL_STATUS_OK && n == strlen(want) && memcmp(p, want, n) == 0;
}

static int protocol_is(const corral_request *req, size_t i, const char *want) {
    const uint8_t *p;
    size_t n;
    return corral_request_ws_protocol(req, i, &p, &n) == CORRAL_STATUS_OK && n == strlen(want) &&
           memcmp(p, want, n) == 0;
}

static void accept_echo(const corral_request *req, corral_responder *res, struct sock *s) {
    static const corral_ws_callbacks cbs = {echo_open, echo_message, NULL, on_close};
    corral_header h = {"x-test", "yes"};
    corral_ws_accept_opts opts = corral_ws_accept_opts_default();
    corral_request_info info;
    const uint8_t *p;
    size_t n;
    corral_ws *ws = NULL;
    int ok;
    memset(&info, 0, sizeof info);
    ok = corral_request_is_websocket(req) && corral_responder_can_upgrade(res) && protocol_is(req, 0, "chat") &&
             protocol_is(req, 1, "superchat") &&
             corral_request_ws_protocol(req, 2, &p, &n) == CORRAL_STATUS_NOT_FOUND &&
             corral_request_get_info(req, &info) == CORRAL_STATUS_OK;
    opts.protocol = "chat";
    opts.headers = &h;
    opts.header_count = 1;
    ok &= corral_ws_accept(res, &opts, &cbs, s, &ws) == CORRAL_STATUS_OK && ws != NULL;
    pthread_mutex_lock(&mu);
    echo_handler_checks = ok;
    echo_handle = ws;
    echo_conn_id = info.conn_id;
    note();
}

static void handler(void *userdata, const corral_request *req, corral_responder *res) {
    static const corral_ws_callbacks close_cbs = {close_open, NULL, NULL, on_close};
    static const corral_ws_callbacks room_cbs = {room_opened, room_message, NULL, on_close};
    static const corral_ws_callbacks pressure_cbs = {pressure_open, NULL, pressure_drain, on_close};
    struct sock *s = calloc(1, sizeof *s);
    corral_status st = CORRAL_STATUS_OK;
    (void)userdata;
    if (path_is(req, "/echo")) {
        accept_echo(req, res, s);
        return;
    } else if (path_is(req, "/close")) {
        st = corral_ws_accept(res, NULL, &close_cbs, s, NULL);
    } else if (path_is(req, "/room")) {
        st = corral_ws_accept(res, NULL, &room_cbs, s, NULL);
    } else if (path_is(req, "/pressure")) {
        st = corral_ws_accept(res, NULL, &pressure_cbs, s, NULL);
    } else if (path_is(req, "/nullcb")) {
        st = corral_ws_accept(res, NULL, NULL, s, NULL);
        pthread_mutex_lock(&mu);
        null_callbacks = st == CORRAL_STATUS_NULL_ARGUMENT;
        note();
    } else {
        /* A plain request: no offer, and accepting it is refused (the client gets 500). */
        int not_offer = !corral_request_is_websocket(req) && !corral_responder_can_upgrade(res);
        st = corral_ws_accept(res, NULL, &close_cbs, s, NULL);
        pthread_mutex_lock(&mu);
        plain_checks = not_offer && st == CORRAL_STATUS_INVALID_ARGUMENT;
        note();
    }
    /* No callback will ever get `s` when accept failed. */
    if (st != CORRAL_STATUS_OK) free(s);
}

/* ---- the client side ---------------------------------------------------------------- */

static uint16_t port;
static uint8_t buf[1 << 17];

static int upgrade(const char *path, const char *extra, char *head, size_t cap) {
    int fd = tl_connect(port);
    if (fd < 0) return -1;
    if (ws_handshake(fd, path, extra, head, cap) != 101) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads the next message and checks it is `op` with these bytes. */
static int recv_is(int fd, int op, const void *want, size_t n) {
    int got_op = -1;
    size_t got = 0;
    return ws_recv(fd, &got_op, buf, sizeof buf, &got) == 0 && got_op == op && got == n && memcmp(buf, want, n) == 0;
}

/* Reads the server's close frame and checks its code; the reason goes into `reason`. */
static int recv_close(int fd, uint16_t code, char *reason, size_t cap) {
    int op = -1;
    size_t got = 0;
    return ws_recv(fd, &op, buf, sizeof buf, &got) == 0 && op == WS_CLOSE &&
           ws_close_code(buf, got, reason, cap) == code;
}

static void test_plain_and_refusals(void) {
    char body[256], head[2048];
    int fd;
    CHECK(tl_get(port, "/plain", body, sizeof body) == 500);
    CHECK(wait_for(&plain_checks, 1));
    fd = tl_connect(port);
    CHECK(fd >= 0 && ws_handshake(fd, "/nullcb", "", head, sizeof head) == 500);
    if (fd >= 0) close(fd);
    CHECK(wait_for(&null_callbacks, 1));
}

static void test_echo(corral_engine *e) {
    char head[2048], reason[128];
    uint8_t bin[256];
    uint64_t id = 0;
    size_t i, amount = 1;
    bool open = false, changed = true;
    int before = closes;
    int fd = upgrade("/echo", "Sec-WebSocket-Protocol: chat, superchat\r\n", head, sizeof head);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(strstr(head, "sec-websocket-protocol: chat\r\n") != NULL);
    CHECK(strstr(head, "x-test: yes\r\n") != NULL);
    CHECK(wait_for(&echo_handler_checks, 1));
    CHECK(echo_handle != NULL);

    CHECK(ws_send(fd, WS_TEXT, "hello", 5) == 0 && recv_is(fd, WS_TEXT, "hello", 5));
    for (i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)i;
    CHECK(ws_send(fd, WS_BINARY, bin, sizeof bin) == 0 && recv_is(fd, WS_BINARY, bin, sizeof bin));
    CHECK(ws_send(fd, WS_TEXT, "bad-utf8", 8) == 0 && recv_is(fd, WS_TEXT, "checked", 7));
    CHECK(wait_for(&bad_text, 1));

    /* The handle from accept is the pointer the callbacks get, and works from this
     * thread. */
    pthread_mutex_lock(&mu);
    CHECK(echo_seen == echo_handle);
    pthread_mutex_unlock(&mu);
    OK(corral_ws_send(echo_handle, true, (const uint8_t *)"from main", 9));
    CHECK(recv_is(fd, WS_TEXT, "from main", 9));
    OK(corral_ws_send(echo_handle, false, NULL, 0));
    CHECK(recv_is(fd, WS_BINARY, "", 0));
    OK(corral_ws_id(echo_handle, &id));
    CHECK(id == echo_conn_id);
    OK(corral_ws_buffered_amount(echo_handle, &amount));
    OK(corral_ws_is_open(echo_handle, &open));
    CHECK(open);

    /* Arguments refused on a live socket, which stays open. */
    CHECK_STATUS(corral_ws_send(echo_handle, true, NULL, 5), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_close(echo_handle, 1000, "\xff"), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_ws_subscribe(echo_handle, NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_subscribe(echo_handle, "\xff", NULL), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_ws_publish(echo_handle, "t", true, (const uint8_t *)"\xff", 1, NULL),
                 CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_ws_publish(echo_handle, "t", false, NULL, 1, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_id(echo_handle, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_is_open(echo_handle, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_buffered_amount(echo_handle, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_publish(e, NULL, true, (const uint8_t *)"x", 1, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_subscribers(e, "room", NULL), CORRAL_STATUS_NULL_ARGUMENT);
    OK(corral_ws_is_open(echo_handle, &open));
    CHECK(open);
    CHECK(ws_send(fd, WS_TEXT, "still", 5) == 0 && recv_is(fd, WS_TEXT, "still", 5));

    /* The client closes: corral answers with its code, on_close hears code and reason. */
    CHECK(ws_send_close(fd, 4001, "bye") == 0);
    CHECK(recv_close(fd, 4001, reason, sizeof reason));
    CHECK(ws_at_eof(fd));
    close(fd);
    CHECK(wait_for(&closes, before + 1));
    pthread_mutex_lock(&mu);
    CHECK(last_code == 4001 && strcmp(last_reason, "bye") == 0 && last_reason_len == 3);
    pthread_mutex_unlock(&mu);

    /* The handle outlives the socket: sends are dropped, topics refused. */
    CHECK_STATUS(corral_ws_send(echo_handle, true, (const uint8_t *)"late", 4), CORRAL_STATUS_DROPPED);
    OK(corral_ws_is_open(echo_handle, &open));
    CHECK(!open);
    OK(corral_ws_subscribe(echo_handle, "room", &changed));
    CHECK(!changed);
    OK(corral_ws_close(echo_handle, 1000, NULL));
    CHECK(corral_ws_retain(echo_handle) == echo_handle);
    corral_ws_release(echo_handle);
    corral_ws_release(echo_handle);
    echo_handle = NULL;
}

static void test_server_close(void) {
    char head[2048], reason[128];
    int before = closes;
    int fd = upgrade("/close", "", head, sizeof head);
    CHECK(fd >= 0);
    if (fd < 0) return;
    CHECK(recv_close(fd, 4002, reason, sizeof reason) && strcmp(reason, "server bye") == 0);
    CHECK(ws_send_close(fd, 4002, "") == 0);
    CHECK(ws_at_eof(fd));
    close(fd);
    CHECK(wait_for(&closes, before + 1));
    CHECK(last_code == 4002);
}

static void test_topics(corral_engine *e) {
    char head[2048], reason[128];
    size_t n = 0;
    int before = closes;
    int a = upgrade("/room", "", head, sizeof head), b = upgrade("/room", "", head, sizeof head);
    CHECK(a >= 0 && b >= 0);
    if (a < 0 || b < 0) {
        if (a >= 0) close(a);
        if (b >= 0) close(b);
        return;
    }
    CHECK(wait_for(&room_open, 2));
    CHECK(room_subscribe_checks);
    OK(corral_engine_subscribers(e, "room", &n));
    CHECK(n == 2);
    OK(corral_engine_publish(e, "room", true, (const uint8_t *)"news", 4, &n));
    CHECK(n == 2);
    CHECK(recv_is(a, WS_TEXT, "news", 4));
    CHECK(recv_is(b, WS_TEXT, "news", 4));

    /* A socket's publish reaches the others, not itself: a's next message is "end". */
    CHECK(ws_send(a, WS_TEXT, "from a", 6) == 0);
    CHECK(recv_is(b, WS_TEXT, "from a", 6));
    CHECK(wait_for(&room_sender_count, 1) && room_sender_count == 1);
    OK(corral_engine_publish(e, "room", false, (const uint8_t *)"end", 3, &n));
    CHECK(n == 2);
    CHECK(recv_is(a, WS_BINARY, "end", 3));
    CHECK(recv_is(b, WS_BINARY, "end", 3));

    CHECK(ws_send(b, WS_TEXT, "leave", 5) == 0 && recv_is(b, WS_TEXT, "left", 4));
    CHECK(room_leave_checks == 1);
    OK(corral_engine_subscribers(e, "room", &n));
    CHECK(n == 1);

    CHECK(ws_send_close(a, 1000, "") == 0 && recv_close(a, 1000, reason, sizeof reason));
    CHECK(ws_send_close(b, 1001, "going") == 0 && recv_close(b, 1001, reason, sizeof reason));
    close(a);
    close(b);
    CHECK(wait_for(&closes, before + 2));
    OK(corral_engine_subscribers(e, "room", &n));
    CHECK(n == 0);
    OK(corral_engine_publish(e, "room", true, (const uint8_t *)"nobody", 6, &n));
    CHECK(n == 0);
}

static void test_backpressure(void) {
    char head[2048], reason[128];
    int before = closes, binaries = 0, op = -1;
    size_t got = 0;
    int fd = upgrade("/pressure", "", head, sizeof head);
    CHECK(fd >= 0);
    if (fd < 0) return;
    /* Nothing is read until on_open has filled the socket up. */
    CHECK(wait_for(&pressure_done, 1));
    CHECK_STATUS(pressure_first, CORRAL_STATUS_BACKPRESSURE);
    CHECK(pressure_after_bp == 1);
    while (ws_recv(fd, &op, buf, sizeof buf, &got) == 0 && op == WS_BINARY) binaries++;
    CHECK(op == WS_TEXT && got == 7 && memcmp(buf, "drained", 7) == 0);
    pthread_mutex_lock(&mu);
    CHECK(binaries == pressure_queued);
    CHECK(drained >= 1);
    pthread_mutex_unlock(&mu);
    CHECK(ws_send_close(fd, 1000, "") == 0 && recv_close(fd, 1000, reason, sizeof reason));
    close(fd);
    CHECK(wait_for(&closes, before + 1));
}

static void test_null_arguments(void) {
    const uint8_t *p;
    size_t n;
    uint64_t id;
    bool b;
    char msg[256];
    CHECK_STATUS(corral_ws_accept(NULL, NULL, NULL, NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK(!corral_request_is_websocket(NULL));
    CHECK_STATUS(corral_request_ws_protocol(NULL, 0, &p, &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK(!corral_responder_can_upgrade(NULL));
    CHECK_STATUS(corral_ws_send(NULL, true, (const uint8_t *)"x", 1), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_close(NULL, 1000, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_subscribe(NULL, "t", &b), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_unsubscribe(NULL, "t", &b), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_publish(NULL, "t", true, (const uint8_t *)"x", 1, &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_publish(NULL, "t", true, (const uint8_t *)"x", 1, &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_subscribers(NULL, "t", &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_buffered_amount(NULL, &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_id(NULL, &id), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_is_open(NULL, &b), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_pause(NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_ws_resume(NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK(corral_ws_retain(NULL) == NULL);
    corral_ws_release(NULL);
    OK(corral_status_message(CORRAL_STATUS_BACKPRESSURE, msg, sizeof msg, NULL));
    CHECK(strstr(msg, "on_drain") != NULL);
    OK(corral_status_message(CORRAL_STATUS_DROPPED, msg, sizeof msg, NULL));
    CHECK(strstr(msg, "closed") != NULL);
}

int main(void) {
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *e = NULL;
    serve.handler = handler;
    OK(corral_config_add_address(cfg, "127.0.0.1:0"));
    /* ws_max_backpressure stays at its default (1 MiB): /pressure reaches it after 16
     * messages, all queued while on_open runs. */
    OK(corral_engine_new_serve(cfg, &serve, &e));
    corral_config_free(cfg);
    if (e == NULL) return tl_finish("test_ws");
    OK(corral_engine_start(e));
    port = tl_port(e);
    test_null_arguments();
    test_plain_and_refusals();
    test_echo(e);
    test_server_close();
    test_topics(e);
    test_backpressure();
    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);
    return tl_finish("test_ws");
}
