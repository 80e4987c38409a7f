/* Every function of the C API, its error paths, handoff and serve on real loopback
 * sockets, and a responder completed from another thread after the callback returned. */
#include "testlib.h"

#include <fcntl.h>
#include <pthread.h>

/* ---- version and status ------------------------------------------------------- */

static void test_version_and_status(void) {
    char want[32], buf[256];
    size_t n = 0;
    snprintf(want, sizeof want, "%d.%d.%d", CORRAL_VERSION_MAJOR, CORRAL_VERSION_MINOR, CORRAL_VERSION_PATCH);
    CHECK(strcmp(corral_version(), want) == 0);

    OK(corral_status_message(CORRAL_STATUS_OK, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "success") == 0 && n == 7);
    OK(corral_status_message(CORRAL_STATUS_PUBLIC_ADDRESS, buf, sizeof buf, NULL));
    CHECK(strstr(buf, "allow_public") != NULL);
    OK(corral_status_message(999, buf, sizeof buf, NULL));
    CHECK(strstr(buf, "unknown") != NULL);
    CHECK_STATUS(corral_status_message(CORRAL_STATUS_BIND, buf, 4, &n), CORRAL_STATUS_BUFFER_TOO_SMALL);
    CHECK(n > 4);
    CHECK_STATUS(corral_status_message(CORRAL_STATUS_BIND, NULL, 0, NULL), CORRAL_STATUS_NULL_ARGUMENT);
}

/* ---- config -------------------------------------------------------------------- */

static corral_status serve_engine(corral_config *cfg, corral_engine **e);

static void test_config(void) {
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;
    CHECK(cfg != NULL);
    corral_config_free(NULL);

    OK(corral_config_set_io_workers(cfg, 2));
    OK(corral_config_set_cpu_threads(cfg, 1));
    OK(corral_config_set_acceptors(cfg, 2));
    OK(corral_config_set_backlog(cfg, 128));
    OK(corral_config_set_accept_batch(cfg, 16));
    OK(corral_config_set_accept_in_workers(cfg, true));
    OK(corral_config_set_defer_accept(cfg, false));
    OK(corral_config_set_max_connections(cfg, 1000));
    OK(corral_config_set_max_in_flight(cfg, 8));
    OK(corral_config_set_max_connections_per_ip(cfg, 100));
    OK(corral_config_set_max_requests_per_connection(cfg, 1000));
    OK(corral_config_set_codel_target_us(cfg, 5000));
    OK(corral_config_set_codel_interval_ms(cfg, 100));
    OK(corral_config_set_max_accept_rate(cfg, 0));
    CHECK_STATUS(corral_config_set_codel_target_us(cfg, 10), CORRAL_STATUS_INVALID_CONFIG);
    OK(corral_config_set_codel_target_us(cfg, 0));
    OK(corral_config_set_max_frame(cfg, 65536));
    OK(corral_config_set_max_header(cfg, 8192));
    OK(corral_config_set_budget_frames(cfg, 16));
    OK(corral_config_set_budget_bytes(cfg, 65536));
    OK(corral_config_set_write_high_water(cfg, 65536));
    OK(corral_config_set_header_timeout_ms(cfg, 5000));
    OK(corral_config_set_idle_timeout_ms(cfg, 30000));
    OK(corral_config_set_reply_timeout_ms(cfg, 30000));
    OK(corral_config_set_io_slice_us(cfg, 200));
    OK(corral_config_set_lifo_threshold(cfg, 16));
    CHECK_STATUS(corral_config_set_io_slice_us(cfg, 5), CORRAL_STATUS_INVALID_CONFIG);
    CHECK_STATUS(corral_config_set_reply_timeout_ms(cfg, 0), CORRAL_STATUS_OK);
    OK(corral_config_set_model(cfg, CORRAL_MODEL_STEALING));
    OK(corral_config_set_protocol(cfg, CORRAL_PROTOCOL_HTTP1));
    OK(corral_config_set_listener(cfg, CORRAL_LISTENER_REUSE_PORT));
    OK(corral_config_set_readiness(cfg, CORRAL_READINESS_EDGE));
    OK(corral_config_add_address(cfg, "127.0.0.1:0"));

    /* Bad values are refused and leave the config as it was. */
    CHECK_STATUS(corral_config_set_io_workers(cfg, 0), CORRAL_STATUS_INVALID_CONFIG);
    CHECK_STATUS(corral_config_set_budget_bytes(cfg, 1), CORRAL_STATUS_INVALID_CONFIG);
    CHECK_STATUS(corral_config_set_header_timeout_ms(cfg, 0), CORRAL_STATUS_INVALID_CONFIG);
    CHECK_STATUS(corral_config_set_model(cfg, 99), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_config_set_protocol(cfg, 99), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_config_set_listener(cfg, 99), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_config_set_readiness(cfg, 99), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_config_add_address(cfg, "not an address"), CORRAL_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(corral_config_add_address(cfg, "0.0.0.0:0"), CORRAL_STATUS_PUBLIC_ADDRESS);
    CHECK_STATUS(corral_config_add_address(cfg, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_add_listener_fd(cfg, -1), CORRAL_STATUS_INVALID_ARGUMENT);
    /* Serve-only options (max_in_flight, timeouts, ...) have no effect on a handoff
     * engine: refused, never ignored. */
    CHECK_STATUS(corral_engine_new_handoff(cfg, &e), CORRAL_STATUS_INVALID_CONFIG);
    CHECK(e == NULL);
    OK(serve_engine(cfg, &e));
    CHECK(e != NULL);
    corral_engine_free(e);

    /* By name, from the one option table every front reads. */
    {
        size_t i;
        corral_config *h = corral_config_new();
        OK(corral_config_set(cfg, "idle_timeout", "1.5s"));
        OK(corral_config_set(cfg, "max_in_flight", "16"));
        OK(corral_config_set(cfg, "protocol", "http"));
        OK(corral_config_set(cfg, "codel_target", "0"));
        OK(corral_config_set(cfg, "defer_accept", "false"));
        CHECK_STATUS(corral_config_set(cfg, "no_such_option", "1"), CORRAL_STATUS_INVALID_CONFIG);
        CHECK_STATUS(corral_config_set(cfg, "idle_timeout", "5"), CORRAL_STATUS_INVALID_CONFIG); /* needs a unit */
        CHECK_STATUS(corral_config_set(cfg, "idle_timeout", "1e20s"), CORRAL_STATUS_INVALID_CONFIG);
        CHECK_STATUS(corral_config_set(cfg, "max_in_flight", "-1"), CORRAL_STATUS_INVALID_CONFIG);
        CHECK_STATUS(corral_config_set(cfg, "max_in_flight", ""), CORRAL_STATUS_INVALID_CONFIG);
        CHECK_STATUS(corral_config_set(cfg, "protocol", "smtp"), CORRAL_STATUS_INVALID_CONFIG);
        CHECK_STATUS(corral_config_set(cfg, "idle_timeout", "\xff"), CORRAL_STATUS_INVALID_ARGUMENT);
        CHECK_STATUS(corral_config_set(cfg, NULL, "1"), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_config_set(cfg, "backlog", NULL), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_config_set(NULL, "backlog", "1"), CORRAL_STATUS_NULL_ARGUMENT);
        OK(corral_config_set(h, "handoff_capacity", "64"));
        OK(corral_config_set(h, "backlog", "128"));
        OK(corral_engine_new_handoff(h, &e));
        corral_engine_free(e);
        corral_config_free(h);
        for (i = 0; corral_option_name(i) != NULL; i++) {
            CHECK(corral_option_describe(i) != NULL && strstr(corral_option_describe(i), corral_option_name(i)));
        }
        CHECK(i >= 29 && corral_option_describe(i) == NULL);
    }

    /* NULL config: every setter says so. */
    CHECK_STATUS(corral_config_set_io_workers(NULL, 1), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_set_model(NULL, 99), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_set_allow_public(NULL, true), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_set_backlog(NULL, 1), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_add_address(NULL, "127.0.0.1:0"), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_add_listener_fd(NULL, 0), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_set_idle_timeout_ms(NULL, 1), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_config_set_reply_timeout_ms(NULL, 1), CORRAL_STATUS_NULL_ARGUMENT);

    /* A wildcard is accepted once allowed (the engine is not created: it would
     * listen on every interface). */
    OK(corral_config_set_allow_public(cfg, true));
    OK(corral_config_add_address(cfg, "0.0.0.0:0"));
    corral_config_free(cfg);
}

/* ---- bind errors and inherited listeners ---------------------------------------- */

static int listening_socket(uint16_t *port) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    listen(fd, 16);
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}


static void test_bind_and_listener_fd(void) {
    uint16_t port = 0;
    char addr[64], body[256];
    int taken = listening_socket(&port), fd, notlistening;
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;

    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    OK(corral_config_add_address(cfg, addr));
    CHECK_STATUS(corral_engine_new_handoff(cfg, &e), CORRAL_STATUS_BIND);
    CHECK(e == NULL);
    corral_config_free(cfg);
    close(taken);

    /* A socket the host bound: corral serves on it. */
    fd = listening_socket(&port);
    cfg = corral_config_new();
    OK(corral_config_add_listener_fd(cfg, fd));
    OK(serve_engine(cfg, &e));
    corral_config_free(cfg); /* the engine keeps its own duplicate */
    OK(corral_engine_start(e));
    CHECK(tl_port(e) == port);
    CHECK(tl_get(port, "/", body, sizeof body) == 200);
    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);

    /* A socket that is not listening is refused and stays the caller's. */
    notlistening = socket(AF_INET, SOCK_STREAM, 0);
    cfg = corral_config_new();
    CHECK_STATUS(corral_config_add_listener_fd(cfg, notlistening), CORRAL_STATUS_INVALID_CONFIG);
    CHECK(fcntl(notlistening, F_GETFD) != -1);
    close(notlistening);
    corral_config_free(cfg);
}

