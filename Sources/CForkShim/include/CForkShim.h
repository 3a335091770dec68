// CForkShim: the few operations ForkPool cannot do safely or at all from Swift.
//
// Everything that must run in a freshly forked child before any Swift code runs
// lives here, and so does every libc macro or variadic call Swift does not import.
// Each function says in one line why it is in C.
#ifndef CFORKSHIM_H
#define CFORKSHIM_H

#include <pthread.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Child set-up options for `forkpool_fork_worker`.
enum {
    /// Put the child in its own process group, so a terminal's Ctrl-C reaches only the parent.
    FORKPOOL_NEW_PROCESS_GROUP = 1 << 0,
    /// Keep the handlers of fault signals (SEGV, BUS, ILL, FPE, ABRT, TRAP, SYS), so Swift's
    /// crash backtracer still reports why a worker died, but wrapped: once the handler returns
    /// (the backtracer does, for a raised or sent signal) the child dies of that signal. An
    /// ignored fault signal gets its default action; all other handlers are reset.
    FORKPOOL_KEEP_FAULT_HANDLERS = 1 << 1,
    /// The workers are sandboxed: a fresh fork server that finds no sandbox spec exits rather
    /// than fork an unjailed worker.
    FORKPOOL_SANDBOXED_WORKERS = 1 << 2,
    /// Give each worker shared-memory rings (`forkpool_ring_*`): the fork server makes a sealed
    /// memfd per worker, maps it in the worker before its loop and passes it to the pool with the
    /// worker's socket and pidfd.
    FORKPOOL_SHARED_RINGS = 1 << 3,
};

/// The geometry of a worker's shared region (a memfd both sides map, sealed against shrinking
/// and growing): a control page, then the ring to the worker, then the ring to the pool, each of
/// `FORKPOOL_RING_SLOT_COUNT` slots of `FORKPOOL_RING_SLOT_BYTES` (an 8-byte sequence number,
/// a 4-byte length, 4 unused, then one frame). The control page holds one cache line per word.
enum {
    FORKPOOL_RING_SLOT_COUNT = 64,
    FORKPOOL_RING_SLOT_BYTES = 4096,
    FORKPOOL_RING_SLOT_HEADER_BYTES = 16,
    FORKPOOL_RING_CONTROL_BYTES = 4096,
    FORKPOOL_RING_REGION_BYTES = 4096 + 2 * 64 * 4096,
};

/// In a worker forked with FORKPOOL_SHARED_RINGS: its shared region, mapped before its loop;
/// NULL anywhere else.
void *forkpool_worker_ring_region(void);

/// The pool's side: maps a worker's region from the memfd the fork server passed, after
/// checking that it is exactly `FORKPOOL_RING_REGION_BYTES` long and sealed against shrinking
/// (so the worker can never make the pool's accesses fault). NULL with errno on failure.
/// Why C: fcntl's F_GET_SEALS and mmap's flags are macros and variadic calls.
void *forkpool_ring_map(int memfd);

/// Unmaps a region `forkpool_ring_map` mapped.
void forkpool_ring_unmap(void *region);

/// Atomic accesses to words of a shared region (another process on the other side).
/// Why C: Swift's atomics cannot be placed over memory another process maps.
static inline uint64_t forkpool_ring_load_acquire(const void *word) {
    return __atomic_load_n((const uint64_t *)word, __ATOMIC_ACQUIRE);
}
static inline void forkpool_ring_store_release(void *word, uint64_t value) {
    __atomic_store_n((uint64_t *)word, value, __ATOMIC_RELEASE);
}
static inline uint32_t forkpool_ring_load_u32(const void *word) {
    return __atomic_load_n((const uint32_t *)word, __ATOMIC_RELAXED);
}
static inline uint32_t forkpool_ring_load_flag(const void *word) {
    return __atomic_load_n((const uint32_t *)word, __ATOMIC_SEQ_CST);
}
static inline void forkpool_ring_store_flag(void *word, uint32_t value) {
    __atomic_store_n((uint32_t *)word, value, __ATOMIC_SEQ_CST);
}
static inline uint32_t forkpool_ring_exchange_flag(void *word, uint32_t value) {
    return __atomic_exchange_n((uint32_t *)word, value, __ATOMIC_SEQ_CST);
}
static inline void forkpool_ring_fence(void) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/// Forks a worker. In the child, before returning 0: resets the signal mask and handlers,
/// asks for SIGKILL when the forking thread's process dies (and exits at once if it already
/// has), optionally starts a new process group, and closes `close_fds`. Returns the child's
/// pid in the parent, 0 in the child, -1 with errno on failure.
/// Why C: between fork and the worker loop only async-signal-safe calls are allowed — no
/// Swift, whose allocation and runtime may take a lock another thread held at the fork.
pid_t forkpool_fork_worker(const int *close_fds, int close_count, int options);

