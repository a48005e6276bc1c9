/*
 * simxen: the client side of a simulated host's fork server (see simxen/zygote.py).
 *
 * Installed as the host's bin/xl and bin/xentop.  Starting a Python interpreter costs a
 * simulated call ~16 ms of CPU, far more than a real xl (a small C program) does, and that
 * cost hid the difference between the executor's pooled SSH and one process per action in
 * our benchmarks.  So this program only hands its call to the host's long-lived server,
 * which forks an already-initialised interpreter to run it, and then mirrors how that
 * child ended.
 *
 * Anything unexpected before the call is handed over (no server, a closed standard fd, a
 * path that does not fit) makes us exec the plain Python wrapper instead: slower, never
 * different.  Once handed over, the child runs the very code the wrapper would.
 *
 * Request (one stream, fds 0-2 attached to the first byte by SCM_RIGHTS):
 *   u32 length, then NUL-terminated strings: tool, cwd, umask (octal), argc, args..., env...
 * Reply: the child's wait status as an i32, sent when the server has reaped it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char exe_dir[PATH_MAX];
static const char *tool;

/* The Python wrapper beside us (bin/.xl.py-wrapper): same behaviour, the old cost. */
static void fallback(char **argv)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.%s.py-wrapper", exe_dir, tool);
    execv(path, argv);
    fprintf(stderr, "simxen: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

static int append(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s) + 1;
    if (*len + n > *cap) {
        size_t ncap = (*cap + n) * 2;
        char *nbuf = realloc(*buf, ncap);
        if (nbuf == NULL)
            return -1;
        *buf = nbuf;
        *cap = ncap;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    return 0;
}

int main(int argc, char **argv)
{
    /* Our own location, not argv[0]: sudo and the executor call us by absolute path, a user
     * by PATH; the real path names both the host (its bin dir) and the tool. */
    ssize_t n = readlink("/proc/self/exe", exe_dir, sizeof exe_dir - 1);
    if (n <= 0)
        return 127;
    exe_dir[n] = '\0';
    char *slash = strrchr(exe_dir, '/');
    if (slash == NULL)
        return 127;
    *slash = '\0';
    tool = strcmp(slash + 1, "xentop") == 0 ? "xentop" : "xl";

    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            fallback(argv); /* nothing to pass on: let the interpreter decide what that means */

    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        fallback(argv);

    /* The socket is reached through a directory fd: pytest's and mkdtemp's host dirs easily
     * exceed sun_path's 108 bytes, /proc/self/fd/N/... never does. */
    int dirfd = open(exe_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        fallback(argv);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/.zygote.sock", dirfd);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        fallback(argv); /* no server (not started yet, or stopped): the slow way still works */
    close(dirfd);

    char *buf = NULL;
    size_t len = 4, cap = 0;
    char num[32];
    mode_t mask = umask(0);
    umask(mask);
    int bad = append(&buf, &len, &cap, tool) || append(&buf, &len, &cap, cwd);
    snprintf(num, sizeof num, "%o", (unsigned)mask);
    bad = bad || append(&buf, &len, &cap, num);
    snprintf(num, sizeof num, "%d", argc - 1);
    bad = bad || append(&buf, &len, &cap, num);
    for (int i = 1; i < argc && !bad; i++)
        bad = append(&buf, &len, &cap, argv[i]);
    for (char **e = environ; *e != NULL && !bad; e++)
        bad = append(&buf, &len, &cap, *e);
    if (bad)
        fallback(argv);
    uint32_t body = (uint32_t)(len - 4);
    memcpy(buf, &body, 4);

    int fds[3] = {0, 1, 2};
    char control[CMSG_SPACE(sizeof fds)];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);

    /* MSG_NOSIGNAL: a server that died under us must not kill us with SIGPIPE before we
     * could fall back.  Nothing has run yet until the whole request is in. */
    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (sent <= 0)
        fallback(argv);
    size_t off = (size_t)sent;
    while (off < len) {
        ssize_t w = send(sock, buf + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "simxen: lost the %s server while sending the call\n", tool);
            return 1;
        }
        off += (size_t)w;
    }

    /* From here on the child runs.  We stay in the caller's process tree as the call: if a
     * timeout(1) or a closed session kills us, the server sees the connection close and kills
     * the child, as killing the interpreter would have ended the call. */
    int32_t status;
    size_t got = 0;
    while (got < sizeof status) {
        ssize_t r = read(sock, (char *)&status + got, sizeof status - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "simxen: the %s server went away during the call\n", tool);
            return 1;
        }
        got += (size_t)r;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
        /* End the way the child did, so callers see the same wait status as before. */
        int sig = WTERMSIG(status);
        signal(sig, SIG_DFL);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(sig);
        return 128 + sig;
    }
    return 1;
}
