// ConcurrentJobs: a fresh worker's async jobs, up to `jobsPerWorker` at once, each in a Task.
//
//   worker loop (main thread): task frame of an async job ─▶ decoded ─▶ start: a Task whose
//     executor is the worker's job thread ─▶ the loop reads the next frame at once
//   job thread: runs every job's code, one piece at a time, marking whose it runs (a fault
//     there names the job: forkpool_set_current_task) ─▶ job ends ─▶ reply frame, sent under
//     WorkerLoop's send lock ─▶ the pool matches it by task id
//   `cancel` frame ─▶ that job's Task cancelled (its deadline, or `cancel()` in the pool)
//
// The jobs share one thread, as asyncio's coroutines do: while one awaits, others run; code
// that blocks the thread holds them all up. A sync job never runs beside them: the pool sends
// one only to a worker with nothing in flight.
import CForkShim
import ForkPoolWire
import Glibc

final class ConcurrentJobs: @unchecked Sendable {
    private let lock = ConditionLock()
    private var running: [UInt64: Task<Void, Never>] = [:]
    private let thread: JobThread
    let maximumFrameBytes: Int

    init(socket: CInt, maximumFrameBytes: Int) throws(ForkPoolError) {
        thread = try JobThread()
        self.maximumFrameBytes = maximumFrameBytes
        forkpool_send_notes_to(socket)
        forkpool_wrap_all_fault_signals()
    }

    /// Runs `body` (the job; it returns the reply's kind and payload) in a Task of its own on
    /// the job thread, and sends its reply when it ends.
    func start(taskID: UInt64, _ body: @escaping @Sendable () async -> (FrameKind, [UInt8])) {
        let executor = JobExecutor(taskID: taskID, thread: thread)
        lock.withLock {
            // Made under the lock, so the task's own removal (below) waits for its insertion.
            running[taskID] = Task(executorPreference: executor) {
                let (kind, payload) = await body()
                self.reply(taskID: taskID, kind: kind, payload: payload)
                self.lock.withLock { self.running[taskID] = nil }
            }
        }
    }

    /// Cancels the Task of job `taskID`, if it still runs.
    func cancel(_ taskID: UInt64) {
        lock.withLock { running[taskID] }?.cancel()
    }

    private func reply(taskID: UInt64, kind: FrameKind, payload: [UInt8]) {
        var frame = FrameHeader.emptyFrame()
        var kind = kind
        if payload.count > maximumFrameBytes {
            WorkerLoop.appendFailure(.outputTooLarge, "result of \(payload.count) bytes exceeds the frame limit of "
                                     + "\(maximumFrameBytes) bytes", to: &frame)
            kind = .failure
        } else {
            frame.append(contentsOf: payload)
        }
        FrameHeader(kind: kind, length: frame.count - FrameHeader.size, taskID: taskID).write(into: &frame)
        WorkerLoop.sendReply(frame)
    }

    /// The job `job` as a Task body: run, then the encoded output or the failure.
    static func body<Job: AsyncPoolJob>(_ job: Job) -> @Sendable () async -> (FrameKind, [UInt8]) {
        {
            let output: Job.Output
            var payload: [UInt8] = []
            do {
                output = try await job.run()
            } catch {
                WorkerLoop.appendFailure(.workThrew, "\(error)", to: &payload)
                return (.failure, payload)
            }
            do {
                try PayloadCodec<Job.Output>().encode(output, into: &payload)
                return (.result, payload)
            } catch {
                payload.removeAll()
                WorkerLoop.appendFailure(.outputEncodingFailed, "\(error)", to: &payload)
                return (.failure, payload)
            }
        }
    }

    /// A chunk of `map` as a Task body: every job at once, the outputs in order; the first
    /// that fails fails the chunk, as `map` reports it.
    static func batchBody<Job: AsyncPoolJob>(_ jobs: [Job]) -> @Sendable () async -> (FrameKind, [UInt8]) {
        {
            var payload: [UInt8] = []
            let outputs: [Job.Output]
            do {
                outputs = try await withThrowingTaskGroup(of: (Int, Job.Output).self) { group in
                    for (index, job) in jobs.enumerated() { group.addTask { (index, try await job.run()) } }
                    var collected = [Job.Output?](repeating: nil, count: jobs.count)
                    for try await (index, output) in group { collected[index] = output }
                    return collected.map { $0! }
                }
            } catch {
                WorkerLoop.appendFailure(.workThrew, "\(error)", to: &payload)
                return (.failure, payload)
            }
            do {
                try PayloadCodec<[Job.Output]>().encode(outputs, into: &payload)
                return (.resultBatch, payload)
            } catch {
                payload.removeAll()
                WorkerLoop.appendFailure(.outputEncodingFailed, "\(error)", to: &payload)
                return (.failure, payload)
            }
        }
    }
}

/// One job's executor: its pieces go to the worker's job thread, marked with its task id.
final class JobExecutor: TaskExecutor, @unchecked Sendable {
    let taskID: UInt64
    let thread: JobThread

    init(taskID: UInt64, thread: JobThread) {
        self.taskID = taskID
        self.thread = thread
    }

    func enqueue(_ job: consuming ExecutorJob) {
        thread.enqueue(UnownedJob(job), taskID: taskID, executor: self)
    }
}

/// The thread that runs a worker's async jobs, piece by piece, in the order they became ready.
final class JobThread: @unchecked Sendable {
    private let lock = ConditionLock()
    private var ready = FIFOQueue<(job: UnownedJob, taskID: UInt64, executor: JobExecutor)>()

    init() throws(ForkPoolError) {
        _ = try PosixThread.start(name: "forkpool-jobs", detached: true) { [self] in run() }
    }

    func enqueue(_ job: UnownedJob, taskID: UInt64, executor: JobExecutor) {
        lock.withLock { ready.append((job, taskID, executor)) }
        lock.signal()
    }

    private func run() -> Never {
        while true {
            let next = lock.withLock {
                while ready.isEmpty { lock.wait() }
                return ready.popFirst()!
            }
            forkpool_set_current_task(next.taskID)
            next.job.runSynchronously(on: next.executor.asUnownedTaskExecutor())
            forkpool_set_current_task(0)
        }
    }
}
