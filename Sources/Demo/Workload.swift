// The three workloads of the article as the Demo runs them: what the inputs are and what
// work each task does. The work itself lives in the Workloads library.
import ForkPool
import Glibc
import Workloads

enum WorkloadName: String, CaseIterable, Codable, Sendable {
    /// Part-of-speech tagging of sentences (the article's spaCy `transform`).
    case transform
    /// File round trips: write, read back, check, remove.
    case io
    /// Tasks that mostly wait (a stand-in for network calls), plus a small file round trip.
    case ioLatency = "io-latency"
    /// The article's Fibonacci list, 30…35.
    case cpu
    /// The article's list repeated, so that a run takes seconds in compiled Swift.
    case cpuLarge = "cpu-large"

    var summary: String {
        switch self {
        case .transform: "tag parts of speech, one sentence per task"
        case .io: "write a file, read it back, remove it"
        case .ioLatency: "wait (like a network call), then a small file round trip"
        case .cpu: "naive fib(n), n = 30…35 (the article's list)"
        case .cpuLarge: "naive fib(n), the article's list repeated"
        }
    }
}

/// Sizes of one benchmark run.
struct Sizes: Codable, Sendable {
    var sentences = 4000
    var ioTasks = 5000
    var ioLines = 100
    var latencyTasks = 200
    var latencyMicroseconds = 5000
    var cpuRepeats = 12
    var overheadTasks = 100_000
    var throughputTasks = 1_000_000

    static let quick = Sizes(sentences: 500, ioTasks: 1000, ioLines: 100, latencyTasks: 64,
                             latencyMicroseconds: 5000, cpuRepeats: 2, overheadTasks: 10_000, throughputTasks: 100_000)
}

let articleFibonacciInputs = Array(30...35)

@Sendable func tagSentence(_ sentence: String) -> TaggedSentence {
    Tagger().tag(sentence)
}

@Sendable func fileRoundTrip(_ task: FileRoundTrip) throws -> Int {
    try runFileRoundTrip(task)
}

@Sendable func cpuIntensiveTransform(_ n: Int) -> Int {
    fibonacci(n)
}

@Sendable func identity(_ n: Int) -> Int { n }

/// The number of online processors: the Demo's default worker count, as the pools'.
let onlineProcessors = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))

extension ProcessPoolConfiguration {
    /// The defaults, with crash backtraces off: where a crash is the point, not its stack.
    static var withoutBacktraces: ProcessPoolConfiguration {
        var configuration = ProcessPoolConfiguration()
        configuration.workerCrashBacktraces = false
        return configuration
    }
}
