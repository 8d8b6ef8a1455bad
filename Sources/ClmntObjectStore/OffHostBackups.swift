import ClmntCore
import Foundation
import NIOCore

/// Fleet archives in a bucket, laid out `PREFIX/HOSTNAME/fleet-DATE.tar.zst[.age]` so many
/// hosts share one bucket: where a backup goes, what is there, what retention removes.
/// Blocking calls, for clmnt's synchronous commands (never call from async code).
public final class OffHostBackups: @unchecked Sendable {
    public let client: ObjectStoreClient
    public let location: S3Location

    public init(client: ObjectStoreClient, location: S3Location) {
        self.client = client
        self.location = location
    }

    /// The client is this object's: sources registered for reading keep it alive.
    deinit { try? client.syncShutdown() }

    /// The host's own "directory" under the prefix.
    public func hostPrefix(_ host: String) -> String { location.key(host) + "/" }

    /// A host name as a key segment: no slash, no control character, not empty.
    public static func isValidHost(_ host: String) -> Bool {
        !host.isEmpty && host != "." && host != ".." && host.utf8.count <= 253
            && !host.unicodeScalars.contains { $0 == "/" || $0.value < 0x20 || $0.value == 0x7F }
    }

    /// The first free key for `name` under this host: `fleet-2026-12-07.tar.zst`, then with the
    /// time of day, then `-2`, `-3`… (as the local default names; an object is never replaced).
    public func freeKey(for name: String, host: String, now: Date = Date()) throws -> String {
        guard let dot = name.range(of: ".tar") else { return hostPrefix(host) + name }
        let stem = String(name[..<dot.lowerBound]), ext = String(name[dot.lowerBound...])
        let timed = stem + "-" + Timestamp.timeOfDay(now)
        let candidates = [stem + ext, timed + ext] + (2...99).map { "\(timed)-\($0)\(ext)" }
        for candidate in candidates {
            let key = hostPrefix(host) + candidate
            if try blocking({ [client, location] in try await client.headObject(bucket: location.bucket, key: key) }) == nil {
                return key
            }
        }
        throw ObjectStoreError(operation: "choose a key", bucket: location.bucket, key: hostPrefix(host) + name,
                               reason: .usage("every name of today is taken"))
    }

    /// A multipart upload of a backup as it is written (`--to`).
    /// 8 MiB parts, two in flight: about 24 MiB of parts in memory (`MultipartUpload` grows the
    /// parts of a very large archive).
    public static let backupUploadOptions = MultipartUpload.Options(partSize: 8 << 20, maxPartsInFlight: 2)

    public func uploadStream(key: String, options: MultipartUpload.Options = OffHostBackups.backupUploadOptions) throws -> ObjectUploadStream {
        ObjectUploadStream(upload: try MultipartUpload(client: client, bucket: location.bucket, key: key, options: options))
    }

    /// Uploads a finished local archive (`--copy-to`); returns the bytes sent.
    public func upload(file path: String, key: String, options: MultipartUpload.Options = OffHostBackups.backupUploadOptions) throws -> Int64 {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ObjectStoreError(operation: "read", key: path, reason: .usage("cannot open \(path)"))
        }
        defer { try? handle.close() }
        let upload = try MultipartUpload(client: client, bucket: location.bucket, key: key, options: options)
        do {
            while let chunk = try handle.read(upToCount: 4 << 20), !chunk.isEmpty {
                try upload.write(chunk)
            }
        } catch {
            upload.abort()
            throw error
        }
        return try upload.finish()
    }

    /// Makes `s3://bucket/key` readable by every archive reader (`ArchiveInput`): restore,
    /// verify and the manifest readers then work on the object as on a local file.
    public func registerForReading(key: String) -> String {
        let name = "s3://\(location.bucket)/\(key)"
        ArchiveInput.register(name: name) { [self] in try ObjectRangeSource(client: client, bucket: location.bucket, key: key) }
        return name
    }

    /// Every archive under the prefix (or under `host` only), oldest first, each read from
    /// its first bytes: an encrypted one without an identity shows its name's date and says so.
    public func list(host: String? = nil) throws -> [RemoteBackup] {
        let prefix = host.map(hostPrefix) ?? (location.prefix.isEmpty ? "" : location.key(""))
        let objects = try blocking { [client, location] in try await client.listAllObjects(bucket: location.bucket, prefix: prefix) }
        var backups: [RemoteBackup] = []
        for object in objects {
            let relative = String(object.key.dropFirst(location.prefix.isEmpty ? 0 : location.key("").count))
            let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let file = parts.last, BackupCatalog.isArchiveName(String(file)) else { continue }
            let name = registerForReading(key: object.key)
            var listing = BackupCatalog.listing(archive: name, sizeBytes: object.size)
            listing.file = name
            // Encrypted and unread: the name gives the day, the object's upload time the time within it.
            if listing.encrypted == true, listing.moltCount == nil, let named = listing.date.flatMap(Timestamp.parse),
               let uploaded = Timestamp.parse(object.lastModified), abs(uploaded.timeIntervalSince(named)) < 86_400 {
                listing.date = Timestamp.format(uploaded)
            }
            backups.append(RemoteBackup(key: object.key, host: String(parts[0]), listing: listing))
        }
        return backups.sorted { ($0.listing.date ?? "", $0.key) < ($1.listing.date ?? "", $1.key) }
    }

    /// Applies `policy` to one host's archives (the newest always stays; an archive whose date
    /// cannot be read stays); removes what it lets go unless `dryRun`. Also aborts multipart
    /// uploads older than a day, which only a killed upload leaves.
    public func prune(host: String, policy: RetentionPolicy, dryRun: Bool, now: Date = Date()) throws -> RemotePruneResult {
        let backups = try list(host: host)
        var result = RemotePruneResult()
        var candidates: [RetentionCandidate] = []
        for backup in backups {
            guard let date = backup.listing.date else {
                result.kept.append(RetentionSkip(file: backup.listing.file, reason: backup.listing.unreadable ?? "no date"))
                continue
            }
            candidates.append(RetentionCandidate(name: backup.listing.file, timestamp: date, complete: backup.listing.complete,
                                                 sizeBytes: backup.listing.sizeBytes))
        }
        let newest = candidates.max { ($0.timestamp, $0.name) < ($1.timestamp, $1.name) }?.name
        for decision in policy.decide(candidates, newArchive: newest) {
            if decision.keep {
                result.kept.append(RetentionSkip(file: decision.candidate.name, reason: decision.reasons.joined(separator: ", ")))
                continue
            }
            guard let backup = backups.first(where: { $0.listing.file == decision.candidate.name }) else { continue }
            if dryRun { result.removed.append(backup.listing.file); continue }
            do {
                try blocking { [client, location] in try await client.deleteObject(bucket: location.bucket, key: backup.key) }
                result.removed.append(backup.listing.file)
            } catch {
                result.failed.append(RetentionSkip(file: backup.listing.file, reason: "\(error)"))
            }
        }
        let uploads = try blocking { [client, location, host] in
            try await client.listMultipartUploads(bucket: location.bucket, prefix: self.hostPrefix(host))
        }
        for upload in uploads {
            guard let started = Timestamp.parse(upload.initiated), now.timeIntervalSince(started) > 86_400 else { continue }
            let name = "s3://\(location.bucket)/\(upload.key) (upload \(upload.uploadID))"
            if dryRun { result.abortedUploads.append(name); continue }
            do {
                try blocking { [client, location] in
                    try await client.abortMultipartUpload(bucket: location.bucket, key: upload.key, uploadID: upload.uploadID)
                }
                result.abortedUploads.append(name)
            } catch {
                result.failed.append(RetentionSkip(file: name, reason: "\(error)"))
            }
        }
        return result
    }

    private func blocking<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) throws -> T {
        try MultipartUpload.blocking(work)
    }
}

