// FIFOQueue: an array-backed first-in first-out queue with amortised O(1) push and pop.
// Both pools keep their waiting tasks in one.

struct FIFOQueue<Element> {
    private var storage: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == storage.count }
    var count: Int { storage.count - head }

    /// The element `popFirst` would return, left in place.
    var first: Element? { head < storage.count ? storage[head] : nil }

    func contains(where predicate: (Element) -> Bool) -> Bool {
        storage[head...].contains { $0.map(predicate) ?? false }
    }

    mutating func append(_ element: Element) {
        storage.append(element)
    }

    mutating func popFirst() -> Element? {
        guard head < storage.count else { return nil }
        let element = storage[head]
        storage[head] = nil
        head += 1
        // Reclaim the consumed prefix once it dominates, keeping pops amortised O(1).
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
        return element
    }

    /// Drops every element that matches, keeping the others' order; returns how many went.
    @discardableResult
    mutating func removeAll(where shouldRemove: (Element) -> Bool) -> Int {
        let before = count
        let kept = storage[head...].compactMap { $0 }.filter { !shouldRemove($0) }
        storage = kept.map { Optional($0) }
        head = 0
        return before - kept.count
    }

    mutating func removeAll() -> [Element] {
        let remaining = storage[head...].compactMap { $0 }
        storage.removeAll()
        head = 0
        return remaining
    }
}
