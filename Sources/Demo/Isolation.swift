// Isolation: what processes buy in Swift, shown for real. One task crashes its worker with a
// null-pointer write; the ProcessPool fails that task alone, replaces the worker and returns
// every other result. Another hangs and is killed at its deadline. The same crash on a
// ThreadPool would end this program, and a hung thread cannot be stopped, so that half is
// only described, not run.
import ForkPool
import Glibc
import Workloads

/// Fibonacci, except that a negative input writes through a null pointer (a real SIGSEGV).
@Sendable func fibonacciOrCrash(_ n: Int) -> Int {
    if n < 0 {
        UnsafeMutablePointer<Int>(bitPattern: 8)!.pointee = n
    }
    return fibonacci(n)
}

func demonstrateIsolation(workers: Int) throws {
    let inputs = [20, 21, 22, -1, 23, 24, 25, 26]
    print("Isolation: \(inputs.count) tasks on ProcessPool(workers: \(workers)); the task with input -1 "
          + "writes through a null pointer.")
    // Backtraces off: the crash is the point here, not its stack.
    let pool = try ProcessPool(workers: workers, configuration: .withoutBacktraces, work: fibonacciOrCrash)
    defer { pool.shutdown() }
    let futures = try inputs.map { try pool.submit($0) }
    var correct = 0
    for (input, future) in zip(inputs, futures) {
        do {
            let value = try future.get()
            if value == fibonacci(input) { correct += 1 }
        } catch {
            print("  input \(input): \(error.message)")
        }
    }
    let live = pool.stats.workers.compactMap(\.processID).count
    print("  \(correct) of \(inputs.count - 1) other results correct; the pool replaced the worker and has \(live) live workers.")
    let after = try pool.map([27, 28])
    print("  and keeps serving: map([27, 28]) = \(after)")
    print("  With ThreadPool the same crash would end this whole program: threads share one process.")

    // A hung task: the deadline kills its worker; a thread could not be stopped at all.
    var limited = ProcessPoolConfiguration()
    limited.taskTimeout = .milliseconds(500)
    let guarded = try ProcessPool(workers: 1, configuration: limited) { (seconds: UInt32) -> UInt32 in
        sleep(seconds)
        return seconds
    }
    defer { guarded.shutdown() }
    let start = now()
    do {
        _ = try guarded.submit(3600).get()
    } catch {
        print("  A task that would sleep an hour, with taskTimeout 0.5 s: \(error.message) "
              + "(after \(formatSeconds(now() - start)) s)")
    }
    print("  and the pool still answers: \(try guarded.submit(0).get() == 0 ? "yes" : "no").\n")
}
