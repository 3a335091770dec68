// The article's CPU-bound workload: naive recursive Fibonacci, deliberately exponential.

/// The n-th Fibonacci number by naive recursion (the article's `cpu_intensive_transform`).
public func fibonacci(_ n: Int) -> Int {
    n < 2 ? n : fibonacci(n - 1) + fibonacci(n - 2)
}
