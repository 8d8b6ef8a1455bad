import Foundation

/// Where a backup goes in a bucket: `s3://BUCKET/PREFIX`.
public struct S3Location: Sendable, Equatable, CustomStringConvertible {
    public let bucket: String
    /// The key prefix, without leading slash; empty for the bucket's root. A trailing slash
    /// given in the URL is kept (`s3://b/backups/` names the "directory" backups/).
    public let prefix: String

    public init(bucket: String, prefix: String = "") {
        self.bucket = bucket
        self.prefix = prefix
    }

    /// Parses `s3://BUCKET[/PREFIX]`. The bucket must be a valid S3 bucket name (3 to 63
    /// lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit).
    public init(parsing text: String) throws {
        func bad(_ why: String) -> ObjectStoreError {
            ObjectStoreError(operation: "parse URL", reason: .configuration("'\(text)' is not an s3:// URL: \(why)"))
        }
        guard text.hasPrefix("s3://") else { throw bad("it must start with s3://BUCKET") }
        let rest = text.dropFirst("s3://".count)
        let bucket = String(rest.prefix { $0 != "/" })
        guard !bucket.isEmpty else { throw bad("the bucket name is missing") }
        guard Self.isValidBucketName(bucket) else {
            throw bad("'\(bucket)' is not a bucket name (3-63 characters: a-z 0-9 . -, starting and ending with a letter or digit)")
        }
        var prefix = String(rest.dropFirst(bucket.count))
        while prefix.hasPrefix("/") { prefix.removeFirst() }
        guard !prefix.contains("//") else { throw bad("the prefix has an empty path segment (//)") }
        guard !prefix.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw bad("the prefix contains a control character")
        }
        self.init(bucket: bucket, prefix: prefix)
    }

    public static func isValidBucketName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (3...63).contains(bytes.count) else { return false }
        func alnum(_ b: UInt8) -> Bool { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) }
        guard alnum(bytes.first!), alnum(bytes.last!) else { return false }
        return bytes.allSatisfy { alnum($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
            && !name.contains("..")
    }

    /// `prefix` joined with `name` by one slash.
    public func key(_ name: String) -> String {
        prefix.isEmpty ? name : (prefix.hasSuffix("/") ? prefix + name : prefix + "/" + name)
    }

    public var description: String { "s3://" + bucket + (prefix.isEmpty ? "" : "/" + prefix) }
}

/// How to reach the object store: endpoint, region, credentials, addressing, trusted CAs.
/// `fromEnvironment` reads them the way the AWS CLI does.
public struct ObjectStoreConfig: Sendable {
    public enum Addressing: Sendable, Equatable {
        /// `https://ENDPOINT/BUCKET/KEY`: MinIO, Ceph RGW, rclone, most non-AWS servers.
        case pathStyle
        /// `https://BUCKET.s3.REGION.amazonaws.com/KEY`: AWS.
        case virtualHosted
    }

    /// The service's base URL, scheme and host (and port); nil means AWS's regional endpoint.
    public var endpoint: URL?
    public var region: String
    public var credentials: AWSCredentials
    public var addressing: Addressing
    /// A PEM file of CA certificates to trust instead of the system's (a private CA);
    /// certificates are verified either way.
    public var caFile: String?

    public init(endpoint: URL? = nil, region: String = "us-east-1", credentials: AWSCredentials,
                addressing: Addressing? = nil, caFile: String? = nil) throws {
        if let endpoint {
            guard let scheme = endpoint.scheme?.lowercased(), scheme == "http" || scheme == "https",
                  let host = endpoint.host, !host.isEmpty else {
                throw ObjectStoreError(operation: "configure", reason: .configuration(
                    "endpoint '\(endpoint.absoluteString)' must be http:// or https:// with a host"))
            }
            guard endpoint.path.isEmpty || endpoint.path == "/", endpoint.query == nil else {
                throw ObjectStoreError(operation: "configure", reason: .configuration(
                    "endpoint '\(endpoint.absoluteString)' must not have a path or query"))
            }
        }
        guard !region.isEmpty, region.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else {
            throw ObjectStoreError(operation: "configure", reason: .configuration("region '\(region)' is not a region name"))
        }
        self.endpoint = endpoint
        self.region = region
        self.credentials = credentials
        // A custom endpoint rarely has a wildcard DNS name and certificate for buckets.
        self.addressing = addressing ?? (endpoint == nil ? .virtualHosted : .pathStyle)
        self.caFile = caFile
    }

