/*
 * Lets Debian's wrk present a client certificate, so the harness can load Envoy over mTLS
 * (a STRICT sidecar's listener) with a SPIFFE identity that both the native RBAC filter and
 * Warden see. wrk has no option for it; this is preloaded (LD_PRELOAD) and, when wrk creates
 * its one SSL_CTX, loads WRK_CLIENT_CERT and WRK_CLIENT_KEY into it. Built by run.sh:
 *   cc -shared -fPIC -O2 -o wrk-client-cert.so wrk-client-cert.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/ssl.h>

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    static SSL_CTX *(*real)(const SSL_METHOD *) = NULL;
    if (real == NULL) {
        real = (SSL_CTX * (*)(const SSL_METHOD *)) dlsym(RTLD_NEXT, "SSL_CTX_new");
        if (real == NULL) {
            fprintf(stderr, "wrk-client-cert: SSL_CTX_new not found\n");
            exit(2);
        }
    }
    SSL_CTX *ctx = real(method);
    const char *cert = getenv("WRK_CLIENT_CERT");
    const char *key = getenv("WRK_CLIENT_KEY");
    if (ctx != NULL && cert != NULL && key != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            fprintf(stderr, "wrk-client-cert: cannot load %s and %s\n", cert, key);
            exit(2);
        }
    }
    return ctx;
}
