// The worker sandbox: built in the fork server before its first fork, applied in each worker
// between fork and the worker loop.
//
//   pool (Swift)  WorkerSandbox ─ spec text ─▶ forkpool_sandbox_check (the same preparation, to
//                 fail pool creation with a clear message) ─▶ fork server (forked, or fresh)
//   fork server   forkpool_sandbox_plan_prepare: rule paths opened (O_PATH), the seccomp
//                 program built (sandbox_filter.c), the kernel's Landlock ABI read ─▶ one
//                 static plan
//   worker        forkpool_sandbox_apply: limits (setrlimit) ─▶ signal set-up ─▶ a session of
//                 its own ─▶ capabilities dropped ─▶ no_new_privs ─▶ Landlock domain of its
//                 own (+ /proc/self) ─▶ every descriptor but 0-2 and its socket closed ─▶ the
//                 open-file limit ─▶ seccomp filter ─▶ Swift
//
// Only system calls run in the worker (async-signal-safe: it is a fork of a process whose
// other threads may have held any lock), and no allocation anywhere here: the forked fork
// server is such a process too. A step that fails ends the worker with a note to the pool.
#ifndef _GNU_SOURCE
#error "CForkShim must be built with _GNU_SOURCE (set in Package.swift)"
#endif

#include "CForkShim.h"
#include "shim_internal.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>


// Landlock, as of ABI 7 (Debian's kernel headers stop at ABI 2).
struct landlock_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};
struct landlock_path_rule {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));
enum {
    LL_RULE_PATH_BENEATH = 1,
    LL_CREATE_RULESET_VERSION = 1,
};
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_FS_REMOVE_DIR (1ULL << 4)
#define LL_FS_REMOVE_FILE (1ULL << 5)
#define LL_FS_MAKE_DIR (1ULL << 7)
#define LL_FS_MAKE_REG (1ULL << 8)
#define LL_FS_MAKE_FIFO (1ULL << 10)
#define LL_FS_MAKE_SYM (1ULL << 12)
#define LL_FS_REFER (1ULL << 13)     // ABI 2
#define LL_FS_TRUNCATE (1ULL << 14)  // ABI 3
#define LL_FS_IOCTL_DEV (1ULL << 15) // ABI 5
#define LL_NET_BIND_TCP (1ULL << 0)  // ABI 4
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) // ABI 6
#define LL_SCOPE_SIGNAL (1ULL << 1)

#define LL_FILE_RIGHTS (LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)
#define LL_READABLE (LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_EXECUTE)
#define LL_WRITABLE (LL_READABLE | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR | LL_FS_MAKE_REG | \
                     LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM | LL_FS_REFER | LL_FS_TRUNCATE)

enum { MAX_RULE_PATHS = 64, MAX_FILTER = 256, NAME_BYTES = 160, SANDBOX_FAILED_STATUS = 71 /* EX_OSERR */ };

struct forkpool_sandbox_plan {
    unsigned flags;
    int64_t memory_bytes;  // -1: not limited
    int64_t open_files;
    int64_t file_size_bytes;
    int landlock_abi;  // 0: none
    int path_count;
    int path_fds[MAX_RULE_PATHS];
    uint64_t path_access[MAX_RULE_PATHS];
    char path_names[MAX_RULE_PATHS][NAME_BYTES];  // for messages
    struct sock_filter filter[MAX_FILTER];
    unsigned short filter_length;
};

static struct forkpool_sandbox_plan server_plan;

// MARK: Messages without snprintf or strerror (neither is async-signal-safe: locale, gettext)

struct text {
    char *buffer;
    size_t size;
    size_t used;
};

static struct text text_in(char *buffer, size_t size) {
    if (size > 0) buffer[0] = '\0';
    return (struct text){.buffer = buffer, .size = size, .used = 0};
}

static void add(struct text *t, const char *s) {
    while (*s != '\0' && t->used + 1 < t->size) t->buffer[t->used++] = *s++;
    if (t->size > 0) t->buffer[t->used] = '\0';
}

