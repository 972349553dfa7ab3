#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Progress of long work on standard error, only when it is a terminal; at most ten updates a
/// second. Not thread-safe: report from one thread.
public final class ProgressReporter {
    private let label: String
    private var total: UInt64 = 0
    private var doneBytes: UInt64 = 0
    private var lastDraw: Int64 = 0
    private var drawn = false

    /// nil when standard error is not a terminal.
    public static func forTerminal(label: String) -> ProgressReporter? {
        isatty(2) == 1 ? ProgressReporter(label: label) : nil
    }

    package init(label: String) { self.label = label }

    /// Starts counting from zero towards `total` bytes.
    public func start(total: UInt64) {
        self.total = total
        doneBytes = 0
    }

    /// Changes the total, keeping the count: for work whose size is learnt as it goes.
    public func setTotal(_ total: UInt64) {
        self.total = total
    }

    /// Counts `n` more bytes done, redrawing the line at most every 100 ms.
    public func advance(by n: Int) {
        doneBytes += UInt64(n)
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let ms = Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
        if ms - lastDraw < 100 { return }
        lastDraw = ms
        draw()
    }

    private func draw() {
        // A total still unknown (`setTotal` comes later) draws nothing yet.
        guard total > 0 else { return }
        let pct = total > 0 ? Int(doneBytes * 100 / total) : 100
        let line = "\r\(label): \(ByteCount.format(doneBytes)) of \(ByteCount.format(total)) (\(pct)%)\u{1B}[K"
        _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
        drawn = true
    }

    /// Clears the progress line, if one was drawn.
    public func done() {
        if drawn {
            let clear = "\r\u{1B}[K"
            _ = clear.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
            drawn = false
        }
    }
}

/// Byte counts for people, in binary units.
public enum ByteCount {
    /// `1.5 GiB`, `312 KiB`, `17 B`.
    public static func format(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 {
            v /= 1024
            u += 1
        }
        if u == 0 { return "\(n) B" }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[u])"
    }
}