/// Starts a pool's fork server: forks (as `forkpool_fork_worker` does, with `server_options`)
/// a child that runs the server's whole loop here in C — wait on `control` (an AF_UNIX
/// SOCK_SEQPACKET socket) for spawn requests, fork a worker for each (with `worker_options`),
/// pass its socket and pidfd back (SCM_RIGHTS), reap exited workers and report their wait
/// statuses — and exits when `control` reaches end of stream.
/// Returns the server's pid in the caller (-1 with errno on failure). Returns 0 only in a
/// worker the server forked, with that worker's end of its socketpair in `*worker_socket`.
/// Why C: the server is a fork of a multi-threaded program. Swift code there (allocation,
/// generic metadata, runtime caches) could block forever on a lock another thread of the
/// program held at the instant of fork; this loop calls only async-signal-safe functions.
/// `sandbox_spec`, when not NULL, is a worker sandbox (`forkpool_sandbox_check`): the server
/// prepares it before its first fork and applies it in every worker it forks.
pid_t forkpool_start_fork_server(const int *close_fds, int close_count, int control, int server_options,
                                 int worker_options, const char *sandbox_spec, int *worker_socket);

/// Starts a *fresh* fork server: this program's own binary (`path`, normally
/// `/proc/self/exe`) started anew with `posix_spawn` — no copy of this process's heap or of any
/// lock another thread holds — with `control` as its descriptor 3, every signal at its default
/// and none blocked, no other descriptor, in its own process group if `new_process_group`, and
/// `settings` in its environment (FORKPOOL_FRESH_SERVER). In the new
/// process a constructor of this shim runs the fork-server loop instead of `main` (see
/// `forkpool_fresh_worker_main`). Returns the server's pid, or -1 with errno.
/// Why C: posix_spawn's attribute and file-action types, and an environment built for one call.
/// `sandbox_spec`, when not NULL, travels as FORKPOOL_FRESH_SANDBOX: the server prepares it and
/// applies it in every worker, as `forkpool_start_fork_server` does.
pid_t forkpool_spawn_fresh_fork_server(const char *path, int control, const char *settings, const char *sandbox_spec,
                                       int new_process_group);

/// In a process started by `forkpool_spawn_fresh_fork_server`, every worker it forks calls
/// this (defined in Swift, ForkPool's FreshStart) with its socket and the settings string.
/// Declared here for the shim's constructor; never called anywhere else.
void forkpool_fresh_worker_main(int socket, const char *settings) __attribute__((noreturn));

/// What a worker sandbox restricts (the first number of its spec; sandbox.c).
enum {
    FORKPOOL_SANDBOX_NETWORK_DENIED = 1 << 0,
    FORKPOOL_SANDBOX_EXEC_DENIED = 1 << 1,
    FORKPOOL_SANDBOX_FILESYSTEM_RESTRICTED = 1 << 2,
    /// A forbidden call kills the worker (SIGSYS, the call reported) instead of failing with EPERM.
    FORKPOOL_SANDBOX_KILL_ON_VIOLATION = 1 << 3,
    FORKPOOL_SANDBOX_NO_CORE_DUMPS = 1 << 4,
    /// Set by the fork server, not in a spec: files are restricted on a Landlock ABI below 3,
    /// which cannot restrict truncation, so the filter denies `truncate` instead.
    FORKPOOL_SANDBOX_DENY_TRUNCATE = 1 << 5,
};

/// Checks that the sandbox `spec` describes can be applied on this kernel, as a fork server will
/// prepare it: the system-call filter built, Landlock present if the file system is restricted,
/// every rule path opened. `spec` is text: "flags memoryBytes openFiles fileSizeBytes" (-1 for no
/// limit), then one line per path, "r dev ino /path" (readable) or "w dev ino /path" (writable),
/// `dev` and `ino` those the path had when the pool checked it: a path that names another file
/// by the time a fork server opens it (a directory swapped for a symlink) is refused. Returns 0,
/// or -1 with a message in `error`.
/// Why C: the same preparation the fork server runs, where only C may run.
int forkpool_sandbox_check(const char *spec, char *error, size_t error_size);

/// The Landlock ABI version of the running kernel, or -errno when it has none.
/// Why C: `syscall` is variadic.
int forkpool_sandbox_landlock_abi(void);

/// The name of a system call the sandbox's filter stops ("connect"), or NULL for another number.
/// Why C: the system call numbers are the architecture's <asm/unistd.h> macros.
const char *forkpool_sandbox_syscall_name(long number);

/// In a worker that runs several async jobs at once: the task whose job the calling thread runs
/// from now on (0: none). A fault signal on this thread then tells the pool which job brought
/// the worker down (a note on the socket given to `forkpool_send_notes_to`).
/// Why C: the fault handler, which is C, reads it (a thread-local, async-signal-safe).
void forkpool_set_current_task(uint64_t task);