/// One archive in the bucket.
public struct RemoteBackup: Sendable {
    public var key: String
    /// The host directory it is under.
    public var host: String
    public var listing: BackupListing
}

/// What remote retention did (or, with `dryRun`, would do).
public struct RemotePruneResult: Sendable, Encodable {
    public var removed: [String] = []
    public var kept: [RetentionSkip] = []
    public var failed: [RetentionSkip] = []
    /// Multipart uploads a killed backup left, aborted.
    public var abortedUploads: [String] = []

    enum CodingKeys: String, CodingKey {
        case removed, kept, failed
        case abortedUploads = "aborted_uploads"
    }
}

/// `fleet backup --to s3://…`: the archive streams into a multipart upload; the object
/// appears only at `commit`, and `discard` aborts the upload.
public final class ObjectUploadStream: BackupStream {
    public let name: String
    private let upload: MultipartUpload

    init(upload: MultipartUpload) {
        self.upload = upload
        name = "s3://\(upload.bucket)/\(upload.key)"
    }

    public func write(_ bytes: [UInt8]) throws { try upload.write(bytes) }
    public func commit() throws -> Int64 { try upload.finish() }
    public func discard() { upload.abort() }
}

/// An object read in ranged GETs, one ahead of the reader: a reader that stops after the
/// manifest fetched only the first 256 KiB, a restore streams the whole object in bounded
/// memory, and a range that fails (the server went away) is asked for again with backoff.
final class ObjectRangeSource: ArchiveByteSource, @unchecked Sendable {
    private let client: ObjectStoreClient
    private let bucket: String
    private let key: String
    private let size: Int64
    private var offset: Int64 = 0
    private var nextLength: Int64 = 256 << 10
    private var prefetch: Task<ByteBuffer, Error>?
    private let maxAttempts = 5

    init(client: ObjectStoreClient, bucket: String, key: String) throws {
        self.client = client
        self.bucket = bucket
        self.key = key
        guard let info = try MultipartUpload.blocking({ try await client.headObject(bucket: bucket, key: key) }) else {
            throw ObjectStoreError(operation: "GetObject", bucket: bucket, key: key, reason: .http(status: 404, code: "NoSuchKey", message: "no such object"))
        }
        size = info.size
    }

    deinit { prefetch?.cancel() }

    func nextChunk() throws -> [UInt8] {
        guard offset < size else { return [] }
        let task = prefetch ?? fetch(from: offset)
        let buffer = try MultipartUpload.blocking { try await task.value }
        offset += Int64(buffer.readableBytes)
        prefetch = offset < size ? fetch(from: offset) : nil
        guard buffer.readableBytes > 0 else {
            throw ObjectStoreError(operation: "GetObject", bucket: bucket, key: key, reason: .invalidResponse("empty range at \(offset)"))
        }
        return Array(buffer.readableBytesView)
    }

    private func fetch(from start: Int64) -> Task<ByteBuffer, Error> {
        let end = min(size, start + nextLength) - 1
        nextLength = min(nextLength * 4, 8 << 20)
        let client = self.client, bucket = self.bucket, key = self.key, attempts = maxAttempts
        return Task {
            var delay = 0.5
            var attempt = 1
            while true {
                do {
                    return try await client.getObject(bucket: bucket, key: key, range: start...end, maxBytes: Int(end - start + 1))
                } catch let error as ObjectStoreError {
                    guard attempt < attempts, MultipartUpload.isWorthRetrying(error) else { throw error }
                    try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
                    delay *= 2
                    attempt += 1
                }
            }
        }
    }
}
