// ProcessJobPool+Encoded: jobs that arrive as bytes (an EncodedJob from a queue elsewhere)
// run on the pool's workers as any job does; their outputs go back as bytes.
//
//   submit(EncodedJob) ─ name registered? ─ no ─▶ .unknownJob, nothing queued
//                      └ TypedTasks.submitEncoded: [header][name][payload] ─▶ Dispatcher queue
//                        ─▶ worker: JobRegistry.handle
//   reply ─▶ OutputCompletion without a codec: the output's bytes, undecoded ─▶ Future<[UInt8]>
//
// The frame is the one TypedTasks makes for a typed job: the worker cannot tell them apart.

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
    @_spi(Integration)
    public func submit(_ job: EncodedJob, timeout: Duration? = nil) throws(ForkPoolError) -> Future<[UInt8]> {
        try registry.check(name: job.jobName)
        var tasks = TypedTasks<[UInt8], [UInt8]>(dispatcher: dispatcher, configuration: jobTasks.configuration,
                                                 workerCount: jobTasks.workerCount, jobName: job.jobName)
        tasks.concurrent = registry.runsConcurrently(job.jobName)
        return try tasks.submitEncoded(job.payload, timeout: timeout)
    }
}
