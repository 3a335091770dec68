// EncodedJob: a job as bytes — its name and its encoded value — for a transport that carries
// jobs past one machine (a job queue in a database, say).
//
//   submitting host: EncodedJob(job) ─ jobName + payload bytes ─▶ the transport
//   worker host:     ProcessJobPool.submit(EncodedJob) ─ [name][payload] frame, as any job's ─▶
//                    a worker decodes and runs it ─▶ Future<[UInt8]>: the output, still encoded
//   submitting host: EncodedJob.decodeOutput(of: Job.self, from: bytes) ─▶ Job.Output
//
// The payload is the very bytes a `ProcessJobPool` puts in a job's task frame, so the worker
// host's parent process never decodes a job or its output: it only moves bytes.
import ForkPoolWire

/// A ``PoolJob`` as bytes: its ``RunnableJob/jobName`` and its value encoded in ForkPool's wire
/// format. What another transport (a queue in a database) stores, and what a
/// ``ProcessJobPool`` on another host runs with ``ProcessJobPool/submit(_:timeout:)-(EncodedJob,_)``.
///
/// ```swift
/// let encoded = try EncodedJob(Checksum(path: p))        // on the submitting host
/// let bytes = try pool.submit(encoded).value             // on a worker host
/// let sum = try EncodedJob.decodeOutput(of: Checksum.self, from: bytes)
/// ```
@_spi(Integration)
public struct EncodedJob: Sendable, Hashable {
    /// The job type's ``RunnableJob/jobName``: which of a pool's job types decodes the payload.
    public var jobName: String
    /// The job's value, encoded.
    public var payload: [UInt8]

    /// A job as it was stored: its name and payload. Nothing is checked until a pool runs it.
    public init(jobName: String, payload: [UInt8]) {
        self.jobName = jobName
        self.payload = payload
    }

    /// Encodes `job`.
    /// - Throws: ``ForkPoolError/Code/encodingFailed`` naming the job.
    public init<Job: PoolJob>(_ job: Job) throws(ForkPoolError) {
        var bytes: [UInt8] = []
        do {
            try PayloadCodec<Job>().encode(job, into: &bytes)
        } catch {
            var failure = ForkPoolError(.encodingFailed, "could not encode the job: \(error)")
            failure.jobName = Job.jobName
            throw failure
        }
        self.init(jobName: Job.jobName, payload: bytes)
    }

    /// Decodes the job back (what a worker does before it runs it).
    /// - Throws: ``ForkPoolError/Code/unknownJob`` when the payload names another job type,
    ///   ``ForkPoolError/Code/decodingFailed`` when the bytes are not a `Job`.
    public func decode<Job: PoolJob>(as type: Job.Type) throws(ForkPoolError) -> Job {
        guard jobName == Job.jobName else {
            throw ForkPoolError(.unknownJob, "the encoded job is a \"\(jobName)\", not a \"\(Job.jobName)\"")
        }
        return try Self.decode(Job.self, from: payload, what: "job", jobName: jobName)
    }

    /// Decodes the output of a job of type `Job` from the bytes a pool's
    /// ``ProcessJobPool/submit(_:timeout:)-(EncodedJob,_)`` returned.
    /// - Throws: ``ForkPoolError/Code/decodingFailed`` when the bytes are not a `Job.Output`.
    public static func decodeOutput<Job: PoolJob>(of type: Job.Type, from bytes: [UInt8]) throws(ForkPoolError) -> Job.Output {
        try decode(Job.Output.self, from: bytes, what: "output", jobName: Job.jobName)
    }

    /// Encodes the output of a job of type `Job`, as a worker does (for a transport that runs
    /// a job some other way, or for tests).
    /// - Throws: ``ForkPoolError/Code/encodingFailed``.
    public static func encodeOutput<Job: PoolJob>(_ output: Job.Output, of type: Job.Type) throws(ForkPoolError) -> [UInt8] {
        var bytes: [UInt8] = []
        do {
            try PayloadCodec<Job.Output>().encode(output, into: &bytes)
        } catch {
            var failure = ForkPoolError(.encodingFailed, "could not encode the output: \(error)")
            failure.jobName = Job.jobName
            throw failure
        }
        return bytes
    }

    private static func decode<Value: Codable>(_ type: Value.Type, from bytes: [UInt8], what: String,
                                               jobName: String) throws(ForkPoolError) -> Value {
        do {
            return try bytes.withUnsafeBytes { try PayloadCodec<Value>().decode(from: $0) }
        } catch {
            var failure = ForkPoolError(.decodingFailed, "could not decode the \(what) of a \"\(jobName)\" job: \(error)")
            failure.jobName = jobName
            throw failure
        }
    }
}
