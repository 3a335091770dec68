import Testing
import Workloads

@Test func fibonacciMatchesIterativeDefinition() {
    var (a, b) = (0, 1)
    for n in 0...30 {
        #expect(fibonacci(n) == a)
        (a, b) = (b, a + b)
    }
}
