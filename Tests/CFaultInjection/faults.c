// Real faults, one per fault signal (see include/CFaultInjection.h).
#include "CFaultInjection.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <pthread.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

// A system call number no Linux ABI uses; only fault_sys's filter gives it a meaning.
#define MADE_UP_SYSCALL 0x3fff

// SIGSEGV: a write through a low pointer, which no process has mapped.
int fault_segv(void) {
    volatile int *volatile low = (int *)8;
    *low = 1;
    return 0;
}

// SIGBUS: a write to a shared mapping past the end of its (empty) memfd.
int fault_bus(void) {
    long page_size = sysconf(_SC_PAGESIZE);
    int fd = memfd_create("forkpool-sigbus", MFD_CLOEXEC);
    if (fd < 0) return -1;
    void *mapping = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (mapping == MAP_FAILED) return -1;
    *(volatile char *)mapping = 1;
    return 0;
}

// SIGILL: an undefined instruction (ud2 on x86, udf on arm64).
int fault_ill(void) {
    __builtin_trap();
}

// SIGFPE: integer division by zero (x86 faults; arm64 returns 0 and there is no SIGFPE).
int fault_fpe(void) {
    volatile int dividend = 1, divisor = 0;
    volatile int quotient = dividend / divisor;
    (void)quotient;
    return 0;
}

// SIGABRT: abort(), which raises it and, should a handler return, raises it again.
int fault_abrt(void) {
    abort();
}

// SIGTRAP: a breakpoint instruction (int3 on x86: a handler that returns resumes after it).
int fault_trap(void) {
    __builtin_debugtrap();
    return 0;
}

// SIGSYS: a seccomp filter that traps one made-up system call, then that call.
int fault_sys(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADE_UP_SYSCALL, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof filter / sizeof filter[0], .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return -1;
    (void)syscall(MADE_UP_SYSCALL);
    return 0;
}

struct without_syscall {
    long number;
    int error;
    void (*body)(void *);
    void *context;
    int result;
    int result_errno;
};

static void *run_without_syscall(void *argument) {
    struct without_syscall *run = argument;
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)run->number, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)(run->error & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = sizeof code / sizeof code[0], .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) {
        run->result = -1;
        run->result_errno = errno;
        return NULL;
    }
    run->body(run->context);
    return NULL;
}

int fault_run_without_syscall(long number, int error, void (*body)(void *), void *context) {
    struct without_syscall run = {.number = number, .error = error, .body = body, .context = context};
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, run_without_syscall, &run);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(thread, NULL);
    if (run.result != 0) errno = run.result_errno;
    return run.result;
}

long fault_syscall_landlock_create_ruleset(void) { return SYS_landlock_create_ruleset; }
long fault_syscall_landlock_restrict_self(void) { return SYS_landlock_restrict_self; }
long fault_syscall_seccomp(void) { return SYS_seccomp; }

int fault_type_into_terminal(int fd) {
    char c = 'x';
    return ioctl(fd, TIOCSTI, &c);
}

int fault_new_user_namespace(void) { return unshare(CLONE_NEWUSER); }

// A named (`path`) or abstract AF_UNIX address; returns its length.
static socklen_t unix_address(struct sockaddr_un *address, const char *path, const char *abstract_name) {
    memset(address, 0, sizeof *address);
    address->sun_family = AF_UNIX;
    if (path != NULL) {
        strncpy(address->sun_path, path, sizeof address->sun_path - 1);
        return sizeof *address;
    }
    strncpy(address->sun_path + 1, abstract_name, sizeof address->sun_path - 2);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract_name));
}

int fault_connect_unix(const char *path, const char *abstract_name) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address;
    socklen_t length = unix_address(&address, path, abstract_name);
    int rc = connect(fd, (struct sockaddr *)&address, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

int fault_send_to_address(const char *path) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return -1;
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    strncpy(address.sun_path, path, sizeof address.sun_path - 1);
    ssize_t rc = sendto(fds[0], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&address, sizeof address);
    int saved = errno;
    close(fds[0]);
    close(fds[1]);
    errno = saved;
    return rc < 0 ? -1 : 0;
}

int fault_listen_unix(const char *path, const char *abstract_name) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address;
    socklen_t length = unix_address(&address, path, abstract_name);
    if (bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, 8) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int fault_clone_new_user_namespace(void) {
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0) return -1;
    if (pid == 0) _exit(0);
    int status = 0;
    (void)waitpid((pid_t)pid, &status, 0);
    return 0;
}

int fault_make_memfd(long bytes, int sealed) {
    int fd = memfd_create("forkpool-test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    if (ftruncate(fd, bytes) != 0 || (sealed && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}
