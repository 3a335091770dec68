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
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_fault_signal(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
           sig == SIGABRT || sig == SIGTRAP || sig == SIGSYS;
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
