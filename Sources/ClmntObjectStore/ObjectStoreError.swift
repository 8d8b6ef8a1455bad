import ClmntCore

/// Every failure of the object-store layer, as one line: the operation, the object it was
/// about, and why (the HTTP status with S3's error code and message, a transport failure, or
/// a bad setting). Text from the server is escaped for the terminal.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Reason: Sendable, Equatable {
        /// The server answered with a non-success status; S3's `<Code>` and `<Message>` when
        /// the body had them.
        case http(status: Int, code: String?, message: String?)
        /// No answer: connection refused, reset, timed out, TLS failure.
        case transport(String)
        /// An answer that is not what S3 sends (unparsable XML, a missing upload id).
        case invalidResponse(String)
        /// A setting or URL that cannot work (endpoint, region, credentials, `s3://` URL).
        case configuration(String)
        /// The caller used the API out of order (a write after finish, after abort).
        case usage(String)
    }

    public let operation: String
    public let bucket: String?
    public let key: String?
    public let reason: Reason

    public init(operation: String, bucket: String? = nil, key: String? = nil, reason: Reason) {
        self.operation = operation
        self.bucket = bucket
        self.key = key
        self.reason = reason
    }

    /// The HTTP status, when the server answered.
    public var httpStatus: Int? {
        if case .http(let status, _, _) = reason { return status }
        return nil
    }

    /// S3's error code (`NoSuchKey`, `SignatureDoesNotMatch`, `BadDigest` ...).
    public var s3Code: String? {
        if case .http(_, let code, _) = reason { return code }
        return nil
    }

    public var description: String {
        var where_ = ""
        if let bucket { where_ = " s3://" + bucket + (key.map { "/" + $0 } ?? "") }
        let why: String
        switch reason {
        case .http(let status, let code, let message):
            why = "HTTP \(status)" + (code.map { " " + $0 } ?? "") + (message.map { ": " + $0 } ?? "")
        case .transport(let text): why = "no answer from the server: " + text
        case .invalidResponse(let text): why = "unexpected answer: " + text
        case .configuration(let text): why = text
        case .usage(let text): why = text
        }
        return TerminalText.line("s3 \(operation)\(where_): \(why)")
    }
}

extension ObjectStoreError: ExitStatusReporting {
    public var exitStatus: Int32 {
        if case .configuration = reason { return ExitStatus.usage }
        return ExitStatus.failure
    }
}
