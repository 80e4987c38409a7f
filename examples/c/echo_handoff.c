/* An existing single-threaded epoll echo server that keeps its own loop and takes
 * accepted connections from corral's notify fd (handoff).
 *
 *   echo_handoff [PORT]      serve on 127.0.0.1:PORT (default: a free port) until killed
 *   echo_handoff --self-test serve, run a few clients from a thread, check, exit
 *
 * The change from a plain epoll server: instead of its own listening socket in the
 * loop, it watches corral_engine_notify_fd() and calls corral_engine_take() when that
 * is readable. corral's acceptor threads accept; this thread only echoes.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "corral.h"

#define CLIENTS 5

static uint16_t port;
static int quit_pipe[2];
static int client_failures = -1;

static void *clients(void *arg) {
    int i, failures = 0;
    (void)arg;
    for (i = 0; i < CLIENTS; i++) {
        char msg[32], got[32];
        struct sockaddr_in a;
        struct timeval tv = {30, 0};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        size_t len, have = 0;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            failures++;
            close(fd);
            continue;
        }
        len = (size_t)snprintf(msg, sizeof msg, "hello %d", i);
        if (write(fd, msg, len) != (ssize_t)len) failures++;
        while (have < len) {
            ssize_t r = read(fd, got + have, len - have);
            if (r <= 0) break;
            have += (size_t)r;
        }
        if (have != len || memcmp(got, msg, len) != 0) failures++;
        close(fd);
    }
    client_failures = failures;
    if (write(quit_pipe[1], "q", 1) != 1) perror("write");
    return NULL;
}

static int die(const char *what, corral_status s) {
    char msg[256];
    corral_status_message(s, msg, sizeof msg, NULL);
    fprintf(stderr, "echo_handoff: %s: %s\n", what, msg);
    return 1;
}

int main(int argc, char **argv) {
    int self_test = argc > 1 && strcmp(argv[1], "--self-test") == 0;
    corral_config *cfg = corral_config_new();
    corral_engine *engine = NULL;
    corral_status s;
    corral_peer addr;
    pthread_t t;
    int ep, notify = -1, running = 1;
    char bind_to[64];

    snprintf(bind_to, sizeof bind_to, "127.0.0.1:%s", (argc > 1 && !self_test) ? argv[1] : "0");
    if ((s = corral_config_add_address(cfg, bind_to)) != CORRAL_STATUS_OK) return die("address", s);
    if ((s = corral_engine_new_handoff(cfg, &engine)) != CORRAL_STATUS_OK) return die("engine", s);
    corral_config_free(cfg);
    if ((s = corral_engine_start(engine)) != CORRAL_STATUS_OK) return die("start", s);
    corral_engine_local_addr(engine, 0, &addr);
    corral_engine_notify_fd(engine, &notify);
    port = addr.port;
    printf("echo_handoff: listening on 127.0.0.1:%u\n", port);
    fflush(stdout);

    /* The app's own loop: the notify fd, the quit pipe, and its connections. */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (pipe(quit_pipe) != 0) return 1;
    {
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.fd = notify;
        epoll_ctl(ep, EPOLL_CTL_ADD, notify, &ev);
        ev.data.fd = quit_pipe[0];
        epoll_ctl(ep, EPOLL_CTL_ADD, quit_pipe[0], &ev);
    }
    if (self_test) pthread_create(&t, NULL, clients, NULL);

    while (running) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1), i;
        for (i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == quit_pipe[0]) {
                running = 0;
            } else if (fd == notify) {
                corral_accepted batch[32];
                size_t got = 0, k;
                corral_engine_take(engine, batch, 32, &got);
                for (k = 0; k < got; k++) { /* the fds are ours now */
                    struct epoll_event ev;
                    ev.events = EPOLLIN;
                    ev.data.fd = batch[k].fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, batch[k].fd, &ev);
                }
            } else {
                char buf[4096];
                ssize_t r = read(fd, buf, sizeof buf);
                if (r <= 0) {
                    close(fd); /* also leaves the epoll set */
                } else if (write(fd, buf, (size_t)r) != r) {
                    close(fd);
                }
            }
        }
    }
    if (self_test) pthread_join(t, NULL);
    corral_engine_shutdown(engine, 1000, NULL);
    corral_engine_free(engine);
    close(ep);
    close(quit_pipe[0]);
    close(quit_pipe[1]);
    if (self_test) {
        printf("echo_handoff: %d passed, %d failed\n", CLIENTS - client_failures, client_failures);
        return client_failures == 0 ? 0 : 1;
    }
    return 0;
}