/* ---- handoff ---------------------------------------------------------------------- */

static void test_handoff(void) {
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;
    corral_accepted got[8];
    corral_shutdown_report report;
    corral_peer peer;
    int clients[3], notify = -1, i, taken = 0;
    size_t n = 0;
    OK(corral_config_set_acceptors(cfg, 2));
    OK(corral_engine_new_handoff(cfg, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    OK(corral_engine_local_addr(e, 0, &peer));
    CHECK(peer.family == 4 && peer.addr[0] == 127 && peer.port != 0);
    CHECK_STATUS(corral_engine_local_addr(e, 5, &peer), CORRAL_STATUS_NOT_FOUND);
    OK(corral_engine_notify_fd(e, &notify));
    for (i = 0; i < 3; i++) clients[i] = tl_connect(peer.port);
    while (taken < 3) {
        struct pollfd p;
        p.fd = notify;
        p.events = POLLIN;
        CHECK(poll(&p, 1, 30000) == 1);
        OK(corral_engine_take(e, got + taken, 8 - (size_t)taken, &n));
        taken += (int)n;
    }
    OK(corral_engine_take(e, got, 8, &n));
    CHECK(n == 0);
    for (i = 0; i < 3; i++) {
        char c = 0;
        int fl = fcntl(got[i].fd, F_GETFD);
        CHECK(fl != -1 && (fl & FD_CLOEXEC));
        CHECK(got[i].peer.family == 4 && got[i].peer.port != 0);
        CHECK(write(got[i].fd, "x", 1) == 1);
        close(got[i].fd);
        (void)c;
    }
    for (i = 0; i < 3; i++) {
        char c = 0;
        CHECK(read(clients[i], &c, 1) == 1 && c == 'x');
        close(clients[i]);
    }
    OK(corral_engine_shutdown(e, 5000, &report));
    CHECK(report.handoff_unclaimed == 0);
    CHECK_STATUS(corral_engine_shutdown(e, 5000, &report), CORRAL_STATUS_STATE);
    CHECK_STATUS(corral_engine_start(e), CORRAL_STATUS_STATE);
    corral_engine_free(e);
}

/* With proxy_protocol, the peer is the client the PROXY header named, and the fd holds
 * only the client's own bytes. */
static void test_handoff_proxy(void) {
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;
    corral_accepted a;
    corral_peer where;
    const char *sent = "PROXY TCP4 198.51.100.7 10.0.0.1 4321 80\r\nhi";
    char buf[8] = {0};
    int client, notify = -1;
    size_t n = 0;
    struct pollfd p;
    OK(corral_config_set(cfg, "proxy_protocol", "v1"));
    OK(corral_engine_new_handoff(cfg, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    OK(corral_engine_local_addr(e, 0, &where));
    OK(corral_engine_notify_fd(e, &notify));
    client = tl_connect(where.port);
    CHECK(tl_write_all(client, sent, strlen(sent)) == 0);
    p.fd = notify;
    p.events = POLLIN;
    CHECK(poll(&p, 1, 30000) == 1);
    OK(corral_engine_take(e, &a, 1, &n));
    CHECK(n == 1);
    CHECK(a.peer.family == 4 && a.peer.addr[0] == 198 && a.peer.addr[1] == 51 && a.peer.addr[2] == 100 &&
          a.peer.addr[3] == 7 && a.peer.port == 4321);
    p.fd = a.fd;
    CHECK(poll(&p, 1, 30000) == 1);
    CHECK(read(a.fd, buf, sizeof buf) == 2 && memcmp(buf, "hi", 2) == 0);
    close(a.fd);
    close(client);
    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);
}

/* Hand-over: the running engine offers its listeners on a Unix socket; a successor
 * built with corral_config_listeners_from() serves the same port, and the first one
 * then drains. */
struct offer {
    corral_engine *e;
    char path[128];
    corral_status status;
};

static void *offer_listeners(void *arg) {
    struct offer *o = arg;
    o->status = corral_engine_hand_over(o->e, o->path, 30000);
    return NULL;
}

static void test_hand_over(void) {
    corral_config *cfg = corral_config_new(), *next = corral_config_new();
    corral_engine *e2 = NULL;
    corral_peer a, b;
    corral_accepted got;
    struct offer o;
    struct pollfd p;
    pthread_t t;
    size_t n = 0;
    int client, notify = -1;
    o.e = NULL;
    snprintf(o.path, sizeof o.path, "/tmp/corral-c-handover-%d.sock", (int)getpid());
    OK(corral_engine_new_handoff(cfg, &o.e));
    corral_config_free(cfg);
    OK(corral_engine_start(o.e));
    OK(corral_engine_local_addr(o.e, 0, &a));
    pthread_create(&t, NULL, offer_listeners, &o);
    OK(corral_config_listeners_from(next, o.path, 30000));
    OK(corral_engine_new_handoff(next, &e2));
    corral_config_free(next);
    OK(corral_engine_start(e2));
    pthread_join(t, NULL);
    OK(o.status);
    OK(corral_engine_local_addr(e2, 0, &b));
    CHECK(a.port == b.port);
    OK(corral_engine_shutdown(o.e, 5000, NULL));
    corral_engine_free(o.e);
    /* The socket was handed over, not closed: the successor accepts on it. */
    client = tl_connect(b.port);
    OK(corral_engine_notify_fd(e2, &notify));
    p.fd = notify;
    p.events = POLLIN;
    CHECK(poll(&p, 1, 30000) == 1);
    OK(corral_engine_take(e2, &got, 1, &n));
    CHECK(n == 1);
    close(got.fd);
    close(client);
    OK(corral_engine_shutdown(e2, 5000, NULL));
    corral_engine_free(e2);
    /* Without activation there are no fds, and the arguments are checked. */
    CHECK_STATUS(corral_listen_fds(NULL, 4, &n), CORRAL_STATUS_NULL_ARGUMENT);
    OK(corral_listen_fds(NULL, 0, &n));
    CHECK(n == 0);
    CHECK_STATUS(corral_config_listeners_from(NULL, o.path, 1), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_hand_over(NULL, o.path, 1), CORRAL_STATUS_NULL_ARGUMENT);
}

/* ---- serve ------------------------------------------------------------------------ */

static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parked_cond = PTHREAD_COND_INITIALIZER;
static corral_responder *parked = NULL;

static void handler(void *userdata, const corral_request *req, corral_responder *res) {
    const uint8_t *path = NULL, *method = NULL, *ua = NULL;
    size_t plen = 0, mlen = 0, ulen = 0;
    corral_request_info info;
    corral_tls_info tls;
    char body[512];
    corral_header h[1];
    (void)userdata;
    if (corral_request_path(req, &path, &plen) != CORRAL_STATUS_OK ||
        corral_request_method(req, &method, &mlen) != CORRAL_STATUS_OK ||
        corral_request_get_info(req, &info) != CORRAL_STATUS_OK) {
        corral_responder_free(res);
        return;
    }
    if (plen == 6 && memcmp(path, "/later", 6) == 0) {
        /* Keep the responder: the test completes it from another thread. */
        pthread_mutex_lock(&parked_lock);
        parked = res;
        pthread_cond_signal(&parked_cond);
        pthread_mutex_unlock(&parked_lock);
        return;
    }
    if (plen == 5 && memcmp(path, "/drop", 5) == 0) {
        corral_responder_free(res);
        return;
    }
    if (plen == 6 && memcmp(path, "/close", 6) == 0) {
        corral_responder_close(res);
        return;
    }
    if (corral_request_header(req, "x-agent", &ua, &ulen) != CORRAL_STATUS_OK) ulen = 0;
    snprintf(body, sizeof body, "%.*s %.*s seq=%llu agent=%.*s", (int)mlen, (const char *)method, (int)plen,
             (const char *)path, (unsigned long long)info.seq, (int)ulen, ua ? (const char *)ua : "");
    if (corral_request_tls(req, &tls) == CORRAL_STATUS_OK) {
        size_t at = strlen(body);
        snprintf(body + at, sizeof body - at, " tls=%#06x suite=%#06x %s sni=%.*s alpn=%.*s resumed=%d client=%.*s",
                 (unsigned)tls.version, (unsigned)tls.cipher_suite, tls.cipher_suite_name, (int)tls.sni_len,
                 tls.sni ? (const char *)tls.sni : "", (int)tls.alpn_len, tls.alpn ? (const char *)tls.alpn : "",
                 (int)tls.resumed, tls.client_subject ? (int)tls.client_subject_len : 1,
                 tls.client_subject ? (const char *)tls.client_subject : "-");
    }
    h[0].name = "content-type";
    h[0].value = "text/plain";
    corral_responder_send_http(res, 200, h, 1, (const uint8_t *)body, strlen(body));
}

static corral_cost cost(void *userdata, const corral_request *req) {
    const uint8_t *path = NULL;
    size_t plen = 0;
    (void)userdata;
    corral_request_path(req, &path, &plen);
    return plen >= 5 && memcmp(path, "/work", 5) == 0 ? CORRAL_COST_HEAVY : CORRAL_COST_LIGHT;
}

static corral_status serve_engine(corral_config *cfg, corral_engine **e) {
    corral_serve s = corral_serve_default();
    s.handler = handler;
    s.cost = cost;
    return corral_engine_new_serve(cfg, &s, e);
}

static void *complete_later(void *arg) {
    corral_responder *res;
    (void)arg;
    pthread_mutex_lock(&parked_lock);
    while (!parked) pthread_cond_wait(&parked_cond, &parked_lock);
    res = parked;
    parked = NULL;
    pthread_mutex_unlock(&parked_lock);
    /* The handler callback has returned by now; complete from this thread. */
    corral_responder_send(res, (const uint8_t *)"late", 4);
    return NULL;
}

static void test_serve(void) {
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;
    corral_stats *stats = NULL;
    corral_shutdown_report report;
    double v = 0;
    size_t i;
    corral_serve bad = corral_serve_default();
    pthread_t t;
    char body[1024], *prom;
    size_t need = 0;
    uint16_t port;
    int fd, status;

    OK(corral_config_set_io_workers(cfg, 2));
    OK(corral_config_set_cpu_threads(cfg, 2));
    CHECK_STATUS(corral_engine_new_serve(cfg, &bad, &e), CORRAL_STATUS_NULL_ARGUMENT); /* no handler */
    CHECK_STATUS(corral_engine_new_serve(cfg, NULL, &e), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_new_serve(NULL, &bad, &e), CORRAL_STATUS_NULL_ARGUMENT);
    OK(serve_engine(cfg, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    port = tl_port(e);

    CHECK(tl_get(port, "/hello", body, sizeof body) == 200);
    CHECK(strcmp(body, "GET /hello seq=0 agent=") == 0);
    CHECK(tl_get(port, "/work", body, sizeof body) == 200);

    /* Keep-alive with a header, twice on one connection. */
    fd = tl_connect(port);
    tl_write_all(fd, "GET /a HTTP/1.1\r\nX-Agent: c\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 50);
    CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "GET /a seq=0 agent=c") == 0);
    CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "GET /b seq=1 agent=") == 0);
    close(fd);

    /* Completed from another thread after the callback returned. */
    pthread_create(&t, NULL, complete_later, NULL);
    status = tl_get(port, "/later", body, sizeof body);
    pthread_join(t, NULL);
    CHECK(status == 200 && strcmp(body, "late") == 0);

    /* Given up: the client gets a 500; closed: the client sees the end. */
    CHECK(tl_get(port, "/drop", body, sizeof body) == 500);
    CHECK(tl_get(port, "/close", body, sizeof body) == -1);

    OK(corral_engine_stats(e, &stats));
    OK(corral_stats_get(stats, "worker_requests", &v));
    CHECK(v >= 7);
    OK(corral_stats_get(stats, "replies", &v));
    CHECK(v >= 6);
    OK(corral_stats_get(stats, "cpu_jobs", &v));
    CHECK(v >= 1);
    OK(corral_stats_get(stats, "handler_failures", &v));
    CHECK(v == 1);
    OK(corral_stats_get_at(stats, "listen_queue_max", 0, &v));
    CHECK(v > 0);
    CHECK(corral_stats_items(stats, "worker_requests") == 2);
    CHECK(corral_stats_items(stats, "replies") == 1 && corral_stats_items(stats, "nope") == 0);
    CHECK_STATUS(corral_stats_get_at(stats, "worker_requests", 2, &v), CORRAL_STATUS_NOT_FOUND);
    CHECK_STATUS(corral_stats_get(stats, "nope", &v), CORRAL_STATUS_NOT_FOUND);
    CHECK_STATUS(corral_stats_get(stats, NULL, &v), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_stats_get(NULL, "replies", &v), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_prometheus(e, body, 8, &need), CORRAL_STATUS_BUFFER_TOO_SMALL);
    CHECK(need > 8);
    prom = malloc(need);
    OK(corral_engine_prometheus(e, prom, need, NULL));
    CHECK(strstr(prom, "corral_replies_total") != NULL);
    /* Every metric the C getters list is in the snapshot and in the Prometheus text. */
    for (i = 0; corral_metric_name(i) != NULL; i++) {
        OK(corral_stats_get(stats, corral_metric_name(i), &v));
        CHECK(strstr(prom, corral_metric_name(i)) != NULL);
        CHECK(corral_metric_help(i) != NULL);
    }
    CHECK(i > 40);
    free(prom);
    corral_stats_free(stats);
    corral_stats_free(NULL);

    /* Handoff calls on a serving engine. */
    {
        int nfd;
        size_t n;
        corral_accepted a;
        CHECK_STATUS(corral_engine_notify_fd(e, &nfd), CORRAL_STATUS_WRONG_MODE);
        CHECK_STATUS(corral_engine_take(e, &a, 1, &n), CORRAL_STATUS_WRONG_MODE);
    }

    OK(corral_engine_shutdown(e, 5000, &report));
    CHECK(report.clean);
    CHECK(report.requests_completed >= 6);
    corral_engine_free(e);
    corral_engine_free(NULL);
}

/* ---- streamed request bodies ------------------------------------------------------ */

/* One upload being read: every byte is checked against tl_pattern() where it lands. */
struct upload {
    corral_body *body;
    corral_responder *res;
    uint64_t n;
    int bad;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
};

/* What the handlers saw, checked on the main thread (CHECK is not thread-safe). */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static corral_status seen_failure = CORRAL_STATUS_OK; /* the last failed read's status */
static int seen_failures = 0;
static int seen_take_null = -1;    /* corral_request_take_body's NULL checks held */
static int seen_cost_take = -1;    /* take_body from the cost callback: WRONG_MODE */
static int seen_read_args = -1;    /* corral_body_* argument checks on a real body */

static void note_failure(corral_status s) {
    pthread_mutex_lock(&seen_lock);
    seen_failure = s;
    seen_failures++;
    pthread_mutex_unlock(&seen_lock);
}

static struct upload *upload_new(corral_body *body, corral_responder *res) {
    struct upload *u = calloc(1, sizeof *u);
    u->body = body;
    u->res = res;
    pthread_mutex_init(&u->lock, NULL);
    pthread_cond_init(&u->cond, NULL);
    return u;
}

static void upload_take(struct upload *u, const uint8_t *b, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        if (b[i] != tl_pattern(u->n + i)) u->bad = 1;
    }
    u->n += n;
}

/* Answers "n=N ok=1 trailers=K first=NAME:VALUE" (or the failure), frees everything. */
static void upload_finish(struct upload *u, corral_status end) {
    char text[256];
    size_t count = 0;
    const uint8_t *name = NULL, *value = NULL;
    size_t nlen = 0, vlen = 0;
    if (end != CORRAL_STATUS_END) {
        note_failure(end);
        snprintf(text, sizeof text, "failed %u", (unsigned)end);
    } else {
        corral_body_trailer_count(u->body, &count);
        if (corral_body_trailer(u->body, 0, &name, &nlen, &value, &vlen) != CORRAL_STATUS_OK) nlen = vlen = 0;
        snprintf(text, sizeof text, "n=%llu ok=%d trailers=%zu first=%.*s:%.*s", (unsigned long long)u->n,
                 !u->bad, count, (int)nlen, name ? (const char *)name : "", (int)vlen,
                 value ? (const char *)value : "");
    }
    corral_body_free(u->body);
    corral_responder_send(u->res, (const uint8_t *)text, strlen(text));
    pthread_mutex_destroy(&u->lock);
    pthread_cond_destroy(&u->cond);
    free(u);
}

/* The ready callback of the non-blocking reader: only wakes it. */
static void wake(void *userdata) {
    struct upload *u = userdata;
    pthread_mutex_lock(&u->lock);
    u->ready = 1;
    pthread_cond_signal(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

/* /nb: non-blocking reads on a thread of its own, waiting with corral_body_when_ready. */
static void *read_nonblocking(void *arg) {
    struct upload *u = arg;
    uint8_t buf[777]; /* smaller than corral's pieces: the rest is kept for the next read */
    size_t n = 0;
    for (;;) {
        corral_status s = corral_body_read(u->body, buf, sizeof buf, &n);
        if (s == CORRAL_STATUS_OK) {
            upload_take(u, buf, n);
        } else if (s == CORRAL_STATUS_PENDING) {
            pthread_mutex_lock(&u->lock);
            u->ready = 0;
            pthread_mutex_unlock(&u->lock);
            corral_body_when_ready(u->body, wake, u);
            pthread_mutex_lock(&u->lock);
            while (!u->ready) pthread_cond_wait(&u->cond, &u->lock);
            pthread_mutex_unlock(&u->lock);
        } else {
            upload_finish(u, s);
            return NULL;
        }
    }
}

/* /cb: read only from ready callbacks, on corral's threads; the last one frees. */
static void pump(void *userdata) {
    struct upload *u = userdata;
    uint8_t buf[4096];
    size_t n = 0;
    for (;;) {
        corral_status s = corral_body_read(u->body, buf, sizeof buf, &n);
        if (s == CORRAL_STATUS_OK) {
            upload_take(u, buf, n);
        } else if (s == CORRAL_STATUS_PENDING) {
            corral_body_when_ready(u->body, pump, u); /* u may be gone once this returns */
            return;
        } else {
            upload_finish(u, s);
            return;
        }
    }
}

/* /blocking and /heavy: blocking reads (a thread of its own, or the CPU pool). */
static void *read_blocking(void *arg) {
    struct upload *u = arg;
    uint8_t buf[1000];
    size_t n = 0;
    for (;;) {
        corral_status s = corral_body_read_blocking(u->body, buf, sizeof buf, CORRAL_WAIT_FOREVER, &n);
        if (s == CORRAL_STATUS_OK) {
            upload_take(u, buf, n);
        } else {
            upload_finish(u, s);
            return NULL;
        }
    }
}

static void spawn(void *(*f)(void *), void *arg) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &a, f, arg);
    pthread_attr_destroy(&a);
}

static int path_is(const uint8_t *path, size_t len, const char *want) {
    return len == strlen(want) && memcmp(path, want, len) == 0;
}

static void stream_handler(void *userdata, const corral_request *req, corral_responder *res) {
    const uint8_t *path = NULL, *whole = NULL;
    size_t plen = 0, wlen = 0;
    corral_body *body = NULL;
    corral_status took;
    char text[128];
    (void)userdata;
    corral_request_path(req, &path, &plen);
    if (path_is(path, plen, "/ignore")) {
        /* Not taken: dropped with the request, its rest discarded. */
        corral_responder_send(res, (const uint8_t *)"ignored", 7);
        return;
    }
    if (path_is(path, plen, "/args")) {
        int ok = corral_request_take_body(NULL, &body) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_request_take_body(req, NULL) == CORRAL_STATUS_NULL_ARGUMENT && body == NULL;
        pthread_mutex_lock(&seen_lock);
        seen_take_null = ok;
        pthread_mutex_unlock(&seen_lock);
    }
    took = corral_request_take_body(req, &body);
    if (took == CORRAL_STATUS_NOT_FOUND) {
        corral_request_body(req, &whole, &wlen);
        snprintf(text, sizeof text, "whole=%zu", wlen);
        corral_responder_send(res, (const uint8_t *)text, strlen(text));
        return;
    }
    if (took != CORRAL_STATUS_OK) {
        corral_responder_free(res);
        return;
    }
    /* A second take finds nothing: the body is ours now. */
    if (corral_request_take_body(req, &body) != CORRAL_STATUS_NOT_FOUND) {
        corral_body_free(body);
        corral_responder_free(res);
        return;
    }
    if (path_is(path, plen, "/args")) {
        uint8_t b[4];
        size_t n = 99, count = 99;
        uint64_t len = 0;
        const uint8_t *p = NULL;
        int ok = corral_body_read(body, NULL, 4, &n) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_read(body, b, 4, NULL) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_read(body, b, 0, &n) == CORRAL_STATUS_INVALID_ARGUMENT &&
                 corral_body_read_blocking(body, NULL, 4, 0, &n) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_when_ready(body, NULL, NULL) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_length(body, NULL) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_trailer_count(body, NULL) == CORRAL_STATUS_NULL_ARGUMENT &&
                 corral_body_trailer(body, 0, &p, &n, &p, NULL) == CORRAL_STATUS_NULL_ARGUMENT && n == 99 &&
                 corral_body_trailer_count(body, &count) == CORRAL_STATUS_OK && count == 0 &&
                 corral_body_trailer(body, 0, &p, &n, &p, &n) == CORRAL_STATUS_NOT_FOUND &&
                 corral_body_length(body, &len) == CORRAL_STATUS_OK && len == 100000 &&
                 corral_body_send_continue(body) == CORRAL_STATUS_OK;
        pthread_mutex_lock(&seen_lock);
        seen_read_args = ok;
        pthread_mutex_unlock(&seen_lock);
        spawn(read_nonblocking, upload_new(body, res));
    } else if (path_is(path, plen, "/length")) {
        uint64_t len = 0;
        if (corral_body_length(body, &len) == CORRAL_STATUS_OK) {
            snprintf(text, sizeof text, "length=%llu", (unsigned long long)len);
        } else {
            snprintf(text, sizeof text, "length=unknown");
        }
        corral_body_free(body);
        corral_responder_send(res, (const uint8_t *)text, strlen(text));
    } else if (path_is(path, plen, "/discard")) {
        /* Freed unread, answered at once: corral discards the rest (or closes). */
        corral_body_free(body);
        corral_responder_send(res, (const uint8_t *)"discarded", 9);
    } else if (path_is(path, plen, "/cb")) {
        corral_body_when_ready(body, pump, upload_new(body, res));
    } else if (path_is(path, plen, "/blocking")) {
        spawn(read_blocking, upload_new(body, res));
    } else if (path_is(path, plen, "/heavy")) {
        read_blocking(upload_new(body, res)); /* on the CPU pool: it may wait here */
    } else {
        spawn(read_nonblocking, upload_new(body, res));
    }
}

static corral_cost stream_cost(void *userdata, const corral_request *req) {
    const uint8_t *path = NULL;
    size_t plen = 0;
    corral_body *body = NULL;
    (void)userdata;
    corral_request_path(req, &path, &plen);
    if (path_is(path, plen, "/args")) {
        int ok = corral_request_take_body(req, &body) == CORRAL_STATUS_WRONG_MODE && body == NULL;
        pthread_mutex_lock(&seen_lock);
        seen_cost_take = ok;
        pthread_mutex_unlock(&seen_lock);
    }
    return path_is(path, plen, "/heavy") ? CORRAL_COST_HEAVY : CORRAL_COST_LIGHT;
}

struct upload_job {
    uint16_t port;
    const char *path;
    int status;
    char body[256];
};

static void *upload_job_run(void *arg) {
    struct upload_job *j = arg;
    j->status = tl_upload(j->port, j->path, 1u << 20, 0, "", j->body, sizeof j->body);
    return NULL;
}

/* Polls the engine's counter `name` until it reaches `want` (at most 30 s). */
static double wait_metric(corral_engine *e, const char *name, double want) {
    double v = 0;
    int i;
    for (i = 0; i < 3000; i++) {
        corral_stats *st = NULL;
        if (corral_engine_stats(e, &st) == CORRAL_STATUS_OK) {
            corral_stats_get(st, name, &v);
            corral_stats_free(st);
        }
        if (v >= want) break;
        poll(NULL, 0, 10); /* a poll with a deadline, not a wait for an event */
    }
    return v;
}

static void test_stream_bodies(void) {
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *e = NULL;
    char body[512], want[128];
    const uint64_t big = 3u << 20; /* over max_frame (1 MiB): only a stream takes it */
    const char *trailers = "X-Check: yes\r\n";
    uint16_t port;
    int fd, i;
    tl_writer *w;

    CHECK(serve.stream_bodies == false); /* off by default: existing apps are unchanged */
    serve.handler = stream_handler;
    serve.cost = stream_cost;
    serve.stream_bodies = true;
    OK(corral_config_set(cfg, "max_body", "4000000"));
    OK(corral_config_set(cfg, "io_workers", "2"));
    OK(corral_engine_new_serve(cfg, &serve, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    port = tl_port(e);

    /* No body: nothing to take; it "came whole" (0 bytes). */
    CHECK(tl_get(port, "/nb", body, sizeof body) == 200 && strcmp(body, "whole=0") == 0);

    /* Each reader takes a 3 MiB upload, byte for byte, and chunked ones with trailers. */
    snprintf(want, sizeof want, "n=%llu ok=1 trailers=0 first=:", (unsigned long long)big);
    CHECK(tl_upload(port, "/nb", big, 0, "", body, sizeof body) == 200 && strcmp(body, want) == 0);
    CHECK(tl_upload(port, "/cb", big, 0, "", body, sizeof body) == 200 && strcmp(body, want) == 0);
    CHECK(tl_upload(port, "/blocking", big, 0, "", body, sizeof body) == 200 && strcmp(body, want) == 0);
    CHECK(tl_upload(port, "/heavy", big, 0, "", body, sizeof body) == 200 && strcmp(body, want) == 0);
    snprintf(want, sizeof want, "n=%llu ok=1 trailers=1 first=X-Check:yes", (unsigned long long)big);
    CHECK(tl_upload(port, "/nb", big, 1, trailers, body, sizeof body) == 200 && strcmp(body, want) == 0);
    CHECK(tl_upload(port, "/cb", big, 1, trailers, body, sizeof body) == 200 && strcmp(body, want) == 0);
    CHECK(tl_upload(port, "/blocking", big, 1, trailers, body, sizeof body) == 200 && strcmp(body, want) == 0);

    /* Several at once, on one engine (1 MiB each). */
    {
        pthread_t t[4];
        struct upload_job jobs[4] = {{0, "/nb", 0, ""}, {0, "/cb", 0, ""}, {0, "/blocking", 0, ""}, {0, "/heavy", 0, ""}};
        for (i = 0; i < 4; i++) {
            jobs[i].port = port;
            pthread_create(&t[i], NULL, upload_job_run, &jobs[i]);
        }
        for (i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            CHECK(jobs[i].status == 200 && strcmp(jobs[i].body, "n=1048576 ok=1 trailers=0 first=:") == 0);
        }
    }

    /* Argument checks on a real body and request (recorded by the handlers). */
    snprintf(want, sizeof want, "n=100000 ok=1 trailers=0 first=:");
    CHECK(tl_upload(port, "/args", 100000, 0, "", body, sizeof body) == 200 && strcmp(body, want) == 0);
    pthread_mutex_lock(&seen_lock);
    CHECK(seen_take_null == 1);
    CHECK(seen_cost_take == 1);
    CHECK(seen_read_args == 1);
    pthread_mutex_unlock(&seen_lock);

    /* The length: Content-Length, or unknown for chunked. The head is sent alone, so
     * the body cannot have come whole with it. */
    fd = tl_connect(port);
    tl_write_all(fd, "POST /length HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 57);
    CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "length=5000") == 0);
    close(fd);
    fd = tl_connect(port);
    tl_write_all(fd, "POST /length HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", 62);
    CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "length=unknown") == 0);
    close(fd);

    /* Freed early, or never taken: a short rest is discarded and the connection serves
     * its next request; a long rest closes it after the reply. */
    for (i = 0; i < 2; i++) {
        const char *path = i == 0 ? "/discard" : "/ignore";
        char head[128];
        snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 300000\r\n\r\n", path);
        fd = tl_connect(port);
        tl_write_all(fd, head, strlen(head));
        w = tl_writer_start(fd, 300000, 0, 0, "");
        CHECK(tl_read_response(fd, body, sizeof body) == 200 &&
              strcmp(body, i == 0 ? "discarded" : "ignored") == 0);
        CHECK(tl_writer_join(w) == 0);
        tl_write_all(fd, "GET /next HTTP/1.1\r\nHost: t\r\n\r\n", 31);
        CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "whole=0") == 0);
        close(fd);
    }
    fd = tl_connect(port);
    tl_write_all(fd, "POST /discard HTTP/1.1\r\nHost: t\r\nContent-Length: 3000000\r\n\r\n", 61);
    w = tl_writer_start(fd, 3000000, 0, 0, "");
    CHECK(tl_read_response(fd, body, sizeof body) == 200 && strcmp(body, "discarded") == 0);
    CHECK(tl_read_response(fd, body, sizeof body) == -1); /* closed after the reply */
    shutdown(fd, SHUT_RDWR);
    tl_writer_join(w);
    close(fd);

    /* Over max_body: by Content-Length, 413 before any handler; chunked, 413 when the
     * limit is crossed, and the reader hears CORRAL_STATUS_BODY_TOO_LARGE. */
    fd = tl_connect(port);
    tl_write_all(fd, "POST /nb HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n", 56);
    CHECK(tl_read_response(fd, body, sizeof body) == 413);
    close(fd);
    CHECK(tl_upload(port, "/nb", 5000000, 1, "", body, sizeof body) == 413);
    for (i = 0; i < 3000; i++) {
        int n;
        pthread_mutex_lock(&seen_lock);
        n = seen_failures;
        pthread_mutex_unlock(&seen_lock);
        if (n > 0) break;
        poll(NULL, 0, 10); /* a poll with a deadline, not a wait for an event */
    }
    pthread_mutex_lock(&seen_lock);
    CHECK(seen_failures == 1 && seen_failure == CORRAL_STATUS_BODY_TOO_LARGE);
    pthread_mutex_unlock(&seen_lock);
    CHECK(wait_metric(e, "bodies_too_large", 1) >= 1);
    CHECK(wait_metric(e, "bodies_streamed", 14) >= 14);
    {
        char msg[256];
        OK(corral_status_message(CORRAL_STATUS_BODY_TOO_LARGE, msg, sizeof msg, NULL));
        CHECK(strstr(msg, "max_body") != NULL);
        OK(corral_status_message(CORRAL_STATUS_PENDING, msg, sizeof msg, NULL));
        CHECK(strstr(msg, "corral_body_when_ready") != NULL);
    }

    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);
}

