// CFaultInjection: real faults for the fault-signal tests, in C because Swift cannot provoke
// most of them (it traps with ud2 where C divides by zero, and has no int3 or seccomp).
// Each function provokes its signal in the calling thread and should not return; if it does
// (the signal was swallowed) it returns 0, or -1 with errno set if it could not set up the fault.
#ifndef CFAULTINJECTION_H
#define CFAULTINJECTION_H

int fault_segv(void);
int fault_bus(void);
int fault_ill(void);
int fault_fpe(void);
int fault_abrt(void);
int fault_trap(void);
int fault_sys(void);

/// A kernel that lacks a system call, for one thread: runs `body(context)` on a new thread whose
/// seccomp filter answers system call `number` with `error` (every thread and process it starts
/// inherits the filter; the rest of this process is untouched). Returns 0 once `body` returned,
/// or -1 with errno if the thread or its filter could not be set up.
int fault_run_without_syscall(long number, int error, void (*body)(void *), void *context);

/// ioctl(fd, TIOCSTI, "x"): types a character into a terminal. Returns 0 or -1 with errno.
int fault_type_into_terminal(int fd);

/// clone(CLONE_NEWUSER) of a child that exits at once, waited for. Returns 0 or -1 with errno.
int fault_clone_new_user_namespace(void);

/// A memfd of `bytes`, sealed against shrinking, growing and further seals as the fork server
/// seals a worker's rings when `sealed` (memfd_create and F_ADD_SEALS are not imported): its
/// descriptor, or -1 with errno.
int fault_make_memfd(long bytes, int sealed);

/// unshare(CLONE_NEWUSER). Returns 0 or -1 with errno.
int fault_new_user_namespace(void);

/// A named (`path`) or abstract (`abstract_name`, without its leading NUL) AF_UNIX stream
/// socket connected to that address. Returns 0 or -1 with errno.
int fault_connect_unix(const char *path, const char *abstract_name);

/// A listening AF_UNIX stream socket, named (`path`) or abstract; non-blocking. Returns the
/// descriptor, or -1 with errno.
int fault_listen_unix(const char *path, const char *abstract_name);

/// sendto with an address (AF_UNIX, `path`) on one end of a fresh stream socketpair. Returns 0
/// or -1 with errno (a stream socket refuses an address: EISCONN or EOPNOTSUPP).
int fault_send_to_address(const char *path);

/// The numbers of the system calls the sandbox tests take away.
long fault_syscall_landlock_create_ruleset(void);
long fault_syscall_landlock_restrict_self(void);
long fault_syscall_seccomp(void);

#endif
