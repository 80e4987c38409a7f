/* Runs tests/conformance/cases.txt against the C front. */
#include "testlib.h"

#include <ctype.h>

#define MAX_BYTES 8192

typedef struct {
    char name[128];
    uint32_t protocol;
    unsigned long max_frame, max_header;
    unsigned char send[MAX_BYTES], expect[MAX_BYTES];
    size_t send_len, expect_len;
} conf_case;

/* Appends the C-escaped string `s` to buf. */
static void unescape(const char *s, unsigned char *buf, size_t *len) {
    while (*s && *s != '\n' && *len < MAX_BYTES) {
        unsigned char c = (unsigned char)*s++;
        if (c == '\\') {
            char e = *s++;
            if (e == 'r') c = '\r';
            else if (e == 'n') c = '\n';
            else if (e == '\\') c = '\\';
            else if (e == 'x') {
                char hex[3] = {s[0], s[1], 0};
                c = (unsigned char)strtoul(hex, NULL, 16);
                s += 2;
            }
        }
        buf[(*len)++] = c;
    }
}

/* The conformance handler: upper-case the frame, or "<METHOD> <target> <body>". */
static void handler(void *ud, const corral_request *req, corral_responder *res) {
    const uint8_t *m, *p, *b;
    size_t ml, pl, bl, i;
    unsigned char out[MAX_BYTES];
    (void)ud;
    corral_request_body(req, &b, &bl);
    if (corral_request_method(req, &m, &ml) == CORRAL_STATUS_OK) {
        corral_request_path(req, &p, &pl);
        if (ml + pl + bl + 2 > sizeof out) {
            corral_responder_free(res);
            return;
        }
        memcpy(out, m, ml);
        out[ml] = ' ';
        memcpy(out + ml + 1, p, pl);
        out[ml + 1 + pl] = ' ';
        memcpy(out + ml + 2 + pl, b, bl);
        corral_responder_send_http(res, 200, NULL, 0, out, ml + pl + bl + 2);
        return;
    }
    for (i = 0; i < bl && i < sizeof out; i++) out[i] = (unsigned char)toupper(b[i]);
    corral_responder_send(res, out, bl);
}

/* Removes "date: ...\r\n" lines (their value changes every second). */
static size_t strip_dates(unsigned char *buf, size_t len) {
    size_t r = 0, w = 0;
    while (r < len) {
        if (len - r >= 6 && memcmp(buf + r, "date: ", 6) == 0 && (r == 0 || buf[r - 1] == '\n')) {
            while (r < len && buf[r] != '\n') r++;
            r++;
            continue;
        }
        buf[w++] = buf[r++];
    }
    return w;
}

static int run_case(const conf_case *c) {
    corral_config *cfg = corral_config_new();
    corral_serve s = corral_serve_default();
    corral_engine *e = NULL;
    unsigned char got[MAX_BYTES];
    size_t n = 0;
    int fd, ok;
    s.handler = handler;
    corral_config_set_protocol(cfg, c->protocol);
    corral_config_set_io_workers(cfg, 1);
    corral_config_set_cpu_threads(cfg, 0);
    if (c->max_frame) corral_config_set_max_frame(cfg, c->max_frame);
    if (c->max_header) corral_config_set_max_header(cfg, c->max_header);
    if (corral_engine_new_serve(cfg, &s, &e) != CORRAL_STATUS_OK || corral_engine_start(e) != CORRAL_STATUS_OK) {
        corral_config_free(cfg);
        return 0;
    }
    corral_config_free(cfg);
    fd = tl_connect(tl_port(e));
    tl_write_all(fd, (const char *)c->send, c->send_len);
    shutdown(fd, SHUT_WR);
    for (;;) {
        ssize_t r = read(fd, got + n, sizeof got - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    n = strip_dates(got, n);
    ok = n == c->expect_len && memcmp(got, c->expect, n) == 0;
    if (!ok) fprintf(stderr, "case %s: got %zu bytes: %.*s\n", c->name, n, (int)n, got);
    corral_engine_shutdown(e, 5000, NULL);
    corral_engine_free(e);
    return ok;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/conformance/cases.txt";
    FILE *f = fopen(path, "r");
    char line[MAX_BYTES];
    static conf_case c;
    if (!f) {
        perror(path);
        return 2;
    }
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "case ", 5) == 0) {
            memset(&c, 0, sizeof c);
            sscanf(line + 5, "%127s", c.name);
        } else if (strncmp(line, "protocol ", 9) == 0) {
            const char *p = line + 9;
            c.protocol = strncmp(p, "raw", 3) == 0 ? CORRAL_PROTOCOL_RAW
                         : strncmp(p, "lines", 5) == 0 ? CORRAL_PROTOCOL_LINES
                         : strncmp(p, "length", 6) == 0 ? CORRAL_PROTOCOL_LENGTH
                                                        : CORRAL_PROTOCOL_HTTP1;
        } else if (strncmp(line, "max_frame ", 10) == 0) {
            c.max_frame = strtoul(line + 10, NULL, 10);
        } else if (strncmp(line, "max_header ", 11) == 0) {
            c.max_header = strtoul(line + 11, NULL, 10);
        } else if (strncmp(line, "send ", 5) == 0) {
            unescape(line + 5, c.send, &c.send_len);
        } else if (strncmp(line, "expect ", 7) == 0) {
            unescape(line + 7, c.expect, &c.expect_len);
        } else if (strncmp(line, "end", 3) == 0) {
            int ok = run_case(&c);
            CHECK(ok);
            printf("%s %s\n", ok ? "ok  " : "FAIL", c.name);
        }
    }
    fclose(f);
    return tl_finish("conformance (C)");
}
