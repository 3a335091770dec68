// Progress: one live status line on a terminal (standard error), silent when standard error
// is not a terminal, so logs and CI output stay clean.
import Glibc

struct Progress: Sendable {
    let enabled: Bool

    init(enabled: Bool = isatty(STDERR_FILENO) == 1) {
        self.enabled = enabled
    }

    func update(_ text: String) {
        guard enabled else { return }
        writeToStandardError("\r\u{1B}[K\(text)")
    }

    func clear() {
        guard enabled else { return }
        writeToStandardError("\r\u{1B}[K")
    }
}

func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}
