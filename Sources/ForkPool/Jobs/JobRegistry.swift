// JobRegistry: the job types a job pool was created with, by name — checked on the caller's
// side before anything is queued, and used by a worker to run the job a task frame names.
//
//   init(jobs:) ─ duplicate names? ─▶ .invalidArgument naming both types
//   submit(job) ─▶ check(J.self): registered under J.jobName as this very type? ─ no ─▶ .unknownJob
//   worker: task payload ─▶ JobFrame.split ─▶ name ─▶ the job type's handler ─▶ reply
//           (no name, or an unknown one: a `failure` reply, .malformedFrame for the caller)
//
// Built before the pool forks, and nothing in it depends on fork: a name and a Codable value
// are all another transport would need.
import ForkPoolWire

struct JobRegistry: Sendable {
    struct Entry: Sendable {
        let name: String
        let type: ObjectIdentifier
        let typeName: String
        /// Runs a task frame of this job in a worker (process pools only).
        let handler: TaskHandler?
        /// An async job's: starts a task frame's job (or chunk) as a Task of a worker that runs
        /// several at once; false for a payload it cannot decode (the handler then answers it).
        var startConcurrently: (@Sendable (FrameKind, UInt64, UnsafeRawBufferPointer, ConcurrentJobs) -> Bool)? = nil
    }

    private let entries: [String: Entry]
    /// The registered names, in the order the types were given.
    let names: [String]

    /// The registry of a process job pool: each type's worker-side handler included.
    init(jobs: [any PoolJob.Type]) throws(ForkPoolError) {
        try self.init(jobs.map { Self.entry(for: $0) })
    }

    /// The registry of a thread job pool: the types only.
    init(runnableJobs: [any RunnableJob.Type]) throws(ForkPoolError) {
        try self.init(runnableJobs.map { Self.entry(forRunnable: $0) })
    }

    private init(_ list: [Entry]) throws(ForkPoolError) {
        guard !list.isEmpty else { throw ForkPoolError(.invalidArgument, "a job pool needs at least one job type") }
        var entries: [String: Entry] = [:]
        for entry in list {
            guard entry.name.utf8.count <= JobFrame.maximumNameBytes else {
                throw ForkPoolError(.invalidArgument, "the job name of \(entry.typeName) is longer than \(JobFrame.maximumNameBytes) bytes")
            }
            if let other = entries[entry.name] {
                let what = other.type == entry.type ? "is registered twice" : "and \(entry.typeName) share it"
                throw ForkPoolError(.invalidArgument, "two job types have the job name \"\(entry.name)\": \(other.typeName) \(what)")
            }
            entries[entry.name] = entry
        }
        self.entries = entries
        names = list.map(\.name)
    }

    private static func entry<J: PoolJob>(for type: J.Type) -> Entry {
        if let asyncType = type as? any AsyncPoolJob.Type { return asyncEntry(for: asyncType) }
        let handler = WorkFunctionHandler<J, J.Output> { job in try job.run() }.handle
        return Entry(name: J.jobName, type: ObjectIdentifier(J.self), typeName: String(reflecting: J.self), handler: handler)
    }

    /// An async job's worker side: its `run()` in a Task of the (fresh) worker's own runtime.
    private static func asyncEntry<J: AsyncPoolJob>(for type: J.Type) -> Entry {
        let handler = WorkFunctionHandler<J, J.Output> { job in try AsyncJobRunner.run { try await job.run() } }.handle
        var entry = Entry(name: J.jobName, type: ObjectIdentifier(J.self), typeName: String(reflecting: J.self), handler: handler)
        entry.startConcurrently = { kind, taskID, payload, jobs in
            if kind == .taskBatch {
                guard let batch = try? PayloadCodec<[J]>().decode(from: payload) else { return false }
                jobs.start(taskID: taskID, ConcurrentJobs.batchBody(batch))
            } else {
                guard let job = try? PayloadCodec<J>().decode(from: payload) else { return false }
                jobs.start(taskID: taskID, ConcurrentJobs.body(job))
            }
            return true
        }
        return entry
    }

    /// Whether the job type named `name` is async (its tasks may run beside others on a worker).
    func runsConcurrently(_ name: String) -> Bool { entries[name]?.startConcurrently != nil }

    /// Whether any job type is async.
    var hasAsyncJobs: Bool { entries.values.contains { $0.startConcurrently != nil } }

    /// The worker side, in a worker that runs several async jobs at once: starts the job a task
    /// frame names as a Task if it is an async job's; false otherwise (it then runs as any task).
    func startConcurrently(_ header: FrameHeader, _ payload: UnsafeRawBufferPointer, on jobs: ConcurrentJobs) -> Bool {
        guard header.kind == .task || header.kind == .taskBatch, let (name, rest) = JobFrame.split(payload),
              let start = entries[name]?.startConcurrently else { return false }
        return start(header.kind, header.taskID, rest, jobs)
    }

    private static func entry<J: RunnableJob>(forRunnable type: J.Type) -> Entry {
        Entry(name: J.jobName, type: ObjectIdentifier(J.self), typeName: String(reflecting: J.self), handler: nil)
    }

    /// Throws `.unknownJob` unless `J` itself was registered (under its name).
    func check<J: RunnableJob>(_ type: J.Type) throws(ForkPoolError) {
        guard entries[J.jobName]?.type != ObjectIdentifier(J.self) else { return }
        var error = ForkPoolError(.unknownJob, "job type \(String(reflecting: J.self)) (job name \"\(J.jobName)\") is not one of this "
                                  + "pool's jobs: \(names.map { "\"\($0)\"" }.joined(separator: ", ")); nothing was queued")
        error.jobName = J.jobName
        throw error
    }

    /// Throws `.unknownJob` unless a job type was registered under `name` (an encoded job's).
    func check(name: String) throws(ForkPoolError) {
        guard entries[name] == nil else { return }
        var error = ForkPoolError(.unknownJob, "no job type of this pool has the job name \"\(name.prefix(200))\": it has "
                                  + "\(names.map { "\"\($0)\"" }.joined(separator: ", ")); nothing was queued")
        error.jobName = name
        throw error
    }

    /// The worker side (a `TaskHandler`): runs the job the frame names.
    func handle(_ kind: FrameKind, _ payload: UnsafeRawBufferPointer, _ tail: [UInt8]?, _ reply: inout [UInt8],
                _ replyTail: inout [UInt8]) -> FrameKind {
        guard let (name, rest) = JobFrame.split(payload) else {
            WorkerLoop.appendFailure(.unknownJob, "the task frame does not start with a job name", to: &reply)
            return .failure
        }
        guard let handler = entries[name]?.handler else {
            let known = names.map { "\"\($0)\"" }.joined(separator: ", ")
            WorkerLoop.appendFailure(.unknownJob, "the task names the job \"\(name.prefix(200))\", which this pool does not have "
                                     + "(it has \(known))", to: &reply)
            return .failure
        }
        return handler(kind, rest, tail, &reply, &replyTail)
    }
}
