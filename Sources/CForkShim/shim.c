// CForkShim: fork and child set-up, and libc macros Swift cannot import.
// See include/CForkShim.h for why each function is in C.
#ifndef _GNU_SOURCE
#error "CForkShim must be built with _GNU_SOURCE (set in Package.swift)"
#endif

#include "CForkShim.h"
#include "shim_internal.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <unistd.h>

// Runs a system call again while it fails with EINTR; the value is the call's last result.
#define RETRY_ON_EINTR(call) ({ __typeof__(call) result_; do { result_ = (call); } while (result_ == -1 && errno == EINTR); result_; })

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
    forkpool_sandbox_fault_seen(sig, errno);  // first: errno as the faulting code left it
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

// Puts die_of_fault_signal in front of every fault signal's action. `keep_defaults`: a signal
// at its default action (or ignored) is wrapped too (so a jailed worker's note is sent before
// it dies of it); otherwise it is left at, or reset to, its default action.
static void wrap_fault_signals(int keep_defaults) {
    for (int sig = 1; sig < NSIG; sig++) {
        if (!is_fault_signal(sig)) continue;
        struct sigaction current;
        if (sigaction(sig, NULL, &current) != 0) continue;
        if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == die_of_fault_signal) continue;  // wrapped already
        int no_handler = !(current.sa_flags & SA_SIGINFO) && (current.sa_handler == SIG_DFL || current.sa_handler == SIG_IGN);
        if (no_handler) current.sa_handler = SIG_DFL;  // an ignored fault signal gets its default action
        if (no_handler && !keep_defaults) {
            (void)sigaction(sig, &current, NULL);
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

// Child side of FORKPOOL_KEEP_FAULT_HANDLERS: every fault signal must end the process. A
// handler is wrapped so it still runs once; an ignored fault signal gets its default action.
static void arm_fault_signals(void) { wrap_fault_signals(0); }

void forkpool_wrap_all_fault_signals(void) { wrap_fault_signals(1); }

pid_t forkpool_fork_worker(const int *close_fds, int close_count, int options) {
    pid_t parent = getpid();
    // Buffered output written before the fork would otherwise appear twice.
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) {
        return pid;  // parent, or -1 with errno
    }
    // Child: async-signal-safe calls only until we return to Swift.
    forkpool_sandbox_forget();
    forkpool_ring_forget();
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
    return RETRY_ON_EINTR(send(fd, bytes, count, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0)));
}

ssize_t forkpool_send_two(int fd, const void *head, size_t head_count, const void *tail, size_t tail_count,
                          int nonblocking) {
    struct iovec parts[2] = {{(void *)head, head_count}, {(void *)tail, tail_count}};
    struct msghdr message = {.msg_iov = parts, .msg_iovlen = tail_count > 0 ? 2 : 1};
    return RETRY_ON_EINTR(sendmsg(fd, &message, MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0)));
}