// "EACCES", from a table in the library: no locale, no allocation.
static const char *error_name(int number) {
    const char *name = strerrorname_np(number);
    return name != NULL ? name : "an unknown error";
}

static void fail_with(char *error, size_t error_size, const char *first, const char *second, const char *third) {
    struct text t = text_in(error, error_size);
    add(&t, first);
    if (second != NULL) add(&t, second);
    if (third != NULL) add(&t, third);
}

// MARK: Notes to the pool (the frame format of ForkPoolWire's Frame.swift, kind workerNote)

enum { NOTE_FRAME_KIND = 9, NOTE_FORBIDDEN_CALL = 1, NOTE_MEMORY_LIMIT = 2, NOTE_SANDBOX_FAILED = 3, NOTE_CRASHED_IN_TASK = 4 };

// The worker's socket and its memory limit, for the signal handlers; -1 outside a jailed worker.
static int note_socket = -1;
static int64_t noted_memory_limit = -1;

// Sends one note frame: header (version 1, kind, length, task 0), note kind, a u64, a text.
static void send_note(int kind, uint64_t value, const char *text) {
    if (note_socket < 0) return;
    unsigned char frame[16 + 9 + 200];
    size_t text_length = text != NULL ? strnlen(text, 200) : 0;
    uint32_t length = htole32((uint32_t)(9 + text_length));
    uint64_t word = htole64(value);
    memset(frame, 0, 16);
    frame[0] = 1;
    frame[1] = NOTE_FRAME_KIND;
    memcpy(frame + 4, &length, 4);
    frame[16] = (unsigned char)kind;
    memcpy(frame + 17, &word, 8);
    if (text_length > 0) memcpy(frame + 25, text, text_length);
    (void)forkpool_send(note_socket, frame, 25 + text_length, 1);
}

// MARK: Building the plan

static const char *parse_number(const char *text, int64_t *value) {
    while (*text == ' ') text++;
    int negative = *text == '-';
    if (negative) text++;
    if (*text < '0' || *text > '9') return NULL;
    int64_t result = 0;
    while (*text >= '0' && *text <= '9') {
        int digit = *text++ - '0';
        if (result > (INT64_MAX - digit) / 10) return NULL;
        result = result * 10 + digit;
    }
    *value = negative ? -result : result;
    return text;
}

static uint64_t handled_fs_rights(int abi) {
    if (abi <= 0) return 0;
    if (abi == 1) return (1ULL << 13) - 1;
    if (abi == 2) return (1ULL << 14) - 1;
    if (abi <= 4) return (1ULL << 15) - 1;
    return (1ULL << 16) - 1;
}

int forkpool_sandbox_landlock_abi(void) {
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    return abi < 0 ? -errno : (int)abi;
}

static void close_plan(struct forkpool_sandbox_plan *plan) {
    for (int i = 0; i < plan->path_count; i++) {
        if (plan->path_fds[i] >= 0) close(plan->path_fds[i]);
    }
    plan->path_count = 0;
}

static int seccomp_action_available(uint32_t action) {
    return syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0;
}

