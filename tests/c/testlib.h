/* A tiny test harness and loopback HTTP client for corral's C tests. */
#ifndef CORRAL_TESTLIB_H
#define CORRAL_TESTLIB_H

#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "corral.h"

extern int tl_passed, tl_failed;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (cond) {                                                            \
            tl_passed++;                                                       \
        } else {                                                               \
            tl_failed++;                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

#define CHECK_STATUS(call, want)                                               \
    do {                                                                       \
        corral_status got_ = (call);                                           \
        if (got_ == (want)) {                                                  \
            tl_passed++;                                                       \
        } else {                                                               \
            char msg_[256];                                                    \
            corral_status_message(got_, msg_, sizeof msg_, NULL);              \
            tl_failed++;                                                       \
            fprintf(stderr, "%s:%d: %s returned %u (%s), wanted %u\n",         \
                    __FILE__, __LINE__, #call, (unsigned)got_, msg_,           \
                    (unsigned)(want));                                         \
        }                                                                      \
    } while (0)

#define OK(call) CHECK_STATUS(call, CORRAL_STATUS_OK)

/* Prints "NAME: N passed, N failed"; returns the process exit code. */
int tl_finish(const char *name);
/* A blocking loopback client with a generous read deadline (a busy machine must pass). */
int tl_connect(uint16_t port);
int tl_write_all(int fd, const char *s, size_t n);
/* Reads one HTTP response into `body` (NUL-terminated); returns the status, or -1 at
 * end of stream or on error. */
int tl_read_response(int fd, char *body, size_t cap);
/* One GET on a new connection; returns the status and fills `body`. */
int tl_get(uint16_t port, const char *path, char *body, size_t cap);
/* The port of the engine's first listening address. */
uint16_t tl_port(const corral_engine *e);
/* Makes a self-signed P-256 certificate for localhost with common name `cn` (the
 * openssl command, valid two days: made per run); returns system()'s status. */
int tl_make_cert(const char *cert, const char *key, const char *cn);

/* Uploads. Byte i of every test upload is tl_pattern(i), so a server can check each
 * byte where it lands. */
uint8_t tl_pattern(uint64_t i);
/* Writes the pattern's bytes [0, size) to `fd`: as they are, or (chunked) as chunks of
 * at most `chunk` bytes, then the last chunk with `trailers` (lines ending in CRLF, or
 * ""). Never raises SIGPIPE; returns 0, or -1 when a write failed (the server closed). */
int tl_send_pattern(int fd, uint64_t size, size_t chunk, int chunked, const char *trailers);
/* A writer thread for tl_send_pattern, so the caller can read replies meanwhile. */
typedef struct tl_writer tl_writer;
tl_writer *tl_writer_start(int fd, uint64_t size, size_t chunk, int chunked, const char *trailers);
/* Waits for the writer; returns what tl_send_pattern returned. */
int tl_writer_join(tl_writer *w);
/* POST `size` pattern bytes to `path` on a new connection (Content-Length, or chunked
 * with `trailers`), written from a second thread while the reply is read; returns the
 * status and fills `body`. */
int tl_upload(uint16_t port, const char *path, uint64_t size, int chunked, const char *trailers, char *body,
              size_t cap);

#endif
