// The system layer under the engine: transfers that report .wouldBlock and failures as values,
// a pool descriptor that closes (and unregisters) itself when dropped, and a wait on a
// descriptor that signals cannot stretch.
import CForkShim
import ForkPoolTestSupport
import Glibc
import Testing
@testable import ForkPool

extension ForkPoolTests {
    @Suite struct SystemLayerTests {
        @Test func transfersReportWouldBlockEndOfStreamAndFailuresAsValues() throws {
            var fds: [CInt] = [-1, -1]
            #expect(forkpool_socketpair(&fds) == 0)
            let (ours, peer) = (fds[0], fds[1])
            var space = [UInt8](repeating: 0, count: 16)
            let empty = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(empty == .wouldBlock)

            #expect(sendPart(peer, head: [1, 2, 3], tail: [4, 5], from: 1, nonblocking: true) == .transferred(4))
            let got = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(got == .transferred(4))
            #expect(Array(space.prefix(4)) == [2, 3, 4, 5])

            close(peer)
            let ended = space.withUnsafeMutableBytes { SystemCall.receive(ours, into: $0, wait: false) }
            #expect(ended == .endOfStream)
            // The peer is gone: EPIPE as a value, and no SIGPIPE (MSG_NOSIGNAL).
            #expect(sendPart(ours, head: [1], tail: [], from: 0, nonblocking: true) == .failed(errno: EPIPE))
            close(ours)
        }

        /// A signal that interrupts `waitReadable` neither ends the wait nor restarts its time
        /// limit: a 300 ms wait interrupted every 20 ms still ends. (Were each interruption to
        /// restart the limit, the wait would last as long as the signals came: 10 s here.)
        @Test func aWaitInterruptedOverAndOverStillEndsAtItsTimeLimit() throws {
            let pipe = TestPipe()  // nothing is ever written to it
            let previous = signal(SIGUSR2) { _ in }
            defer { signal(SIGUSR2, previous) }
            let waiter = LockedBox<pthread_t>()
            let readable = LockedBox<Bool>()
            let thread = try PosixThread.start(name: "interrupted-wait") {
                var interrupting = sigset_t()  // the test runner's threads may block it: this one must not
                sigemptyset(&interrupting)
                sigaddset(&interrupting, SIGUSR2)
                pthread_sigmask(SIG_UNBLOCK, &interrupting, nil)
                waiter.value = pthread_self()
                readable.value = SystemCall.waitReadable(pipe.readEnd, until: monotonicNanoseconds() + 300_000_000)
            }
            #expect(waitUntil { waiter.value != nil })
            var signals = 0
            while readable.value == nil && signals < 500 {
                pthread_kill(waiter.value!, SIGUSR2)
                usleep(20_000)
                signals += 1
            }
            thread.join()
            #expect(readable.value == false)
            #expect(signals < 500, "the wait outlasted 10 s of interruptions")
        }

        @Test func aDroppedDescriptorIsClosedAndUnregistered() throws {
            let before = PoolDescriptors.count
            var numbers: [CInt] = []
            do {
                let pair = try PoolDescriptors.makeSocketPair()
                numbers = [pair.parent.raw, pair.child.raw]
                #expect(PoolDescriptors.registered.isSuperset(of: numbers))
            }
            #expect(PoolDescriptors.count == before)
            for fd in numbers {
                #expect(!PoolDescriptors.registered.contains(fd))
                #expect(fcntl(fd, F_GETFD) == -1 && errno == EBADF)
            }
        }
    }
}