/// Where this worker's notes to the pool go (its socket), and every fault signal wrapped so that
/// they are sent before it dies. Called by a worker that runs several async jobs at once.
/// Why C: the notes are written by the fault handler.
void forkpool_send_notes_to(int socket);

/// Wraps every fault signal so the notes above are sent before the process dies of it.
void forkpool_wrap_all_fault_signals(void);

/// Creates an AF_UNIX stream socketpair with SOCK_CLOEXEC. Returns 0 or -1 with errno.
/// Why C: `SOCK_STREAM | SOCK_CLOEXEC` does not type-check in Swift (an imported enum).
int forkpool_socketpair(int fds[2]);

/// Creates a close-on-exec, non-blocking eventfd used to wake a poll loop. Returns fd or -1.
/// Why C: the EFD_* flags are macros Swift imports inconsistently across Glibc versions.
int forkpool_eventfd(void);

/// Sets O_NONBLOCK on `fd`. Returns 0 or -1 with errno.
/// Why C: the fork server's loop, which is C, needs it; the pool uses the same function.
int forkpool_set_nonblocking(int fd);

/// `send` with MSG_NOSIGNAL (and MSG_DONTWAIT when `nonblocking`): a dead peer yields EPIPE
/// instead of a SIGPIPE that would kill the whole process. Returns bytes sent or -1.
/// Why C: one place that can never forget MSG_NOSIGNAL; the flag's import type varies.
ssize_t forkpool_send(int fd, const void *bytes, size_t count, int nonblocking);
/// Like forkpool_send, but gathers two buffers into one sendmsg (writev): a frame's header
/// and a large payload sent from where it lies, with no copy in user space.
ssize_t forkpool_send_two(int fd, const void *head, size_t head_count, const void *tail, size_t tail_count,
                          int nonblocking);

/// `waitpid` retried on EINTR. Returns the pid, 0 (WNOHANG and still running) or -1.
/// Why C: the fork server's loop, which is C, reaps with it; EINTR retried as everywhere in C.
pid_t forkpool_waitpid(pid_t pid, int *status, int nohang);

/// Creates an AF_UNIX SOCK_SEQPACKET socketpair with SOCK_CLOEXEC (the fork server's control
/// channel: message boundaries kept, descriptors passed). Returns 0 or -1 with errno.
/// Why C: the socket type flags do not type-check in Swift.
int forkpool_seqpacket_pair(int fds[2]);

/// Sends one message of `count` bytes with `fd_count` descriptors attached (SCM_RIGHTS),
/// MSG_NOSIGNAL. Returns bytes sent or -1 with errno (EINTR retried).
/// Why C: the CMSG_* macros that build the control message are not importable.
ssize_t forkpool_send_with_fds(int socket, const void *bytes, size_t count, const int *fds, int fd_count);

/// Receives one message into `bytes` and up to `max_fds` descriptors (made close-on-exec) into
/// `fds`, storing how many arrived in `*fd_count`. Returns bytes received, 0 at end of stream,
/// or -1 with errno (EINTR retried). Descriptors beyond `max_fds` are closed. A message whose
/// descriptors the kernel truncated (MSG_CTRUNC) is not the message sent: every descriptor that
/// did arrive is closed and the call fails with EPROTO.
/// Why C: the CMSG_* macros that walk the control messages are not importable.
ssize_t forkpool_receive_with_fds(int socket, void *bytes, size_t count, int *fds, int max_fds, int *fd_count);

/// Opens a pidfd for `pid` (close-on-exec): it polls readable when the process exits, and
/// signals sent through it cannot hit a recycled pid. Returns fd or -1 with errno.
/// Why C: `pidfd_open` needs <sys/pidfd.h>, which Glibc's module map does not export.
int forkpool_pidfd_open(pid_t pid);

/// Sends `signal_number` to the process behind `pidfd`. Returns 0 or -1 with errno.
/// Why C: as above, <sys/pidfd.h>.
int forkpool_pidfd_send_signal(int pidfd, int signal_number);

/// Decoded wait status. Why C: WIFEXITED and friends are macros Swift does not import.
int forkpool_wifexited(int status);
int forkpool_wexitstatus(int status);
int forkpool_wifsignaled(int status);
int forkpool_wtermsig(int status);

/// Writes the short name of a signal ("SIGKILL") into `buffer`; falls back to "signal N".
/// Why C: `sigabbrev_np` / `strsignal` are GNU extensions behind _GNU_SOURCE.
void forkpool_signal_name(int signal_number, char *buffer, size_t size);

/// Names `thread` (at most 15 bytes are kept).
/// Why C: `pthread_setname_np` is a GNU extension behind _GNU_SOURCE.
void forkpool_set_thread_name(pthread_t thread, const char *name);

/// Tells the CPU the caller is spin-waiting (x86 `pause`), easing the sibling hyperthread.
/// Why C: the intrinsic has no Swift spelling.
static inline void forkpool_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#ifdef __cplusplus
}
#endif

#endif
