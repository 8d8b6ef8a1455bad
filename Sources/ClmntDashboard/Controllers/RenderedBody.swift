import ClmntCore
import Foundation
import Hummingbird
import Synchronization

/// A response body rendered once per snapshot and served to every request until the next
/// snapshot: between two refreshes a request costs a lookup, not a rendering (rendering 40 molts
/// is what made `/api/molts` and `/` slow). The body carries a strong ETag, a hash of its bytes.
final class RenderedBodies<Key: Equatable & Sendable>: Sendable {
    private let last = Mutex<(key: Key, body: RenderedBody)?>(nil)

    /// The body rendered for `key`, rendering it when the last one was for another key.
    func body(for key: Key, render: () -> String) -> RenderedBody {
        if let hit = last.withLock({ slot in slot.flatMap { $0.key == key ? $0.body : nil } }) { return hit }
        // Rendered outside the lock: two requests racing here both render, and either result is right.
        let body = RenderedBody(ByteBuffer(string: render()))
        last.withLock { $0 = (key, body) }
        return body
    }
}

struct RenderedBody: Sendable {
    let bytes: ByteBuffer
    /// `"<first 128 bits of the SHA-256 of the bytes>"`: the same bytes have the same tag across restarts.
    let etag: String

    init(_ bytes: ByteBuffer) {
        self.bytes = bytes
        let hasher = SHA256Hasher()
        bytes.withUnsafeReadableBytes { hasher.update($0) }
        etag = "\"" + hasher.finalizeHex().prefix(32) + "\""
    }

    /// 200 with the bytes, or 304 without them when `If-None-Match` names this body.
    func response(to request: Request, contentType: String, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: contentType, .eTag: etag]
        headers.append(contentsOf: extra)
        if let tags = request.headers[.ifNoneMatch], Self.matches(tags, etag) {
            return Response(status: .notModified, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: bytes))
    }

    /// RFC 9110 13.1.2: `*`, or any listed tag equal by the weak comparison (`W/` ignored).
    static func matches(_ header: String, _ etag: String) -> Bool {
        header.split(separator: ",").contains { item in
            let tag = item.trimmingCharacters(in: .whitespaces)
            return tag == "*" || (tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag) == etag
        }
    }
}