pid_t forkpool_waitpid(pid_t pid, int *status, int nohang) {
    return RETRY_ON_EINTR(waitpid(pid, status, nohang ? WNOHANG : 0));
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
    return RETRY_ON_EINTR(sendmsg(socket, &message, MSG_NOSIGNAL));
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
    ssize_t received = RETRY_ON_EINTR(recvmsg(socket, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
    if (received < 0) return received;
    // With MSG_CTRUNC the kernel dropped descriptors that did not fit: the message is not the
    // one that was sent, so none of what did arrive is handed on.
    int truncated = (message.msg_flags & MSG_CTRUNC) != 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int n = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int passed[FORKPOOL_MAX_PASSED_FDS];
        if (n > FORKPOOL_MAX_PASSED_FDS) n = FORKPOOL_MAX_PASSED_FDS;  // cannot be: the buffer holds no more
        memcpy(passed, CMSG_DATA(header), sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            if (!truncated && *fd_count < max_fds) {
                fds[(*fd_count)++] = passed[i];
            } else {
                close(passed[i]);
            }
        }
    }
    if (truncated) {
        for (int i = 0; i < *fd_count; i++) close(fds[i]);
        *fd_count = 0;
        errno = EPROTO;
        return -1;
    }
    return received;
}

// Blocks SIGCHLD in the (single-threaded) server and returns a non-blocking, close-on-exec
// signalfd that turns readable when a child changes state; -1 with errno.
static int forkpool_child_signal_fd(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) return -1;
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

// Reads and discards every pending record of a signalfd.
static void forkpool_drain_signal_fd(int fd) {
    struct signalfd_siginfo records[16];
    while (RETRY_ON_EINTR(read(fd, records, sizeof records)) > 0) {
    }
}

// MARK: The fork server

// One control message, as ForkServerMessage in Swift reads and writes it: 16 bytes,
// little-endian (operation, pid, value).
enum { SPAWN = 1, SPAWNED = 2, SPAWN_FAILED = 3, EXITED = 4 };
enum { MESSAGE_SIZE = 16, SETUP_FAILED_STATUS = 71 /* EX_OSERR */ };

static void encode_message(unsigned char bytes[MESSAGE_SIZE], uint32_t operation, pid_t pid, int64_t value) {
    uint32_t op = htole32(operation);
    uint32_t id = htole32((uint32_t)pid);
    uint64_t word = htole64((uint64_t)value);
    memcpy(bytes, &op, 4);
    memcpy(bytes + 4, &id, 4);
    memcpy(bytes + 8, &word, 8);
}

// Sends one message (with `fd_count` descriptors); a dead pool ends the server.
static void report(int control, uint32_t operation, pid_t pid, int64_t value, const int *fds, int fd_count) {
    unsigned char bytes[MESSAGE_SIZE];
    encode_message(bytes, operation, pid, value);
    if (forkpool_send_with_fds(control, bytes, MESSAGE_SIZE, fds, fd_count) < 0) _exit(0);
}

// Reaps every exited child and reports its wait status.
static void report_exits(int control) {
    for (;;) {
        int status = 0;
        pid_t pid = forkpool_waitpid(-1, &status, 1);
        if (pid <= 0) return;
        report(control, EXITED, pid, status, NULL, 0);
    }
}

// Forks one worker. Returns its socket in the worker; -1 in the server (reported either way).
static int spawn_worker(int control, int child_signals, int worker_options, const struct forkpool_sandbox_plan *sandbox) {
    int fds[2];
    if (forkpool_socketpair(fds) != 0) {
        report(control, SPAWN_FAILED, 0, errno, NULL, 0);
        return -1;
    }
    // The pool's end is non-blocking (a flag of the open file, so it travels with the descriptor).
    if (forkpool_set_nonblocking(fds[0]) != 0) {
        int fcntl_errno = errno;
        close(fds[0]);
        close(fds[1]);
        report(control, SPAWN_FAILED, 0, fcntl_errno, NULL, 0);
        return -1;
    }
    int rings = -1;
    if (worker_options & FORKPOOL_SHARED_RINGS) {
        rings = forkpool_ring_make();
        if (rings < 0) {
            int memfd_errno = errno;
            close(fds[0]);
            close(fds[1]);
            report(control, SPAWN_FAILED, 0, memfd_errno, NULL, 0);
            return -1;
        }
    }
    int closing[3] = {control, child_signals, fds[0]};
    pid_t pid = forkpool_fork_worker(closing, 3, worker_options);
    if (pid == 0) {
        // Mapped before the sandbox closes every other descriptor; a worker without its
        // region cannot serve the pool, which sees it exit before `ready`.
        if (rings >= 0 && forkpool_ring_enter_worker(rings) != 0) _exit(SETUP_FAILED_STATUS);
        if (sandbox != NULL) forkpool_sandbox_apply(sandbox, fds[1]);  // or the worker exits
        return fds[1];
    }
    int fork_errno = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        if (rings >= 0) close(rings);
        report(control, SPAWN_FAILED, 0, fork_errno, NULL, 0);
        return -1;
    }
    // Opened before this server can reap the worker, so the pidfd always names this worker.
    int pidfd = forkpool_pidfd_open(pid);
    if (pidfd < 0) {
        int open_errno = errno;
        close(fds[0]);
        if (rings >= 0) close(rings);
        (void)kill(pid, SIGKILL);
        report(control, SPAWN_FAILED, 0, open_errno, NULL, 0);
        return -1;
    }
    int attached[3] = {fds[0], pidfd, rings};
    unsigned char bytes[MESSAGE_SIZE];
    encode_message(bytes, SPAWNED, pid, 0);
    ssize_t sent = forkpool_send_with_fds(control, bytes, MESSAGE_SIZE, attached, rings >= 0 ? 3 : 2);
    close(fds[0]);
    close(pidfd);
    if (rings >= 0) close(rings);
    if (sent < 0) _exit(0);  // the pool is gone
    return -1;
}

