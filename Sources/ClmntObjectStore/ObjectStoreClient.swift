import AsyncHTTPClient
import ClmntCore
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL

/// One object of a listing.
public struct ObjectSummary: Sendable, Equatable {
    public let key: String
    public let size: Int64
    public let lastModified: String
    public let eTag: String
}

/// One page of ListObjectsV2.
public struct ObjectListPage: Sendable {
    public let objects: [ObjectSummary]
    /// The "directories" a delimiter folded keys into (`PREFIX/host-a/`).
    public let commonPrefixes: [String]
    /// Set when more pages follow: pass it as `continuationToken`.
    public let nextContinuationToken: String?
}

/// A multipart upload begun and neither completed nor aborted.
public struct MultipartUploadSummary: Sendable, Equatable {
    public let key: String
    public let uploadID: String
    public let initiated: String
}

/// What HeadObject tells about an object.
public struct ObjectInfo: Sendable, Equatable {
    public let size: Int64
    public let eTag: String?
    public let lastModified: String?
}

/// A downloading object: its size and its bytes as they arrive, in chunks, with the
/// transport's backpressure (the next chunk is read only when asked for), so memory stays
/// bounded whatever the object's size.
public struct ObjectStream: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer
    public let contentLength: Int64?
    let body: HTTPClientResponse.Body

    public func makeAsyncIterator() -> HTTPClientResponse.Body.AsyncIterator { body.makeAsyncIterator() }
}

/// A small S3 client: the operations clmnt's off-host copies need, each one signed
/// request with SigV4 on async-http-client. Safe to share between tasks; call `shutdown()`
/// (or `syncShutdown()` from synchronous code) when done.
public final class ObjectStoreClient: Sendable {
    public let config: ObjectStoreConfig
    let http: HTTPClient
    let signer: SigV4Signer
    /// How long one request may take, head and body (a 16 MiB part on a slow link included).
    let requestTimeout: TimeAmount

