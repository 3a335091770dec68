// FreshStart: a fork server started from the program's own binary instead of forked from the
// running program (`ProcessJobPool.StartMethod.fresh`), and the worker side of it.
//
//   dispatcher ─ posix_spawn("/proc/self/exe"), FORKPOOL_FRESH_SERVER=settings, control on fd 3
//     ─▶ the shim's constructor runs before `main` ─▶ the same C fork-server loop ─ fork ─▶
//   worker: forkpool_fresh_worker_main ─▶ job types by mangled name ─▶ setUpWorker() ─▶ WorkerLoop
//
// The new process has one thread, a small heap and nothing of the pool's process (no memory,
// no held lock): a worker has only what a job carries, so only job pools start fresh. The
// settings are text: the pool's pid, the options, the frame limit, one name per job type.
import CForkShim
import Glibc

/// What a fresh fork server and its workers need from the pool.
struct FreshStartSettings: Sendable, Equatable {
    var serverOptions: CInt
    var workerOptions: CInt
    var maximumFrameBytes: Int
    /// One per job type, in registration order: `_mangledTypeName` of the type.
    var jobTypeNames: [String]
    /// How many async jobs a worker runs at once (`ProcessPoolConfiguration.jobsPerWorker`).
    var jobsPerWorker = 1

    /// The text the shim's constructor and `forkpool_fresh_worker_main` read: first line
    /// "pid serverOptions workerOptions maximumFrameBytes jobsPerWorker", then one type name per line.
    func encoded(parent: pid_t) -> String {
        (["\(parent) \(serverOptions) \(workerOptions) \(maximumFrameBytes) \(jobsPerWorker)"] + jobTypeNames)
            .joined(separator: "\n")
    }

    init(serverOptions: CInt, workerOptions: CInt, maximumFrameBytes: Int, jobTypeNames: [String]) {
        self.serverOptions = serverOptions
        self.workerOptions = workerOptions
        self.maximumFrameBytes = maximumFrameBytes
        self.jobTypeNames = jobTypeNames
    }

    init?(decoding text: String) {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let numbers = lines.first.map { $0.split(separator: " ").compactMap { Int($0) } } ?? []
        guard numbers.count == 5, let server = CInt(exactly: numbers[1]), let worker = CInt(exactly: numbers[2]),
              numbers[4] >= 1 else { return nil }
        self.init(serverOptions: server, workerOptions: worker, maximumFrameBytes: numbers[3],
                  jobTypeNames: lines.dropFirst().map(String.init))
        jobsPerWorker = numbers[4]
    }

    /// The job types, each found by its mangled name in this process (nil names the first
    /// that is not found).
    func jobTypes() -> Result<[any PoolJob.Type], ForkPoolError> {
        var types: [any PoolJob.Type] = []
        for name in jobTypeNames {
            guard let type = _typeByName(name) as? any PoolJob.Type else {
                return .failure(ForkPoolError(.poolBroken, "the fresh worker cannot find the job type with the mangled name \(name)"))
            }
            types.append(type)
        }
        return .success(types)
    }
}

enum FreshStart {
    /// The binary a fresh fork server starts from (a test points it elsewhere).
    nonisolated(unsafe) static var executablePath = "/proc/self/exe"

    /// Why `path` (a link such as /proc/self/exe) cannot start a fresh fork server, if it
    /// cannot: the binary was deleted or replaced since the program started.
    static func unusableBinary(at path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }  // not a link: posix_spawn will say
        let target = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return target.hasSuffix(" (deleted)") ? "the program's binary \(target.dropLast(10)) was deleted or replaced since it started" : nil
    }

    /// The mangled name of each job type, checked to be findable by name (it is not for a
    /// type that only exists in this process's memory: a local type, for one).
    static func typeNames(of jobs: [any PoolJob.Type]) throws(ForkPoolError) -> [String] {
        try jobs.map { type throws(ForkPoolError) in
            guard let name = _mangledTypeName(type), _typeByName(name) != nil else {
                throw ForkPoolError(.invalidArgument, "the job type \(String(reflecting: type)) cannot be found by name in a fresh "
                                    + "process; declare it at file scope, or use startMethod .snapshot")
            }
            return name
        }
    }
}

/// The entry point of a worker forked by a fresh fork server (called by the shim's
/// constructor, before `main` would run): finds the job types, runs their `setUpWorker()`, then
/// serves tasks like any worker. Not for use by programs.
@_cdecl("forkpool_fresh_worker_main")
public func _forkpoolFreshWorkerMain(_ socket: CInt, _ settings: UnsafePointer<CChar>) -> Never {
    PoolDescriptors.resetToWorker(socket: socket)
    guard let decoded = FreshStartSettings(decoding: String(cString: settings)) else {
        WorkerLoop.run(socket: socket, maximumFrameBytes: 1 << 20, initializer: {
            throw ForkPoolError(.poolBroken, "the fresh worker could not read its settings")
        }, handler: { _, _, _, _, _ in .failure })
    }
    switch decoded.jobTypes().flatMap({ types in Result { () throws(ForkPoolError) in try JobRegistry(jobs: types) }.map { (types, $0) } }) {
    case .failure(let error):
        WorkerLoop.run(socket: socket, maximumFrameBytes: decoded.maximumFrameBytes, initializer: { throw error },
                       handler: { _, _, _, _, _ in .failure })
    case .success(let (types, registry)):
        var concurrency: WorkerLoop.Concurrency?
        var concurrencyError: ForkPoolError?
        if registry.hasAsyncJobs {
            do {
                let jobs = try ConcurrentJobs(socket: socket, maximumFrameBytes: decoded.maximumFrameBytes)
                concurrency = WorkerLoop.Concurrency(jobs: jobs) { header, payload in registry.startConcurrently(header, payload, on: jobs) }
            } catch {
                concurrencyError = error
            }
        }
        let startError = concurrencyError
        WorkerLoop.run(socket: socket, maximumFrameBytes: decoded.maximumFrameBytes, initializer: {
            if let startError { throw startError }
            for type in types { try type.setUpWorker() }
        }, handler: registry.handle, concurrency: concurrency)
    }
}
