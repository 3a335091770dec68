// CForkShim: fork and child set-up, and libc macros Swift cannot import.
// See include/CForkShim.h for why each function is in C.
#ifndef _GNU_SOURCE
#error "CForkShim must be built with _GNU_SOURCE (set in Package.swift)"
#endif

#include "CForkShim.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_fault_signal(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
           sig == SIGABRT || sig == SIGTRAP || sig == SIGSYS;
}

// The fault handlers a worker inherited (Swift's crash backtracer), indexed by signal.
static struct sigaction inherited_fault_actions[NSIG];

// Runs the inherited handler (which prints the backtrace), then makes sure the worker dies of
// the signal. Swift's backtracer resets the handler and *returns*: for a real fault the
// instruction faults again, but a raised or sent signal (raise, pthread_kill, kill from another
// process, a software trap) would be swallowed and the task would go on to report success.
static void die_of_fault_signal(int sig, siginfo_t *info, void *context) {
    const struct sigaction *inherited = &inherited_fault_actions[sig];
    if (inherited->sa_flags & SA_SIGINFO) {
        if (inherited->sa_sigaction != NULL) inherited->sa_sigaction(sig, info, context);
    } else if (inherited->sa_handler != SIG_DFL && inherited->sa_handler != SIG_IGN) {
        inherited->sa_handler(sig);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(sig, &dfl, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, sig);
    (void)sigprocmask(SIG_UNBLOCK, &only, NULL);    // in case the handler runs with it blocked
    (void)raise(sig);                               // the default action: the worker dies here
    _exit(128 + sig);                               // not reached
}

// Child side of FORKPOOL_KEEP_FAULT_HANDLERS: every fault signal must end the process. A
// handler is wrapped so it still runs once; an ignored fault signal gets its default action.
static void arm_fault_signals(void) {
    for (int sig = 1; sig < NSIG; sig++) {
        if (!is_fault_signal(sig)) continue;
        struct sigaction current;
        if (sigaction(sig, NULL, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == die_of_fault_signal) continue;  // wrapped already
        if (!(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN)) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            sigemptyset(&dfl.sa_mask);
            (void)sigaction(sig, &dfl, NULL);
            continue;
        }
        inherited_fault_actions[sig] = current;
        struct sigaction wrapper;
        memset(&wrapper, 0, sizeof wrapper);
        wrapper.sa_sigaction = die_of_fault_signal;
        // The same mask and flags (SA_NODEFER above all: Swift's backtracer reads memory from
        // a thread of its own that must still catch its own SIGSEGV), plus SA_SIGINFO.
        wrapper.sa_mask = current.sa_mask;
        wrapper.sa_flags = (current.sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
        (void)sigaction(sig, &wrapper, NULL);
    }
}

pid_t forkpool_fork_worker(const int *close_fds, int close_count, int options) {
    pid_t parent = getpid();
    // Buffered output written before the fork would otherwise appear twice.
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) {
        return pid;  // parent, or -1 with errno
    }
    // Child: async-signal-safe calls only until we return to Swift.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        if ((options & FORKPOOL_KEEP_FAULT_HANDLERS) && is_fault_signal(sig)) continue;
        (void)sigaction(sig, &dfl, NULL);  // EINVAL for glibc-reserved RT signals: fine
    }
    if (options & FORKPOOL_KEEP_FAULT_HANDLERS) arm_fault_signals();
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    // The death signal follows the forking thread; ForkPool forks only from a thread that
    // lives as long as the pool. The getppid check closes the race with a parent that died
    // before prctl ran.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(127);
    }
    if (options & FORKPOOL_NEW_PROCESS_GROUP) {
        (void)setpgid(0, 0);
    }
    for (int i = 0; i < close_count; i++) {
        (void)close(close_fds[i]);
    }
    return 0;
}

int forkpool_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds);
}

int forkpool_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

int forkpool_set_nonblocking(int fd) {
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

ssize_t forkpool_send(int fd, const void *bytes, size_t count, int nonblocking) {
    return send(fd, bytes, count, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
}

ssize_t forkpool_send_two(int fd, const void *head, size_t head_count, const void *tail, size_t tail_count,
                          int nonblocking) {
    struct iovec parts[2] = {{(void *)head, head_count}, {(void *)tail, tail_count}};
    struct msghdr message = {.msg_iov = parts, .msg_iovlen = tail_count > 0 ? 2 : 1};
    return sendmsg(fd, &message, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0));
}

pid_t forkpool_waitpid(pid_t pid, int *status, int nohang) {
    pid_t result;
    do {
        result = waitpid(pid, status, nohang ? WNOHANG : 0);
    } while (result < 0 && errno == EINTR);
    return result;
}

int forkpool_pidfd_open(pid_t pid) { return pidfd_open(pid, 0); }

int forkpool_pidfd_send_signal(int pidfd, int signal_number) {
    return pidfd_send_signal(pidfd, signal_number, NULL, 0);
}

int forkpool_wifexited(int status) { return WIFEXITED(status); }
int forkpool_wexitstatus(int status) { return WEXITSTATUS(status); }
int forkpool_wifsignaled(int status) { return WIFSIGNALED(status); }
int forkpool_wtermsig(int status) { return WTERMSIG(status); }

void forkpool_signal_name(int signal_number, char *buffer, size_t size) {
    const char *abbrev = sigabbrev_np(signal_number);
    if (abbrev != NULL) {
        snprintf(buffer, size, "SIG%s", abbrev);
    } else {
        snprintf(buffer, size, "signal %d", signal_number);
    }
}

void forkpool_exit(int status) { _exit(status); }

void forkpool_flush_stdio(void) { fflush(NULL); }

void forkpool_set_thread_name(pthread_t thread, const char *name) {
    char truncated[16];
    snprintf(truncated, sizeof truncated, "%s", name);
    (void)pthread_setname_np(thread, truncated);
}

int forkpool_seqpacket_pair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

#define FORKPOOL_MAX_PASSED_FDS 4

ssize_t forkpool_send_with_fds(int socket, const void *bytes, size_t count, const int *fds, int fd_count) {
    if (fd_count < 0 || fd_count > FORKPOOL_MAX_PASSED_FDS) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = {.iov_base = (void *)bytes, .iov_len = count};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * FORKPOOL_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (fd_count > 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)fd_count);
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)fd_count);
        memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)fd_count);
    }
    ssize_t sent;
    do {
        sent = sendmsg(socket, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    return sent;
}

ssize_t forkpool_receive_with_fds(int socket, void *bytes, size_t count, int *fds, int max_fds, int *fd_count) {
    *fd_count = 0;
    struct iovec iov = {.iov_base = bytes, .iov_len = count};
    union {
        char buffer[CMSG_SPACE(sizeof(int) * FORKPOOL_MAX_PASSED_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof control.buffer;
    ssize_t received;
    do {
        received = recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (received < 0 && errno == EINTR);
    if (received < 0) return received;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *passed = (int *)CMSG_DATA(header);
        for (int i = 0; i < n; i++) {
            if (*fd_count < max_fds) {
                fds[(*fd_count)++] = passed[i];
            } else {
                close(passed[i]);
            }
        }
    }
    return received;
}

int forkpool_child_signal_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

void forkpool_drain_signal_fd(int fd) {
    struct signalfd_siginfo records[16];
    while (read(fd, records, sizeof records) > 0) {
    }
}