// Fills `plan` from `spec`; -1 with a message on failure (every descriptor opened closed).
static int prepare(struct forkpool_sandbox_plan *plan, const char *spec, char *error, size_t error_size) {
    memset(plan, 0, sizeof *plan);
    int64_t flags;
    const char *cursor = parse_number(spec, &flags);
    if (cursor != NULL) cursor = parse_number(cursor, &plan->memory_bytes);
    if (cursor != NULL) cursor = parse_number(cursor, &plan->open_files);
    if (cursor != NULL) cursor = parse_number(cursor, &plan->file_size_bytes);
    if (cursor == NULL || (*cursor != '\n' && *cursor != '\0') || flags < 0 || flags > 0xff) {
        fail_with(error, error_size, "the sandbox description is malformed", NULL, NULL);
        return -1;
    }
    plan->flags = (unsigned)flags;
    if (*cursor == '\n') cursor++;
#if !defined(__x86_64__) && !defined(__aarch64__)
    fail_with(error, error_size, "the sandbox's seccomp filter is built for x86_64 and aarch64 only", NULL, NULL);
    return -1;
#endif
    if (prctl(PR_GET_SECCOMP) < 0 || !seccomp_action_available(SECCOMP_RET_ERRNO) ||
        !seccomp_action_available(SECCOMP_RET_TRAP) || !seccomp_action_available(SECCOMP_RET_KILL_PROCESS)) {
        fail_with(error, error_size, "this kernel cannot filter system calls (seccomp: ", error_name(errno), ")");
        return -1;
    }
    int abi = forkpool_sandbox_landlock_abi();
    plan->landlock_abi = abi > 0 ? abi : 0;
    if ((plan->flags & FORKPOOL_SANDBOX_FILESYSTEM_RESTRICTED) && abi < 1) {
        fail_with(error, error_size, "this kernel has no Landlock to restrict the file system with (landlock_create_ruleset: ",
                  error_name(-abi), ")");
        return -1;
    }
    while (*cursor != '\0') {
        char kind = cursor[0];
        int64_t device = -1, inode = -1;
        const char *path = cursor[1] == ' ' ? parse_number(cursor + 2, &device) : NULL;
        if (path != NULL) path = parse_number(path, &inode);
        if (path == NULL || *path != ' ') {
            close_plan(plan);
            fail_with(error, error_size, "the sandbox description has a malformed path line", NULL, NULL);
            return -1;
        }
        path++;
        const char *end = strchr(path, '\n');
        size_t length = end != NULL ? (size_t)(end - path) : strlen(path);
        char buffer[4096];
        if ((kind != 'r' && kind != 'w') || length == 0 || length >= sizeof buffer) {
            close_plan(plan);
            fail_with(error, error_size, "the sandbox description has a malformed path line", NULL, NULL);
            return -1;
        }
        if (plan->path_count == MAX_RULE_PATHS) {
            close_plan(plan);
            fail_with(error, error_size, "the sandbox names more than 64 paths", NULL, NULL);
            return -1;
        }
        memcpy(buffer, path, length);
        buffer[length] = '\0';
        int fd = open(buffer, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            int number = errno;
            close_plan(plan);
            struct text t = text_in(error, error_size);
            add(&t, "cannot open ");
            add(&t, buffer);
            add(&t, " for the sandbox's rules: ");
            add(&t, error_name(number));
            return -1;
        }
        struct stat info;
        if (fstat(fd, &info) != 0 || (int64_t)info.st_dev != device || (int64_t)info.st_ino != inode) {
            close(fd);
            close_plan(plan);
            fail_with(error, error_size, buffer, " is no longer the file or directory it was when the pool started", NULL);
            return -1;
        }
        int is_directory = S_ISDIR(info.st_mode);
        uint64_t access = kind == 'w' ? LL_WRITABLE : LL_READABLE;
        if (!is_directory) access &= LL_FILE_RIGHTS;
        plan->path_fds[plan->path_count] = fd;
        plan->path_access[plan->path_count] = access;
        struct text name = text_in(plan->path_names[plan->path_count], NAME_BYTES);
        add(&name, buffer);
        plan->path_count++;
        cursor = end != NULL ? end + 1 : path + length;
    }
    if ((plan->flags & FORKPOOL_SANDBOX_FILESYSTEM_RESTRICTED) && plan->landlock_abi < 3) {
        plan->flags |= FORKPOOL_SANDBOX_DENY_TRUNCATE;
    }
    if (forkpool_sandbox_build_filter(plan->flags, plan->filter, MAX_FILTER, &plan->filter_length) != 0) {
        close_plan(plan);
        fail_with(error, error_size, "the sandbox's seccomp filter does not fit its program", NULL, NULL);
        return -1;
    }
    return 0;
}

const struct forkpool_sandbox_plan *forkpool_sandbox_plan_prepare(const char *spec, char *error, size_t error_size) {
    return prepare(&server_plan, spec, error, error_size) == 0 ? &server_plan : NULL;
}

