// What shim.c, sandbox.c and rings.c share and nothing else sees: the fork server's half of the
// sandbox and of the workers' shared rings.
#ifndef CFORKSHIM_INTERNAL_H
#define CFORKSHIM_INTERNAL_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

/// A sandbox made ready in a fork server before its first fork (see sandbox.c): the rules'
/// directories and files open, the seccomp program built. Opaque outside sandbox.c.
struct forkpool_sandbox_plan;

/// Writes the seccomp program for a sandbox with `flags` (FORKPOOL_SANDBOX_*) into `code`, at most
/// `capacity` instructions, and its length into `*length` (sandbox_filter.c). Returns 0, or -1 on
/// an architecture it does not know or a program that does not fit.
int forkpool_sandbox_build_filter(unsigned flags, struct sock_filter *code, unsigned short capacity, unsigned short *length);

/// Builds the plan `spec` describes into the server's one static plan; NULL with a message in
/// `error` on failure. No allocation: safe in a server forked from a multi-threaded program.
const struct forkpool_sandbox_plan *forkpool_sandbox_plan_prepare(const char *spec, char *error, size_t error_size);

/// In a freshly forked worker, before anything else runs: applies `plan` around `socket`, the
/// worker's end of its socketpair. Never returns on failure: the worker tells the pool why (a
/// note frame on `socket`) and exits with status 71, so it never runs half-jailed.
void forkpool_sandbox_apply(const struct forkpool_sandbox_plan *plan, int socket);

/// In every freshly forked child: it is not (yet) a jailed worker, whatever the process it was
/// forked from was, so its fault handlers send no note (on a descriptor number that may since
/// name another file).
void forkpool_sandbox_forget(void);

/// Called first thing in the fault-signal wrapper (shim.c) with the errno the faulting thread
/// had: in a worker whose sandbox limits memory, an ENOMEM there means an allocation past the
/// limit brought it down, and the pool is told so before the worker dies.
void forkpool_sandbox_fault_seen(int signal_number, int saved_errno);

/// Wraps every fault signal (shim.c's wrapper), the ones left at their default action too, so
/// that `forkpool_sandbox_fault_seen` runs before the worker dies of any of them.
void forkpool_wrap_all_fault_signals(void);

/// In the fork server, before a fork: a memfd of `FORKPOOL_RING_REGION_BYTES`, zero-filled and
/// sealed against shrinking, growing and new seals. -1 with errno on failure.
int forkpool_ring_make(void);

/// In the worker just forked: maps the region and closes `memfd`. -1 with errno on failure.
int forkpool_ring_enter_worker(int memfd);

/// In every freshly forked child: unmaps a region it inherited from the worker it was forked from.
void forkpool_ring_forget(void);

#endif
