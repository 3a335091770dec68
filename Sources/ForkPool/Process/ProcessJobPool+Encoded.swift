// ProcessJobPool+Encoded: jobs that arrive as bytes (an EncodedJob from a queue elsewhere)
// run on the pool's workers as any job does; their outputs go back as bytes.
//
//   submit(EncodedJob) ─ name registered? ─ no ─▶ .unknownJob, nothing queued
//                      └ [header][name][payload] ─▶ Dispatcher queue ─▶ worker: JobRegistry.handle
//   reply ─▶ EncodedOutputCompletion: the output's bytes, undecoded ─▶ Future<[UInt8]>
//
// The frame is the one TypedTasks makes for a typed job: the worker cannot tell them apart.
import Glibc

extension ProcessJobPool {
    /// Queues a job that arrives encoded (see ``EncodedJob``) and returns a future for its
    /// output, still encoded: decode it with ``EncodedJob/decodeOutput(of:from:)`` where the
    /// job's type is known. Errors, crashes, deadlines and cancellation are those of a typed
    /// job's ``submit(_:)``; a payload a worker cannot decode fails the job with
    /// ``ForkPoolError/Code/decodingFailed``.
    ///
    /// - Parameters:
    ///   - job: the job's name and its payload, as ``EncodedJob/init(_:)`` made them.
    ///   - timeout: the job's deadline from now, as a typed job's; nil for none.
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when no job type of the pool has the job's
    ///   name, ``ForkPoolError/Code/frameTooLarge`` over the frame limit,
    ///   ``ForkPoolError/Code/overloaded`` when the queue is full,
    ///   ``ForkPoolError/Code/poolShutDown`` after shutdown; nothing is queued.
    public func submit(_ job: EncodedJob, timeout: Duration? = nil) throws(ForkPoolError) -> Future<[UInt8]> {
        try registry.check(name: job.jobName)
        if let timeout, timeout <= .zero {
            throw ForkPoolError(.invalidArgument, "timeout must be positive, not \(timeout)")
        }
        var frame = FrameHeader.emptyFrame(reservingPayload: 2 + job.jobName.utf8.count + job.payload.count)
        frame.append(contentsOf: JobFrame.prefix(naming: job.jobName))
        frame.append(contentsOf: job.payload)
        let length = frame.count - FrameHeader.size
        guard length <= configuration.maximumFrameBytes else {
            var failure = ForkPoolError(.frameTooLarge, "the job encodes to \(length) bytes; the frame limit is \(configuration.maximumFrameBytes)")
            failure.jobName = job.jobName
            throw failure
        }
        let id = dispatcher.makeTaskID()
        FrameHeader(kind: .task, length: length, taskID: id).write(into: &frame)
        let dispatcher = dispatcher
        let leftQueueEarly: (@Sendable () -> Void)? = 
            configuration.maximumQueuedTasks == nil ? nil : { @Sendable in dispatcher.queuedTaskLeftEarly() }
        let completion = EncodedOutputCompletion(id: id, jobName: job.jobName, stopRunning: { dispatcher.stopRunningTask(id) },
                                                 taskCancellationStopsRunning: configuration.cancellationKillsRunningTasks,
                                                 leftQueueEarly: leftQueueEarly)
        let task = PendingTask(id: id, frame: frame, completion: completion)
        if let timeout { task.deadline = monotonicNanoseconds() + UInt64(timeout.seconds * 1e9) }
        do {
            try dispatcher.enqueue(CollectionOfOne(task), limited: true)
        } catch {
            var failure = error
            failure.jobName = job.jobName
            throw failure
        }
        return completion.future
    }
}

/// An encoded job's future: completes with the worker's reply payload as it came, undecoded.
final class EncodedOutputCompletion: TaskCompletion, @unchecked Sendable {
    let id: UInt64
    let future: Future<[UInt8]>
    let jobName: String?

    init(id: UInt64, jobName: String, stopRunning: @escaping @Sendable () -> Void, taskCancellationStopsRunning: Bool,
         leftQueueEarly: (@Sendable () -> Void)?) {
        self.id = id
        self.jobName = jobName
        future = Future(taskID: id, stopRunning: stopRunning, taskCancellationStopsRunning: taskCancellationStopsRunning,
                        leftQueueEarly: leftQueueEarly)
    }

    var replyKind: FrameKind { .result }

    var hasCompleted: Bool { future.hasCompleted }

    func markSentAhead(_ ahead: Bool) { future.markSentAhead(ahead) }

    func start() -> Bool { future.markRunning() }

    func finish(output: UnsafeRawBufferPointer, tail: [UInt8]?, worker: pid_t, recordOutcome: (ForkPoolError.Code?) -> Void) {
        recordOutcome(nil)
        future.complete(.success(Array(output) + (tail ?? [])))
    }

    func fail(_ error: ForkPoolError) { future.complete(.failure(error)) }

    func failIfQueued(_ error: ForkPoolError) -> Bool { future.complete(.failure(error), onlyIfQueued: true) }

    func bind(_ claim: LaneClaim) { future.attach(claim) }
}
