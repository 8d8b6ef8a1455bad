import Foundation

/// Where a running backup's bytes go: a local file written under a temporary name and
/// committed atomically, or a stream (standard output, an off-host upload).
enum BackupDestination {
    case file(AtomicOutputFile, alternatives: [String])
    case stream(any BackupStream)

    /// What a commit produced.
    struct Committed {
        /// The archive's final path (a default name may have moved on to a free one), or the stream's name.
        var path: String
        var bytes: Int64
        /// Why the archive's completeness mark could not be set (local files only).
        var markFailed: String?
    }

    var stream: (any BackupStream)? {
        if case .stream(let stream) = self { return stream }
        return nil
    }

    var isLocalFile: Bool {
        if case .file = self { return true }
        return false
    }

    var displayPath: String {
        switch self {
        case .file(let file, _): return file.finalPath
        case .stream(let stream): return stream.name
        }
    }

    /// The sink the archive writer writes to (make it once).
    func makeSink() -> any OutputSink {
        switch self {
        case .file(let file, _): return FileDescriptorSink(fileDescriptor: file.fileDescriptor, path: file.finalPath)
        case .stream(let stream): return BackupStreamSink(stream: stream)
        }
    }

    /// Marks a local archive with what it missed, then renames it into place (or the first
    /// free alternative name); a stream is finished (an upload completed).
    func commit(missed: [MissedFile], replace: Bool) throws(BackupError) -> Committed {
        switch self {
        case .file(let file, let alternatives):
            let markFailed = BackupStatusMark(missed: missed).write(to: file.fileDescriptor)
            do { try file.commit(replace: replace, alternatives: alternatives) } catch { throw BackupError(writing: error) }
            var status = stat()
            stat(file.finalPath, &status)
            return Committed(path: file.finalPath, bytes: Int64(status.st_size), markFailed: markFailed)
        case .stream(let stream):
            do { return Committed(path: stream.name, bytes: try stream.commit()) } catch {
                throw .archive(ArchiveError(.finish, path: stream.name, message: "\(error)"))
            }
        }
    }

    /// Gives the archive up: the partial file is removed, an upload aborted.
    func discard() {
        switch self {
        case .file(let file, _): file.discard()
        case .stream(let stream): stream.discard()
        }
    }
}
