import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import Testing
@testable import ClmntObjectStore

/// The client against a real S3 server (rclone serve s3), checked with an independent
/// client (boto3). Serialized: each test starts its own server, and the machine is small.
@Suite(.serialized) struct ObjectStoreClientTests {
    let bucket = RcloneS3Server.bucket

    /// Runs blocking code on a thread of its own, as clmnt's backup writer does: the
    /// MultipartUpload bridge must never block one of Swift concurrency's threads.
    func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(with: Result { try work() })
            }
        }
    }

    /// The regular files below `directory`, as relative paths.
    func filesUnder(_ directory: String) throws -> [String] {
        let names = try FileManager.default.subpathsOfDirectory(atPath: directory)
        return names.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }

    /// Shuts the client down on a thread of its own (a defer cannot await).
    func shutDown(_ client: ObjectStoreClient) {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            try? client.syncShutdown()
            done.signal()
        }
        done.wait()
    }

    @Test func putGetHeadListDelete() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        do {
            let key = "fleet/host-a/fleet 2026-12-07.tar.zst"
            let eTag = try await client.putObject(bucket: bucket, key: key, body: ByteBuffer(string: "hello, bucket"))
            #expect(eTag.contains(Insecure.MD5.hash(data: Array("hello, bucket".utf8)).map { String(format: "%02x", $0) }.joined()))
            #expect(try server.boto3("print(s3.get_object(Bucket=bucket, Key=\"\(key)\")['Body'].read().decode())") == "hello, bucket")

            let whole = try await client.getObject(bucket: bucket, key: key)
            #expect(String(buffer: whole) == "hello, bucket")
            let info = try #require(try await client.headObject(bucket: bucket, key: key))
            #expect(info.size == 13)
            #expect(try await client.headObject(bucket: bucket, key: "fleet/host-a/none") == nil)
            #expect(try await client.listAllObjects(bucket: bucket, prefix: "fleet/").map(\.key) == [key])

            try await client.deleteObject(bucket: bucket, key: key)
            #expect(try await client.headObject(bucket: bucket, key: key) == nil)
            #expect(try server.boto3("print(len(s3.list_objects_v2(Bucket=bucket).get('Contents', [])))") == "0")

            do {
                _ = try await client.getObject(bucket: bucket, key: key)
                Issue.record("a deleted object was read")
            } catch let error as ObjectStoreError {
                #expect(error.httpStatus == 404)
                #expect(error.s3Code == "NoSuchKey")
                #expect(error.description.hasPrefix("s3 GetObject s3://backups/fleet/host-a/fleet 2026-12-07.tar.zst: HTTP 404 NoSuchKey"))
            }
        }
    }

    @Test func rangedGetReadsOnlyTheFirstBytes() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        let bytes = pseudoRandomBytes(300_000)
        try await client.putObject(bucket: bucket, key: "h/archive", body: ByteBuffer(bytes: bytes))
        let first = try await client.getObject(bucket: bucket, key: "h/archive", range: 0...4095)
        #expect(first.readableBytes == 4096)
        #expect(Array(first.readableBytesView) == Array(bytes[0..<4096]))
        let middle = try await client.getObject(bucket: bucket, key: "h/archive", range: 100_000...100_009)
        #expect(Array(middle.readableBytesView) == Array(bytes[100_000...100_009]))
        // A whole read larger than the limit is refused rather than held in memory.
        await #expect(throws: ObjectStoreError.self) {
            _ = try await client.getObject(bucket: bucket, key: "h/archive", maxBytes: 1000)
        }
    }

    /// ~40 MiB in 5 MiB parts, written in odd-sized pieces from a thread of its own; boto3
    /// reads back the same bytes, and the streaming download hashes the same.
    @Test func multipartUploadOf40MiBReadsBackIdentical() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        let bytes = pseudoRandomBytes(40 << 20 | 12_345)
        let digest = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        let key = "fleet/host-a/fleet-2026-12-07.tar.zst"

        let started = Date()
        let written = try await onOwnThread {
            let upload = try MultipartUpload(client: client, bucket: RcloneS3Server.bucket, key: key,
                                             options: .init(partSize: 5 << 20, maxPartsInFlight: 3))
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + 777_777, bytes.count)
                try upload.write(bytes[offset..<end])
                offset = end
            }
            return try upload.finish()
        }
        let seconds = Date().timeIntervalSince(started)
        print("multipart upload: \(written) bytes in \(String(format: "%.2f", seconds)) s, \(String(format: "%.1f", Double(written) / seconds / 1_048_576)) MiB/s")
        #expect(written == Int64(bytes.count))

        let seen = try server.boto3("""
            body = s3.get_object(Bucket=bucket, Key="\(key)")['Body'].read()
            print(len(body), hashlib.sha256(body).hexdigest())
            """)
        #expect(seen == "\(bytes.count) \(digest)")

        let stream = try await client.getObjectStream(bucket: bucket, key: key)
        #expect(stream.contentLength == Int64(bytes.count))
        var hasher = SHA256()
        var total = 0
        var largestChunk = 0
        for try await chunk in stream {
            hasher.update(data: chunk.readableBytesView)
            total += chunk.readableBytes
            largestChunk = max(largestChunk, chunk.readableBytes)
        }
        #expect(total == bytes.count)
        #expect(hasher.finalize().map { String(format: "%02x", $0) }.joined() == digest)
        // Chunks as the transport delivers them, not the object in one piece.
        #expect(largestChunk < 4 << 20)
        #expect(try await client.listMultipartUploads(bucket: bucket).isEmpty)
    }

    @Test func listWithPrefixOverTwoHosts() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        let keys = ["nightly/host-a/fleet-1.tar.zst", "nightly/host-a/fleet-2.tar.zst",
                    "nightly/host-b/fleet-1.tar.zst", "other/host-c/fleet-1.tar.zst"]
        for key in keys { try await client.putObject(bucket: bucket, key: key, body: ByteBuffer(string: key)) }

        let hosts = try await client.listObjects(bucket: bucket, prefix: "nightly/", delimiter: "/")
        #expect(hosts.commonPrefixes.sorted() == ["nightly/host-a/", "nightly/host-b/"])
        #expect(hosts.objects.isEmpty)
        let hostA = try await client.listAllObjects(bucket: bucket, prefix: "nightly/host-a/")
        #expect(hostA.map(\.key) == ["nightly/host-a/fleet-1.tar.zst", "nightly/host-a/fleet-2.tar.zst"])
        #expect(hostA.allSatisfy { $0.size == Int64($0.key.utf8.count) })

        // One key a page: the continuation tokens walk every key once.
        var seen: [String] = []
        var token: String?
        var pages = 0
        repeat {
            let page = try await client.listObjects(bucket: bucket, prefix: "nightly/", continuationToken: token, maxKeys: 1)
            seen += page.objects.map(\.key)
            token = page.nextContinuationToken
            pages += 1
        } while token != nil && pages < 10
        #expect(seen == Array(keys.prefix(3)))
        #expect(pages >= 3)
    }

    /// The server dies mid-upload: the upload fails with one clear error, no object appears,
    /// and after a restart no multipart upload is left.
    @Test func serverKilledMidUploadFailsCleanly() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config(), connectTimeout: .seconds(1))
        defer { shutDown(client) }
        let key = "fleet/host-a/killed.tar.zst"
        let bytes = pseudoRandomBytes(6 << 20)

        let started = Date()
        let outcome: String = try await onOwnThread {
            let upload = try MultipartUpload(client: client, bucket: RcloneS3Server.bucket, key: key,
                                             options: .init(partSize: 5 << 20, maxPartsInFlight: 1, maxAttempts: 3, initialBackoff: 0.05))
            try upload.write(bytes)  // part 1 goes out
            server.crash()
            do {
                try upload.write(bytes)  // part 2 cannot
                try upload.finish()
                return "finished"
            } catch let error as ObjectStoreError {
                upload.abort()
                return error.description
            }
        }
        let took = Date().timeIntervalSince(started)
        // Given up after its 3 tries (the count, not the time, says no try was repeated without end)...
        #expect(outcome.contains(" (3 tries)"), "\(outcome)")
        // ...none of which waited for an answer the dead server never sends: each met a refused
        // connection or the 1 s connect timeout, not the 120 s read timeout. Half of that is a margin
        // no load on the machine makes up.
        #expect(took < 60, "a dead server is reported within the connect timeouts: \(took) s")
        #expect(outcome.hasPrefix("s3 UploadPart "), "\(outcome)")
        #expect(outcome.contains("no answer from the server"))
        #expect(outcome.contains("could not be aborted"), "the abort needed the server too: \(outcome)")
        #expect(!outcome.contains("\n"))

        try server.start()
        #expect(try await client.headObject(bucket: bucket, key: key) == nil)
        // rclone keeps uploads in memory: a restart drops them, as an abort would.
        #expect(try await client.listMultipartUploads(bucket: bucket).isEmpty)
        // rclone makes the key's directories when an upload begins; no file may be there.
        #expect(try filesUnder(server.dataDirectory + "/" + bucket).isEmpty)
    }

    /// What a SIGKILLed backup leaves (an upload begun, never completed nor aborted) is
    /// listed, and aborting it cleans it, as prune will.
    @Test func orphanedUploadIsListedAndAborted() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        let id = try await client.createMultipartUpload(bucket: bucket, key: "fleet/host-a/orphan.tar.zst")
        _ = try await client.uploadPart(bucket: bucket, key: "fleet/host-a/orphan.tar.zst", uploadID: id, partNumber: 1,
                                        body: ByteBuffer(bytes: pseudoRandomBytes(1000)))
        _ = try await client.createMultipartUpload(bucket: bucket, key: "elsewhere/x")
        let orphans = try await client.listMultipartUploads(bucket: bucket, prefix: "fleet/")
        #expect(orphans.map(\.key) == ["fleet/host-a/orphan.tar.zst"])
        #expect(orphans.map(\.uploadID) == [id])
        #expect(try server.boto3("print(len(s3.list_multipart_uploads(Bucket=bucket).get('Uploads', [])))") == "2")
        for orphan in orphans { try await client.abortMultipartUpload(bucket: bucket, key: orphan.key, uploadID: orphan.uploadID) }
        #expect(try await client.listMultipartUploads(bucket: bucket, prefix: "fleet/").isEmpty)
        #expect(try await client.headObject(bucket: bucket, key: "fleet/host-a/orphan.tar.zst") == nil)
    }

    /// An upload given up by its writer is aborted: nothing is listed, no object appears.
    @Test func abortedUploadLeavesNothing() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        try await onOwnThread {
            let upload = try MultipartUpload(client: client, bucket: RcloneS3Server.bucket, key: "a/given-up",
                                             options: .init(partSize: 5 << 20))
            try upload.write(pseudoRandomBytes(11 << 20))
            upload.abort()
            upload.abort()
            #expect(throws: ObjectStoreError.self) { try upload.write([1, 2, 3]) }
        }
        #expect(try await client.listMultipartUploads(bucket: bucket).isEmpty)
        #expect(try await client.headObject(bucket: bucket, key: "a/given-up") == nil)
        #expect(try filesUnder(server.dataDirectory + "/" + bucket).isEmpty)
    }

    @Test func badSecretIsOneClear403Line() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config(secret: "not-the-secret-at-all"))
        defer { shutDown(client) }
        do {
            try await client.putObject(bucket: bucket, key: "x", body: ByteBuffer(string: "x"))
            Issue.record("a bad secret was accepted")
        } catch let error as ObjectStoreError {
            #expect(error.httpStatus == 403)
            #expect(error.s3Code == "SignatureDoesNotMatch")
            #expect(error.description.hasPrefix("s3 PutObject s3://backups/x: HTTP 403 SignatureDoesNotMatch"), "\(error)")
            #expect(!error.description.contains("\n"))
        }
        // A failed part is not retried on 403: waiting does not fix a key. With 30 s before a second
        // try, any retry would show as 30 s; one refused request takes nothing like it, however loaded the machine.
        let started = Date()
        let failure: String = try await onOwnThread {
            do {
                _ = try MultipartUpload(client: client, bucket: RcloneS3Server.bucket, key: "y",
                                        options: .init(partSize: 5 << 20, maxAttempts: 4, initialBackoff: 30))
                return "started"
            } catch { return "\(error)" }
        }
        #expect(failure.contains("HTTP 403"))
        #expect(Date().timeIntervalSince(started) < 30)
    }

    /// The part checksum is verified by the server: a Content-MD5 that does not match the
    /// body is refused (BadDigest), so a part damaged on the way is never stored.
    @Test func serverVerifiesThePartChecksum() async throws {
        let server = try RcloneS3Server()
        defer { server.stop() }
        let client = try ObjectStoreClient(config: server.config())
        defer { shutDown(client) }
        let id = try await client.createMultipartUpload(bucket: bucket, key: "k")
        do {
            _ = try await client.send("UploadPart", "PUT", bucket: bucket, key: "k",
                                      query: [("partNumber", "1"), ("uploadId", id)],
                                      headers: [("Content-MD5", ObjectStoreClient.md5Base64(ByteBuffer(string: "other bytes")))],
                                      body: ByteBuffer(string: "these bytes"))
            Issue.record("a part with a wrong Content-MD5 was stored")
        } catch let error as ObjectStoreError {
            #expect(error.httpStatus == 400)
            #expect(error.s3Code == "BadDigest")
        }
        try await client.abortMultipartUpload(bucket: bucket, key: "k", uploadID: id)
    }

    @Test func retryPolicy() {
        func error(_ reason: ObjectStoreError.Reason) -> ObjectStoreError { ObjectStoreError(operation: "UploadPart 1", reason: reason) }
        #expect(MultipartUpload.isWorthRetrying(error(.http(status: 500, code: "InternalError", message: nil))))
        #expect(MultipartUpload.isWorthRetrying(error(.http(status: 503, code: "SlowDown", message: nil))))
        #expect(MultipartUpload.isWorthRetrying(error(.http(status: 400, code: "BadDigest", message: nil))))
        #expect(MultipartUpload.isWorthRetrying(error(.transport("connection reset"))))
        #expect(!MultipartUpload.isWorthRetrying(error(.http(status: 403, code: "AccessDenied", message: nil))))
        #expect(!MultipartUpload.isWorthRetrying(error(.http(status: 404, code: "NoSuchUpload", message: nil))))
    }
}