int forkpool_sandbox_check(const char *spec, char *error, size_t error_size) {
    struct forkpool_sandbox_plan *plan = malloc(sizeof *plan);
    if (plan == NULL) {
        fail_with(error, error_size, "out of memory", NULL, NULL);
        return -1;
    }
    int result = prepare(plan, spec, error, error_size);
    if (result == 0) close_plan(plan);
    free(plan);
    return result;
}

// MARK: Applying it in a worker

static void sandbox_failed(const char *step, int number) {
    char message[200];
    fail_with(message, sizeof message, step, " failed: ", error_name(number));
    send_note(NOTE_SANDBOX_FAILED, (uint64_t)number, message);
    _exit(SANDBOX_FAILED_STATUS);
}

static void set_limit(int resource, int64_t value, const char *step) {
    if (value < 0) return;
    struct rlimit limit = {.rlim_cur = (rlim_t)value, .rlim_max = (rlim_t)value};
    if (setrlimit(resource, &limit) != 0) sandbox_failed(step, errno);
}

// SIGSYS from the filter (kill-on-violation): tell the pool which call, then die of SIGSYS.
static void violation_trap(int sig, siginfo_t *info, void *context) {
    (void)sig;
    (void)context;
    send_note(NOTE_FORBIDDEN_CALL, (uint64_t)(uint32_t)info->si_syscall, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    (void)sigaction(SIGSYS, &dfl, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, SIGSYS);
    (void)sigprocmask(SIG_UNBLOCK, &only, NULL);
    (void)raise(SIGSYS);
    _exit(128 + SIGSYS);  // not reached
}



// The task whose async job this thread runs now (a worker that runs several at once), 0 for none.
static __thread uint64_t current_task;

void forkpool_set_current_task(uint64_t task) { current_task = task; }

void forkpool_sandbox_forget(void) {
    note_socket = -1;
    noted_memory_limit = -1;
    current_task = 0;
}

void forkpool_send_notes_to(int socket) { note_socket = socket; }

void forkpool_sandbox_fault_seen(int signal_number, int saved_errno) {
    if (current_task != 0) send_note(NOTE_CRASHED_IN_TASK, current_task, NULL);
    if (signal_number == SIGSYS || noted_memory_limit < 0 || saved_errno != ENOMEM) return;
    send_note(NOTE_MEMORY_LIMIT, (uint64_t)noted_memory_limit, NULL);
}

static void drop_capabilities(void) {
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    for (int capability = 0; capability <= 63; capability++) {
        if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 && errno == EINVAL) break;  // past the last one
    }
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct none[2];
    memset(none, 0, sizeof none);
    if (syscall(SYS_capset, &header, none) != 0) sandbox_failed("capset (dropping every capability)", errno);
}

static void enter_landlock_domain(const struct forkpool_sandbox_plan *plan) {
    int abi = plan->landlock_abi;
    int files = (plan->flags & FORKPOOL_SANDBOX_FILESYSTEM_RESTRICTED) != 0;
    int network = (plan->flags & FORKPOOL_SANDBOX_NETWORK_DENIED) != 0;
    // A domain even when files are unrestricted (then every right granted beneath "/"): inside
    // one, the worker cannot trace or open /proc/<pid>/mem of a process outside it.
    struct landlock_attr attributes = {
        .handled_access_fs = handled_fs_rights(abi),
        .handled_access_net = network && abi >= 4 ? (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) : 0,
        .scoped = abi >= 6 ? (LL_SCOPE_SIGNAL | (network ? LL_SCOPE_ABSTRACT_UNIX_SOCKET : 0)) : 0,
    };
    if (attributes.handled_access_fs == 0 && attributes.handled_access_net == 0 && attributes.scoped == 0) return;
    // Older ABIs know fewer attribute fields: pass only the size they know.
    size_t size = abi >= 6 ? sizeof attributes : abi >= 4 ? offsetof(struct landlock_attr, scoped)
                                                          : offsetof(struct landlock_attr, handled_access_net);
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attributes, size, 0);
    if (ruleset < 0) sandbox_failed("landlock_create_ruleset", errno);
    if (!files && attributes.handled_access_fs != 0) {
        int root = open("/", O_PATH | O_CLOEXEC | O_DIRECTORY);
        if (root < 0) sandbox_failed("open /", errno);
        struct landlock_path_rule rule = {.allowed_access = attributes.handled_access_fs, .parent_fd = root};
        if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) != 0) sandbox_failed("landlock_add_rule for /", errno);
        close(root);
    }
    if (files) {
        for (int i = 0; i < plan->path_count; i++) {
            struct landlock_path_rule rule = {.allowed_access = plan->path_access[i] & attributes.handled_access_fs,
                                              .parent_fd = plan->path_fds[i]};
            if (rule.allowed_access == 0) continue;
            if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) != 0) {
                char step[NAME_BYTES + 40];
                fail_with(step, sizeof step, "landlock_add_rule for ", plan->path_names[i], NULL);
                sandbox_failed(step, errno);
            }
        }
        // This worker's own /proc entry: opened here, so it is this process's and no other's.
        int self = open("/proc/self", O_PATH | O_CLOEXEC | O_DIRECTORY);
        if (self < 0) sandbox_failed("open /proc/self", errno);
        struct landlock_path_rule rule = {.allowed_access = (LL_FS_READ_FILE | LL_FS_READ_DIR) & attributes.handled_access_fs,
                                          .parent_fd = self};
        if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) != 0) {
            sandbox_failed("landlock_add_rule for /proc/self", errno);
        }
        close(self);
    }
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) sandbox_failed("landlock_restrict_self", errno);
    close(ruleset);
}

