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
 * Installed as the host's bin/sudo too.  The simulated sudo is a shell script (bin/.sudo.sh,
 * see simxen/host.py); its usual call, `sudo [-n ...] xl ARGS` (or xentop), ends in `exec
 * $bin/xl ARGS`.  That case we do ourselves, in this process: the options the script skips,
 * then the call as bin/xl would make it, with the environment the script's /bin/sh would
 * pass on (it exports PWD).  Every other call (an option the script refuses, no command,
 * another program) execs the script itself, so its messages and exit codes stay its own.
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

/* The sudo script beside us (bin/.sudo.sh), with our own arguments. */
static void sudo_script(char **argv)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/.sudo.sh", exe_dir);
    execv(path, argv);
    fprintf(stderr, "simxen: cannot run %s: %s\n", path, strerror(errno));
    _exit(127);
}

static int one_of(const char *word, const char *const *names)
{
    for (; *names != NULL; names++)
        if (strcmp(word, *names) == 0)
            return 1;
    return 0;
}

static int starts_with(const char *word, const char *prefix)
{
    return strncmp(word, prefix, strlen(prefix)) == 0;
}

/* PWD as dash sets it at start: the inherited value when it names this directory, else
 * getcwd(); 0 when it cannot (the script then decides). */
static int export_pwd_like_sh(void)
{
    const char *pwd = getenv("PWD");
    struct stat here, named;
    if (pwd != NULL && pwd[0] == '/' && stat(".", &here) == 0 && stat(pwd, &named) == 0 &&
        here.st_dev == named.st_dev && here.st_ino == named.st_ino)
        return setenv("PWD", pwd, 1) == 0;
    char cwd[PATH_MAX];
    return getcwd(cwd, sizeof cwd) != NULL && setenv("PWD", cwd, 1) == 0;
}

/* bin/sudo: the argv of the bin/xl (or bin/xentop) call the script would exec, or the
 * script itself.  Mirrors the script's option loop case by case. */
static char **sudo_call(int argc, char **argv, int *call_argc)
{
    static const char *const skip_one[] = {"-n", "--non-interactive", "-E", "--preserve-env", "-H",
                                           "--set-home", "-S", "--stdin", "-k", "--reset-timestamp",
                                           NULL};
    static const char *const skip_two[] = {"-u", "--user", "-g", "--group", NULL};
    static const char *const xl_names[] = {"xl", "/usr/sbin/xl", "/usr/lib/xen-4.17/bin/xl", NULL};
    static const char *const xentop_names[] = {"xentop", "/usr/sbin/xentop",
                                               "/usr/lib/xen-4.17/bin/xentop", NULL};
    int i = 1;
    while (i < argc) {
        const char *a = argv[i];
        if (one_of(a, skip_one)) {
            i++;
        } else if (one_of(a, skip_two)) {
            if (i + 1 >= argc)
                sudo_script(argv); /* `shift 2` past the end, or no command: the script's error */
            i += 2;
        } else if (starts_with(a, "-u") || starts_with(a, "-g") || starts_with(a, "--user=") ||
                   starts_with(a, "--group=")) {
            i++;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-') {
            sudo_script(argv); /* an invalid option: the script's message */
        } else {
            break;
        }
    }
    if (i >= argc)
        sudo_script(argv); /* no command: the script's usage */
    if (one_of(argv[i], xl_names))
        tool = "xl";
    else if (one_of(argv[i], xentop_names))
        tool = "xentop";
    else
        sudo_script(argv); /* any other program: the script runs it */
    if (!export_pwd_like_sh())
        sudo_script(argv);
    /* exec "$bin/xl" "$@": argv[0] is the tool's path, then the words after the tool's name */
    char **call = calloc((size_t)(argc - i) + 1, sizeof *call);
    char *path = malloc(strlen(exe_dir) + 16);
    if (call == NULL || path == NULL)
        sudo_script(argv);
    sprintf(path, "%s/%s", exe_dir, tool);
    call[0] = path;
    for (int k = i + 1; k < argc; k++)
        call[k - i] = argv[k];
    *call_argc = argc - i;
    return call;
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
    if (strcmp(slash + 1, "sudo") == 0) {
        argv = sudo_call(argc, argv, &argc);
    } else {
        tool = strcmp(slash + 1, "xentop") == 0 ? "xentop" : "xl";
    }

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
