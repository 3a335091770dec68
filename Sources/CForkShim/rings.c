// The shared region of a worker's rings: made and sealed in the fork server, mapped in the
// worker right after fork (before any Swift code), and mapped by the pool after checking it.
// The rings themselves (slots, sequence numbers, the sleeping flags) are Swift's
// (Sources/ForkPool/System/SharedRing.swift); C only makes, seals and maps the memory.
#ifndef _GNU_SOURCE
#error "CForkShim must be built with _GNU_SOURCE (set in Package.swift)"
#endif

#include "CForkShim.h"
#include "shim_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// This worker's region; NULL in the pool, in a fork server, and in a worker without rings.
static void *worker_region = NULL;

void *forkpool_worker_ring_region(void) { return worker_region; }

int forkpool_ring_make(void) {
    int fd = memfd_create("forkpool-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    // Zero-filled: every sequence number and flag starts at 0.
    if (ftruncate(fd, FORKPOOL_RING_REGION_BYTES) != 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int forkpool_ring_enter_worker(int memfd) {
    void *region = mmap(NULL, FORKPOOL_RING_REGION_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    (void)close(memfd);
    if (region == MAP_FAILED) return -1;
    worker_region = region;
    return 0;
}

void forkpool_ring_forget(void) {
    // A process forked from a worker (a nested pool's fork server) is not that worker.
    if (worker_region != NULL) (void)munmap(worker_region, FORKPOOL_RING_REGION_BYTES);
    worker_region = NULL;
}

void *forkpool_ring_map(int memfd) {
    struct stat status;
    if (fstat(memfd, &status) != 0) return NULL;
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0) return NULL;
    if (status.st_size != FORKPOOL_RING_REGION_BYTES || (seals & F_SEAL_SHRINK) == 0) {
        errno = EINVAL;
        return NULL;
    }
    void *region = mmap(NULL, FORKPOOL_RING_REGION_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    return region == MAP_FAILED ? NULL : region;
}

void forkpool_ring_unmap(void *region) {
    if (region != NULL) (void)munmap(region, FORKPOOL_RING_REGION_BYTES);
}
