// The sandbox's seccomp program: what network and exec mean as system calls, and what every
// sandbox denies. Built once per fork server (sandbox.c), into the plan's own array: no
// allocation, so it is safe in a server forked from a multi-threaded program.
//
//   arch ≠ this build's ─▶ kill │ x32 call ─▶ deny │ the hot calls (recv, send without an
//   address, read, write, futex, poll, memory) ─▶ allow, first
//   always: ioctl TIOCSTI/TIOCLINUX; clone with namespace flags (clone3 ─▶ ENOSYS); ptrace,
//           process_vm_*, pidfd_getfd, keyctl, add_key, request_key, bpf, perf_event_open,
//           io_uring_*, unshare, setns, userfaultfd ─▶ deny
//   files restricted on Landlock ABI < 3 (no truncate right): truncate ─▶ deny
//   network denied: socket/socketpair other than AF_UNIX stream/seqpacket, sendto with an
//           address, connect, bind, listen, accept, accept4 ─▶ deny
//   exec denied: execve, execveat ─▶ deny
//   everything else ─▶ allow          (deny: EPERM, or SIGSYS trap with kill-on-violation)
#ifndef _GNU_SOURCE
#error "CForkShim must be built with _GNU_SOURCE (set in Package.swift)"
#endif

#include "CForkShim.h"
#include "shim_internal.h"

#include <endian.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/sched.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | \
                         CLONE_NEWNET | 0x80 /* CLONE_NEWTIME */)

#if defined(__x86_64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SANDBOX_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

// The program, instruction by instruction.
struct program {
    struct sock_filter *code;
    unsigned short capacity;
    unsigned short length;
    int overflow;
};

static void emit(struct program *p, struct sock_filter instruction) {
    if (p->length >= p->capacity) {
        p->overflow = 1;
        return;
    }
    p->code[p->length++] = instruction;
}

#define STATEMENT(code, k) ((struct sock_filter)BPF_STMT((code), (k)))
#define JUMP(code, k, yes, no) ((struct sock_filter)BPF_JUMP((code), (k), (yes), (no)))
#define LOAD(offset) STATEMENT(BPF_LD | BPF_W | BPF_ABS, (offset))
#define RETURN(value) STATEMENT(BPF_RET | BPF_K, (value))
#define JUMP_IF_EQUAL(value, yes, no) JUMP(BPF_JMP | BPF_JEQ | BPF_K, (value), (yes), (no))
#define ARGUMENT_LOW(n) (offsetof(struct seccomp_data, args) + 8 * (n) + (__BYTE_ORDER == __LITTLE_ENDIAN ? 0 : 4))
#define ARGUMENT_HIGH(n) (offsetof(struct seccomp_data, args) + 8 * (n) + (__BYTE_ORDER == __LITTLE_ENDIAN ? 4 : 0))

static void deny(struct program *p, long number, uint32_t action) {
    emit(p, JUMP_IF_EQUAL((uint32_t)number, 0, 1));
    emit(p, RETURN(action));
}

// socket and socketpair: only AF_UNIX, and only of a connected kind (stream, seqpacket): a
// datagram socket could send to any named socket by address.
static void allow_only_local_streams(struct program *p, long number, uint32_t action) {
    emit(p, JUMP_IF_EQUAL((uint32_t)number, 0, 8));
    emit(p, LOAD(ARGUMENT_LOW(0)));
    emit(p, JUMP_IF_EQUAL(AF_UNIX, 0, 4));
    emit(p, LOAD(ARGUMENT_LOW(1)));
    emit(p, STATEMENT(BPF_ALU | BPF_AND | BPF_K, 0xf));  // SOCK_TYPE_MASK: without the flags
    emit(p, JUMP_IF_EQUAL(SOCK_STREAM, 2, 0));
    emit(p, JUMP_IF_EQUAL(SOCK_SEQPACKET, 1, 0));
    emit(p, RETURN(action));
    emit(p, RETURN(SECCOMP_RET_ALLOW));
}

// sendto: only without an address (`send` on a connected socket).
static void allow_only_without_address(struct program *p, long number, uint32_t action) {
    emit(p, JUMP_IF_EQUAL((uint32_t)number, 0, 6));
    emit(p, LOAD(ARGUMENT_LOW(4)));
    emit(p, JUMP_IF_EQUAL(0, 0, 3));
    emit(p, LOAD(ARGUMENT_HIGH(4)));
    emit(p, JUMP_IF_EQUAL(0, 0, 1));
    emit(p, RETURN(SECCOMP_RET_ALLOW));
    emit(p, RETURN(action));
}

// ioctl: never TIOCSTI or TIOCLINUX, which type into the terminal the worker's standard I/O
// may be (the command is an int: its low word).
static void deny_terminal_injection(struct program *p, uint32_t action) {
    emit(p, JUMP_IF_EQUAL(__NR_ioctl, 0, 5));
    emit(p, LOAD(ARGUMENT_LOW(1)));
    emit(p, JUMP_IF_EQUAL(TIOCSTI, 1, 0));
    emit(p, JUMP_IF_EQUAL(TIOCLINUX, 0, 1));
    emit(p, RETURN(action));
    emit(p, RETURN(SECCOMP_RET_ALLOW));
}

// clone: threads and plain forks only, no new namespace (a user namespace would hand the code
// capabilities of its own). clone3 passes its flags in memory the filter cannot read: it fails
// with ENOSYS, and the C library falls back to clone.
static void deny_new_namespaces(struct program *p, uint32_t action) {
    emit(p, JUMP_IF_EQUAL(__NR_clone, 0, 4));
    emit(p, LOAD(ARGUMENT_LOW(0)));
    emit(p, JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1));
    emit(p, RETURN(action));
    emit(p, RETURN(SECCOMP_RET_ALLOW));
    emit(p, JUMP_IF_EQUAL(__NR_clone3, 0, 1));
    emit(p, RETURN(SECCOMP_RET_ERRNO | ENOSYS));
}

