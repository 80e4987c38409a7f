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
    CHECK_STATUS(corral_responder_send(NULL, NULL, 0), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_responder_send_http(NULL, 200, NULL, 0, NULL, 0), CORRAL_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(corral_responder_close(NULL), CORRAL_STATUS_NULL_ARGUMENT);
    corral_responder_free(NULL);
}

int main(void) {
    test_version_and_status();
    test_config();
    test_bind_and_listener_fd();
    test_handoff();
    test_handoff_proxy();
    test_hand_over();
    test_serve();
    test_null_engine();
    return tl_finish("test_api");
}
