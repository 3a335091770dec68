// Interrupts: the one place Swift code retries a system call that a signal interrupted.
// (The shim's C calls use its RETRY_ON_EINTR macro.)
import Glibc

/// Runs `call` again while it fails with EINTR and returns its last result; on any other
/// failure the result is negative and `errno` says why.
@inline(__always)
func retryingInterrupts<Result: BinaryInteger>(_ call: () -> Result) -> Result {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}
