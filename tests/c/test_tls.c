/* TLS certificates through the C ABI: corral_tls_reload() after the files were
 * replaced serves the new certificate to new connections; a broken file is refused
 * with its name in the reason and the old certificate stays. The certificates are
 * made here with the openssl command (two days: made per run); the one served is read
 * back with openssl s_client. Skipped (with a note) where openssl is missing. */
#include "testlib.h"

static void hello(void *userdata, const corral_request *req, corral_responder *res) {
    (void)userdata;
    (void)req;
    corral_responder_send_http(res, 200, NULL, 0, (const uint8_t *)"hello\n", 6);
}

/* The subject line of the certificate the engine presents, from openssl s_client. */
static void presented(const corral_engine *e, char *subject, size_t cap) {
    char cmd[256];
    FILE *out;
    subject[0] = '\0';
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u -servername localhost </dev/null 2>/dev/null | grep '^subject='",
             (unsigned)tl_port(e));
    out = popen(cmd, "r");
    CHECK(out != NULL);
    if (out) {
        if (!fgets(subject, (int)cap, out)) subject[0] = '\0';
        pclose(out);
    }
}

static void test_reload(void) {
    char dir[] = "/tmp/corral-c-tls-reload-XXXXXX", cert[80], key[80], subject[256], why[512] = "unchanged";
    corral_config *cfg;
    corral_serve serve = corral_serve_default();
    corral_engine *e = NULL;
    FILE *f;

    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_tls: skipped: needs the openssl command\n");
        return;
    }
    CHECK(mkdtemp(dir) != NULL);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    CHECK(tl_make_cert(cert, key, "first") == 0);

    cfg = corral_config_new();
    OK(corral_config_set(cfg, "tls_cert", cert));
    OK(corral_config_set(cfg, "tls_key", key));
    /* ChaCha20-Poly1305 only: valgrind (make c-test runs this under it) misreads ring's
     * AES-GCM assembly as a jump on uninitialised bytes; see test_api.c's test_tls. */
    OK(corral_config_set(cfg, "tls_ciphers", "TLS_CHACHA20_POLY1305_SHA256"));
    CHECK_STATUS(corral_config_set(cfg, "tls_ciphers", "AES128-SHA"), CORRAL_STATUS_INVALID_CONFIG);
    serve.handler = hello;
    OK(corral_engine_new_serve(cfg, &serve, &e));
    corral_config_free(cfg);
    OK(corral_engine_start(e));
    presented(e, subject, sizeof subject);
    CHECK(strstr(subject, "CN = first") != NULL || strstr(subject, "CN=first") != NULL);

    /* Renewed in place: the next connection gets the new certificate. */
    CHECK(tl_make_cert(cert, key, "second") == 0);
    OK(corral_tls_reload(e, why, sizeof why));
    CHECK(strcmp(why, "unchanged") == 0);
    presented(e, subject, sizeof subject);
    CHECK(strstr(subject, "CN = second") != NULL || strstr(subject, "CN=second") != NULL);

    /* A broken file: refused, named, and the certificate served before stays. */
    f = fopen(cert, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("-----BEGIN CERTIFICATE-----\nAAAA\n", f);
        fclose(f);
    }
    CHECK_STATUS(corral_tls_reload(e, why, sizeof why), CORRAL_STATUS_INVALID_CONFIG);
    CHECK(strncmp(why, "tls_cert: ", 10) == 0 && strstr(why, cert) != NULL);
    CHECK_STATUS(corral_tls_reload(e, NULL, 0), CORRAL_STATUS_INVALID_CONFIG);
    presented(e, subject, sizeof subject);
    CHECK(strstr(subject, "CN = second") != NULL || strstr(subject, "CN=second") != NULL);

    OK(corral_engine_shutdown(e, 5000, NULL));
    corral_engine_free(e);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

/* A plain engine has no certificate to reload; NULL is refused. */
static void test_reload_without_tls(void) {
    char why[256] = "";
    corral_config *cfg = corral_config_new();
    corral_serve serve = corral_serve_default();
    corral_engine *e = NULL;
    serve.handler = hello;
    OK(corral_engine_new_serve(cfg, &serve, &e));
    corral_config_free(cfg);
    CHECK_STATUS(corral_tls_reload(e, why, sizeof why), CORRAL_STATUS_INVALID_CONFIG);
    CHECK(strncmp(why, "this engine serves no TLS", 25) == 0);
    CHECK_STATUS(corral_tls_reload(NULL, why, sizeof why), CORRAL_STATUS_NULL_ARGUMENT);
    corral_engine_free(e);
}

int main(void) {
    test_reload();
    test_reload_without_tls();
    return tl_finish("test_tls");
}
