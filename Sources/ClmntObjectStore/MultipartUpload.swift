import Dispatch
import Foundation
import NIOCore

/// Streams bytes into one object as an S3 multipart upload, for synchronous writers (clmnt's
/// backup writer runs on its own thread): `write` cuts the bytes into parts and hands each to
/// the async client, blocking while `maxPartsInFlight` parts are on their way, so memory
/// stays at most `(maxPartsInFlight + 1) × partSize`. `finish()` completes the upload (the
/// object appears only then); any failure, and `abort()`, aborts it, so no multipart upload
/// is left behind while the server can be reached. A part that fails is sent again with
/// exponential backoff, `maxAttempts` times in all.
///
/// Call from a thread of your own, never from async code: the calls block the calling thread
/// until the network answers. Not for concurrent use by several threads.
public final class MultipartUpload: @unchecked Sendable {
    public struct Options: Sendable {
        /// Bytes per part; S3 requires at least 5 MiB for every part but the last.
        public var partSize: Int
        public var maxPartsInFlight: Int
        /// Tries per part, the first included.
        public var maxAttempts: Int
        /// The wait before the second try; doubled before each further one.
        public var initialBackoff: Double

        public static let minimumPartSize = 5 << 20

        public init(partSize: Int = 16 << 20, maxPartsInFlight: Int = 2, maxAttempts: Int = 4, initialBackoff: Double = 0.5) {
            self.partSize = partSize
            self.maxPartsInFlight = maxPartsInFlight
            self.maxAttempts = maxAttempts
            self.initialBackoff = initialBackoff
        }
    }

    public let bucket: String
    public let key: String
    public let uploadID: String
    public let options: Options
    let client: ObjectStoreClient

    private var current: ByteBuffer
    private var nextPartNumber = 1
    private var totalBytes: Int64 = 0
    private var state: State = .open
    private enum State { case open, finished, aborted }

    // Shared with the part tasks.
    private let lock = NSLock()
    private var eTags: [Int: String] = [:]
    private var firstFailure: ObjectStoreError?
    private let window: DispatchSemaphore
    private let inFlight = DispatchGroup()

    /// Begins the upload (blocking). Throws when the server refuses it; nothing is left behind then.
    public init(client: ObjectStoreClient, bucket: String, key: String, options: Options = Options()) throws {
        guard options.partSize >= Options.minimumPartSize, options.partSize <= 5 << 30 else {
            throw ObjectStoreError(operation: "MultipartUpload", bucket: bucket, key: key,
                                   reason: .usage("part size \(options.partSize) is outside 5 MiB...5 GiB"))
        }
        guard options.maxPartsInFlight >= 1, options.maxAttempts >= 1 else {
            throw ObjectStoreError(operation: "MultipartUpload", bucket: bucket, key: key,
                                   reason: .usage("at least one part in flight and one attempt"))
        }
        self.client = client
        self.bucket = bucket
        self.key = key
        self.options = options
        self.window = DispatchSemaphore(value: options.maxPartsInFlight)
        self.current = ByteBufferAllocator().buffer(capacity: options.partSize)
        self.uploadID = try Self.blocking { try await client.createMultipartUpload(bucket: bucket, key: key) }
    }

    /// Appends bytes to the object. Blocks while the window of parts in flight is full.
    /// Throws (after aborting the upload) when a part failed for good.
    public func write<Bytes: Collection>(_ bytes: Bytes) throws where Bytes.Element == UInt8 {
        try checkOpen("write")
        var rest = bytes[...]
        while !rest.isEmpty {
            let size = currentPartSize
            let room = size - current.readableBytes
            let piece = rest.prefix(room)
            current.writeBytes(piece)
            rest = rest.dropFirst(piece.count)
            totalBytes += Int64(piece.count)
            if current.readableBytes == size { try sendCurrentPart() }
        }
    }

    /// `partSize`, doubled after every 1,000 parts (S3 allows 10,000): small parts keep memory
    /// low for the usual archive, and an archive of any size still fits (8 MiB parts reach
    /// 8 GB at part 1,000, 16 MiB parts the next 16 GB, and so on).
    private var currentPartSize: Int {
        min(options.partSize << min((nextPartNumber - 1) / 1000, 9), 5 << 30)
    }

    /// Sends the last part, waits for every part and completes the upload: the object exists
    /// when this returns. Returns the number of bytes written. On failure the upload is aborted.
    @discardableResult
    public func finish() throws -> Int64 {
        try checkOpen("finish")
        do {
            if current.readableBytes > 0 || nextPartNumber == 1 { try sendCurrentPart() }
            inFlight.wait()
            if let failure = locked({ firstFailure }) { throw failure }
            let parts = locked { eTags.map { (partNumber: $0.key, eTag: $0.value) } }
            try Self.blocking { [client, bucket, key, uploadID] in
                try await client.completeMultipartUpload(bucket: bucket, key: key, uploadID: uploadID, parts: parts)
            }
            state = .finished
            return totalBytes
        } catch let error as ObjectStoreError {
            throw abortAfter(error)
        }
    }

