/* bare_mhd.c - the benchmark's baseline: libmicrohttpd (epoll, pool of 2 threads) reading
 * the request body and answering a tiny JSON 200, nothing else. Usage: bare_mhd PORTFILE */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char ok[] = "{\"ok\":true}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    static int first_call_marker;
    if (!*con_cls) {
        *con_cls = &first_call_marker; /* answer on a later call, keeping keep-alive */
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(sizeof ok - 1, (void *)ok, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

int main(int argc, char **argv)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_END);
    if (!d)
        return 1;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    FILE *f = fopen(argc > 1 ? argv[1] : "/dev/stdout", "w");
    if (!f)
        return 1;
    fprintf(f, "%u\n", (unsigned)di->port);
    fclose(f);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    return 0;
}
