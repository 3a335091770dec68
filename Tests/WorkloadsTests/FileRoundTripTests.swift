// The io workload does real file I/O and removes its file on every path, errors included.
import Glibc
import Testing
@testable import Workloads

@Suite struct FileRoundTripTests {
    @Test func writesReadsBackAndRemovesItsFile() throws {
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        for index in 0..<20 {
            let task = FileRoundTrip(directory: directory, index: index, lines: 50)
            #expect(try runFileRoundTrip(task) == task.contents.count)
        }
        #expect(entries(of: directory) == [])
    }

    @Test func removesItsFileWhenTheWriteFails() throws {
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        let task = FileRoundTrip(directory: directory, index: 5, lines: 50)
        // The task's path leads to /dev/full: open succeeds, write fails with ENOSPC.
        #expect(symlink("/dev/full", task.path) == 0)
        let error = #expect(throws: FileRoundTripError.self) { try runFileRoundTrip(task) }
        #expect(error?.call == "write")
        #expect(error?.errno == ENOSPC)
        #expect(entries(of: directory) == [])
    }

    @Test func failsClearlyWhenTheDirectoryIsMissing() {
        let task = FileRoundTrip(directory: "/nonexistent-forkpool-dir", index: 1)
        let error = #expect(throws: FileRoundTripError.self) { try runFileRoundTrip(task) }
        #expect(error?.errno == ENOENT)
        #expect(error?.description.contains("/nonexistent-forkpool-dir/task-1.txt") == true)
    }

    @Test func latencyModeWaitsAtLeastTheGivenTime() throws {
        let directory = try makeScratchDirectory()
        defer { removeScratchDirectory(directory) }
        var start = timespec(), end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        _ = try runFileRoundTrip(FileRoundTrip(directory: directory, index: 0, lines: 1, latencyMicroseconds: 20_000))
        clock_gettime(CLOCK_MONOTONIC, &end)
        let elapsed = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        #expect(elapsed >= 0.02)
    }

    @Test func scratchDirectoryIsRemovedWithLeftovers() throws {
        let directory = try makeScratchDirectory()
        let fd = open("\(directory)/stray", O_CREAT | O_WRONLY, 0o600)
        close(fd)
        removeScratchDirectory(directory)
        #expect(access(directory, F_OK) != 0)
    }
}

func entries(of directory: String) -> [String] {
    directoryEntries(directory)
}