    /// Gives the upload up: waits for the parts on their way, then aborts it so the server
    /// drops every part. Safe to call more than once, and after a failure.
    public func abort() {
        guard state == .open else { return }
        _ = abortAfter(nil)
    }

    // MARK: - Parts

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    private func checkOpen(_ operation: String) throws {
        switch state {
        case .open:
            if let failure = locked({ firstFailure }) { throw abortAfter(failure) }
        case .finished:
            throw ObjectStoreError(operation: operation, bucket: bucket, key: key, reason: .usage("the upload is already complete"))
        case .aborted:
            throw ObjectStoreError(operation: operation, bucket: bucket, key: key, reason: .usage("the upload was aborted"))
        }
    }

    private func sendCurrentPart() throws {
        guard nextPartNumber <= 10_000 else {
            throw abortAfter(ObjectStoreError(operation: "UploadPart", bucket: bucket, key: key,
                                              reason: .usage("more than 10000 parts: use a larger part size")))
        }
        let part = current
        let number = nextPartNumber
        nextPartNumber += 1
        current = ByteBufferAllocator().buffer(capacity: currentPartSize)
        window.wait()
        if let failure = locked({ firstFailure }) {
            window.signal()
            throw abortAfter(failure)
        }
        inFlight.enter()
        Task { [self] in
            defer {
                window.signal()
                inFlight.leave()
            }
            do {
                let eTag = try await uploadWithRetries(part, number: number)
                locked { eTags[number] = eTag }
            } catch {
                let failure = error as? ObjectStoreError
                    ?? ObjectStoreError(operation: "UploadPart \(number)", bucket: bucket, key: key, reason: .transport("\(error)"))
                locked { if firstFailure == nil { firstFailure = failure } }
            }
        }
    }

    private func uploadWithRetries(_ part: ByteBuffer, number: Int) async throws -> String {
        var delay = options.initialBackoff
        var attempt = 1
        while true {
            do {
                return try await client.uploadPart(bucket: bucket, key: key, uploadID: uploadID, partNumber: number, body: part)
            } catch let error as ObjectStoreError {
                // Another part failed for good: stop trying this one.
                let givenUp = locked { firstFailure != nil }
                guard attempt < options.maxAttempts, Self.isWorthRetrying(error), !givenUp else {
                    throw ObjectStoreError(operation: "UploadPart \(number) (\(attempt) tries)", bucket: bucket, key: key, reason: error.reason)
                }
                try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
                delay *= 2
                attempt += 1
            }
        }
    }

    /// Wrong credentials, a vanished upload or a missing bucket will not heal by waiting.
    static func isWorthRetrying(_ error: ObjectStoreError) -> Bool {
        switch error.reason {
        case .http(let status, _, _): return !(status == 401 || status == 403 || status == 404)
        case .transport: return true
        case .invalidResponse, .configuration, .usage: return false
        }
    }

    /// Waits for the parts in flight, aborts the upload on the server and returns the error
    /// to throw: `error`, with a note when the abort could not be sent (the upload is then
    /// left for `prune` to clean).
    private func abortAfter(_ error: ObjectStoreError?) -> ObjectStoreError {
        let already = state == .aborted
        state = .aborted
        locked { if firstFailure == nil { firstFailure = error ?? ObjectStoreError(operation: "abort", bucket: bucket, key: key, reason: .usage("aborted")) } }
        let failure = error ?? ObjectStoreError(operation: "MultipartUpload", bucket: bucket, key: key, reason: .usage("the upload was aborted"))
        guard !already else { return failure }
        inFlight.wait()
        do {
            try Self.blocking { [client, bucket, key, uploadID] in
                try await client.abortMultipartUpload(bucket: bucket, key: key, uploadID: uploadID)
            }
            return failure
        } catch {
            let abortFailure = (error as? ObjectStoreError)?.description ?? "\(error)"
            return ObjectStoreError(operation: failure.operation, bucket: bucket, key: key, reason: Self.appending(
                failure.reason, note: "; the upload \(uploadID) could not be aborted (\(abortFailure)): prune removes it later"))
        }
    }

    private static func appending(_ reason: ObjectStoreError.Reason, note: String) -> ObjectStoreError.Reason {
        switch reason {
        case .http(let status, let code, let message): return .http(status: status, code: code, message: (message ?? "") + note)
        case .transport(let text): return .transport(text + note)
        case .invalidResponse(let text): return .invalidResponse(text + note)
        case .configuration(let text): return .configuration(text + note)
        case .usage(let text): return .usage(text + note)
        }
    }

    /// Runs async work from synchronous code and waits for it. The calling thread must not
    /// be one of Swift concurrency's (the work needs them free).
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        Task {
            do { box.result = .success(try await work()) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
    var result: Result<T, Error>?
}
