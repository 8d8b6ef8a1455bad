import Crypto
import Foundation

/// An access key pair, with the session token temporary (STS) credentials carry.
public struct AWSCredentials: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}

/// AWS Signature Version 4 for request headers, as S3 checks it: the canonical request,
/// the string to sign, the derived signing key and the `Authorization` header.
///
/// The path is encoded once, segment by segment, and never normalized (S3's rule; the
/// generic services encode twice and collapse `..`, which an object key must not get).
/// Checked against AWS's published test suite and the S3 documentation's examples
/// (SigV4SignerTests).
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    /// The payload hash that tells S3 the body is not covered by the signature.
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    public let credentials: AWSCredentials
    public let region: String
    public let service: String

    public init(credentials: AWSCredentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Everything a signature is made of, kept so tests can compare each step with AWS's.
    public struct Signature: Sendable {
        public let canonicalRequest: String
        public let stringToSign: String
        public let signature: String
        public let authorization: String
        /// The headers to send: the caller's, plus `x-amz-date`, `x-amz-security-token`
        /// (temporary credentials) and `Authorization`. `Host` is signed but not listed here
        /// when the caller did not give it.
        public let headers: [(name: String, value: String)]
    }

    /// Signs a request. `path` is the raw (not yet percent-encoded) path, starting with `/`;
    /// `query` the raw names and values; `headers` those to sign besides `host` and
    /// `x-amz-date` (give `x-amz-content-sha256` here for S3). `payloadHash` is the hex
    /// SHA-256 of the body or `unsignedPayload`.
    public func sign(method: String, host: String, path: String, query: [(String, String)] = [],
                     headers: [(String, String)] = [], payloadHash: String, date: Date) -> Signature {
        let (amzDate, day) = Self.timestamps(date)
        var toSign: [(String, String)] = headers
        if !headers.contains(where: { $0.0.lowercased() == "host" }) { toSign.append(("host", host)) }
        toSign.append(("x-amz-date", amzDate))
        if let token = credentials.sessionToken { toSign.append(("x-amz-security-token", token)) }

        let (canonicalHeaders, signedHeaders) = Self.canonicalHeaders(toSign)
        let canonicalRequest = [
            method.uppercased(),
            Self.canonicalPath(path),
            Self.canonicalQuery(query),
            canonicalHeaders,
            signedHeaders,
            payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = [Self.algorithm, amzDate, scope, Self.sha256Hex(Array(canonicalRequest.utf8))]
            .joined(separator: "\n")
        let key = signingKey(day: day)
        let signature = Self.hex(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        let authorization = "\(Self.algorithm) Credential=\(credentials.accessKeyID)/\(scope), "
            + "SignedHeaders=\(signedHeaders), Signature=\(signature)"

        var sent = headers.map { (name: $0.0, value: $0.1) }
        sent.append((name: "x-amz-date", value: amzDate))
        if let token = credentials.sessionToken { sent.append((name: "x-amz-security-token", value: token)) }
        sent.append((name: "Authorization", value: authorization))
        return Signature(canonicalRequest: canonicalRequest, stringToSign: stringToSign,
                         signature: signature, authorization: authorization, headers: sent)
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    public func signingKey(day: String) -> SymmetricKey {
        var key = SymmetricKey(data: Array(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return key
    }

    // MARK: - Canonical forms

    /// Each segment percent-encoded once (every byte but A-Z a-z 0-9 - . _ ~), slashes kept.
    public static func canonicalPath(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : "/" + path
        return uriEncode(absolute, keepSlash: true)
    }

    /// Names and values encoded, sorted by name then value, `name=value` joined by `&`
    /// (a name without a value still gets its `=`).
    public static func canonicalQuery(_ query: [(String, String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { pair in
            (name: uriEncode(pair.0, keepSlash: false), value: uriEncode(pair.1, keepSlash: false))
        }
        let sorted = encoded.sorted { (a, b) -> Bool in
            a.name == b.name ? a.value < b.value : a.name < b.name
        }
        return sorted.map { pair -> String in pair.name + "=" + pair.value }.joined(separator: "&")
    }

    /// Lower-case names, sorted; values trimmed with inner runs of spaces collapsed; a name
    /// given twice gets its values joined by commas in the order given.
    static func canonicalHeaders(_ headers: [(String, String)]) -> (canonical: String, signed: String) {
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let trimmed = value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            values[name.lowercased(), default: []].append(trimmed)
        }
        let names = values.keys.sorted()
        let canonical = names.map { "\($0):\(values[$0]!.joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    /// RFC 3986 encoding as AWS specifies it: unreserved characters stay, every other byte
    /// of the UTF-8 form becomes `%XX` (upper-case hex); `/` stays only in paths.
    public static func uriEncode(_ text: String, keepSlash: Bool) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += "%" + hexByte(byte, upper: true)
            }
        }
        return out
    }

    // MARK: - Hashes and dates

    public static func sha256Hex<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        hex(SHA256.hash(data: bytes))
    }

    static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        bytes.map { hexByte($0, upper: false) }.joined()
    }

    private static func hexByte(_ byte: UInt8, upper: Bool) -> String {
        let digits = Array((upper ? "0123456789ABCDEF" : "0123456789abcdef").utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
    }

    /// `20150830T123600Z` and `20150830`, in UTC, from the civil-date arithmetic (no locale,
    /// no formatter state shared between threads).
    public static func timestamps(_ date: Date) -> (amzDate: String, day: String) {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Howard Hinnant's days_from_civil inverse.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let dayText = pad(year, 4) + pad(month, 2) + pad(day, 2)
        let time = pad(secondOfDay / 3600, 2) + pad(secondOfDay % 3600 / 60, 2) + pad(secondOfDay % 60, 2)
        return (dayText + "T" + time + "Z", dayText)
    }
}
