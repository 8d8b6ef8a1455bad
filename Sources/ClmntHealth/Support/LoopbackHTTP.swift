import ClmntCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An HTTP answer, as much of it as a health check or a webhook needs.
public struct HTTPResponse: Sendable {
    public let status: Int
    /// Header names lower-cased.
    public let headers: [String: String]
    /// At most the body limit of the request.
    public let body: Data
    /// From the start of the connect to the end of the answer.
    public let elapsedMs: Double
}

/// Why no HTTP answer came.
public enum HTTPFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case refused
    case timedOut(seconds: Double)
    case network(operation: String, reason: String)
    case malformed(String)
    /// The listener is not the user the request was meant for: nothing was sent.
    case foreignListener(port: Int, owner: uid_t?, expected: uid_t)

    public var description: String {
        switch self {
        case .refused: return "connection refused"
        case .timedOut(let seconds): return "no answer within \(JSONOutput.number(seconds)) s"
        case .network(let operation, let reason): return "\(operation) failed: \(reason)"
        case .malformed(let what): return "malformed HTTP answer: \(what)"
        case .foreignListener(let port, let owner, let expected):
            let holder = owner.map { "is held by \(userText($0))" } ?? "has no owner we can see"
            return "the listener on 127.0.0.1:\(port) \(holder), not \(userText(expected)): nothing sent"
        }
    }

    public var isForeignListener: Bool {
        if case .foreignListener = self { return true }
        return false
    }

    private func userText(_ uid: uid_t) -> String {
        UserAccounts.user(uid: uid).map { "uid \(uid) (\(PathBytes($0.name).description))" } ?? "uid \(uid)"
    }
}