// The server's life: serve spawn requests and report exits until the pool closes the control
// socket, then exit (its workers follow through their parent-death signal). Returns only in a
// freshly forked worker, with that worker's socket.
static int serve_spawn_requests(int control, int worker_options, const struct forkpool_sandbox_plan *sandbox) {
    (void)prctl(PR_SET_NAME, "forkpool-server");  // for ps, top and perf (else: the forking thread's name)
    int child_signals = forkpool_child_signal_fd();
    if (child_signals < 0) _exit(SETUP_FAILED_STATUS);
    for (;;) {
        struct pollfd watched[2] = {{.fd = control, .events = POLLIN}, {.fd = child_signals, .events = POLLIN}};
        if (RETRY_ON_EINTR(poll(watched, 2, -1)) < 0) _exit(SETUP_FAILED_STATUS);
        if (watched[1].revents != 0) {
            forkpool_drain_signal_fd(child_signals);
            report_exits(control);
        }
        if (watched[0].revents == 0) continue;
        for (;;) {
            unsigned char bytes[MESSAGE_SIZE];
            int unexpected[FORKPOOL_MAX_PASSED_FDS];
            int fd_count = 0;
            ssize_t count = forkpool_receive_with_fds(control, bytes, MESSAGE_SIZE, unexpected, FORKPOOL_MAX_PASSED_FDS, &fd_count);
            for (int i = 0; i < fd_count; i++) close(unexpected[i]);
            if (count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            if (count <= 0) _exit(0);  // the pool is gone or done
            uint32_t operation;
            memcpy(&operation, bytes, 4);
            if (count != MESSAGE_SIZE || le32toh(operation) != SPAWN) continue;
            int worker_socket = spawn_worker(control, child_signals, worker_options, sandbox);
            if (worker_socket >= 0) return worker_socket;
        }
    }
}

// Prepares the workers' sandbox in a server about to serve (NULL for none); a server that
// cannot exits: no worker may start unjailed. (The pool checked the same before it started
// the server, so only a change since, such as a deleted rule path, gets here.)
static const struct forkpool_sandbox_plan *prepare_sandbox_or_exit(const char *spec) {
    if (spec == NULL) return NULL;
    char error[256];
    const struct forkpool_sandbox_plan *plan = forkpool_sandbox_plan_prepare(spec, error, sizeof error);
    if (plan != NULL) return plan;
    static const char prefix[] = "forkpool: the fork server cannot prepare the workers' sandbox: ";
    (void)!write(2, prefix, sizeof prefix - 1);
    (void)!write(2, error, strnlen(error, sizeof error));
    (void)!write(2, "\n", 1);
    _exit(SETUP_FAILED_STATUS);
}

pid_t forkpool_start_fork_server(const int *close_fds, int close_count, int control, int server_options,
                                 int worker_options, const char *sandbox_spec, int *worker_socket) {
    pid_t pid = forkpool_fork_worker(close_fds, close_count, server_options);
    if (pid != 0) return pid;  // the pool's side, or -1 with errno
    const struct forkpool_sandbox_plan *sandbox = prepare_sandbox_or_exit(sandbox_spec);
    *worker_socket = serve_spawn_requests(control, worker_options, sandbox);
    return 0;
}

// MARK: A fresh fork server: this program's binary started anew

// The environment variable that marks a process as a fresh fork server, and the descriptor
// its control socket arrives on.
#define FRESH_SERVER_VARIABLE "FORKPOOL_FRESH_SERVER"
#define FRESH_SANDBOX_VARIABLE "FORKPOOL_FRESH_SANDBOX"
enum { FRESH_CONTROL_FD = 3 };

extern char **environ;
// Weak: a binary that links the shim without ForkPool's Swift side never starts a fresh server.
#pragma weak forkpool_fresh_worker_main

static int is_variable(const char *entry, const char *name) {
    size_t length = strlen(name);
    return strncmp(entry, name, length) == 0 && entry[length] == '=';
}

pid_t forkpool_spawn_fresh_fork_server(const char *path, int control, const char *settings, const char *sandbox_spec,
                                       int new_process_group) {
    // The environment: this process's, without any FORKPOOL_FRESH_*, plus the settings (and
    // the sandbox).
    size_t count = 0;
    for (char **entry = environ; entry != NULL && *entry != NULL; entry++) count++;
    char **environment = calloc(count + 3, sizeof(char *));
    size_t marker_length = strlen(FRESH_SERVER_VARIABLE "=") + strlen(settings) + 1;
    char *marker = malloc(marker_length);
    size_t sandbox_length = sandbox_spec != NULL ? strlen(FRESH_SANDBOX_VARIABLE "=") + strlen(sandbox_spec) + 1 : 1;
    char *sandbox = malloc(sandbox_length);
    if (environment == NULL || marker == NULL || sandbox == NULL) {
        free(environment);
        free(marker);
        free(sandbox);
        errno = ENOMEM;
        return -1;
    }
    snprintf(marker, marker_length, "%s=%s", FRESH_SERVER_VARIABLE, settings);
    size_t used = 0;
    for (size_t i = 0; i < count; i++) {
        if (!is_variable(environ[i], FRESH_SERVER_VARIABLE) && !is_variable(environ[i], FRESH_SANDBOX_VARIABLE)) {
            environment[used++] = environ[i];
        }
    }
    environment[used++] = marker;
    if (sandbox_spec != NULL) {
        snprintf(sandbox, sandbox_length, "%s=%s", FRESH_SANDBOX_VARIABLE, sandbox_spec);
        environment[used++] = sandbox;
    }
    environment[used] = NULL;

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    int rc = posix_spawn_file_actions_init(&actions);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&actions, control, FRESH_CONTROL_FD);  // clears its close-on-exec
    // Nothing else of this process crosses the exec (before the new image's own constructors
    // open anything of theirs).
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, FRESH_CONTROL_FD + 1);
    int attributes_made = rc == 0 && posix_spawnattr_init(&attributes) == 0;
    if (rc == 0 && !attributes_made) rc = ENOMEM;
    if (rc == 0) {
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        rc = posix_spawnattr_setsigmask(&attributes, &none);
        if (rc == 0) rc = posix_spawnattr_setsigdefault(&attributes, &all);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (new_process_group) {  // from the start: a Ctrl-C while it loads never reaches it
            flags |= POSIX_SPAWN_SETPGROUP;
            if (rc == 0) rc = posix_spawnattr_setpgroup(&attributes, 0);
        }
        if (rc == 0) rc = posix_spawnattr_setflags(&attributes, flags);
    }
    pid_t pid = -1;
    if (rc == 0) {
        char *arguments[] = {(char *)"forkpool-server", NULL};
        rc = posix_spawn(&pid, path, &actions, &attributes, arguments, environment);
    }
    if (attributes_made) posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    free(environment);
    free(marker);
    free(sandbox);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    return pid;
}

