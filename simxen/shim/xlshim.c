/*
 * xlshim.c - LD_PRELOAD library that lets the real Xen 4.17 `xl` parse and
 * validate domain configurations (`xl -N create`, `xl -N block-attach`,
 * `xl -N network-attach`) on a machine that runs no hypervisor.
 *
 * Why it is needed: `xl` builds its libxl context before it looks at its
 * arguments.  That opens the hypervisor's privileged command interface
 * (/dev/xen/privcmd), asks Xen a few questions through hypercalls and
 * connects to xenstored.  Without Xen all three fail and `xl` stops with
 * "cannot init xl context", so the real parser never runs.
 *
 * What it fakes, and nothing else (the parser, the validation and the JSON
 * printed are the real libxl ones):
 *   1. opening /dev/xen/privcmd gives /dev/null; /dev/xen/hypercall is
 *      reported missing so libxencall falls back to anonymous memory for
 *      its hypercall buffers;
 *   2. the privcmd hypercall ioctl answers `sysctl physinfo` and
 *      `xen_version` with the values of a small host and fails everything
 *      else with ENOSYS, which is what the dry-run paths tolerate;
 *   3. a private xenstored: a listening UNIX socket served by a thread that
 *      answers every request with XS_ERROR "ENOENT" (a dry run only reads
 *      optional keys, so "not there" keeps every code path short).
 *
 * Environment (all optional):
 *   XLSHIM_SOCKDIR   existing directory for the xenstored socket; the caller
 *                    owns and removes it.  Without it a private directory is
 *                    made under $TMPDIR (or /tmp) and removed at exit.
 *   XLSHIM_NR_CPUS   CPUs reported by physinfo (default 2)
 *   XLSHIM_TOTAL_MB  host memory reported by physinfo (default 2047)
 *   XLSHIM_FREE_MB   free memory reported by physinfo (default 1256)
 *   XLSHIM_DEBUG     log intercepted calls on stderr
 *
 * Build: gcc -shared -fPIC -O2 -o xlshim.so xlshim.c -ldl -lpthread
 * Use:   LD_PRELOAD=$PWD/xlshim.so /usr/lib/xen-4.17/bin/xl -N create dom.cfg
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- Xen ABI pieces (from xen/include/public and linux privcmd.h) ---- */

struct privcmd_hypercall {
    uint64_t op;
    uint64_t arg[5];
};
#define IOCTL_PRIVCMD_HYPERCALL \
    _IOC(_IOC_NONE, 'P', 0, sizeof(struct privcmd_hypercall))

#define HYPERVISOR_xen_version 17
#define HYPERVISOR_sysctl 35
#define XEN_SYSCTL_physinfo 3

#define XENVER_version 0
#define XENVER_extraversion 1
#define XENVER_capabilities 3
#define XENVER_pagesize 7

/* struct xen_sysctl starts with cmd and interface_version; the union that
 * follows is 8-byte aligned, so physinfo begins 8 bytes in. */
struct fake_physinfo {
    uint32_t threads_per_core, cores_per_socket, nr_cpus, max_cpu_id;
    uint32_t nr_nodes, max_node_id, cpu_khz, capabilities;
    uint32_t arch_capabilities, pad;
    uint64_t total_pages, free_pages, scrub_pages, outstanding_pages, max_mfn;
    uint32_t hw_cap[8];
};

/* xenstore wire header (xen/include/public/io/xs_wire.h) */
struct xsd_sockmsg {
    uint32_t type, req_id, tx_id, len;
};
#define XS_ERROR 16