/// A minimal HTTP/1.1 client over plain POSIX sockets, for 127.0.0.1 only.
///
/// URLSession on Linux cannot be trusted to honour a short timeout against a
/// peer that accepts and never answers, and it costs milliseconds to set up in
/// a process that cron starts every few minutes. One request per connection,
/// `Connection: close`, one deadline for the whole exchange.
public enum LoopbackHTTP {
    /// With `listenerOwner`, the request is sent only when the socket that took the
    /// connection belongs to that uid (``LoopbackSocketOwner``): a secret in the headers
    /// goes to its owner's listener, not to whoever holds the port.
    public static func request(method: String, port: Int, path: String, headers: [(String, String)] = [],
                               body: Data? = nil, timeout: Double, bodyLimit: Int = 64 * 1024,
                               listenerOwner: uid_t? = nil) -> Result<HTTPResponse, HTTPFailure> {
        guard (1...65535).contains(port) else { return .failure(.network(operation: "connect", reason: "invalid port \(port)")) }
        let start = monotonicSeconds()
        let deadline = start + timeout
        let rawSocket = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard rawSocket >= 0 else { return .failure(.network(operation: "socket", reason: errnoText())) }
        let connection = FileDescriptor(adopting: rawSocket, path: "127.0.0.1:\(port)")
        let fd = connection.rawValue

        if let failure = connect(fd, port: port, deadline: deadline, timeout: timeout) { return .failure(failure) }
        if let expected = listenerOwner {
            let owner = serverSideOwner(fd, port: port, until: min(deadline, monotonicSeconds() + 1))
            guard owner == expected else { return .failure(.foreignListener(port: port, owner: owner, expected: expected)) }
        }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: clmnt-health\r\n"
        head += "Accept: */*\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Length: \(body.count)\r\n" }
        head += "\r\n"
        var outgoing = Data(head.utf8)
        if let body { outgoing.append(body) }
        if let failure = send(outgoing, on: fd, deadline: deadline, timeout: timeout) { return .failure(failure) }
        return receive(on: fd, deadline: deadline, timeout: timeout, bodyLimit: bodyLimit, start: start)
    }

    /// Connects without blocking, then waits for writability until the deadline.
    private static func connect(_ fd: Int32, port: Int, deadline: Double, timeout: Double) -> HTTPFailure? {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(UInt32(0x7F00_0001).bigEndian)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected != 0 else { return nil }
        guard errno == EINPROGRESS else { return connectFailure(errno) }
        switch wait(fd, for: Int16(POLLOUT), until: deadline) {
        case .timedOut: return .timedOut(seconds: timeout)
        case .failed(let reason): return .network(operation: "connect", reason: reason)
        case .ready: break
        }
        var socketError: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &socketError, &length)
        return socketError != 0 ? connectFailure(socketError) : nil
    }

    /// Sends all of `outgoing` before the deadline.
    private static func send(_ outgoing: Data, on fd: Int32, deadline: Double, timeout: Double) -> HTTPFailure? {
        var sent = 0
        while sent < outgoing.count {
            let written = outgoing.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
            }
            if written > 0 { sent += written; continue }
            if written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                switch wait(fd, for: Int16(POLLOUT), until: deadline) {
                case .timedOut: return .timedOut(seconds: timeout)
                case .failed(let reason): return .network(operation: "send", reason: reason)
                case .ready: continue
                }
            }
            return .network(operation: "send", reason: errnoText())
        }
        return nil
    }

    /// Reads until the answer is complete, the peer closes, or the limit is reached.
    private static func receive(on fd: Int32, deadline: Double, timeout: Double, bodyLimit: Int,
                                start: Double) -> Result<HTTPResponse, HTTPFailure> {
        let limit = 16 * 1024 + bodyLimit
        var incoming = Data()
        var parsed: (status: Int, headers: [String: String], bodyStart: Int)?
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            if let parsed, isComplete(incoming, parsed.headers, bodyStart: parsed.bodyStart) { break }
            if incoming.count >= limit { break }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                incoming.append(contentsOf: buffer[0..<count])
                if parsed == nil, let head = parseHead(incoming) {
                    guard let status = head.status else { return .failure(.malformed("bad status line")) }
                    parsed = (status, head.headers, head.bodyStart)
                }
                continue
            }
            if count == 0 { break }
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR {
                switch wait(fd, for: Int16(POLLIN), until: deadline) {
                case .timedOut: return .failure(.timedOut(seconds: timeout))
                case .failed(let reason): return .failure(.network(operation: "receive", reason: reason))
                case .ready: continue
                }
            }
            if errno == ECONNRESET, let parsed { return .success(makeResponse(incoming, parsed, bodyLimit, start)) }
            return .failure(.network(operation: "receive", reason: errnoText()))
        }
        guard let parsed else {
            return .failure(incoming.isEmpty ? .malformed("connection closed without an answer") : .malformed("incomplete header"))
        }
        return .success(makeResponse(incoming, parsed, bodyLimit, start))
    }

    // MARK: - Parsing

    private static func parseHead(_ data: Data) -> (status: Int?, headers: [String: String], bodyStart: Int)? {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else { return nil }
        let text = String(decoding: data[data.startIndex..<end.lowerBound], as: UTF8.self)
        var lines = text.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
        var status: Int?
        if statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/"), let code = Int(statusLine[1]), (100...999).contains(code) {
            status = code
        }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()] =
                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, headers, end.upperBound - data.startIndex)
    }

    private static func isComplete(_ data: Data, _ headers: [String: String], bodyStart: Int) -> Bool {
        let bodyBytes = data.count - bodyStart
        if let length = headers["content-length"].flatMap({ Int($0) }) { return bodyBytes >= length }
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            return data.suffix(5) == Data("0\r\n\r\n".utf8)
        }
        return false
    }

    private static func makeResponse(_ data: Data, _ head: (status: Int, headers: [String: String], bodyStart: Int),
                                     _ bodyLimit: Int, _ start: Double) -> HTTPResponse {
        var body = Data(data.dropFirst(head.bodyStart))
        if head.headers["transfer-encoding"]?.lowercased().contains("chunked") == true { body = dechunk(body) }
        if let length = head.headers["content-length"].flatMap({ Int($0) }), body.count > length { body = body.prefix(length) }
        return HTTPResponse(status: head.status, headers: head.headers, body: Data(body.prefix(bodyLimit)),
                            elapsedMs: (monotonicSeconds() - start) * 1000)
    }

    private static func dechunk(_ data: Data) -> Data {
        var result = Data()
        var index = data.startIndex
        while index < data.endIndex {
            guard let lineEnd = data[index...].firstRange(of: Data("\r\n".utf8)) else { break }
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self)
                .split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(sizeText, radix: 16), size > 0 else { break }
            let chunkStart = lineEnd.upperBound
            let chunkEnd = min(data.endIndex, chunkStart + size)
            result.append(data[chunkStart..<chunkEnd])
            index = min(data.endIndex, chunkEnd + 2)
        }
        return result
    }

    // MARK: - System calls

    private enum WaitResult { case ready, timedOut, failed(String) }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: Double) -> WaitResult {
        while true {
            let remaining = deadline - monotonicSeconds()
            if remaining <= 0 { return .timedOut }
            var descriptor = pollfd(fd: fd, events: events, revents: 0)
            let result = poll(&descriptor, 1, Int32(min(remaining * 1000 + 1, Double(Int32.max))))
            if result > 0 { return .ready }
            if result == 0 { continue }
            if errno == EINTR { continue }
            return .failed(errnoText())
        }
    }

    /// The owner of the accepting end of our connection; the kernel may list it a moment after connect returns.
    private static func serverSideOwner(_ fd: Int32, port: Int, until deadline: Double) -> uid_t? {
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { return nil }
        let clientPort = Int(UInt16(bigEndian: local.sin_port))
        while true {
            if let owner = LoopbackSocketOwner.serverSide(serverPort: port, clientPort: clientPort) { return owner }
            if monotonicSeconds() >= deadline { return nil }
            usleep(2_000)
        }
    }

    private static func connectFailure(_ code: Int32) -> HTTPFailure {
        code == ECONNREFUSED ? .refused : .network(operation: "connect", reason: String(cString: strerror(code)))
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