void forkpool_sandbox_apply(const struct forkpool_sandbox_plan *plan, int socket) {
    note_socket = socket;
    set_limit(RLIMIT_DATA, plan->memory_bytes, "setrlimit(RLIMIT_DATA)");
    set_limit(RLIMIT_FSIZE, plan->file_size_bytes, "setrlimit(RLIMIT_FSIZE)");
    if (plan->flags & FORKPOOL_SANDBOX_NO_CORE_DUMPS) set_limit(RLIMIT_CORE, 0, "setrlimit(RLIMIT_CORE)");
    if (plan->file_size_bytes >= 0) {
        // A write past the limit then fails with EFBIG instead of killing the worker.
        struct sigaction ignore;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        (void)sigaction(SIGXFSZ, &ignore, NULL);
    }
    if (plan->memory_bytes >= 0) {
        noted_memory_limit = plan->memory_bytes;
        forkpool_wrap_all_fault_signals();
    }
    if (plan->flags & FORKPOOL_SANDBOX_KILL_ON_VIOLATION) {
        struct sigaction trap;
        memset(&trap, 0, sizeof trap);
        trap.sa_sigaction = violation_trap;
        trap.sa_flags = SA_SIGINFO;
        sigemptyset(&trap.sa_mask);
        if (sigaction(SIGSYS, &trap, NULL) != 0) sandbox_failed("sigaction(SIGSYS)", errno);
    }
    // A session of its own: no controlling terminal to type into or take signals from.
    if (setsid() < 0) sandbox_failed("setsid", errno);
    drop_capabilities();
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) sandbox_failed("prctl(PR_SET_NO_NEW_PRIVS)", errno);
    enter_landlock_domain(plan);
    // Nothing of the program it was forked from: no database connection, no listening socket,
    // no open file. (The rules' O_PATH descriptors go too.)
    unsigned first = 3;
    if ((unsigned)socket > first && syscall(SYS_close_range, first, (unsigned)socket - 1, 0) != 0) sandbox_failed("close_range", errno);
    if ((unsigned)socket >= first) first = (unsigned)socket + 1;
    if (syscall(SYS_close_range, first, ~0U, 0) != 0) sandbox_failed("close_range", errno);
    // Only now: the program's descriptors, closed above, would have counted against it.
    set_limit(RLIMIT_NOFILE, plan->open_files, "setrlimit(RLIMIT_NOFILE)");
    struct sock_fprog program = {.len = plan->filter_length, .filter = (struct sock_filter *)plan->filter};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) != 0) sandbox_failed("seccomp(SECCOMP_SET_MODE_FILTER)", errno);
}
