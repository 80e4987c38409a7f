/* A tiny blocking websocket client (RFC 6455) for corral's C tests and examples: the
 * opening handshake, masked frames out, whole unfragmented frames in. No extensions are
 * offered, so corral never compresses what it sends here. */
#ifndef CORRAL_WSLIB_H
#define CORRAL_WSLIB_H

#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* Sends the upgrade request for `path` on `fd` (`extra` is more header lines, each
 * ending in CRLF, or ""), reads the reply's head into `head` (NUL-terminated, header
 * names lowercased) and returns its status; for a 101 it also checks
 * Sec-WebSocket-Accept (a wrong one returns -1). -1 on a broken connection. */
int ws_handshake(int fd, const char *path, const char *extra, char *head, size_t cap);
/* Sends one masked frame with FIN set. Returns 0, or -1 when the write failed. */
int ws_send(int fd, int opcode, const void *data, size_t len);
/* Sends a close frame with `code` and `reason`. */
int ws_send_close(int fd, uint16_t code, const char *reason);
/* Reads the next frame that is not a ping (pings are answered with a pong) into
 * `buf`; `*opcode` and `*len` get its opcode and length. Returns 0, or -1 at end of
 * stream, on a read error or timeout, or for a frame over `cap` bytes or masked. */
int ws_recv(int fd, int *opcode, uint8_t *buf, size_t cap, size_t *len);
/* A close frame's code (1005 when it has none) and its reason, NUL-terminated. */
uint16_t ws_close_code(const uint8_t *payload, size_t len, char *reason, size_t cap);
/* True when the server closed its side: the next read finds the end of the stream. */
int ws_at_eof(int fd);

#endif
