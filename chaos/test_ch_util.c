/* test_ch_util.c - loopback peers for the chaos-proxy tests. */
#include "test_ch_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cm_clock.h"

#define MAX_CONNS 128

struct tu_server {
    int lfd;
    uint16_t port;
    char *greeting;
    pthread_t acceptor;
    pthread_mutex_t mu;
    int stopping;
    int fds[MAX_CONNS];
    pthread_t threads[MAX_CONNS];
    size_t n;
    uint64_t received, accepted; /* atomic */
};

typedef struct {
    tu_server_t *s;
    int fd;
} conn_arg_t;

static void *echo_main(void *arg)
{
    conn_arg_t a = *(conn_arg_t *)arg;
    free(arg);
    char buf[16384];
    if (a.s->greeting)
        send(a.fd, a.s->greeting, strlen(a.s->greeting), MSG_NOSIGNAL);
    for (;;) {
        ssize_t n = recv(a.fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        __atomic_add_fetch(&a.s->received, (uint64_t)n, __ATOMIC_SEQ_CST);
        if (tu_send_all(a.fd, buf, (size_t)n, 10000) != 0)
            break;
    }
    /* Close our side too: the peer (the proxy) sees EOF and can finish. */
    shutdown(a.fd, SHUT_WR);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    tu_server_t *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break; /* shutdown() of the listener at stop */
        }
        pthread_mutex_lock(&s->mu);
        conn_arg_t *a = malloc(sizeof *a);
        if (s->stopping || s->n >= MAX_CONNS || !a) {
            pthread_mutex_unlock(&s->mu);
            free(a);
            close(fd);
            continue;
        }
        __atomic_add_fetch(&s->accepted, 1, __ATOMIC_SEQ_CST);
        a->s = s;
        a->fd = fd;
        s->fds[s->n] = fd;
        if (pthread_create(&s->threads[s->n], NULL, echo_main, a) == 0)
            s->n++;
        else {
            free(a);
            close(fd);
        }
        pthread_mutex_unlock(&s->mu);
    }
    return NULL;
}

tu_server_t *tu_server_start(const char *greeting)
{
    tu_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    s->greeting = greeting ? strdup(greeting) : NULL;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(s->lfd, 64) != 0 || getsockname(s->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
        pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0) {
        if (s->lfd >= 0)
            close(s->lfd);
        free(s->greeting);
        free(s);
        return NULL;
    }
    s->port = ntohs(sa.sin_port);
    return s;
}

uint16_t tu_server_port(const tu_server_t *s)
{
    return s->port;
}

uint64_t tu_server_received(tu_server_t *s)
{
    return __atomic_load_n(&s->received, __ATOMIC_SEQ_CST);
}

uint64_t tu_server_accepted(tu_server_t *s)
{
    return __atomic_load_n(&s->accepted, __ATOMIC_SEQ_CST);
}

void tu_server_stop(tu_server_t **sp)
{
    tu_server_t *s = sp ? *sp : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
    pthread_join(s->acceptor, NULL);
    for (size_t i = 0; i < s->n; i++)
        shutdown(s->fds[i], SHUT_RDWR);
    for (size_t i = 0; i < s->n; i++) {
        pthread_join(s->threads[i], NULL);
        close(s->fds[i]);
    }
    close(s->lfd);
    pthread_mutex_destroy(&s->mu);
    free(s->greeting);
    free(s);
    *sp = NULL;
}

int tu_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int tu_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;
    int64_t deadline = cm_clock_mono_ms() + timeout_ms;
    while (len) {
        int64_t left = deadline - cm_clock_mono_ms();
        if (left <= 0)
            return ETIMEDOUT;
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno != EINTR)
            return errno;
        if (r <= 0)
            continue;
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            return errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t tu_recv_n(int fd, void *buf, size_t len, int timeout_ms, tu_how_t *how, int *nreads)
{
    char *p = buf;
    size_t got = 0;
    int64_t deadline = cm_clock_mono_ms() + timeout_ms;
    *how = TU_FULL;
    if (nreads)
        *nreads = 0;
    while (got < len) {
        int64_t left = deadline - cm_clock_mono_ms();
        if (left <= 0) {
            *how = TU_TIMEOUT;
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)left);
        if (r < 0 && errno != EINTR) {
            *how = TU_ERROR;
            break;
        }
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
        if (n == 0) {
            *how = TU_EOF;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            *how = errno == ECONNRESET ? TU_RESET : TU_ERROR;
            break;
        }
        got += (size_t)n;
        if (nreads)
            (*nreads)++;
    }
    return got;
}

const char *tu_how_name(tu_how_t how)
{
    static const char *const names[] = {"full", "eof", "reset", "timeout", "error"};
    return (unsigned)how < 5 ? names[how] : "?";
}

int tu_wait_until(int (*cond)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = cm_clock_mono_ms() + timeout_ms;
    int r;
    while (!(r = cond(arg)) && cm_clock_mono_ms() < deadline)
        poll(NULL, 0, 5);
    return r;
}

void tu_pattern(unsigned char *buf, size_t len, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
}