    /// AWS_ENDPOINT_URL, AWS_REGION (then AWS_DEFAULT_REGION, then us-east-1), and the
    /// credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when set,
    /// else the AWS_PROFILE (default `default`) section of ~/.aws/credentials
    /// (AWS_SHARED_CREDENTIALS_FILE overrides the path).
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       caFile: String? = nil) throws -> ObjectStoreConfig {
        func value(_ name: String) -> String? {
            guard let text = environment[name], !text.isEmpty else { return nil }
            return text
        }
        var endpoint: URL?
        if let text = value("AWS_ENDPOINT_URL") {
            guard let url = URL(string: text) else {
                throw ObjectStoreError(operation: "configure", reason: .configuration("AWS_ENDPOINT_URL '\(text)' is not a URL"))
            }
            endpoint = url
        }
        let region = value("AWS_REGION") ?? value("AWS_DEFAULT_REGION") ?? "us-east-1"
        let credentials: AWSCredentials
        if let id = value("AWS_ACCESS_KEY_ID") {
            guard let secret = value("AWS_SECRET_ACCESS_KEY") else {
                throw ObjectStoreError(operation: "configure", reason: .configuration(
                    "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not"))
            }
            credentials = AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: value("AWS_SESSION_TOKEN"))
        } else {
            let path = value("AWS_SHARED_CREDENTIALS_FILE")
                ?? ((value("HOME") ?? NSHomeDirectory()) + "/.aws/credentials")
            credentials = try sharedCredentials(path: path, profile: value("AWS_PROFILE") ?? "default")
        }
        return try ObjectStoreConfig(endpoint: endpoint, region: region, credentials: credentials, caFile: caFile)
    }

    /// One profile of an AWS shared credentials file (INI: `[profile]` sections of
    /// `name = value` lines, `#` and `;` comments).
    public static func sharedCredentials(path: String, profile: String) throws -> AWSCredentials {
        func fail(_ why: String) -> ObjectStoreError {
            ObjectStoreError(operation: "read credentials", reason: .configuration("\(path): \(why)"))
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw fail("cannot read it, and AWS_ACCESS_KEY_ID is not set")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("not UTF-8 text") }
        var section: String?
        var found = false
        var values: [String: String] = [:]
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                section = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if section == profile { found = true }
                continue
            }
            guard section == profile, let equals = line.firstIndex(of: "=") else { continue }
            let name = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            values[name] = value
        }
        guard found else { throw fail("no [\(profile)] profile") }
        guard let id = values["aws_access_key_id"], !id.isEmpty,
              let secret = values["aws_secret_access_key"], !secret.isEmpty else {
            throw fail("profile [\(profile)] lacks aws_access_key_id or aws_secret_access_key")
        }
        let token = values["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }

    /// The scheme, host (as sent in `Host` and signed) and path of a request on `bucket`/`key`
    /// (the raw path; the client percent-encodes it as the signer does).
    func address(bucket: String, key: String?) -> (scheme: String, host: String, path: String) {
        let keyPath = key.map { "/" + $0 } ?? "/"
        let base = endpoint
        let scheme = base?.scheme?.lowercased() ?? "https"
        var host = base?.host ?? "s3.\(region).amazonaws.com"
        if let port = base?.port, !(scheme == "https" && port == 443), !(scheme == "http" && port == 80) {
            host += ":\(port)"
        }
        // Dotted bucket names break the wildcard TLS certificate of virtual-hosted names.
        if addressing == .virtualHosted && !bucket.contains(".") {
            return (scheme, bucket + "." + host, keyPath)
        }
        return (scheme, host, "/" + bucket + (key.map { "/" + $0 } ?? ""))
    }
}