    /// `connectTimeout` bounds how long a request waits for a connection: async-http-client
    /// keeps retrying a refused connection until then, so it is also how fast a dead server
    /// is reported.
    public init(config: ObjectStoreConfig, requestTimeout: TimeAmount = .minutes(10),
                connectTimeout: TimeAmount = .seconds(10)) throws {
        self.config = config
        self.signer = SigV4Signer(credentials: config.credentials, region: config.region)
        self.requestTimeout = requestTimeout
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        if let caFile = config.caFile {
            guard FileManager.default.isReadableFile(atPath: caFile) else {
                throw ObjectStoreError(operation: "configure", reason: .configuration("CA file '\(caFile)' cannot be read"))
            }
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile))
            } catch {
                throw ObjectStoreError(operation: "configure", reason: .configuration(
                    "CA file '\(caFile)' holds no PEM certificate: \(error)"))
            }
        }
        let configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: connectTimeout, read: .seconds(120)))
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async throws { try await http.shutdown() }
    @available(*, noasync, message: "blocks the thread: use shutdown() in async code")
    public func syncShutdown() throws { try http.syncShutdown() }

    // MARK: - Objects

    /// PutObject with the whole body in memory (small objects; large ones go through
    /// `MultipartUpload`). The body's SHA-256 is signed and its MD5 sent as Content-MD5, so
    /// the server refuses a body damaged on the way. Returns the ETag.
    @discardableResult
    public func putObject(bucket: String, key: String, body: ByteBuffer, contentType: String = "application/octet-stream") async throws -> String {
        let response = try await send("PutObject", "PUT", bucket: bucket, key: key,
                                      headers: [("Content-Type", contentType), ("Content-MD5", Self.md5Base64(body))],
                                      body: body)
        return response.headers.first(name: "etag") ?? ""
    }

    /// The whole object, or the bytes of `range` (inclusive offsets: `0...1023` is the
    /// first KiB), refused when larger than `maxBytes`.
    public func getObject(bucket: String, key: String, range: ClosedRange<Int64>? = nil,
                          maxBytes: Int = 64 << 20) async throws -> ByteBuffer {
        var headers: [(String, String)] = []
        if let range { headers.append(("Range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response = try await send("GetObject", "GET", bucket: bucket, key: key, headers: headers,
                                      expect: [200, 206], collectBody: false)
        do {
            return try await response.body.collect(upTo: maxBytes)
        } catch {
            throw ObjectStoreError(operation: "GetObject", bucket: bucket, key: key,
                                   reason: .transport("body not read whole (larger than \(maxBytes) bytes, or cut): \(error)"))
        }
    }

    /// The object as a stream of chunks: for downloads of any size in bounded memory.
    public func getObjectStream(bucket: String, key: String) async throws -> ObjectStream {
        let response = try await send("GetObject", "GET", bucket: bucket, key: key, collectBody: false)
        let length = response.headers.first(name: "content-length").flatMap { Int64($0) }
        return ObjectStream(contentLength: length, body: response.body)
    }

    /// The object's size and ETag; nil when there is no such object.
    public func headObject(bucket: String, key: String) async throws -> ObjectInfo? {
        let response = try await send("HeadObject", "HEAD", bucket: bucket, key: key, expect: [200, 404])
        guard response.status.code == 200 else { return nil }
        let size = response.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0
        return ObjectInfo(size: size, eTag: response.headers.first(name: "etag"),
                          lastModified: response.headers.first(name: "last-modified"))
    }

    /// Deletes the object; deleting one that does not exist succeeds, as in S3.
    public func deleteObject(bucket: String, key: String) async throws {
        _ = try await send("DeleteObject", "DELETE", bucket: bucket, key: key, expect: [200, 204, 404])
    }

    /// One page of keys under `prefix`; with a `delimiter`, keys past it are folded into
    /// `commonPrefixes`.
    public func listObjects(bucket: String, prefix: String = "", delimiter: String? = nil,
                            continuationToken: String? = nil, maxKeys: Int? = nil) async throws -> ObjectListPage {
        var query: [(String, String)] = [("list-type", "2")]
        if !prefix.isEmpty { query.append(("prefix", prefix)) }
        if let delimiter { query.append(("delimiter", delimiter)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        if let maxKeys { query.append(("max-keys", String(maxKeys))) }
        let root = try await sendForXML("ListObjectsV2", "GET", bucket: bucket, key: nil, query: query)
        let objects = root.all("Contents").map {
            ObjectSummary(key: $0.string("Key") ?? "", size: Int64($0.string("Size") ?? "") ?? 0,
                          lastModified: $0.string("LastModified") ?? "", eTag: $0.string("ETag") ?? "")
        }
        let prefixes = root.all("CommonPrefixes").compactMap { $0.string("Prefix") }
        let truncated = root.string("IsTruncated") == "true"
        let next = truncated ? root.string("NextContinuationToken") : nil
        if truncated && (next ?? "").isEmpty {
            throw ObjectStoreError(operation: "ListObjectsV2", bucket: bucket,
                                   reason: .invalidResponse("a truncated page without NextContinuationToken"))
        }
        return ObjectListPage(objects: objects, commonPrefixes: prefixes, nextContinuationToken: next)
    }

    /// Every key under `prefix`, all pages.
    public func listAllObjects(bucket: String, prefix: String = "") async throws -> [ObjectSummary] {
        var all: [ObjectSummary] = []
        var token: String?
        repeat {
            let page = try await listObjects(bucket: bucket, prefix: prefix, continuationToken: token)
            all += page.objects
            token = page.nextContinuationToken
        } while token != nil
        return all
    }

    // MARK: - Multipart uploads

    /// Begins a multipart upload; returns its upload id.
    public func createMultipartUpload(bucket: String, key: String, contentType: String = "application/octet-stream") async throws -> String {
        let root = try await sendForXML("CreateMultipartUpload", "POST", bucket: bucket, key: key,
                                        query: [("uploads", "")], headers: [("Content-Type", contentType)])
        guard let id = root.string("UploadId"), !id.isEmpty else {
            throw ObjectStoreError(operation: "CreateMultipartUpload", bucket: bucket, key: key,
                                   reason: .invalidResponse("no UploadId"))
        }
        return id
    }

    /// Uploads part `partNumber` (1...10000). The part's SHA-256 is signed (the server
    /// recomputes it) and its MD5 sent as Content-MD5; returns the part's ETag.
    public func uploadPart(bucket: String, key: String, uploadID: String, partNumber: Int, body: ByteBuffer) async throws -> String {
        let response = try await send("UploadPart", "PUT", bucket: bucket, key: key,
                                      query: [("partNumber", String(partNumber)), ("uploadId", uploadID)],
                                      headers: [("Content-MD5", Self.md5Base64(body))], body: body)
        guard let eTag = response.headers.first(name: "etag"), !eTag.isEmpty else {
            throw ObjectStoreError(operation: "UploadPart \(partNumber)", bucket: bucket, key: key,
                                   reason: .invalidResponse("no ETag"))
        }
        return eTag
    }

    /// Joins the parts into the object, which appears only now.
    public func completeMultipartUpload(bucket: String, key: String, uploadID: String,
                                        parts: [(partNumber: Int, eTag: String)]) async throws {
        var xml = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        for part in parts.sorted(by: { $0.partNumber < $1.partNumber }) {
            xml += "<Part><PartNumber>\(part.partNumber)</PartNumber><ETag>\(MarkupText.escaped(part.eTag))</ETag></Part>"
        }
        xml += "</CompleteMultipartUpload>"
        // S3 may answer 200 and still report an error in the body, after a long wait.
        let root = try await sendForXML("CompleteMultipartUpload", "POST", bucket: bucket, key: key,
                                        query: [("uploadId", uploadID)], headers: [("Content-Type", "application/xml")],
                                        body: ByteBuffer(string: xml))
        if root.name == "Error" {
            throw ObjectStoreError(operation: "CompleteMultipartUpload", bucket: bucket, key: key,
                                   reason: .http(status: 200, code: root.string("Code"), message: root.string("Message")))
        }
    }

    /// Discards an upload and its parts. An upload already gone counts as aborted.
    public func abortMultipartUpload(bucket: String, key: String, uploadID: String) async throws {
        _ = try await send("AbortMultipartUpload", "DELETE", bucket: bucket, key: key,
                           query: [("uploadId", uploadID)], expect: [200, 204, 404])
    }

    /// The uploads begun under `prefix` and never completed nor aborted (what a killed
    /// backup leaves): prune aborts them.
    public func listMultipartUploads(bucket: String, prefix: String = "") async throws -> [MultipartUploadSummary] {
        var all: [MultipartUploadSummary] = []
        var keyMarker: String?
        var uploadIDMarker: String?
        while true {
            var query: [(String, String)] = [("uploads", "")]
            if !prefix.isEmpty { query.append(("prefix", prefix)) }
            if let keyMarker { query.append(("key-marker", keyMarker)) }
            if let uploadIDMarker { query.append(("upload-id-marker", uploadIDMarker)) }
            let root: XMLElementNode
            do {
                root = try await sendForXML("ListMultipartUploads", "GET", bucket: bucket, key: nil, query: query)
            } catch let error as ObjectStoreError where error.s3Code == "NoSuchUpload" {
                // rclone's server answers so for a bucket that has had no upload since it started.
                return all
            }
            all += root.all("Upload").map {
                MultipartUploadSummary(key: $0.string("Key") ?? "", uploadID: $0.string("UploadId") ?? "",
                                       initiated: $0.string("Initiated") ?? "")
            }
            guard root.string("IsTruncated") == "true",
                  let nextKey = root.string("NextKeyMarker"), !nextKey.isEmpty else { return all }
            if nextKey == keyMarker && root.string("NextUploadIdMarker") == uploadIDMarker { return all }
            keyMarker = nextKey
            uploadIDMarker = root.string("NextUploadIdMarker")
        }
    }

    // MARK: - Requests

    /// Signs and sends one request; a status outside `expect` becomes an ObjectStoreError
    /// with S3's code and message. With `collectBody` the body is read (up to 1 MiB) into
    /// `bodyBytes`; otherwise the caller reads the stream.
    struct Answer {
        let status: HTTPResponseStatus
        let headers: HTTPHeaders
        let body: HTTPClientResponse.Body
        var bodyBytes: ByteBuffer?
    }

    func send(_ operation: String, _ method: String, bucket: String, key: String?,
              query: [(String, String)] = [], headers: [(String, String)] = [], body: ByteBuffer? = nil,
              expect: Set<UInt> = [200], collectBody: Bool = true) async throws -> Answer {
        let (scheme, host, path) = config.address(bucket: bucket, key: key)
        let payloadHash = body.map { SigV4Signer.sha256Hex($0.readableBytesView) } ?? SigV4Signer.emptyPayloadHash
        var toSign = headers
        toSign.append(("x-amz-content-sha256", payloadHash))
        toSign.append(("Host", host))
        let signature = signer.sign(method: method, host: host, path: path, query: query, headers: toSign,
                                    payloadHash: payloadHash, date: Date())
        // The URL carries exactly the encoded forms that were signed.
        let encodedQuery = query.map { SigV4Signer.uriEncode($0.0, keepSlash: false) + "=" + SigV4Signer.uriEncode($0.1, keepSlash: false) }
            .joined(separator: "&")
        var request = HTTPClientRequest(url: "\(scheme)://\(host)\(SigV4Signer.canonicalPath(path))"
                                        + (encodedQuery.isEmpty ? "" : "?" + encodedQuery))
        request.method = HTTPMethod(rawValue: method)
        for header in signature.headers { request.headers.add(name: header.name, value: header.value) }
        if let body {
            request.body = .bytes(body)
        } else if method == "PUT" || method == "POST" {
            request.headers.replaceOrAdd(name: "Content-Length", value: "0")
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: requestTimeout)
        } catch {
            throw ObjectStoreError(operation: operation, bucket: bucket, key: key, reason: .transport(String(describing: error)))
        }
        var answer = Answer(status: response.status, headers: response.headers, body: response.body)
        let ok = expect.contains(response.status.code)
        if collectBody || !ok {
            do {
                answer.bodyBytes = try await response.body.collect(upTo: 1 << 20)
            } catch {
                throw ObjectStoreError(operation: operation, bucket: bucket, key: key,
                                       reason: .transport("answer cut short: \(error)"))
            }
        }
        guard ok else {
            var code: String?
            var message: String?
            if let bytes = answer.bodyBytes, bytes.readableBytes > 0,
               let root = XMLElementNode.parse(Data(bytes.readableBytesView)), root.name == "Error" {
                code = root.string("Code")
                message = root.string("Message")
            }
            if code == nil, response.status.code == 403 { code = "AccessDenied" }
            throw ObjectStoreError(operation: operation, bucket: bucket, key: key,
                                   reason: .http(status: Int(response.status.code), code: code, message: message))
        }
        return answer
    }

    func sendForXML(_ operation: String, _ method: String, bucket: String, key: String?,
                    query: [(String, String)] = [], headers: [(String, String)] = [],
                    body: ByteBuffer? = nil) async throws -> XMLElementNode {
        let answer = try await send(operation, method, bucket: bucket, key: key, query: query, headers: headers, body: body)
        guard let bytes = answer.bodyBytes, let root = XMLElementNode.parse(Data(bytes.readableBytesView)) else {
            throw ObjectStoreError(operation: operation, bucket: bucket, key: key, reason: .invalidResponse("the body is not XML"))
        }
        return root
    }

    static func md5Base64(_ buffer: ByteBuffer) -> String {
        Data(Insecure.MD5.hash(data: buffer.readableBytesView)).base64EncodedString()
    }
}