/* ---- NULL engine ------------------------------------------------------------------- */

static void test_null_engine(void) {
    corral_stats *s = NULL;
    corral_peer p;
    corral_accepted a;
    size_t n;
    int fd;
    char buf[8];
    CHECK_STATUS(corral_engine_start(NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_shutdown(NULL, 0, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_stats(NULL, &s), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_local_addr(NULL, 0, &p), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_notify_fd(NULL, &fd), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_take(NULL, &a, 1, &n), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_prometheus(NULL, buf, sizeof buf, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_engine_new_handoff(NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_request_body(NULL, NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_request_get_info(NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_request_tls(NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_responder_send(NULL, NULL, 0), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_responder_send_http(NULL, 200, NULL, 0, NULL, 0), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_responder_close(NULL), CORRAL_STATUS_NULL_ARGUMENT);
    corral_responder_free(NULL);
    {
        uint8_t b[4];
        uint64_t len;
        const uint8_t *p;
        corral_body *body = NULL;
        CHECK_STATUS(corral_request_take_body(NULL, &body), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK(body == NULL);
        CHECK_STATUS(corral_body_read(NULL, b, sizeof b, &n), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_read_blocking(NULL, b, sizeof b, 0, &n), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_when_ready(NULL, NULL, NULL), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_length(NULL, &len), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_send_continue(NULL), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_trailer_count(NULL, &n), CORRAL_STATUS_NULL_ARGUMENT);
        CHECK_STATUS(corral_body_trailer(NULL, 0, &p, &n, &p, &n), CORRAL_STATUS_NULL_ARGUMENT);
        corral_body_free(NULL);
    }
}

/* The per-client rate limit, set through the option table as any front would: a
 * client over it gets 429 with Retry-After, counted in requests_rate_limited. */
static void test_rate_limit(void) {
    corral_config *cfg = corral_config_new();
    corral_engine *e = NULL;
    corral_stats *stats = NULL;
    char body[1024];
    double v = 0;
    uint16_t port;
    int fd;

    OK(corral_config_set_io_workers(cfg, 1));
    OK(corral_config_set(cfg, "rate_limit", "1"));
    OK(corral_config_set(cfg, "rate_burst", "1"));
    OK(corral_config_set(cfg, "client_key_header", "X-Api-Key"));
    CHECK_STATUS(corral_config_set(cfg, "client_key_header", "x api key"), CORRAL_STATUS_INVALID_CONFIG);
    OK(serve_engine(cfg, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    port = tl_port(e);
    fd = tl_connect(port);
    /* Three at once from one key: the average's one and the burst's one pass. */
    tl_write_all(fd, "GET /a HTTP/1.1\r\nX-Api-Key: k\r\n\r\nGET /b HTTP/1.1\r\nX-Api-Key: k\r\n\r\n"
                     "GET /c HTTP/1.1\r\nX-Api-Key: k\r\n\r\n", 99);
    CHECK(tl_read_response(fd, body, sizeof body) == 200);
    CHECK(tl_read_response(fd, body, sizeof body) == 200);
    CHECK(tl_read_response(fd, body, sizeof body) == 429);
    close(fd);
    /* Another key on another connection is another client. */
    fd = tl_connect(port);
    tl_write_all(fd, "GET /d HTTP/1.1\r\nX-Api-Key: other\r\n\r\n", 37);
    CHECK(tl_read_response(fd, body, sizeof body) == 200);
    close(fd);
    OK(corral_engine_stats(e, &stats));
    OK(corral_stats_get(stats, "requests_rate_limited", &v));
    CHECK(v == 1);
    corral_stats_free(stats);
    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);
}

/* TLS through the option table: a certificate made here with the openssl command,
 * a request with curl trusting it, and the handshake counted in tls_handshakes.
 * Skipped (with a note) where openssl or curl is missing. */
static void test_tls(void) {
    char dir[] = "/tmp/corral-c-tls-XXXXXX", cert[64], key[64], cmd[1024], body[1024] = "";
    corral_config *cfg;
    corral_engine *e = NULL;
    corral_stats *stats = NULL;
    double handshakes = 0;
    FILE *out;
    size_t got;

    if (system("command -v openssl >/dev/null 2>&1 && command -v curl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_tls: skipped: needs the openssl and curl commands\n");
        return;
    }
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    CHECK(tl_make_cert(cert, key, "localhost") == 0);

    cfg = corral_config_new();
    OK(corral_config_set(cfg, "tls_cert", cert));
    OK(corral_config_set(cfg, "tls_key", key));
    OK(corral_config_set(cfg, "tls_min_version", "1.2"));
    OK(serve_engine(cfg, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));

    /* ChaCha20-Poly1305: ring's AES-GCM assembly makes valgrind report a conditional
     * jump on uninitialised bytes in the tag check (make c-test runs this under
     * valgrind); the same exchange through ChaCha20 is clean, so the report is
     * valgrind's view of that assembly, not the engine's. */
    snprintf(cmd, sizeof cmd,
             "curl -sS --max-time 30 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256 --cacert %s "
             "--resolve localhost:%u:127.0.0.1 https://localhost:%u/tls",
             cert, (unsigned)tl_port(e), (unsigned)tl_port(e));
    out = popen(cmd, "r");
    CHECK(out != NULL);
    if (out) {
        got = fread(body, 1, sizeof body - 1, out);
        body[got] = '\0';
        CHECK(pclose(out) == 0);
    }
    CHECK(strncmp(body, "GET /tls seq=0", 14) == 0);
    /* What the handshake agreed on, as corral_request_tls() gives it to the handler. */
    CHECK(strstr(body, " tls=0x0304 suite=0x1303 TLS13_CHACHA20_POLY1305_SHA256 sni=localhost alpn=http/1.1 "
                       "resumed=0 client=-") != NULL);
    OK(corral_engine_stats(e, &stats));
    OK(corral_stats_get(stats, "tls_handshakes", &handshakes));
    CHECK(handshakes >= 1);
    corral_stats_free(stats);
    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);

    /* A key that is not there is refused when the engine is built, naming the file. */
    cfg = corral_config_new();
    OK(corral_config_set(cfg, "tls_cert", cert));
    OK(corral_config_set(cfg, "tls_key", "/nonexistent/corral/key.pem"));
    CHECK_STATUS(serve_engine(cfg, &e), CORRAL_STATUS_INVALID_CONFIG);
    corral_config_free(cfg);

    unlink(cert);
    unlink(key);
    rmdir(dir);
}

int main(void) {
    test_version_and_status();
    test_config();
    test_bind_and_listener_fd();
    test_handoff();
    test_handoff_proxy();
    test_hand_over();
    test_serve();
    test_stream_bodies();
    test_rate_limit();
    test_tls();
    test_null_engine();
    return tl_finish("test_api");
}