// The calls a worker makes all the time (its socket, its memory, waiting), allowed before any
// other check: every system call of a jailed worker passes the filter, and these then cost a
// few instructions instead of the whole program. None of them is restricted.
static const long hot_allowed[] = {
    __NR_recvfrom, __NR_recvmsg, __NR_sendmsg, __NR_read, __NR_write, __NR_futex, __NR_ppoll,
#ifdef __NR_poll
    __NR_poll,
#endif
    __NR_close, __NR_mmap, __NR_munmap, __NR_madvise, __NR_mprotect, __NR_brk, __NR_sched_yield,
    __NR_rt_sigprocmask, __NR_getpid, __NR_gettid, __NR_clock_nanosleep,
};

static void allow(struct program *p, long number) {
    emit(p, JUMP_IF_EQUAL((uint32_t)number, 0, 1));
    emit(p, RETURN(SECCOMP_RET_ALLOW));
}

static const long always_denied[] = {
    // Another process's memory, descriptors or keys (the pool's, a sibling's).
    __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_pidfd_getfd,
    __NR_keyctl, __NR_add_key, __NR_request_key,
    // Kernel interfaces a task has no use for, and io_uring, whose operations (open, socket,
    // connect) would pass the filter by.
    __NR_bpf, __NR_perf_event_open, __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
    // Namespaces (capabilities of their own inside), and userfaultfd (a tool for kernel races).
    __NR_unshare, __NR_setns, __NR_userfaultfd,
};
static const long network_denied[] = {__NR_connect, __NR_bind, __NR_listen, __NR_accept, __NR_accept4};
static const long exec_denied[] = {__NR_execve, __NR_execveat};

int forkpool_sandbox_build_filter(unsigned flags, struct sock_filter *code, unsigned short capacity, unsigned short *length) {
#ifndef SANDBOX_AUDIT_ARCH
    (void)flags;
    (void)code;
    (void)capacity;
    (void)length;
    return -1;
#else
    struct program p = {.code = code, .capacity = capacity, .length = 0, .overflow = 0};
    uint32_t action = (flags & FORKPOOL_SANDBOX_KILL_ON_VIOLATION) ? SECCOMP_RET_TRAP : (SECCOMP_RET_ERRNO | EPERM);
    emit(&p, LOAD(offsetof(struct seccomp_data, arch)));
    emit(&p, JUMP_IF_EQUAL(SANDBOX_AUDIT_ARCH, 1, 0));
    emit(&p, RETURN(SECCOMP_RET_KILL_PROCESS));  // another ABI (i386 through int 0x80)
    emit(&p, LOAD(offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    emit(&p, JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1));  // x32 system calls
    emit(&p, RETURN(action));
#endif
    for (size_t i = 0; i < sizeof hot_allowed / sizeof hot_allowed[0]; i++) allow(&p, hot_allowed[i]);
    // The worker's sends: `send` is sendto without an address.
    if (flags & FORKPOOL_SANDBOX_NETWORK_DENIED) {
        allow_only_without_address(&p, __NR_sendto, action);
    } else {
        allow(&p, __NR_sendto);
    }
    deny_terminal_injection(&p, action);
    deny_new_namespaces(&p, action);
    for (size_t i = 0; i < sizeof always_denied / sizeof always_denied[0]; i++) deny(&p, always_denied[i], action);
    if (flags & FORKPOOL_SANDBOX_NETWORK_DENIED) {
        allow_only_local_streams(&p, __NR_socket, action);
        allow_only_local_streams(&p, __NR_socketpair, action);
        for (size_t i = 0; i < sizeof network_denied / sizeof network_denied[0]; i++) deny(&p, network_denied[i], action);
    }
    if (flags & FORKPOOL_SANDBOX_DENY_TRUNCATE) deny(&p, __NR_truncate, action);
    if (flags & FORKPOOL_SANDBOX_EXEC_DENIED) {
        for (size_t i = 0; i < sizeof exec_denied / sizeof exec_denied[0]; i++) deny(&p, exec_denied[i], action);
    }
    emit(&p, RETURN(SECCOMP_RET_ALLOW));
    *length = p.length;
    return p.overflow ? -1 : 0;
#endif
}

// Names of the calls the filter stops.

const char *forkpool_sandbox_syscall_name(long number) {
    switch (number) {
    case __NR_socket: return "socket";
    case __NR_socketpair: return "socketpair";
    case __NR_connect: return "connect";
    case __NR_bind: return "bind";
    case __NR_listen: return "listen";
    case __NR_accept: return "accept";
    case __NR_accept4: return "accept4";
    case __NR_sendto: return "sendto";
    case __NR_execve: return "execve";
    case __NR_execveat: return "execveat";
    case __NR_ptrace: return "ptrace";
    case __NR_process_vm_readv: return "process_vm_readv";
    case __NR_process_vm_writev: return "process_vm_writev";
    case __NR_pidfd_getfd: return "pidfd_getfd";
    case __NR_keyctl: return "keyctl";
    case __NR_add_key: return "add_key";
    case __NR_request_key: return "request_key";
    case __NR_bpf: return "bpf";
    case __NR_perf_event_open: return "perf_event_open";
    case __NR_io_uring_setup: return "io_uring_setup";
    case __NR_io_uring_enter: return "io_uring_enter";
    case __NR_io_uring_register: return "io_uring_register";
    default: return NULL;
    }
}