// Runs before `main` in every process of this binary; acts only in one started as a fresh fork
// server. There it keeps the settings for the workers, forgets the variable (a worker's own
// pools must not take themselves for servers), dies with the pool's process, keeps only
// descriptors 0-3, and serves spawn requests; a worker it forks runs the Swift worker loop and
// never returns here. The program's `main` never runs in either.
__attribute__((constructor, used)) static void forkpool_fresh_entry(void) {
    const char *value = getenv(FRESH_SERVER_VARIABLE);
    if (value == NULL) return;
    // Never in a set-user-ID or capability binary (its caller chose the environment), and only
    // with the pool's control socket, a SOCK_SEQPACKET, as descriptor 3.
    int type = 0;
    socklen_t length = sizeof type;
    if (getauxval(AT_SECURE) != 0 || getsockopt(FRESH_CONTROL_FD, SOL_SOCKET, SO_TYPE, &type, &length) != 0 ||
        type != SOCK_SEQPACKET) {
        static const char refusal[] = "forkpool: FORKPOOL_FRESH_SERVER is set, but this is not a fresh fork server: ignored\n";
        (void)!write(2, refusal, sizeof refusal - 1);
        (void)unsetenv(FRESH_SERVER_VARIABLE);
        (void)unsetenv(FRESH_SANDBOX_VARIABLE);
        return;
    }
    char *settings = strdup(value);
    (void)unsetenv(FRESH_SERVER_VARIABLE);
    if (settings == NULL) _exit(SETUP_FAILED_STATUS);
    const char *sandbox_value = getenv(FRESH_SANDBOX_VARIABLE);
    char *sandbox_spec = sandbox_value != NULL ? strdup(sandbox_value) : NULL;
    (void)unsetenv(FRESH_SANDBOX_VARIABLE);
    if (sandbox_value != NULL && sandbox_spec == NULL) _exit(SETUP_FAILED_STATUS);
    // The first line: the pool's pid, the server's options, the workers' options.
    char *rest = settings;
    long parent = strtol(rest, &rest, 10);
    long server_options = strtol(rest, &rest, 10);
    long worker_options = strtol(rest, &rest, 10);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != (pid_t)parent) _exit(127);
    (void)server_options;  // its process group was set at spawn
    if ((worker_options & FORKPOOL_SANDBOXED_WORKERS) && sandbox_spec == NULL) {
        static const char missing[] = "forkpool: the workers are to be sandboxed, but FORKPOOL_FRESH_SANDBOX is missing\n";
        (void)!write(2, missing, sizeof missing - 1);
        _exit(SETUP_FAILED_STATUS);
    }
    const struct forkpool_sandbox_plan *sandbox = prepare_sandbox_or_exit(sandbox_spec);
    int worker_socket = serve_spawn_requests(FRESH_CONTROL_FD, (int)worker_options, sandbox);
    if (forkpool_fresh_worker_main == NULL) _exit(SETUP_FAILED_STATUS);
    forkpool_fresh_worker_main(worker_socket, settings);
}