static int debug;
static char sockdir[PATH_MAX];
static char sockpath[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int own_sockdir; /* we made sockdir, so we remove it */

#define DBG(...) do { if (debug) fprintf(stderr, "xlshim: " __VA_ARGS__); } while (0)

static unsigned long env_ulong(const char *name, unsigned long dflt)
{
    const char *v = getenv(name);
    char *end;
    unsigned long n;

    if (!v || !*v)
        return dflt;
    n = strtoul(v, &end, 10);
    return *end ? dflt : n;
}

/* ---- 1. device nodes ---- */

static int is_privcmd(const char *p)
{
    return p && (!strcmp(p, "/dev/xen/privcmd") || !strcmp(p, "/proc/xen/privcmd"));
}

static int is_hypercall_dev(const char *p)
{
    return p && !strcmp(p, "/dev/xen/hypercall");
}

/* Shared by all open flavours; returns -2 when the real call should run. */
static int fake_open(const char *path)
{
    static int (*real_open)(const char *, int, ...);

    if (is_hypercall_dev(path)) {
        DBG("open %s -> ENOENT\n", path);
        errno = ENOENT;
        return -1;
    }
    if (is_privcmd(path)) {
        if (!real_open)
            real_open = dlsym(RTLD_NEXT, "open");
        DBG("open %s -> /dev/null\n", path);
        return real_open("/dev/null", O_RDWR | O_CLOEXEC);
    }
    return -2;
}

#define DEFINE_OPEN(fn)                                                  \
    int fn(const char *path, int flags, ...)                             \
    {                                                                    \
        static int (*real)(const char *, int, ...);                      \
        mode_t mode = 0;                                                 \
        int fd = fake_open(path);                                        \
        if (fd != -2)                                                    \
            return fd;                                                   \
        if (flags & (O_CREAT | O_TMPFILE)) {                             \
            va_list ap;                                                  \
            va_start(ap, flags);                                         \
            mode = va_arg(ap, mode_t);                                   \
            va_end(ap);                                                  \
        }                                                                \
        if (!real)                                                       \
            real = dlsym(RTLD_NEXT, #fn);                                \
        return real(path, flags, mode);                                  \
    }

#define DEFINE_OPENAT(fn)                                                \
    int fn(int dirfd, const char *path, int flags, ...)                  \
    {                                                                    \
        static int (*real)(int, const char *, int, ...);                 \
        mode_t mode = 0;                                                 \
        int fd = fake_open(path);                                        \
        if (fd != -2)                                                    \
            return fd;                                                   \
        if (flags & (O_CREAT | O_TMPFILE)) {                             \
            va_list ap;                                                  \
            va_start(ap, flags);                                         \
            mode = va_arg(ap, mode_t);                                   \
            va_end(ap);                                                  \
        }                                                                \
        if (!real)                                                       \
            real = dlsym(RTLD_NEXT, #fn);                                \
        return real(dirfd, path, flags, mode);                           \
    }

DEFINE_OPEN(open)
DEFINE_OPEN(open64)
DEFINE_OPENAT(openat)
DEFINE_OPENAT(openat64)

/* ---- 2. hypercalls ---- */

static long fake_sysctl(uint32_t *sysctl)
{
    struct fake_physinfo *pi;
    unsigned long cpus = env_ulong("XLSHIM_NR_CPUS", 2);
    unsigned long total_mb = env_ulong("XLSHIM_TOTAL_MB", 2047);
    unsigned long free_mb = env_ulong("XLSHIM_FREE_MB", 1256);

    DBG("sysctl cmd=%u interface=0x%x\n", sysctl[0], sysctl[1]);
    if (sysctl[0] != XEN_SYSCTL_physinfo) {
        errno = ENOSYS;
        return -1;
    }
    if (cpus == 0)
        cpus = 1;
    pi = (struct fake_physinfo *)(sysctl + 2);
    memset(pi, 0, sizeof(*pi));
    pi->threads_per_core = 1;
    pi->cores_per_socket = (uint32_t)cpus;
    pi->nr_cpus = (uint32_t)cpus;
    pi->max_cpu_id = (uint32_t)cpus - 1;
    pi->nr_nodes = 1;
    pi->cpu_khz = 2596127;
    /* hvm, pv, hap, shadow and both grant-table versions, as on the
     * reference host's "virt_caps : pv hvm hap shadow gnttab-v1 gnttab-v2" */
    pi->capabilities = 0x3ff;
    pi->total_pages = pi->max_mfn = ((uint64_t)total_mb << 20) >> 12;
    pi->free_pages = ((uint64_t)free_mb << 20) >> 12;
    return 0;
}

static long fake_xen_version(uint64_t cmd, char *buf)
{
    DBG("xen_version cmd=%lu\n", (unsigned long)cmd);
    switch (cmd) {
    case XENVER_version:
        return (4 << 16) | 17;
    case XENVER_extraversion: /* char[16] */
        strcpy(buf, ".5");
        return 0;
    case XENVER_capabilities: /* char[1024] */
        strcpy(buf, "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64");
        return 0;
    case XENVER_pagesize:
        return 4096;
    }
    errno = ENOSYS;
    return -1;
}

static long fake_hypercall(struct privcmd_hypercall *hc)
{
    switch (hc->op) {
    case HYPERVISOR_sysctl:
        return fake_sysctl((uint32_t *)(uintptr_t)hc->arg[0]);
    case HYPERVISOR_xen_version:
        return fake_xen_version(hc->arg[0], (char *)(uintptr_t)hc->arg[1]);
    }
    DBG("hypercall op=%lu -> ENOSYS\n", (unsigned long)hc->op);
    errno = ENOSYS;
    return -1;
}

int ioctl(int fd, unsigned long request, ...)
{
    static int (*real_ioctl)(int, unsigned long, ...);
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (request == IOCTL_PRIVCMD_HYPERCALL)
        return (int)fake_hypercall(arg);
    if (!real_ioctl)
        real_ioctl = dlsym(RTLD_NEXT, "ioctl");
    return real_ioctl(fd, request, arg);
}

/* ---- 3. xenstored that knows nothing ---- */

static int read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *xs_connection(void *arg)
{
    int c = (int)(intptr_t)arg;
    static const char enoent[] = "ENOENT"; /* sent with its NUL, as xenstored does */
    struct xsd_sockmsg hdr;
    char body[4096];

    while (read_full(c, &hdr, sizeof(hdr)) == 0) {
        uint32_t left = hdr.len;

        while (left) { /* discard the payload: every answer is the same */
            uint32_t chunk = left > sizeof(body) ? (uint32_t)sizeof(body) : left;
            if (read_full(c, body, chunk))
                goto out;
            left -= chunk;
        }
        DBG("xenstore request type=%u\n", hdr.type);
        hdr.type = XS_ERROR; /* req_id and tx_id are echoed back unchanged */
        hdr.len = sizeof(enoent);
        if (send(c, &hdr, sizeof(hdr), MSG_NOSIGNAL) != sizeof(hdr) ||
            send(c, enoent, sizeof(enoent), MSG_NOSIGNAL) != sizeof(enoent))
            break;
    }
out:
    close(c);
    return NULL;
}

static void *xs_listener(void *arg)
{
    int s = (int)(intptr_t)arg;

    for (;;) {
        pthread_t t;
        int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pthread_create(&t, NULL, xs_connection, (void *)(intptr_t)c)) {
            close(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static void cleanup(void)
{
    if (sockpath[0])
        unlink(sockpath);
    if (own_sockdir)
        rmdir(sockdir);
}

__attribute__((constructor)) static void xlshim_init(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    const char *dir = getenv("XLSHIM_SOCKDIR");
    pthread_t t;
    int s;

    debug = getenv("XLSHIM_DEBUG") != NULL;
    /* Programs xl may run (hotplug scripts, sh) must not get the shim. */
    unsetenv("LD_PRELOAD");

    if (dir && *dir) {
        if (snprintf(sockdir, sizeof(sockdir), "%s", dir) >= (int)sizeof(sockdir))
            return;
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(sockdir, sizeof(sockdir), "%s/xlshim.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(sockdir))
            return;
        own_sockdir = 1;
    }
    if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/xenstored.%ld", sockdir,
                 (long)getpid()) >= (int)sizeof(sa.sun_path)) {
        fprintf(stderr, "xlshim: socket path too long under %s\n", sockdir);
        return;
    }
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return;
    if (bind(s, (struct sockaddr *)&sa, sizeof(sa)) || listen(s, 16)) {
        close(s);
        return;
    }
    memcpy(sockpath, sa.sun_path, sizeof(sockpath));
    atexit(cleanup);
    /* libxenstore reads this in xs_open(); overriding any inherited value
     * keeps a real xenstored (if there is one) out of the dry run. */
    setenv("XENSTORED_PATH", sockpath, 1);
    if (pthread_create(&t, NULL, xs_listener, (void *)(intptr_t)s)) {
        close(s);
        return;
    }
    pthread_detach(t);
    DBG("xenstored at %s\n", sockpath);
}
